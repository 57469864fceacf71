import { performance } from 'node:perf_hooks';
import { graphql } from '../test/support/client';
import type { BenchContext, BenchResult, ResultRow } from './context';
import { observeDeviceChannel, waitForGatewaySubscriptions, waitForGatewaySubscriptionsAtMost } from './live';
import { fmt, now, ratio, summarize, waitUntil, type Summary } from './stats';
import { absoluteNow, startSubscriberPool } from './subscriberWorker';

/**
 * N subscribers of one device on several sockets (in a worker thread), then a burst of locations
 * (one recordLocations call). Two runs on the same platform:
 *   - shared: every subscriber sends the SAME operation and variables, so the gateway puts them in
 *     one group and executes the query plan once per event;
 *   - per subscriber: each subscriber aliases a field differently (`l<i>: latitude`), so no two
 *     share a group: one plan execution per subscriber per event, which is what a gateway without
 *     grouping does.
 * Measured: plan executions per event (`stats.eventsResolved`), time from the mutation returning
 * until every subscriber has the whole burst, per event "Redis → last subscriber", and how busy
 * the main thread (gateway + subgraphs + bridge) was.
 */
export interface FanoutOptions {
  subscribers: number;
  sockets: number;
  burst: number;
  /** Longest wait for one run's burst to be delivered. */
  drainTimeoutMs: number;
}

const DEFAULTS: FanoutOptions = { subscribers: 200, sockets: 8, burst: 20, drainTimeoutMs: 45_000 };

function operation(alias: string | null): string {
  const latitude = alias ? `${alias}: latitude` : 'latitude';
  return `subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { id ${latitude} device { name tenant { name } } } }`;
}

interface RunResult {
  executionsPerEvent: number;
  groups: number;
  subscribeMs: number;
  drainMs: number;
  perEvent: Summary;
  firstEvent: number;
  lastEvent: number;
  delivered: number;
  expected: number;
  busy: number;
  completed: boolean;
  errors: string[];
}

async function run(ctx: BenchContext, options: FanoutOptions, distinct: boolean): Promise<RunResult> {
  const { stack, member, tenantId, fanoutDevice: deviceId } = ctx;
  const subscriptions = stack.gateway.subscriptions;
  const before = subscriptions.size;
  const groupsBefore = subscriptions.groupCount;
  const observer = await observeDeviceChannel(stack, tenantId, deviceId);
  const subscribeStart = now();
  const queries = Array.from({ length: options.subscribers }, (_, i) => operation(distinct ? `l${i}` : null));
  const pool = await startSubscriberPool({ wsUrl: stack.wsUrl, token: member.token, sockets: options.sockets, queries, variables: { t: tenantId, d: deviceId } }).catch(
    async (error: unknown) => {
      observer.close();
      throw error;
    },
  );
  try {
    await waitForGatewaySubscriptions(stack, before + options.subscribers, 60_000);
    const subscribeMs = now() - subscribeStart;
    const groups = subscriptions.groupCount - groupsBefore;

    // One location first: proves every subscriber receives, and warms the plans.
    const warm = await graphql(stack.gatewayUrl, 'mutation($i: LocationInput!) { recordLocation(input: $i) { id } }', { i: { deviceId, latitude: 1, longitude: 1 } }, { token: member.token });
    const warmId = warm.data?.recordLocation?.id as string;
    if (!(await waitUntil(() => pool.completed.has(warmId), 30_000, 10))) throw new Error(`the warm-up location did not reach all subscribers: ${pool.errors.join('; ')}`);

    const receivedBefore = await pool.received();
    const resolvedBefore = subscriptions.stats.eventsResolved;
    const elu = performance.eventLoopUtilization();
    const inputs = Array.from({ length: options.burst }, (_, i) => ({ deviceId, latitude: (i % 80) + Math.random(), longitude: 10 }));
    const response = await graphql(stack.gatewayUrl, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }', { i: inputs }, { token: member.token });
    const returnedAt = absoluteNow();
    const ids = ((response.data?.recordLocations ?? []) as Array<{ id: string }>).map((l) => l.id);
    if (ids.length !== options.burst) throw new Error(`recordLocations failed: ${JSON.stringify(response.errors)}`);
    const completed = await waitUntil(() => ids.every((id) => pool.completed.has(id)), Math.max(1_000, Math.min(options.drainTimeoutMs, ctx.deadline - now())), 10);
    const busy = performance.eventLoopUtilization(elu).utilization;
    const executions = subscriptions.stats.eventsResolved - resolvedBefore;
    const delivered = (await pool.received()) - receivedBefore;
    const redisAt = (id: string) => performance.timeOrigin + (observer.arrivals.get(id) ?? Number.NaN);
    const perEvent = ids.filter((id) => pool.completed.has(id)).map((id) => pool.completed.get(id)! - redisAt(id));
    const lastId = ids[ids.length - 1]!;
    return {
      executionsPerEvent: executions / options.burst,
      groups,
      subscribeMs,
      drainMs: completed ? pool.completed.get(lastId)! - returnedAt : Number.NaN,
      perEvent: summarize(perEvent),
      firstEvent: (pool.completed.get(ids[0]!) ?? Number.NaN) - redisAt(ids[0]!),
      lastEvent: (pool.completed.get(lastId) ?? Number.NaN) - redisAt(lastId),
      delivered,
      expected: options.burst * options.subscribers,
      busy,
      completed,
      errors: pool.errors,
    };
  } finally {
    await pool.close();
    observer.close();
    await waitForGatewaySubscriptionsAtMost(stack, before).catch(() => undefined);
  }
}

