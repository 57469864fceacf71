import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { recordLocation } from '../test/support/client';
import type { BenchContext, BenchResult, ResultRow } from './context';
import { observeDeviceChannel, openSocket, subscribeTimed, waitForGatewaySubscriptions, waitForGatewaySubscriptionsAtMost } from './live';
import { fmt, jitter, now, ratio, sleep, summarize, waitUntil, type Summary } from './stats';

/**
 * End-to-end latency of one location: from `recordLocation` returning to the event arriving at a
 * graphql-ws subscriber, paced (one location at a time, 10-30 ms apart), with a selection that
 * reaches two subgraphs. Split into:
 *   - record → Redis: outbox relay + Kafka + bridge (an extra Redis subscriber on the device channel
 *     timestamps the bridge's publish);
 *   - Redis → subscriber: the gateway (parse, query plan with its subgraph fetches, graphql-ws);
 *   - Kafka's share, measured on its own in the same run: a kafkajs producer → consumer round trip
 *     on the same broker with the bridge's maxWait (50 ms);
 * against the floor of any Redis-based fan-out: a raw ioredis publish → subscribe round trip.
 */
export const SELECTION = '{ id latitude device { name tenant { name } } }';
const SUBSCRIPTION = `subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) ${SELECTION} }`;

export interface LatencyOptions {
  locations: number;
  warmupLocations: number;
  redisMessages: number;
  kafkaMessages: number;
  /** Same as the bridge's (test/support/stack.ts). */
  kafkaMaxWaitMs: number;
}

const DEFAULTS: LatencyOptions = { locations: 300, warmupLocations: 20, redisMessages: 1000, kafkaMessages: 300, kafkaMaxWaitMs: 50 };

/** A location-sized JSON payload (~330 bytes), as the bridge publishes. */
function payload(id: string, sentAt: number): string {
  return JSON.stringify({
    id,
    tenantId: randomUUID(),
    deviceId: randomUUID(),
    seq: 1,
    latitude: 52.52,
    longitude: 13.405,
    accuracy: 5,
    speed: 3.2,
    heading: 90,
    altitude: 34,
    recordedAt: new Date().toISOString(),
    receivedAt: new Date().toISOString(),
    sentAt,
  });
}

/** Raw ioredis publish → subscribe, one message in flight, ~1k msg/s. */
async function redisRoundTrip(ctx: BenchContext, messages: number): Promise<Summary> {
  const url = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const subscriber = new Redis(url);
  const publisher = new Redis(url);
  const channel = `${ctx.stack.redisPrefix}bench:redis-baseline`;
  const latencies: number[] = [];
  let waiting: ((at: number) => void) | null = null;
  subscriber.on('message', () => {
    const at = now();
    waiting?.(at);
  });
  try {
    await subscriber.subscribe(channel);
    const warmup = 100;
    for (let i = 0; i < warmup + messages && now() < ctx.deadline; i++) {
      const arrived = new Promise<number>((resolve) => (waiting = resolve));
      const sentAt = now();
      await publisher.publish(channel, payload(randomUUID(), sentAt));
      const at = await arrived;
      if (i >= warmup) latencies.push(at - sentAt);
      await jitter(0.2, 1.5);
    }
  } finally {
    subscriber.disconnect();
    publisher.disconnect();
  }
  return summarize(latencies);
}

/**
 * kafkajs producer (idempotent, one request in flight, acks -1: as the outbox relay) → consumer
 * group member with `maxWaitTimeInMs` as the bridge's, on the same broker, its own topic.
 * Latency is from calling `send` to the consumer receiving the message.
 */
