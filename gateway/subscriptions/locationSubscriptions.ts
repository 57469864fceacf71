import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { GraphQLError, print, validate, type DocumentNode, type ExecutionResult, type GraphQLSchema } from 'graphql';
import type { Caller } from '../../lib/caller';
import { BadUserInput, FleetError, NotFound } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import type { EventPlan, EventPlanner } from './eventPlan';
import type { LocationFeed } from './locationFeed';
import type { DeviceSequence } from '../../lib/locationEvent';
import type { LocationHistory } from './locationHistory';
import { DEVICE_FIELDS, type CachedDevice } from './localResolution';
import { ResolutionScheduler } from './resolutionScheduler';
import { SubscriptionGroup, type GroupLimits } from './subscriptionGroup';
import { SubscriberStream, type FrameSink } from './subscriberStream';

/** Runs a query through the supergraph as a caller (for authorization checks). */
export type SupergraphQuery = (query: string, variables: Record<string, unknown>, caller: Caller) => Promise<ExecutionResult>;

export interface SubscriptionLimits {
  perConnection: number;
  perTenant: number;
  /**
   * Results waiting to be written to one connection (beyond what its socket took) before it is
   * dropped as too slow. A batch is at most half of it.
   */
  queueCapacity: number;
}

/** Devices a resume (`after`) may name at most. */
export const MAX_RESUME_DEVICES = 1_000;

/** How live work is bounded (see README, "Live locations"). */
export interface LiveWorkLimits extends GroupLimits {
  /** Event batches resolved at once across the gateway. */
  concurrentResolutions: number;
  /** Events waiting for resolution per tenant; past it the tenant's largest backlog is shed. */
  pendingPerTenant: number;
}

export const DEFAULT_LIVE_LIMITS: LiveWorkLimits = {
  concurrentResolutions: 16,
  maxBatch: 500,
  retryBoundMs: 30_000,
  historyLimit: 1_000,
  pendingPerTenant: 10_000,
};

export interface LocationUpdatedArgs {
  tenantId: string;
  deviceId?: string | null;
  /** Resume: per device, the last sequence the client has; what came after is delivered first. */
  after?: DeviceSequence[] | null;
}

/** One graphql-ws connection, as the registry sees it. */
export interface SubscriberConnection {
  /** The caller the connection was authorized for; every subscription on it runs as this caller. */
  readonly caller: Caller;
  open: number;
  /** Where this connection's frames go. */
  readonly sink: FrameSink;
}

export interface SubscribeRequest {
  connection: SubscriberConnection;
  /** The graphql-ws subscription id (frames carry it). */
  id: string;
  document: DocumentNode;
  operationName: string | undefined;
  variables: Record<string, unknown>;
  args: LocationUpdatedArgs;
}

/** What the registry reports (metrics, tests). */
export interface SubscriptionStats {
  /** Events resolved through the query plan (once per group per event, however many subscribers). */
  eventsResolved: number;
  /** Plan executions (one per batch of events). */
  batchesResolved: number;
  /** Subscribers dropped because they stopped reading and their queue filled. */
  slowSubscribersDropped: number;
  /** Groups whose subscribers were ended because their tenant's pending bound was hit. */
  groupsShed: number;
}

const PLAN_CACHE_SIZE = 500;
const DEVICE_QUERY = `query($id: ID!) { device(id: $id) { ${DEVICE_FIELDS} } }`;
const TENANT_DEVICES_QUERY = `query($id: ID!) { tenant(id: $id) { devices { ${DEVICE_FIELDS} } } }`;

/**
 * The gateway's live subscriptions: authorizes and limits them, puts each in its group (see
 * subscriptionGroup.ts), feeds groups from Redis, bounds the work waiting per tenant and schedules
 * resolution fairly across tenants.
 */
export class LocationSubscriptions extends EventEmitter<{ changed: []; idle: [] }> {
  private readonly groups = new Map<string, SubscriptionGroup>();
  /** Groups still being set up (authorized, planned, positioned, following Redis); joiners wait. */
  private readonly starting = new Map<string, Promise<SubscriptionGroup>>();
  private readonly plans = new Map<string, EventPlan>();
  private plansByDocument = new WeakMap<DocumentNode, Map<string, EventPlan>>();
  /** How to stop each group's Redis subscription. */
  private readonly feedStop = new WeakMap<SubscriptionGroup, () => void>();
  readonly stats: SubscriptionStats = { eventsResolved: 0, batchesResolved: 0, slowSubscribersDropped: 0, groupsShed: 0 };
  private readonly scheduler: ResolutionScheduler;
  private readonly openPerTenant = new Map<string, number>();
  private readonly pendingPerTenant = new Map<string, number>();
  private readonly stopCatchUp: () => void;
  private readonly live: LiveWorkLimits;