export async function fanout(ctx: BenchContext, overrides: Partial<FanoutOptions> = {}): Promise<BenchResult> {
  const options = { ...DEFAULTS, ...overrides };
  ctx.log(`fanout: ${options.subscribers} subscribers, same selection, burst of ${options.burst}`);
  const shared = await run(ctx, options, false);
  ctx.log(`fanout: ${options.subscribers} subscribers, one selection each, burst of ${options.burst}`);
  const single = await run(ctx, options, true);

  const notes: string[] = [];
  for (const [label, r] of [['shared', shared], ['per subscriber', single]] as const) {
    if (!r.completed) notes.push(`${label}: the burst was not fully delivered within ${options.drainTimeoutMs / 1000} s (${r.delivered} of ${r.expected} results); executions per event counts only what ran by then.`);
    if (r.errors.length) notes.push(`${label}: subscriber errors: ${r.errors.slice(0, 3).join('; ')}`);
  }
  notes.push(
    `Main-thread (gateway + subgraphs + bridge; the subscribers run in a worker) event-loop utilization while the burst drained: shared ${fmt(shared.busy * 100, 0)}%, per subscriber ${fmt(single.busy * 100, 0)}%.`,
    `Events resolve concurrently (16 plan executions gateway-wide) and are handed over in order per device: Redis → last subscriber was ${fmt(shared.firstEvent)} ms for the first event of the burst and ${fmt(shared.lastEvent)} ms for the last (shared), i.e. ~${fmt((shared.lastEvent - shared.firstEvent) / Math.max(1, options.burst - 1))} ms per event.`,
  );
  const triple = (s: Summary) => `${fmt(s.p50)} / ${fmt(s.p90)} / ${fmt(s.p99)}`;
  const rows: ResultRow[] = [
    {
      metric: 'plan executions per event (stats.eventsResolved / burst)',
      ours: fmt(shared.executionsPerEvent),
      baseline: fmt(single.executionsPerEvent),
      ratio: ratio(shared.executionsPerEvent, single.executionsPerEvent),
      note: `groups: ${shared.groups} vs ${single.groups}`,
    },
    {
      metric: `burst of ${options.burst} to all ${options.subscribers}: mutation returned → last subscriber has the last event, ms`,
      ours: fmt(shared.drainMs),
      baseline: fmt(single.drainMs),
      ratio: ratio(shared.drainMs, single.drainMs),
      note: `${shared.delivered} / ${single.delivered} results delivered`,
    },
    {
      metric: 'per event: Redis → last of the subscribers, ms p50/p90/p99',
      ours: triple(shared.perEvent),
      baseline: triple(single.perEvent),
      ratio: `${ratio(shared.perEvent.p50, single.perEvent.p50)} / ${ratio(shared.perEvent.p90, single.perEvent.p90)} / ${ratio(shared.perEvent.p99, single.perEvent.p99)}`,
    },
    {
      metric: `subscribing all ${options.subscribers} (until the gateway holds them), ms`,
      ours: fmt(shared.subscribeMs),
      baseline: fmt(single.subscribeMs),
      ratio: ratio(shared.subscribeMs, single.subscribeMs),
      note: 'each subscribe: token + role lookup, device authorization query; planning per group',
    },
  ];
  return {
    name: 'fan-out',
    ours: `${options.subscribers} subscribers of one device on ${options.sockets} sockets, same operation + variables (one group)`,
    baseline: `the same ${options.subscribers} subscribers, each with its own alias (${options.subscribers} groups: per-subscriber execution, as a gateway without grouping)`,
    rows,
    notes,
  };
}