async function kafkaRoundTrip(ctx: BenchContext, options: LatencyOptions, started: KafkaProbe): Promise<{ roundTrip: Summary; ack: Summary; warmupMs: number }> {
  const { producer, topic, arrivals, joined } = started;
  const deadline = Math.min(ctx.deadline, now() + 45_000);
  await Promise.race([joined, sleep(20_000)]);
  // For a few seconds after a consumer joins, the mock answers slowly (ENVIRONMENT.md): send
  // paced messages until the last 20 arrive quickly, at least 5 s after the join, at most 15 s.
  const warmupStart = now();
  const recent: number[] = [];
  for (let i = 0; now() < deadline; i++) {
    const id = `warm-${i}`;
    const sentAt = now();
    await producer.send({ topic, acks: -1, messages: [{ key: id, value: payload(id, sentAt) }] });
    void waitUntil(() => arrivals.has(id), 5_000).then((ok) => {
      if (ok) recent.push(arrivals.get(id)! - sentAt);
    });
    await jitter(20, 40);
    const elapsed = now() - warmupStart;
    const settled = recent.length >= 20 && summarize(recent.slice(-20)).p90 < options.kafkaMaxWaitMs * 2;
    if ((elapsed > 5_000 && settled) || elapsed > 15_000) break;
  }
  const warmupMs = now() - warmupStart;

  const sent = new Map<string, { sentAt: number; ackedAt: number }>();
  for (let i = 0; i < options.kafkaMessages && now() < deadline; i++) {
    const id = `m-${i}`;
    const sentAt = now();
    await producer.send({ topic, acks: -1, messages: [{ key: `k-${i % 16}`, value: payload(id, sentAt) }] });
    sent.set(id, { sentAt, ackedAt: now() });
    await jitter(10, 30);
  }
  await waitUntil(() => [...sent.keys()].every((id) => arrivals.has(id)), 5_000, 10);
  const roundTrip: number[] = [];
  const ack: number[] = [];
  for (const [id, { sentAt, ackedAt }] of sent) {
    ack.push(ackedAt - sentAt);
    const at = arrivals.get(id);
    if (at !== undefined) roundTrip.push(at - sentAt);
  }
  return { roundTrip: summarize(roundTrip), ack: summarize(ack), warmupMs };
}

interface KafkaProbe {
  producer: ReturnType<Kafka['producer']>;
  topic: string;
  arrivals: Map<string, number>;
  joined: Promise<void>;
  stop(): Promise<void>;
}

/** Started first, so the consumer's join and settling overlap with the Redis baseline. */
async function startKafkaProbe(ctx: BenchContext, maxWaitMs: number): Promise<KafkaProbe> {
  const run = randomUUID().slice(0, 8);
  const topic = `bench-roundtrip-${run}`;
  const kafka = new Kafka({ clientId: `bench-${run}`, brokers: ctx.stack.kafkaBrokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer = kafka.consumer({ groupId: `bench-${run}`, maxWaitTimeInMs: maxWaitMs, sessionTimeout: 6000, heartbeatInterval: 500 });
  const arrivals = new Map<string, number>();
  let onJoined!: () => void;
  const joined = new Promise<void>((resolve) => (onJoined = resolve));
  consumer.on(consumer.events.GROUP_JOIN, () => onJoined());
  await producer.connect();
  // Creates the topic (the mock auto-creates on the first produce).
  await producer.send({ topic, acks: -1, messages: [{ key: 'hello', value: payload('hello', now()) }] });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const at = now();
      const id = (JSON.parse(message.value?.toString() ?? '{}') as { id?: string }).id;
      if (id) arrivals.set(id, at);
    },
  });
  return {
    producer,
    topic,
    arrivals,
    joined,
    stop: async () => {
      await consumer.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
    },
  };
}