  constructor(
    private readonly feed: LocationFeed,
    private planner: EventPlanner,
    private readonly history: LocationHistory,
    private readonly query: SupergraphQuery,
    private readonly limits: SubscriptionLimits,
    live: LiveWorkLimits,
    private readonly logger: Logger,
  ) {
    super();
    // A batch lands in every subscriber's queue at once: a reader that keeps up may hold one batch
    // while the next arrives, so a batch is at most half a queue (past that the reader is slow).
    this.live = { ...live, maxBatch: Math.max(1, Math.min(live.maxBatch, Math.floor(limits.queueCapacity / 2))) };
    this.scheduler = new ResolutionScheduler(live.concurrentResolutions);
    this.stopCatchUp = feed.onResubscribed(() => {
      for (const group of this.groups.values()) group.catchUp();
    });
  }

  get size(): number {
    let total = 0;
    for (const group of this.groups.values()) total += group.subscribers.size;
    return total;
  }

  get groupCount(): number {
    return this.groups.size;
  }

  /** Events waiting for resolution, all tenants together. */
  get pending(): number {
    let total = 0;
    for (const count of this.pendingPerTenant.values()) total += count;
    return total;
  }

  /** Authorizes, applies the limits and starts delivering; throws a FleetError the client sees. */
  async subscribe(request: SubscribeRequest): Promise<SubscriberStream> {
    const { connection, args } = request;
    const after = checkedResume(args.after);
    if (connection.open >= this.limits.perConnection) {
      throw new FleetError('RATE_LIMITED', `At most ${this.limits.perConnection} subscriptions per connection`, {
        retryAfterMs: 1000,
        limit: 'subscriptionsPerConnection',
      });
    }
    const tenantOpen = this.openPerTenant.get(args.tenantId) ?? 0;
    if (tenantOpen >= this.limits.perTenant) {
      throw new FleetError('RATE_LIMITED', `At most ${this.limits.perTenant} open subscriptions per tenant`, {
        retryAfterMs: 1000,
        limit: 'subscriptionsPerTenant',
      });
    }
    connection.open += 1;
    this.openPerTenant.set(args.tenantId, tenantOpen + 1);
    let group: SubscriptionGroup;
    try {
      group = await this.groupFor(request);
    } catch (error) {
      this.release(connection, args.tenantId);
      throw error;
    }
    const stream: SubscriberStream = new SubscriberStream(connection.sink, request.id, () => {
      this.release(connection, args.tenantId);
      group.leave(member);
      if (group.subscribers.size === 0 && this.groups.get(group.key) === group) {
        this.groups.delete(group.key);
        this.feedStop.get(group)?.();
        group.stop();
      }
      this.emit('changed');
    });
    const member = group.join(stream, after);
    this.emit('changed');
    return stream;
  }

  /** Counts a connection dropped because it stopped reading (metrics). */
  noteSlowConnection(): void {
    this.stats.slowSubscribersDropped += 1;
  }

  private release(connection: SubscriberConnection, tenantId: string): void {
    connection.open -= 1;
    const open = (this.openPerTenant.get(tenantId) ?? 1) - 1;
    if (open > 0) this.openPerTenant.set(tenantId, open);
    else this.openPerTenant.delete(tenantId);
  }

  private async groupFor(request: SubscribeRequest): Promise<SubscriptionGroup> {
    const { caller } = request.connection;
    const plan = this.planFor(request.document, request.operationName);
    // Visibility is part of the key: a group was authorized for exactly this role and tenant.
    const visibility = `${caller.role}:${caller.tenantId ?? '*'}`;
    const used = Object.keys(request.variables).filter((name) => plan.variableNames.has(name)).sort();
    const key = `${visibility}|${digest(plan.signature, JSON.stringify(used.map((name) => [name, request.variables[name]])))}`;
    const existing = this.groups.get(key);
    if (existing) return existing;
    let starting = this.starting.get(key);
    if (!starting) {
      starting = this.startGroup(key, plan, request).finally(() => this.starting.delete(key));
      this.starting.set(key, starting);
    }
    return starting;
  }

