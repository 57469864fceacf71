import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { GraphQLError, print, type DocumentNode, type ExecutionResult } from 'graphql';
import type { Caller } from '../../lib/caller';
import { FleetError, NotFound, formatFleetError } from '../../lib/errors';
import type { LocationEvent } from '../../lib/locationEvent';
import type { Logger } from '../../lib/logger';
import type { PlannedSubscription, SubscriptionPlanner } from './federatedEvent';
import type { LocationFeed } from './locationFeed';
import { SubscriberQueue } from './subscriberQueue';

/** Runs a query through the supergraph as a caller (for authorization checks and catch-up). */
export type SupergraphQuery = (query: string, variables: Record<string, unknown>, caller: Caller) => Promise<ExecutionResult>;

export interface SubscriptionLimits {
  perConnection: number;
  perTenant: number;
  /** Results waiting for one subscriber before it is dropped as too slow. */
  queueCapacity: number;
}

export interface LocationUpdatedArgs {
  tenantId: string;
  deviceId?: string | null;
}

/** One graphql-ws connection, as the registry sees it. */
export interface SubscriberConnection {
  caller: Caller;
  open: number;
  /** Called when one of its subscribers falls too far behind. */
  dropAsSlow(): void;
}

export interface SubscribeRequest {
  connection: SubscriberConnection;
  document: DocumentNode;
  operationName: string | undefined;
  variables: Record<string, unknown>;
  args: LocationUpdatedArgs;
}

/**
 * Plan executions the gateway runs at once, across all groups: enough to overlap subgraph round
 * trips, few enough that a burst to many groups queues here instead of overloading the subgraphs.
 * Waiting work starts in arrival order (a freed slot goes straight to the next in line).
 */
class ResolveSlots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly size: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running < this.size) this.running += 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    }
  }
}

const CONCURRENT_RESOLUTIONS = 16;

const LOCATION_FIELDS = 'id latitude longitude accuracy speed heading altitude recordedAt receivedAt sequence device { id tenant { id } }';

/**
 * Subscribers that would see the same thing share a group: same operation text, same variables,
 * same visibility (role and tenant). A group follows one Redis channel, de-duplicates events by
 * per-device sequence, resolves each event's selection once through the query plan, and hands
 * the result to every member: N dashboards on one device cost one set of entity fetches per event.
 */
class SubscriptionGroup {
  readonly subscribers = new Set<SubscriberQueue>();
  private readonly lastSeq = new Map<string, number>();
  private readonly recentIds: string[] = [];
  private readonly deviceChains = new Map<string, Promise<void>>();
  unfollow: (() => void) | null = null;
  /** Settles once Redis confirmed the group's channel subscription. */
  following: Promise<void> = Promise.resolve();

  constructor(
    readonly key: string,
    readonly caller: Caller,
    readonly args: LocationUpdatedArgs,
    private readonly variables: Record<string, unknown>,
    private readonly planned: PlannedSubscription,
    private readonly logger: Logger,
    private readonly slots: ResolveSlots,
    private readonly onResolved: () => void,
  ) {}

  /** Takes one event (from Redis or a catch-up). Replays and duplicates are dropped here. */
  accept(event: LocationEvent): void {
    if (event.seq !== undefined) {
      const last = this.lastSeq.get(event.deviceId) ?? 0;
      if (event.seq <= last) return;
      this.lastSeq.set(event.deviceId, event.seq);
    } else {
      if (this.recentIds.includes(event.id)) return;
      this.recentIds.push(event.id);
      if (this.recentIds.length > 1000) this.recentIds.shift();
    }
    // Events resolve concurrently (their subgraph fetches overlap), but each device's results are
    // handed over in acceptance order: delivery waits for the device's previous event.
    const resolved = this.slots.run(() => this.resolve(event));
    const previous = this.deviceChains.get(event.deviceId) ?? Promise.resolve();
    const next = previous.then(() => resolved).then((result) => {
      for (const subscriber of this.subscribers) subscriber.push(result);
    });
    this.deviceChains.set(event.deviceId, next);
    void next.finally(() => {
      if (this.deviceChains.get(event.deviceId) === next) this.deviceChains.delete(event.deviceId);
    });
  }

