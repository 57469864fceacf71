import { GraphQLError, type DocumentNode, type ExecutionResult } from 'graphql';
import type { Caller } from '../../lib/caller';
import { formatFleetError } from '../../lib/errors';
import type { LocationEvent } from '../../lib/locationEvent';
import type { Logger } from '../../lib/logger';
import type { EventOutcome, EventPlan } from './eventPlan';
import { deviceNotFound, type CachedDevice } from './localResolution';
import type { DeviceSequence, SequenceRange } from '../../lib/locationEvent';
import type { LocationHistory } from './locationHistory';
import type { ResolutionScheduler, ScheduledWork } from './resolutionScheduler';
import type { SubscriberStream } from './subscriberStream';

/**
 * Subscribers that would see the same thing share a group: same operation, same variables, same
 * visibility (role and tenant). A group
 * - drops replays: it knows, per device, the last sequence it took in;
 * - never skips: a sequence jump (a Redis message lost, a reconnect) queues a gap that is filled
 *   from the location history before anything later is handed over;
 * - resolves in micro-batches: the events that arrive while its previous batch is being resolved
 *   are resolved together in ONE plan execution, and batches run one at a time, so each device's
 *   results are handed over in acceptance order, each serialized once for all subscribers;
 * - resumes a subscriber that says what it has seen (`after`): its missed locations come first,
 *   from the history, to it alone, then the live stream, nothing twice at the seam;
 * - retries a batch that failed for a passing reason (a subgraph down or slow) with backoff, for at
 *   most `retryBoundMs`; only then does it deliver, for what still fails, an error naming the
 *   location, so the client can re-read it.
 */
export interface GroupSubscriber {
  stream: SubscriberStream;
  /** The first queue item this subscriber receives: what was queued before it joined is not its. */
  from: number;
  /** Per device, the last sequence this subscriber already holds: results up to it are skipped. */
  floor: Map<string, number>;
}

export interface GroupLimits {
  /** Events resolved together in one plan execution at most. */
  maxBatch: number;
  /** How long a batch that fails for a passing reason is retried before errors are delivered. */
  retryBoundMs: number;
  /** Locations per device a gap fill, catch-up or resume reads from the history at most. */
  historyLimit: number;
}

export interface GroupOptions {
  key: string;
  /** The subscription operation as clients sent it (validated again when the supergraph changes). */
  document: DocumentNode;
  operationName: string | undefined;
  tenantId: string;
  deviceId: string | null;
  caller: Caller;
  variables: Record<string, unknown>;
  plan: EventPlan;
  history: LocationHistory;
  /** The immutable fields of the scope's devices, for selections the gateway resolves alone. */
  devices: DeviceLookup;
  scheduler: ResolutionScheduler;
  limits: GroupLimits;
  logger: Logger;
  /** Called after each plan execution with how many events it resolved. */
  onResolved(events: number): void;
  /** Called whenever the number of events waiting in this group changes, with the change. */
  onPendingChanged(delta: number): void;
}

/** Reads the devices of a scope (a tenant, or one device of it) as the caller sees them. */
export type DeviceLookup = (caller: Caller, tenantId: string, deviceId: string | null) => Promise<CachedDevice[]>;

type Pending = { no: number } & (
  | { kind: 'event'; event: LocationEvent }
  /** Locations of one device inside `range` were not heard on Redis. */
  | { kind: 'gap'; range: { deviceId: string; after: number; before: number } }
  /** Redis was away: everything after what this group had taken in, per device, as of `taken`. */
  | { kind: 'catchUp'; taken: Map<string, number> }
  /** A subscriber resuming: what it missed after `after`, for it alone. */
  | { kind: 'resume'; target: GroupSubscriber; after: DeviceSequence[] }
);

/** What a batch hands over, in order: an event to resolve, or a range the history could not give. */
type BatchEntry = { no: number; target?: GroupSubscriber } & ({ event: LocationEvent } | { missing: Partial<SequenceRange> });

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;

export class SubscriptionGroup implements ScheduledWork {
  readonly subscribers = new Set<GroupSubscriber>();
  /** Per device, the highest sequence taken in (pending or done): lower ones are replays. */
  private readonly taken = new Map<string, number>();
  /** Per device, the highest sequence put into a batch: a gap or catch-up never repeats it. */
  private readonly batched = new Map<string, number>();
  private readonly pending: Pending[] = [];
  private pendingEvents = 0;
  /**
   * Events' worth of items taken from the queue and being read from the history into a batch: still
   * waiting as far as the pending bound (and a draining gateway) is concerned.
   */
  private expanding = 0;
  private nextNo = 0;
  /** The batch being resolved (kept across retries, so a retry resolves exactly the same events). */
  private batch: BatchEntry[] | null = null;
  private failingSince: number | null = null;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private scheduled = false;
  private ended = false;
  private planned: EventPlan;
  /**
   * Devices of the group's scope by id (their name and tenant never change), read once and again
   * only when an event names a device not seen yet (registered after the group started).
   */
  private readonly deviceCache = new Map<string, CachedDevice>();

