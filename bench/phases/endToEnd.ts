import type { BenchContext, PhaseResult, Row } from '../context';
import { checkExactlyOnce, describeExactlyOnce, gaugeReaches, gatewayGauge, startSubscribers } from '../live/delivery';
import { locationKey, observeTenant } from '../live/observer';
import type { KafkaProbeInput, KafkaProbeResult } from '../load/kafkaProbe';
import type { PacedRecordInput, PacedRecordResult } from '../load/pacedRecord';
import { fmt, summarize } from '../stats';
import { startWorker } from '../workers';

/**
 * The whole live path for one device, paced (no goal of its own; it says where the time goes):
 * recordLocation returned → subscriber, split at the Redis publish into "outbox relay + Kafka +
 * bridge" and "gateway", with Kafka's own share measured separately on the same broker, because
 * the Kafka mock answers an empty fetch only after the whole maxWait (a real broker answers as
 * soon as data arrives).
 */
const SUBSCRIPTION = 'subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { id sequence latitude device { id name tenant { name } } } }';
const WARMUP = 20;
const MEASURED = 200;

async function kafkaShare(ctx: BenchContext): Promise<KafkaProbeResult> {
  const input: KafkaProbeInput = { brokers: ctx.platform.kafkaBrokers, topic: `bench-probe-${ctx.platform.run}`, maxWaitMs: ctx.platform.kafkaMaxWaitMs, count: MEASURED };
  const worker = startWorker('bench/load/kafkaProbe.ts', input, { name: 'kafka-probe', log: ctx.workerLog });
  try {
    return await worker.next<KafkaProbeResult & { [key: string]: unknown }>('result', 90_000);
  } finally {
    await worker.stop();
  }
}

export async function endToEnd(ctx: BenchContext): Promise<PhaseResult> {
  const { platform } = ctx;
  const { tenantId, token, deviceIds } = ctx.fixtures.live;
  const deviceId = deviceIds[0]!;
  ctx.log('end to end: Kafka probe (its own consumer group and topic on the same broker)');
  const kafka = await kafkaShare(ctx);

  const observer = await observeTenant(platform.redisUrl, platform.redisPrefix, tenantId);
  const subscribers = await startSubscribers(ctx, 'subscribers:e2e', [
    { wsUrl: platform.wsUrl, sockets: [{ token, subscriptions: [{ id: 'device', query: SUBSCRIPTION, variables: { t: tenantId, d: deviceId } }] }], connect: 'inTurn', timed: ['device'] },
  ]);
  try {
    const before = await gatewayGauge(ctx, 'fleet_gateway_subscriptions');
    await subscribers.open();
    if ((await gaugeReaches(ctx, 'fleet_gateway_subscriptions', before + 1, 30_000)) === null) throw new Error('the gateway did not hold the subscription within 30 s');
    const input: PacedRecordInput = { url: platform.gatewayUrl, token, deviceId, count: WARMUP + MEASURED };
    const driver = startWorker('bench/load/pacedRecord.ts', input, { name: 'load:paced', log: ctx.workerLog });
    let result: PacedRecordResult;
    try {
      await driver.next('ready', 30_000);
      ctx.log(`end to end: ${WARMUP} + ${MEASURED} locations, one at a time`);
      const delivered = subscribers.delivered([WARMUP + MEASURED], 120_000);
      driver.send({ type: 'go' });
      result = await driver.next<PacedRecordResult & { [key: string]: unknown }>('result', 120_000);
      await delivered;
    } finally {
      await driver.stop();
    }
    const report = await subscribers.report();
    const accepted = result.accepted.slice(WARMUP);
    const arrivals = new Map(report.arrivals.map(([d, seq, at]) => [locationKey(d, seq), at]));
    const total: number[] = [];
    const toRedis: number[] = [];
    const gateway: number[] = [];
    for (const [seq, returnedAt] of accepted) {
      const key = locationKey(deviceId, seq);
      const published = observer.published.get(key);
      const arrived = arrivals.get(key);
      if (arrived !== undefined) total.push(arrived - returnedAt);
      if (published !== undefined) toRedis.push(published - returnedAt);
      if (published !== undefined && arrived !== undefined) gateway.push(arrived - published);
    }
    const sequences = result.accepted.map(([seq]) => seq);
    const exactlyOnce = checkExactlyOnce(report, new Map([['device', [{ deviceId, from: Math.min(...sequences), to: Math.max(...sequences) }]]]));
    const failed = exactlyOnce.violations || report.errors || result.errors ? `${describeExactlyOnce(exactlyOnce)}; ${report.errors} error result(s), ${result.errors} failed record(s): ${report.firstError ?? result.firstError ?? ''}` : undefined;
    const [e2e, redis, leg, probe] = [summarize(total), summarize(toRedis), summarize(gateway), summarize(kafka.roundTrips)];
    const pair = (s: ReturnType<typeof summarize>) => `p99 ${fmt(s.p99)} ms (n=${s.count})`;
    const rows: Row[] = [
      { goal: '', metric: 'end to end, paced (1 device): recordLocation returned → subscriber, p50 ms', ours: e2e.p50, baseline: null, target: null, failed, note: `${pair(e2e)}; ${describeExactlyOnce(exactlyOnce)}` },
      { goal: '', metric: 'end to end: returned → Redis publish (outbox relay + Kafka + bridge), p50 ms', ours: redis.p50, baseline: probe.p50, baselineName: 'Kafka alone', target: null, note: `${pair(redis)}; Kafka alone ${pair(probe)}` },
      { goal: '', metric: 'end to end: Redis publish → subscriber (the gateway), p50 ms', ours: leg.p50, baseline: null, target: null, note: pair(leg) },
      {
        goal: '',
        metric: `end to end: Kafka's share, kafkajs produce → consume on the mock (maxWait ${platform.kafkaMaxWaitMs} ms), p50 ms`,
        ours: probe.p50,
        baseline: e2e.p50,
        baselineName: 'end to end',
        target: null,
        note: `${pair(probe)}; ratio = Kafka's share of the end-to-end p50 (an estimate: percentiles do not add)`,
      },
    ];
    return {
      name: 'end to end (supporting)',
      rows,
      notes: [
        `One device, \`recordLocation\` through our gateway one at a time, 10-30 ms apart (${WARMUP} warm-up, ${MEASURED} measured), a subscriber with \`${SUBSCRIPTION}\`; the bench's Redis observer timestamps the bridge's publish.`,
        `The bridge runs with KAFKA_MAX_WAIT_MS=${platform.kafkaMaxWaitMs}: the mock answers an empty fetch only after all of it, so Kafka adds 0-${platform.kafkaMaxWaitMs} ms here that a real broker would not. The probe's warm-up after its consumer joined took ${fmt(kafka.warmupMs / 1000, 1)} s (excluded).`,
      ],
      tables: [],
    };
  } finally {
    await subscribers.stop();
    observer.close();
  }
}