  private async resolve(event: LocationEvent): Promise<ExecutionResult> {
    this.onResolved();
    try {
      const result = await this.planned.execute(event, this.caller, this.variables);
      if (!result.errors?.length) return result;
      return { ...result, errors: result.errors.map((e) => this.format(e)) };
    } catch (error) {
      this.logger.error({ err: error }, 'resolving a location event failed');
      return { data: null, errors: [new FleetError('INTERNAL_SERVER_ERROR', 'Internal server error')] };
    }
  }

  /** The same masking as HTTP responses, as a GraphQLError (graphql-ws serializes with toJSON). */
  private format(error: GraphQLError): GraphQLError {
    const formatted = formatFleetError(error.toJSON(), (internal) => this.logger.error({ error: internal }, 'subgraph error in a subscription event'));
    return new GraphQLError(formatted.message, { path: formatted.path, extensions: formatted.extensions });
  }
}

/** What the registry reports: `changed` when a subscription starts or ends, for operators and tests. */
export interface SubscriptionStats {
  /** Events resolved through the query plan (once per group per event, however many subscribers). */
  eventsResolved: number;
  /** Subscribers dropped because they stopped reading and their queue filled. */
  slowSubscribersDropped: number;
}

export class LocationSubscriptions extends EventEmitter<{ changed: [] }> {
  private readonly groups = new Map<string, SubscriptionGroup>();
  readonly stats: SubscriptionStats = { eventsResolved: 0, slowSubscribersDropped: 0 };
  private readonly slots = new ResolveSlots(CONCURRENT_RESOLUTIONS);
  private readonly openPerTenant = new Map<string, number>();
  private readonly stopCatchUp: () => void;

  constructor(
    private readonly feed: LocationFeed,
    private readonly planner: SubscriptionPlanner,
    private readonly query: SupergraphQuery,
    private readonly limits: SubscriptionLimits,
    private readonly logger: Logger,
  ) {
    super();
    this.stopCatchUp = feed.onResubscribed(() => void this.catchUpAll());
  }

  get size(): number {
    let total = 0;
    for (const group of this.groups.values()) total += group.subscribers.size;
    return total;
  }

  get groupCount(): number {
    return this.groups.size;
  }

  /** Authorizes, applies the limits and starts delivering; throws a FleetError the client sees. */
  async subscribe(request: SubscribeRequest): Promise<SubscriberQueue> {
    const { connection, args } = request;
    await this.authorize(connection.caller, args);
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

    const group = await this.groupFor(request).catch((error: unknown) => {
      this.release(connection, args.tenantId);
      throw error;
    });
    const queue: SubscriberQueue = new SubscriberQueue(
      this.limits.queueCapacity,
      () => {
        this.stats.slowSubscribersDropped += 1;
        this.logger.warn({ userId: connection.caller.userId, capacity: this.limits.queueCapacity }, 'dropped a subscriber that stopped reading');
        connection.dropAsSlow();
      },
      () => {
        this.release(connection, args.tenantId);
        group.subscribers.delete(queue);
        if (group.subscribers.size === 0 && this.groups.get(group.key) === group) {
          this.groups.delete(group.key);
          group.unfollow?.();
        }
        this.emit('changed');
      },
    );
    group.subscribers.add(queue);
    this.emit('changed');
    return queue;
  }

  private release(connection: SubscriberConnection, tenantId: string): void {
    connection.open -= 1;
    const open = (this.openPerTenant.get(tenantId) ?? 1) - 1;
    if (open > 0) this.openPerTenant.set(tenantId, open);
    else this.openPerTenant.delete(tenantId);
  }