  constructor(private readonly options: GroupOptions) {
    this.planned = options.plan;
  }

  get key(): string {
    return this.options.key;
  }

  get tenantId(): string {
    return this.options.tenantId;
  }

  get operation(): { document: DocumentNode; operationName: string | undefined } {
    return { document: this.options.document, operationName: this.options.operationName };
  }

  /** Events waiting in this group (queued, or in the batch being resolved). */
  get backlog(): number {
    return this.pendingEvents + this.expanding + (this.batch?.length ?? 0);
  }

  /** Where each device stood when the group started: later sequences are news, earlier ones replays. */
  startFrom(positions: readonly DeviceSequence[]): void {
    for (const { deviceId, sequence } of positions) {
      this.taken.set(deviceId, sequence);
      this.batched.set(deviceId, sequence);
    }
  }

  /** A new plan for the same operation (the supergraph changed); the next attempt uses it. */
  replan(plan: EventPlan): void {
    this.planned = plan;
  }

  /**
   * Adds a subscriber: it receives what is queued from now on and, when it says what it has seen
   * (`after`), first what it missed since then.
   */
  join(stream: SubscriberStream, after: readonly DeviceSequence[] = []): GroupSubscriber {
    const relevant = after.filter((p) => !this.options.deviceId || p.deviceId === this.options.deviceId);
    const subscriber: GroupSubscriber = { stream, from: this.nextNo, floor: new Map(relevant.map((p) => [p.deviceId, p.sequence])) };
    this.subscribers.add(subscriber);
    if (relevant.length) this.enqueue({ kind: 'resume', target: subscriber, after: relevant });
    return subscriber;
  }

  leave(subscriber: GroupSubscriber): void {
    this.subscribers.delete(subscriber);
  }

  /** Takes one event heard on Redis. Replays are dropped; a jump queues the missing range first. */
  accept(event: LocationEvent): void {
    if (this.ended || event.tenantId !== this.options.tenantId) return;
    if (this.options.deviceId && event.deviceId !== this.options.deviceId) return;
    // A device the group never saw was registered after the group started: it starts at 0.
    const last = this.taken.get(event.deviceId) ?? 0;
    if (event.seq <= last) return;
    if (event.seq > last + 1) this.enqueue({ kind: 'gap', range: { deviceId: event.deviceId, after: last, before: event.seq } });
    this.taken.set(event.deviceId, event.seq);
    this.enqueue({ kind: 'event', event });
  }

  /** After Redis came back: whatever was accepted meanwhile is read from the history, in order. */
  catchUp(): void {
    if (!this.ended) this.enqueue({ kind: 'catchUp', taken: new Map(this.taken) });
  }

  /** Ends every subscriber with `result` (then `complete`) and stops; used for shedding and reloads. */
  endWith(result: ExecutionResult): void {
    const json = JSON.stringify(result);
    for (const subscriber of [...this.subscribers]) {
      subscriber.stream.deliver(json);
      subscriber.stream.end();
    }
    this.stop();
  }

  /** No subscriber left, or ended: drops what waits and stops resolving. */
  stop(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.options.scheduler.cancel(this.options.tenantId, this);
    this.options.onPendingChanged(-this.backlog);
    this.pending.length = 0;
    this.pendingEvents = 0;
    this.expanding = 0;
    this.batch = null;
  }

  private enqueue(item: DistributiveOmit<Pending, 'no'>): void {
    const queued = { ...item, no: this.nextNo++ } as Pending;
    const events = this.size(queued);
    this.pending.push(queued);
    this.pendingEvents += events;
    this.options.onPendingChanged(events);
    this.wake();
  }

  private wake(): void {
    if (this.scheduled || this.retryTimer || this.ended) return;
    if (!this.pending.length && !this.batch) return;
    this.scheduled = true;
    this.options.scheduler.schedule(this.options.tenantId, this);
  }

  /** One attempt at one batch (ScheduledWork). Never runs twice at once: `scheduled` covers the run too. */
  async run(): Promise<void> {
    try {
      await this.attemptBatch();
    } finally {
      this.scheduled = false;
      this.wake();
    }
  }

