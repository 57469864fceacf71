import pg from 'pg';
import type { BenchContext, PhaseResult, Row } from '../context';
import type { CpuUsage } from '../cpuMeter';
import { checkExactlyOnce, describeExactlyOnce, gaugeReaches, gatewayGauge, preparePublisher, startSubscribers, type ExactlyOnce } from '../live/delivery';
import { currentSequences, recordEvents, type DeviceRange } from '../live/events';
import { locationKey, observeTenant } from '../live/observer';
import type { SubscriptionSpec, SubscribersInput } from '../live/subscribers';
import { fmt, summarize, type Summary } from '../stats';

/**
 * Goal 5 (a, b, d): live delivery through one gateway process. Events are published straight to
 * the Redis channels (the bridge's format), after being recorded in the database as accepted
 * locations, so the ingest path (outbox, Kafka, bridge) is not what limits the rate: these rows
 * measure the gateway's leg only. Every subscription's arrivals are checked: each (device,
 * sequence) exactly once, in increasing order.
 */
export const PER_DEVICE = 'subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { id sequence latitude device { id name } } }';
const TENANT_WIDE = 'subscription($t: ID!) { locationUpdated(tenantId: $t) { id sequence latitude device { id name } } }';
const FEDERATED = 'subscription($t: ID!) { locationUpdated(tenantId: $t) { id sequence latitude device { id name tenant { name } } } }';

export interface LiveSpec {
  name: string;
  tenantId: string;
  deviceIds: string[];
  /** Per worker process, its sockets and their subscriptions (ids unique across workers). */
  workers: Array<SubscribersInput['sockets']>;
  /** The devices each subscription follows. */
  follows: (subscription: SubscriptionSpec) => string[];
  timed: string[];
  ratePerS: number;
  eventsPerDevice: number;
}

export interface LiveOutcome {
  subscriptions: number;
  events: number;
  published: { startedAt: number; endedAt: number; count: number };
  /** The last arrival, or null when not everything arrived within the drain bound. */
  completedAt: number | null;
  firstArrival: number;
  lastArrival: number;
  deliveries: number;
  exactlyOnce: ExactlyOnce;
  lag: Summary;
  errors: number;
  firstError: string | null;
  closes: Record<string, number>;
  cpu: CpuUsage;
}

const rangesFrom = (sequences: Map<string, number>, deviceIds: string[], first: number, count: number): DeviceRange[] =>
  deviceIds.map((deviceId) => ({ deviceId, from: (sequences.get(deviceId) ?? 0) + first, to: (sequences.get(deviceId) ?? 0) + first + count - 1 }));

/** Per worker, how many deliveries `ranges` make for its subscriptions. */
function deliveriesPerWorker(spec: LiveSpec, ranges: DeviceRange[]): number[] {
  const perDevice = new Map(ranges.map((r) => [r.deviceId, r.to - r.from + 1]));
  return spec.workers.map((sockets) => sockets.flatMap((s) => s.subscriptions).reduce((n, sub) => n + spec.follows(sub).reduce((m, d) => m + (perDevice.get(d) ?? 0), 0), 0));
}