  /** MEMBER: own tenant only; ADMIN: any existing tenant. Another tenant's device is NOT_FOUND. */
  private async authorize(caller: Caller, args: LocationUpdatedArgs): Promise<void> {
    if (caller.role !== 'ADMIN' && caller.tenantId !== args.tenantId) throw new NotFound('Tenant');
    if (caller.role === 'ADMIN') {
      const tenant = await this.query('query($id: ID!) { tenant(id: $id) { id } }', { id: args.tenantId }, caller);
      if (!(tenant.data as { tenant?: unknown } | undefined)?.tenant) throw new NotFound('Tenant');
    }
    if (args.deviceId) {
      const device = await this.query('query($id: ID!) { device(id: $id) { tenant { id } } }', { id: args.deviceId }, caller);
      const owner = (device.data as { device?: { tenant: { id: string } } | null } | undefined)?.device?.tenant.id;
      if (owner !== args.tenantId) throw new NotFound('Device');
    }
  }

  private async groupFor(request: SubscribeRequest): Promise<SubscriptionGroup> {
    const { caller } = request.connection;
    const visibility = `${caller.role}:${caller.tenantId ?? '*'}`;
    const operation = createHash('sha256')
      .update(print(request.document))
      .update('\0')
      .update(request.operationName ?? '')
      .update('\0')
      .update(JSON.stringify(request.variables))
      .digest('base64url');
    const key = `${visibility}|${operation}`;
    const existing = this.groups.get(key);
    if (existing) {
      // Joining a group whose Redis subscription is still being made: wait for it (or its failure).
      await existing.following;
      return existing;
    }

    const planned = this.planner.plan(request.document, request.operationName);
    const group = new SubscriptionGroup(key, caller, request.args, request.variables, planned, this.logger, this.slots, () => {
      this.stats.eventsResolved += 1;
    });
    group.following = this.feed.follow(request.args, (event) => group.accept(event)).then((unfollow) => {
      group.unfollow = unfollow;
    });
    this.groups.set(key, group);
    try {
      await group.following;
    } catch (error) {
      this.groups.delete(key);
      throw error;
    }
    return group;
  }

  /**
   * After Redis came back: every group receives the current position of each device it follows
   * (newer than what it delivered), so nobody stays silently behind what happened meanwhile.
   */
  async catchUpAll(): Promise<void> {
    await Promise.all([...this.groups.values()].map((group) => this.catchUp(group).catch((error: unknown) => {
      this.logger.error({ err: error }, 'catch-up failed');
    })));
  }

  private async catchUp(group: SubscriptionGroup): Promise<void> {
    const { tenantId, deviceId } = group.args;
    const result = deviceId
      ? await this.query(`query($id: ID!) { device(id: $id) { lastLocation { ${LOCATION_FIELDS} } } }`, { id: deviceId }, group.caller)
      : await this.query(`query($id: ID!) { tenant(id: $id) { devices { lastLocation { ${LOCATION_FIELDS} } } } }`, { id: tenantId }, group.caller);
    type Last = { lastLocation: (Omit<LocationEvent, 'tenantId' | 'deviceId' | 'seq'> & { sequence: number; device: { id: string; tenant: { id: string } } }) | null };
    const data = result.data as { device?: Last | null; tenant?: { devices: Last[] } | null } | undefined;
    const devices = deviceId ? [data?.device] : (data?.tenant?.devices ?? []);
    for (const device of devices) {
      const last = device?.lastLocation;
      if (!last) continue;
      const { sequence, device: owner, ...fields } = last;
      group.accept({ ...fields, seq: sequence, deviceId: owner.id, tenantId: owner.tenant.id });
    }
  }

  close(): void {
    this.stopCatchUp();
    for (const group of this.groups.values()) {
      for (const subscriber of group.subscribers) subscriber.end();
    }
  }
}