  private async attemptBatch(): Promise<void> {
    if (this.ended) return;
    if (!this.batch) {
      const items = this.takeItems();
      let entries: BatchEntry[];
      try {
        entries = await this.expand(items, true);
      } catch (error) {
        if (this.ended) return;
        if (this.retryLater(error)) {
          this.putBack(items);
          return;
        }
        // The history stayed unreadable past the bound: say what is missing instead of waiting on.
        entries = await this.expand(items, false);
      }
      if (this.ended) return;
      // The items became the batch: the count moves over in one step, never through 0 (a draining
      // gateway waits for 0).
      this.options.onPendingChanged(entries.length - this.expanding);
      this.expanding = 0;
      this.batch = entries;
    }
    const batch = this.batch;
    const events = batch.flatMap((entry) => ('event' in entry ? [entry.event] : []));
    let outcomes: EventOutcome[];
    try {
      outcomes = events.length ? await this.resolve(events) : [];
    } catch (error) {
      if (this.ended || this.retryLater(error)) return;
      outcomes = events.map(() => ({ result: { data: null }, transient: true }));
    }
    if (this.ended) return;
    if (outcomes.some((o) => o.transient) && this.retryLater(null)) return;
    if (events.length) this.options.onResolved(events.length);
    this.handOver(batch, outcomes);
    this.batch = null;
    this.options.onPendingChanged(-batch.length);
    this.failingSince = null;
    this.attempt = 0;
  }

  /**
   * Locally when the selection allows it (the event plus the cached device), otherwise through the
   * query plan. Throws only when the devices could not be read (a passing failure).
   */
  private async resolve(events: LocationEvent[]): Promise<EventOutcome[]> {
    const local = this.planned.local;
    if (!local) return this.planned.resolve(events, this.options.caller, this.options.variables);
    if (local.needsDevice && events.some((event) => !this.deviceCache.has(event.deviceId))) {
      const { caller, tenantId, deviceId } = this.options;
      for (const device of await this.options.devices(caller, tenantId, deviceId)) this.deviceCache.set(device.id, device);
    }
    return events.map((event) => {
      const device = this.deviceCache.get(event.deviceId);
      if (local.needsDevice && !device) return { result: deviceNotFound(this.planned.responseKey), transient: false };
      return { result: local.resolve(event, device, this.options.caller, this.options.variables), transient: false };
    });
  }

  /** Up to `maxBatch` events' worth of pending items, in order. */
  private takeItems(): Pending[] {
    const items: Pending[] = [];
    let events = 0;
    while (this.pending.length && (items.length === 0 || events < this.options.limits.maxBatch)) {
      const item = this.pending.shift() as Pending;
      items.push(item);
      events += this.size(item);
    }
    this.pendingEvents -= events;
    this.expanding = events;
    return items;
  }

  /** What an item weighs against the pending bound: a history read as many events as it can bring. */
  private size(item: Pending): number {
    if (item.kind === 'gap') return Math.min(item.range.before - item.range.after - 1, this.options.limits.historyLimit);
    return 1;
  }

  private putBack(items: Pending[]): void {
    this.pending.unshift(...items);
    this.pendingEvents += this.expanding;
    this.expanding = 0;
  }

  /**
   * Items → what the batch hands over, in order: gaps, catch-ups and resumes read from the history
   * (or, when `useHistory` is false, reported as missing), nothing twice.
   */
  private async expand(items: Pending[], useHistory: boolean): Promise<BatchEntry[]> {
    const { history, caller, tenantId, deviceId, limits } = this.options;
    const gaps = items.flatMap((item) => (item.kind === 'gap' ? [item.range] : []));
    const filled = new Map<string, LocationEvent[]>();
    if (gaps.length && useHistory) {
      for (const event of await history.between(caller, tenantId, gaps, limits.historyLimit)) {
        filled.set(event.deviceId, [...(filled.get(event.deviceId) ?? []), event]);
      }
    }
    const entries: BatchEntry[] = [];
    const add = (event: LocationEvent, no: number) => {
      if (event.seq <= (this.batched.get(event.deviceId) ?? 0)) return;
      this.batched.set(event.deviceId, event.seq);
      if (event.seq > (this.taken.get(event.deviceId) ?? 0)) this.taken.set(event.deviceId, event.seq);
      entries.push({ no, event });
    };
    for (const item of items) {
      if (item.kind === 'event') add(item.event, item.no);
      else if (item.kind === 'resume') {
        if (!useHistory) {
          entries.push({ no: item.no, target: item.target, missing: {} });
          continue;
        }
        // For this subscriber alone: the group's own "already delivered" does not apply to it.
        const missed = await history.between(caller, tenantId, item.after.map((p) => ({ deviceId: p.deviceId, after: p.sequence })), limits.historyLimit);
        for (const event of missed) {
          entries.push({ no: item.no, target: item.target, event });
          if (event.seq > (item.target.floor.get(event.deviceId) ?? 0)) item.target.floor.set(event.deviceId, event.seq);
        }
      } else if (!useHistory) entries.push({ no: item.no, missing: item.kind === 'gap' ? item.range : {} });
      else if (item.kind === 'gap') {
        for (const event of filled.get(item.range.deviceId) ?? []) if (event.seq < item.range.before) add(event, item.no);
      } else {
        const now = await history.positions(caller, tenantId, deviceId);
        const behind = now.filter((p) => p.sequence > (item.taken.get(p.deviceId) ?? 0)).map((p) => ({ deviceId: p.deviceId, after: item.taken.get(p.deviceId) ?? 0 }));
        for (const event of await history.between(caller, tenantId, behind, limits.historyLimit)) add(event, item.no);
      }
    }
    return entries;
  }