export async function subscriptionLatency(ctx: BenchContext, overrides: Partial<LatencyOptions> = {}): Promise<BenchResult> {
  const options = { ...DEFAULTS, ...overrides };
  const { stack, member, tenantId, latencyDevice: deviceId } = ctx;
  const notes: string[] = [];

  const probe = await startKafkaProbe(ctx, options.kafkaMaxWaitMs);
  let redis: Summary;
  let kafka: Awaited<ReturnType<typeof kafkaRoundTrip>>;
  try {
    ctx.log(`latency: Redis baseline (${options.redisMessages} messages)`);
    redis = await redisRoundTrip(ctx, options.redisMessages);
    ctx.log('latency: Kafka round trip (warm-up, then measure)');
    kafka = await kafkaRoundTrip(ctx, options, probe);
    notes.push(`Kafka probe warm-up after its consumer joined: ${fmt(kafka.warmupMs / 1000, 1)} s (excluded).`);
  } finally {
    await probe.stop();
  }

  ctx.log(`latency: end to end (${options.warmupLocations} warm-up + ${options.locations} locations)`);
  const observer = await observeDeviceChannel(stack, tenantId, deviceId);
  const socket = await openSocket(stack.wsUrl, member.token);
  const delivered = new Map<string, number>();
  const errors: unknown[] = [];
  let sample: any;
  const before = stack.gateway.subscriptions.size;
  const unsubscribe = subscribeTimed(socket, SUBSCRIPTION, { t: tenantId, d: deviceId }, (result, at) => {
    if (result.errors?.length) errors.push(result.errors);
    const location = result.data?.locationUpdated;
    if (location?.id && !delivered.has(location.id)) delivered.set(location.id, at);
    sample ??= location;
  }, (error) => errors.push(error));
  const returned = new Map<string, number>();
  try {
    await waitForGatewaySubscriptions(stack, before + 1);
    const send = async (count: number, keep: boolean) => {
      for (let i = 0; i < count && now() < ctx.deadline; i++) {
        const location = await recordLocation(stack, member, { deviceId, latitude: -80 + Math.random() * 160, longitude: -170 + Math.random() * 340 });
        if (keep) returned.set(location.id, now());
        await jitter(10, 30);
      }
    };
    await send(options.warmupLocations, false);
    await sleep(300);
    await send(options.locations, true);
    await waitUntil(() => [...returned.keys()].every((id) => delivered.has(id)), 15_000, 10);
  } finally {
    unsubscribe();
    await socket.dispose();
    observer.close();
    await waitForGatewaySubscriptionsAtMost(stack, before).catch(() => undefined);
  }

  const endToEnd: number[] = [];
  const toRedis: number[] = [];
  const gatewayHop: number[] = [];
  for (const [id, returnedAt] of returned) {
    const at = delivered.get(id);
    const redisAt = observer.arrivals.get(id);
    if (at !== undefined) endToEnd.push(at - returnedAt);
    if (redisAt !== undefined) toRedis.push(redisAt - returnedAt);
    if (at !== undefined && redisAt !== undefined) gatewayHop.push(at - redisAt);
  }
  const e2e = summarize(endToEnd);
  const before_ = summarize(toRedis);
  const hop = summarize(gatewayHop);
  const lost = returned.size - endToEnd.length;
  if (lost) notes.push(`${lost} of ${returned.size} locations did not reach the subscriber within 15 s.`);
  if (errors.length) notes.push(`subscription errors: ${JSON.stringify(errors.slice(0, 3))}`);
  if (sample?.device?.tenant?.name !== ctx.tenantName) notes.push(`unexpected result shape: ${JSON.stringify(sample)}`);
  const negative = endToEnd.filter((v) => v < 0).length;
  if (negative) notes.push(`${negative} events reached the subscriber before the mutation's HTTP response did.`);

  const triple = (s: Summary) => `${fmt(s.p50)} / ${fmt(s.p90)} / ${fmt(s.p99)}`;
  const ratios = (s: Summary, b: Summary) => `${ratio(s.p50, b.p50)} / ${ratio(s.p90, b.p90)} / ${ratio(s.p99, b.p99)}`;
  const minusKafka: Summary = { ...e2e, p50: e2e.p50 - kafka.roundTrip.p50, p90: e2e.p90 - kafka.roundTrip.p90, p99: e2e.p99 - kafka.roundTrip.p99 };
  const rows: ResultRow[] = [
    {
      metric: `end to end, recordLocation returned → subscriber, ms p50/p90/p99 (n=${e2e.count})`,
      ours: triple(e2e),
      baseline: triple(redis),
      ratio: ratios(e2e, redis),
      note: 'baseline: raw Redis publish→subscribe',
    },
    {
      metric: `Kafka's share: kafkajs produce→consume, mock, maxWait ${options.kafkaMaxWaitMs} ms, ms p50/p90/p99 (n=${kafka.roundTrip.count})`,
      ours: triple(kafka.roundTrip),
      baseline: '—',
      ratio: `${fmt((100 * kafka.roundTrip.p50) / e2e.p50, 0)}% of e2e p50`,
      note: `produce ack alone p50 ${fmt(kafka.ack.p50)} ms`,
    },
    {
      metric: 'end to end minus Kafka (difference of percentiles), ms p50/p90/p99',
      ours: triple(minusKafka),
      baseline: triple(redis),
      ratio: ratios(minusKafka, redis),
      note: 'estimate: percentiles do not subtract exactly',
    },
    {
      metric: `record → Redis (outbox relay + Kafka + bridge), ms p50/p90/p99 (n=${before_.count})`,
      ours: triple(before_),
      baseline: triple(kafka.roundTrip),
      ratio: ratios(before_, kafka.roundTrip),
      note: 'baseline here: the Kafka round trip alone',
    },
    {
      metric: `Redis → subscriber (gateway: plan execution, 2 subgraph fetches, graphql-ws), ms p50/p90/p99 (n=${hop.count})`,
      ours: triple(hop),
      baseline: triple(redis),
      ratio: ratios(hop, redis),
    },
  ];
  return {
    name: 'subscription latency',
    ours: `recordLocation (HTTP, through the gateway) → outbox → Kafka mock → bridge → Redis → gateway → graphql-ws, selection ${SELECTION}, one location at a time every 10-30 ms`,
    baseline: `raw ioredis publish → subscribe of a ~330-byte JSON message on the same Redis, one in flight (n=${redis.count}); Kafka round trip measured separately`,
    rows,
    notes,
  };
}