export async function runLive(ctx: BenchContext, spec: LiveSpec): Promise<LiveOutcome> {
  const { platform, settings } = ctx;
  const owner = new pg.Client({ connectionString: platform.ownerUrl });
  await owner.connect();
  const observer = await observeTenant(platform.redisUrl, platform.redisPrefix, spec.tenantId);
  const inputs = spec.workers.map((sockets) => ({ wsUrl: platform.wsUrl, sockets, connect: 'inTurn' as const, timed: spec.timed }));
  const subscriptions = spec.workers.flatMap((sockets) => sockets.flatMap((s) => s.subscriptions));
  const subscribers = await startSubscribers(ctx, `subscribers:${spec.name}`, inputs);
  try {
    const before = await gatewayGauge(ctx, 'fleet_gateway_subscriptions');
    const opened = await subscribers.open();
    const failedToOpen = opened.find((o) => o.errors > 0 || Object.keys(o.closes).length > 0);
    if (failedToOpen) throw new Error(`subscribers could not open: ${failedToOpen.firstError ?? JSON.stringify(failedToOpen.closes)}`);
    if ((await gaugeReaches(ctx, 'fleet_gateway_subscriptions', before + subscriptions.length, 60_000)) === null) {
      throw new Error(`the gateway did not hold ${subscriptions.length} more subscriptions within 60 s`);
    }

    // One event per device first: proves every group follows Redis (a group reads where each device
    // stands when it starts; events recorded before that would be taken as replays) and warms caches.
    const baseMs = Date.now();
    const warmRanges = rangesFrom(await currentSequences(owner, spec.deviceIds), spec.deviceIds, 1, 1);
    await recordEvents(owner, spec.tenantId, warmRanges, baseMs);
    const warmPublisher = await preparePublisher(ctx, spec.tenantId, warmRanges, baseMs, 0);
    try {
      await warmPublisher.go();
    } finally {
      await warmPublisher.stop();
    }
    if ((await subscribers.delivered(deliveriesPerWorker(spec, warmRanges), 60_000)) === null) {
      const report = await subscribers.report();
      throw new Error(`the warm-up events did not reach every subscriber within 60 s (${report.deliveries} arrived; errors ${report.errors}: ${report.firstError ?? 'none'})`);
    }
    await subscribers.reset();

    const ranges = rangesFrom(await currentSequences(owner, spec.deviceIds), spec.deviceIds, 1, spec.eventsPerDevice);
    await recordEvents(owner, spec.tenantId, ranges, baseMs);
    const publisher = await preparePublisher(ctx, spec.tenantId, ranges, baseMs, spec.ratePerS);
    const events = ranges.reduce((n, r) => n + r.to - r.from + 1, 0);
    ctx.log(`live ${spec.name}: ${events} events at ${spec.ratePerS}/s to ${subscriptions.length} subscription(s)`);
    const end = await ctx.meter.start({
      publisher: publisher.pid,
      ...Object.fromEntries(subscribers.workers.map((w, i) => [`subscribers ${i + 1}`, w.pid])),
    });
    const delivered = subscribers.delivered(deliveriesPerWorker(spec, ranges), (events / spec.ratePerS) * 1000 + settings.drainBoundMs);
    let published;
    try {
      published = await publisher.go();
    } finally {
      await publisher.stop();
    }
    const completedAt = await delivered;
    const cpu = await end();
    const report = await subscribers.report();

    const expected = new Map(subscriptions.map((sub) => [sub.id, ranges.filter((r) => spec.follows(sub).includes(r.deviceId))]));
    const lags: number[] = [];
    let firstArrival = Number.POSITIVE_INFINITY;
    let lastArrival = 0;
    for (const [deviceId, seq, at] of report.arrivals) {
      const publishedAt = observer.published.get(locationKey(deviceId, seq));
      if (publishedAt !== undefined) lags.push(at - publishedAt);
    }
    for (const [, , at] of report.arrivals) {
      firstArrival = Math.min(firstArrival, at);
      lastArrival = Math.max(lastArrival, at);
    }
    return {
      subscriptions: subscriptions.length,
      events,
      published: { startedAt: published.startedAt, endedAt: published.endedAt, count: published.published },
      completedAt,
      firstArrival,
      lastArrival,
      deliveries: report.deliveries,
      exactlyOnce: checkExactlyOnce(report, expected),
      lag: summarize(lags),
      errors: report.errors,
      firstError: report.firstError,
      closes: report.closes,
      cpu,
    };
  } finally {
    await subscribers.stop();
    observer.close();
    await owner.end();
  }
}

function failures(outcome: LiveOutcome): string | undefined {
  const problems: string[] = [];
  if (outcome.exactlyOnce.violations) problems.push(`exactly-once violated: ${describeExactlyOnce(outcome.exactlyOnce)}`);
  if (outcome.errors) problems.push(`${outcome.errors} error result(s), first: ${outcome.firstError}`);
  if (Object.keys(outcome.closes).length) problems.push(`sockets closed: ${JSON.stringify(outcome.closes)}`);
  return problems.length ? problems.join('; ') : undefined;
}