  private async startGroup(key: string, plan: EventPlan, request: SubscribeRequest): Promise<SubscriptionGroup> {
    const { caller } = request.connection;
    const { tenantId, deviceId = null } = request.args;
    await this.authorize(caller, request.args);
    const group = new SubscriptionGroup({
      key,
      document: request.document,
      operationName: request.operationName,
      tenantId,
      deviceId,
      caller,
      variables: request.variables,
      plan,
      history: this.history,
      devices: (caller, tenantId, deviceId) => this.devicesOf(caller, tenantId, deviceId),
      scheduler: this.scheduler,
      limits: this.live,
      logger: this.logger,
      onResolved: (events) => {
        this.stats.eventsResolved += events;
        this.stats.batchesResolved += 1;
      },
      onPendingChanged: (delta) => this.pendingChanged(tenantId, delta),
    });
    // Positions first, Redis second: whatever is accepted in between arrives on Redis or shows up
    // as a gap to fill, so nothing accepted after the subscription started is missed.
    group.startFrom(await this.history.positions(caller, tenantId, deviceId));
    const unfollow = await this.feed.follow(request.args, (event) => group.accept(event));
    this.feedStop.set(group, unfollow);
    this.groups.set(key, group);
    return group;
  }

  private planFor(document: DocumentNode, operationName: string | undefined): EventPlan {
    // The operation guard hands out one DocumentNode per operation text: most lookups stop here.
    const byName = this.plansByDocument.get(document);
    const known = byName?.get(operationName ?? '');
    if (known) return known;
    const key = digest(print(document), operationName ?? '');
    let plan = this.plans.get(key);
    if (!plan) {
      plan = this.planner.plan(document, operationName);
      if (this.plans.size >= PLAN_CACHE_SIZE) this.plans.delete(this.plans.keys().next().value as string);
      this.plans.set(key, plan);
    }
    if (byName) byName.set(operationName ?? '', plan);
    else this.plansByDocument.set(document, new Map([[operationName ?? '', plan]]));
    return plan;
  }

  /** The immutable fields of a scope's devices, read through the supergraph as the group's caller. */
  private async devicesOf(caller: Caller, tenantId: string, deviceId: string | null): Promise<CachedDevice[]> {
    const result = deviceId
      ? await this.query(DEVICE_QUERY, { id: deviceId }, caller)
      : await this.query(TENANT_DEVICES_QUERY, { id: tenantId }, caller);
    const data = result.data as { device?: CachedDevice | null; tenant?: { devices: CachedDevice[] } | null } | undefined;
    const devices = deviceId ? (data?.device ? [data.device] : []) : (data?.tenant?.devices ?? []);
    // A failure must not look like "no such device": the batch is retried instead.
    if (result.errors?.some((e) => e.extensions?.code !== 'NOT_FOUND')) throw new Error(`reading devices failed: ${result.errors[0]?.message}`);
    return devices.filter((device) => device.tenant.id === tenantId);
  }

  /** MEMBER: own tenant only; ADMIN: any existing tenant. Another tenant's device is NOT_FOUND. */
  private async authorize(caller: Caller, args: LocationUpdatedArgs): Promise<void> {
    if (caller.role !== 'ADMIN' && caller.tenantId !== args.tenantId) throw new NotFound('Tenant');
    if (caller.role === 'ADMIN') {
      const tenant = await this.query('query($id: ID!) { tenant(id: $id) { id } }', { id: args.tenantId }, caller);
      if (!(tenant.data as { tenant?: unknown } | undefined)?.tenant) throw notFoundOr('Tenant', tenant);
    }
    if (args.deviceId) {
      const device = await this.query('query($id: ID!) { device(id: $id) { tenant { id } } }', { id: args.deviceId }, caller);
      const owner = (device.data as { device?: { tenant: { id: string } } | null } | undefined)?.device?.tenant.id;
      if (owner !== args.tenantId) throw notFoundOr('Device', device);
    }
  }