  /**
   * A passing failure: schedule another attempt with backoff and answer true, or answer false when
   * the retry bound is spent (then the caller delivers what there is, errors included).
   */
  private retryLater(error: unknown): boolean {
    const now = Date.now();
    this.failingSince ??= now;
    if (now - this.failingSince >= this.options.limits.retryBoundMs) return false;
    this.attempt += 1;
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (this.attempt - 1));
    const delay = Math.min(backoff / 2 + Math.random() * (backoff / 2), this.failingSince + this.options.limits.retryBoundMs - now);
    if (this.attempt === 1 || this.attempt % 10 === 0) {
      this.options.logger.warn({ err: error ?? undefined, attempt: this.attempt, group: this.options.key }, 'resolving location events failed; retrying');
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.wake();
    }, delay);
    return true;
  }

  private handOver(batch: BatchEntry[], outcomes: EventOutcome[]): void {
    let next = 0;
    for (const entry of batch) {
      let result: ExecutionResult;
      if ('event' in entry) {
        const outcome = outcomes[next++] as EventOutcome;
        result = outcome.transient ? this.gaveUp(entry.event) : this.masked(outcome.result);
      } else result = this.missing(entry.missing);
      const json = JSON.stringify(result);
      const event = 'event' in entry ? entry.event : null;
      if (entry.target) {
        if (this.subscribers.has(entry.target)) entry.target.stream.deliver(json);
        continue;
      }
      for (const subscriber of this.subscribers) {
        if (entry.no < subscriber.from) continue;
        const floor = event ? subscriber.floor.get(event.deviceId) : undefined;
        if (event && floor !== undefined && event.seq <= floor) continue;
        subscriber.stream.deliver(json);
      }
    }
  }

  /** The retry bound is spent: say which location is missing so the client can re-read it. */
  private gaveUp(event: LocationEvent): ExecutionResult {
    this.options.logger.error({ locationId: event.id, deviceId: event.deviceId, seq: event.seq }, 'gave up resolving a location event');
    return {
      data: null,
      errors: [
        new GraphQLError(`Location ${event.id} (device ${event.deviceId}, sequence ${event.seq}) could not be resolved; read it with device(id).locations`, {
          path: [this.planned.responseKey],
          extensions: { code: 'INTERNAL_SERVER_ERROR', locationId: event.id, deviceId: event.deviceId, sequence: event.seq },
        }),
      ],
    };
  }

  /** The history could not be read within the bound: say which range is missing. */
  private missing(range: Partial<SequenceRange>): ExecutionResult {
    this.options.logger.error({ group: this.options.key, ...range }, 'gave up reading the location history');
    const what = range.deviceId
      ? `Locations of device ${range.deviceId} after sequence ${range.after}${range.before ? ` and before ${range.before}` : ''}`
      : 'Locations accepted while the live feed was interrupted';
    return {
      data: null,
      errors: [
        new GraphQLError(`${what} could not be read; read them with device(id).locations`, {
          path: [this.planned.responseKey],
          extensions: {
            code: 'INTERNAL_SERVER_ERROR',
            ...(range.deviceId ? { deviceId: range.deviceId, afterSequence: range.after, beforeSequence: range.before ?? null } : {}),
          },
        }),
      ],
    };
  }

  /** The same masking as HTTP responses. */
  private masked(result: ExecutionResult): ExecutionResult {
    if (!result.errors?.length) return result;
    return {
      ...result,
      errors: result.errors.map((error) => {
        const formatted = formatFleetError(error.toJSON(), (internal) => this.options.logger.error({ error: internal }, 'subgraph error in a subscription event'));
        return new GraphQLError(formatted.message, { path: formatted.path, extensions: formatted.extensions });
      }),
    };
  }
}

type DistributiveOmit<T, K extends keyof never> = T extends unknown ? Omit<T, K> : never;