const perEvent = (outcome: LiveOutcome, process: string) => (outcome.cpu.byProcess[process] ?? 0) / Math.max(1, outcome.events);
const offered = (outcome: LiveOutcome) => (outcome.published.count * 1000) / Math.max(1, outcome.published.endedAt - outcome.published.startedAt);

function cpuNote(outcome: LiveOutcome): string {
  return `CPU ms per event: gateway ${fmt(perEvent(outcome, 'gateway'), 3)}, location ${fmt(perEvent(outcome, 'location'), 3)}, tenant ${fmt(perEvent(outcome, 'tenant'), 3)}, PostgreSQL ${fmt(perEvent(outcome, 'postgres'), 3)}`;
}

function socketsOf(count: number, perSocket: number, token: string, subscription: (index: number) => SubscriptionSpec): SubscribersInput['sockets'] {
  return Array.from({ length: count }, (_, s) => ({ token, subscriptions: Array.from({ length: perSocket }, (_, j) => subscription(s * perSocket + j)) }));
}

/** 5a: one tenant-wide group at (a little over) 5,000 events/s. */
export async function liveGroup(ctx: BenchContext): Promise<PhaseResult> {
  const { tenantId, token, deviceIds } = ctx.fixtures.live;
  const rate = 5_500;
  const outcome = await runLive(ctx, {
    name: 'group',
    tenantId,
    deviceIds,
    workers: [socketsOf(1, 1, token, () => ({ id: 'tenant', query: TENANT_WIDE, variables: { t: tenantId } }))],
    follows: () => deviceIds,
    timed: ['tenant'],
    ratePerS: rate,
    eventsPerDevice: Math.round((rate * ctx.settings.liveWindowS) / deviceIds.length),
  });
  const failed = failures(outcome);
  const deliveredRate = outcome.completedAt === null ? (outcome.exactlyOnce.delivered * 1000) / Math.max(1, outcome.lastArrival - outcome.published.startedAt) : (Math.max(0, outcome.deliveries - 1) * 1000) / Math.max(1, outcome.lastArrival - outcome.firstArrival);
  const rows: Row[] = [
    {
      goal: '5a',
      metric: `one tenant-wide group: events/s delivered (offered ${fmt(offered(outcome), 0)}/s over ${deviceIds.length} devices, Redis direct)`,
      ours: deliveredRate,
      baseline: null,
      target: { on: 'ours', atLeast: 5_000, text: '≥ 5,000' },
      digits: 0,
      failed,
      note: `${outcome.completedAt === null ? 'not all delivered within the drain bound; ' : ''}${failed ? '' : describeExactlyOnce(outcome.exactlyOnce)}`,
    },
    {
      goal: '5a',
      metric: 'one tenant-wide group: hand-over lag p99, ms (Redis publish → client)',
      ours: outcome.lag.p99,
      baseline: null,
      target: { on: 'ours', atMost: 250, text: '≤ 250' },
      failed,
      note: `p50 ${fmt(outcome.lag.p50)}, max ${fmt(outcome.lag.max)} ms (n=${outcome.lag.count})`,
    },
  ];
  return {
    name: 'live: one tenant-wide group',
    rows,
    notes: [
      `Selection \`${TENANT_WIDE}\`, one subscriber; ${outcome.events} events recorded in the database and then published straight to Redis (bypasses the outbox, Kafka and the bridge).`,
      'Delivered rate: deliveries between the first and the last arrival; when not everything arrived within the drain bound, what did arrive over the time from the first publish.',
      cpuNote(outcome),
    ],
    tables: [],
  };
}