  /**
   * A tenant's waiting events went over the bound: shed its largest backlogs until it is back
   * under, ending their subscribers with RATE_LIMITED (they resubscribe, with `after` to resume).
   */
  private pendingChanged(tenantId: string, delta: number): void {
    const now = (this.pendingPerTenant.get(tenantId) ?? 0) + delta;
    if (now > 0) this.pendingPerTenant.set(tenantId, now);
    else this.pendingPerTenant.delete(tenantId);
    if (this.pendingPerTenant.size === 0) this.emit('idle');
    if (delta <= 0 || now <= this.live.pendingPerTenant) return;
    const largest = [...this.groups.values()].filter((g) => g.tenantId === tenantId).sort((a, b) => b.backlog - a.backlog)[0];
    if (!largest) return;
    this.stats.groupsShed += 1;
    this.logger.warn({ tenantId, pending: now, bound: this.live.pendingPerTenant, group: largest.key }, 'shed a subscription group: too many events waiting for this tenant');
    this.groups.delete(largest.key);
    this.feedStop.get(largest)?.();
    // Deferred: this runs inside the group's own bookkeeping.
    queueMicrotask(() =>
      largest.endWith({
        data: null,
        errors: [
          new GraphQLError('Too many locations are waiting for delivery to this tenant; subscribe again (with `after` to resume)', {
            extensions: { code: 'RATE_LIMITED', retryAfterMs: 1000, limit: 'pendingLocationsPerTenant' },
          }),
        ],
      }),
    );
  }

  /**
   * A new supergraph: every group is planned again; one whose operation no longer validates
   * against the new API ends with BAD_USER_INPUT and `complete` (its clients stay connected).
   */
  replan(planner: EventPlanner, apiSchema: GraphQLSchema): void {
    this.planner = planner;
    this.plans.clear();
    this.plansByDocument = new WeakMap();
    for (const group of [...this.groups.values()]) {
      const { document, operationName } = group.operation;
      const invalid = validate(apiSchema, document);
      let problem = invalid[0]?.message;
      if (!problem) {
        try {
          group.replan(this.planFor(document, operationName));
          continue;
        } catch (error) {
          problem = error instanceof Error ? error.message : String(error);
        }
      }
      this.logger.info({ group: group.key, problem }, 'ended a subscription group the new supergraph cannot serve');
      this.groups.delete(group.key);
      this.feedStop.get(group)?.();
      group.endWith({
        data: null,
        errors: [new GraphQLError(`The API changed and this subscription is no longer valid: ${problem}`, { extensions: { code: 'BAD_USER_INPUT', field: 'query' } })],
      });
    }
  }

  /**
   * For a gateway going away: stops taking events from Redis and waits (at most `timeoutMs`) until
   * what was taken in has been handed to the sockets.
   */
  async drain(timeoutMs: number): Promise<void> {
    for (const group of this.groups.values()) this.feedStop.get(group)?.();
    if (this.pending === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      this.on('idle', done);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.off('idle', done);
        resolve();
      }
    });
  }

  close(): void {
    this.stopCatchUp();
    for (const group of this.groups.values()) {
      for (const subscriber of [...group.subscribers]) subscriber.stream.end();
      group.stop();
    }
  }
}

/** A resume's positions, checked: at most MAX_RESUME_DEVICES, each device once, sequences >= 0. */
function checkedResume(after: DeviceSequence[] | null | undefined): DeviceSequence[] {
  if (!after?.length) return [];
  if (after.length > MAX_RESUME_DEVICES) throw new BadUserInput('after', `after may name at most ${MAX_RESUME_DEVICES} devices`);
  const seen = new Set<string>();
  after.forEach((position, index) => {
    if (!Number.isInteger(position.sequence) || position.sequence < 0) throw new BadUserInput('sequence', 'sequence must be 0 or more', { index });
    if (seen.has(position.deviceId)) throw new BadUserInput('deviceId', 'each device may appear once in after', { index });
    seen.add(position.deviceId);
  });
  return after;
}

function digest(...parts: string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\0');
  return hash.digest('base64url');
}

/** NOT_FOUND, unless the check itself failed (then the failure, so the client can retry). */
function notFoundOr(what: string, result: ExecutionResult): Error {
  const failure = result.errors?.find((e) => e.extensions?.code === 'INTERNAL_SERVER_ERROR');
  return failure ? new FleetError('INTERNAL_SERVER_ERROR', 'Internal server error') : new NotFound(what);
}