/** 5b: 1,000 subscribers over 50 groups (one per device), 20 each. */
export async function liveFanout(ctx: BenchContext): Promise<PhaseResult> {
  const { tenantId, token, deviceIds } = ctx.fixtures.live;
  const rate = 2_750;
  const perSocket = 10;
  const socketsPerWorker = 50;
  const deviceOf = (id: string) => deviceIds[Number(id.slice(1)) % deviceIds.length]!;
  const subscription = (index: number): SubscriptionSpec => ({ id: `s${index}`, query: PER_DEVICE, variables: { t: tenantId, d: deviceIds[index % deviceIds.length] } });
  const outcome = await runLive(ctx, {
    name: 'fanout',
    tenantId,
    deviceIds,
    workers: [0, 1].map((w) => socketsOf(socketsPerWorker, perSocket, token, (i) => subscription(w * socketsPerWorker * perSocket + i))),
    follows: (sub) => [deviceOf(sub.id)],
    // One subscriber of each group is timed.
    timed: deviceIds.map((_, i) => `s${i}`),
    ratePerS: rate,
    eventsPerDevice: Math.round((rate * ctx.settings.liveWindowS) / deviceIds.length),
  });
  const failed = failures(outcome);
  const span = outcome.completedAt === null ? outcome.lastArrival - outcome.published.startedAt : outcome.lastArrival - outcome.firstArrival;
  const rows: Row[] = [
    {
      goal: '5b',
      metric: `${outcome.subscriptions} subscribers over ${deviceIds.length} groups: deliveries/s from one gateway (offered ${fmt(offered(outcome), 0)} events/s)`,
      ours: (outcome.exactlyOnce.delivered * 1000) / Math.max(1, span),
      baseline: null,
      target: { on: 'ours', atLeast: 50_000, text: '≥ 50,000' },
      digits: 0,
      failed,
      note: `${outcome.completedAt === null ? 'not all delivered within the drain bound; ' : ''}${failed ? '' : `${describeExactlyOnce(outcome.exactlyOnce)}; `}lag p50 ${fmt(outcome.lag.p50)} / p99 ${fmt(outcome.lag.p99)} ms (one subscriber per group)`,
    },
  ];
  return {
    name: 'live: fan-out',
    rows,
    notes: [
      `Selection \`${PER_DEVICE}\`; 2 subscriber processes × ${socketsPerWorker} sockets × ${perSocket} subscriptions, 20 per device (group); events published straight to Redis (bypasses Kafka).`,
      'Deliveries/s: arrivals over the time between the first and the last one (from the first publish when not everything arrived within the drain bound).',
      `${cpuNote(outcome)}. The subscriber processes share the 2 cores: they used ${fmt((outcome.cpu.byProcess['subscribers 1'] ?? 0) + (outcome.cpu.byProcess['subscribers 2'] ?? 0), 0)} ms of CPU against the gateway's ${fmt(outcome.cpu.byProcess.gateway ?? 0, 0)} ms in the window (${fmt(outcome.cpu.wallMs, 0)} ms).`,
    ],
    tables: [],
  };
}

/** 5d: the gateway's own leg with a federated selection at 1,000 events/s. */
export async function liveLeg(ctx: BenchContext): Promise<PhaseResult> {
  const { tenantId, token, deviceIds } = ctx.fixtures.live;
  const rate = 1_000;
  const outcome = await runLive(ctx, {
    name: 'leg',
    tenantId,
    deviceIds,
    workers: [socketsOf(1, 1, token, () => ({ id: 'federated', query: FEDERATED, variables: { t: tenantId } }))],
    follows: () => deviceIds,
    timed: ['federated'],
    ratePerS: rate,
    eventsPerDevice: Math.round((rate * ctx.settings.liveWindowS) / deviceIds.length),
  });
  const failed = failures(outcome);
  const note = `${failed ? '' : `${describeExactlyOnce(outcome.exactlyOnce)}; `}offered ${fmt(offered(outcome), 0)}/s`;
  return {
    name: 'live: the gateway leg',
    rows: [
      { goal: '5d', metric: 'gateway leg at 1,000 events/s, federated fields: Redis message → socket p50, ms', ours: outcome.lag.p50, baseline: null, target: { on: 'ours', atMost: 5, text: '≤ 5' }, failed, note },
      { goal: '5d', metric: 'gateway leg at 1,000 events/s: p99, ms', ours: outcome.lag.p99, baseline: null, target: { on: 'ours', atMost: 25, text: '≤ 25' }, failed, note: `max ${fmt(outcome.lag.max)} ms (n=${outcome.lag.count})` },
    ],
    notes: [
      `Selection \`${FEDERATED}\` (device fields from the location subgraph, tenant name from the tenant subgraph), one subscriber; events published straight to Redis (bypasses Kafka).`,
      cpuNote(outcome),
    ],
    tables: [],
  };
}
