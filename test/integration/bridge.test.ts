import { randomUUID } from 'node:crypto';
import { once, type EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { Kafka, Partitioners, logLevel, type Message, type Producer } from 'kafkajs';
import { startBridge, type Bridge, type BridgeOptions } from '../../bridge/bridge';
import { locationChannel } from '../../lib/channels';
import { createLogger } from '../../lib/logger';
import { startKafkaMock, type KafkaMock } from '../../tools/kafka-mock/index';
import { startPrivateRedis } from '../support/redisServer';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase';

// Real kafka mock (tools/kafka-mock) + real Redis; every test has its own topic, group and prefix.
// The messages here all carry `seq` (or are invalid), so the bridges' database stays unused; the
// locations of other producers, which it stores, are test/integration/otherProducers.test.ts's.
const PARTITIONS = 3;
const logger = createLogger('bridge-test', process.env.TEST_LOG_LEVEL ?? 'silent');
const cleanups: (() => Promise<unknown> | unknown)[] = [];
let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await database?.drop();
});

/**
 * Waits until `check` holds; fails with `what` after `timeoutMs`. With `wakeOn` (the Redis
 * subscriber) it re-checks on each delivered message; without, it re-checks every 20 ms, which only
 * state with no event of its own uses (committed offsets, /health, metrics).
 */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000, wakeOn?: EventEmitter): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    const left = timeoutMs - (Date.now() - started);
    if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    if (wakeOn) await once(wakeOn, 'message', { signal: AbortSignal.timeout(left) }).catch(() => undefined);
    else await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Resolves once `quietMs` pass without a message on `subscriber`: counted then, what arrived is
 * everything that will, late duplicates included.
 */
async function quiet(subscriber: EventEmitter, quietMs = 1_500, timeoutMs = 30_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    const timedOut = await once(subscriber, 'message', { signal: AbortSignal.timeout(quietMs) }).then(() => false, () => true);
    if (timedOut) return;
    if (Date.now() - started > timeoutMs) throw new Error(`messages kept arriving for ${timeoutMs} ms`);
  }
}

interface Produced { id: string; deviceId: string; seq: number; partition: number; offset: number; good: boolean }

/** A fresh topic on a fresh mock, a producer that records offsets, a subscriber on every channel. */
async function scenario(options: { redisUrl?: string; devices?: number } = {}) {
  const mock: KafkaMock = await startKafkaMock();
  cleanups.push(() => mock.stop());
  const topic = `locations-${randomUUID()}`;
  await mock.createTopic(topic, PARTITIONS);
  await mock.createTopic(`${topic}.dlq`, 1);
  const kafka = new Kafka({ brokers: [mock.bootstrap], clientId: 'bridge-test', logLevel: logLevel.NOTHING, retry: { retries: 30, maxRetryTime: 1_000 } });
  const producer: Producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const admin = kafka.admin();
  await admin.connect();
  cleanups.push(() => producer.disconnect(), () => admin.disconnect());

  const redisUrl = options.redisUrl ?? 'redis://127.0.0.1:6379';
  const prefix = `test:${randomUUID()}:`;
  const tenantId = randomUUID();
  const devices = Array.from({ length: options.devices ?? 4 }, () => randomUUID());
  const subscriber = new Redis(redisUrl, { retryStrategy: () => 50, maxRetriesPerRequest: null });
  cleanups.push(() => subscriber.disconnect());
  const tenantChannel = locationChannel(prefix, { tenantId });
  const byChannel = new Map<string, { id: string; seq: number; deviceId: string }[]>();
  subscriber.on('message', (channel: string, payload: string) => {
    const list = byChannel.get(channel) ?? [];
    list.push(JSON.parse(payload) as { id: string; seq: number; deviceId: string });
    byChannel.set(channel, list);
  });
  await subscriber.subscribe(tenantChannel, ...devices.map((deviceId) => locationChannel(prefix, { tenantId, deviceId })));

  const produced: Produced[] = [];
  const seqs = new Map<string, number>();
  const location = (deviceId: string, seq: number, overrides = {}) => {
    const at = new Date().toISOString();
    return { id: randomUUID(), tenantId, deviceId, seq, latitude: 48.1, longitude: 11.5, speed: 3, recordedAt: at, receivedAt: at, ...overrides };
  };
  /**
   * `count` good messages round-robin over the devices (device i on partition i % PARTITIONS);
   * `bad[i]` is sent right after the i-th good one.
   */
  async function produce(count: number, bad: Record<number, { key: string | null; value: string; why: string }> = {}) {
    const sends: (Message & { partition: number; meta: Omit<Produced, 'partition' | 'offset'> })[] = [];
    for (let i = 0; i < count; i++) {
      const d = i % devices.length;
      const deviceId = devices[d]!;
      const seq = (seqs.get(deviceId) ?? 0) + 1;
      seqs.set(deviceId, seq);
      const value = location(deviceId, seq);
      sends.push({ key: `${tenantId}:${deviceId}`, value: JSON.stringify(value), partition: d % PARTITIONS, meta: { id: value.id, deviceId, seq, good: true } });
      const b = bad[i];
      if (b) sends.push({ key: b.key, value: b.value, headers: { why: b.why }, partition: i % PARTITIONS, meta: { id: b.why, deviceId: '', seq: 0, good: false } });
    }
    for (let start = 0; start < sends.length; start += 50) {
      const part = sends.slice(start, start + 50);
      const metadata = await producer.send({ topic, acks: -1, messages: part.map(({ meta: _meta, ...m }) => m) });
      for (const { partition, baseOffset } of metadata) {
        part.filter((m) => m.partition === partition).forEach((m, i) => produced.push({ ...m.meta, partition, offset: Number(baseOffset) + i }));
      }
    }
  }
  const received = (channel = tenantChannel) => byChannel.get(channel) ?? [];
  const receivedIds = () => new Set(received().map((e) => e.id));
  const good = () => produced.filter((p) => p.good);
  async function committed(groupId: string): Promise<number[]> {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const result = Array<number>(PARTITIONS).fill(0);
    for (const { partition, offset } of offsets?.partitions ?? []) result[partition] = Math.max(0, Number(offset));
    return result;
  }
  /** Every good message below a committed offset was received: commits never pass publication. */
  async function expectCommitsBehindPublished(groupId: string) {
    const commits = await committed(groupId);
    const ids = receivedIds();
    const unpublished = good().filter((p) => p.offset < commits[p.partition]! && !ids.has(p.id));
    expect(unpublished).toEqual([]);
    return commits;
  }
  /**
   * After a quiet period, every arrival counted: on the tenant channel and on each device's channel,
   * each good message of `which` arrived exactly once, in seq order per device, and nothing else did.
   */
  async function expectExactlyOnceInOrder(which: (p: Produced) => boolean = () => true) {
    await quiet(subscriber);
    for (const deviceId of devices) {
      const expected = good().filter((p) => p.deviceId === deviceId && which(p)).map((p) => [p.id, p.seq]);
      const ids = new Set(expected.map(([id]) => id));
      for (const channel of [tenantChannel, locationChannel(prefix, { tenantId, deviceId })]) {
        const arrived = received(channel).filter((e) => e.deviceId === deviceId && ids.has(e.id)).map((e) => [e.id, e.seq]);
        expect(arrived).toEqual(expected);
      }
    }
  }
  const bridges: Bridge[] = [];
  async function bridge(groupId: string, overrides: Partial<BridgeOptions> = {}) {
    const b = await startBridge(
      { brokers: [mock.bootstrap], topic, groupId, clientId: 'bridge-test', redisUrl, redisPrefix: prefix, databaseUrl: database.appUrl, maxWaitMs: 50,
        sessionTimeoutMs: 6_000, heartbeatIntervalMs: 500, statusPort: 0, kafkaRetry: { initialRetryTime: 100, maxRetryTime: 1_000 }, ...overrides },
      logger,
    );
    bridges.push(b);
    cleanups.push(() => b.stop());
    await b.ready;
    return b;
  }
  return { mock, kafka, topic, tenantId, devices, produce, produced, good, received, receivedIds, committed, expectCommitsBehindPublished, expectExactlyOnceInOrder, bridge, subscriber, tenantChannel, prefix };
}

const status = async (bridge: Bridge, path: string) => {
  const res = await fetch(`${bridge.statusUrl}${path}`);
  return { code: res.status, body: await res.text() };
};

it('publishes every valid message in per-device order and dead-letters the rest with a reason', async () => {
  const s = await scenario();
  const groupId = `bridge-${randomUUID()}`;
  const joinStarted = Date.now();
  const bridge = await s.bridge(groupId);
  logger.info({ joinMs: Date.now() - joinStarted }, 'joined');
  expect((await status(bridge, '/health')).code).toBe(200);

  const at = new Date().toISOString();
  const value = (deviceId: string | undefined, latitude: number) => JSON.stringify({ id: randomUUID(), tenantId: s.tenantId, deviceId, latitude, longitude: 1, recordedAt: at, receivedAt: at });
  const bad = [
    { key: `${s.tenantId}:${s.devices[0]}`, value: 'this is not json', why: 'not-json' },
    { key: `${s.tenantId}:${s.devices[1]}`, value: value(s.devices[1], 95), why: 'latitude' },
    { key: `${s.tenantId}:${randomUUID()}`, value: value(s.devices[0], 1), why: 'wrong-key' },
  ];
  await s.produce(120, { 1: bad[0]!, 3: bad[1]!, 45: bad[2]! });
  await waitFor('120 locations on the tenant channel', () => s.receivedIds().size === 120, undefined, s.subscriber);
  await s.expectExactlyOnceInOrder();
  expect(s.received()).toHaveLength(120);

  // The dead letters: original key, value and headers, plus reason and source.
  const dlq = s.kafka.consumer({ groupId: `dlq-${randomUUID()}`, maxWaitTimeInMs: 50 });
  cleanups.push(() => dlq.disconnect());
  const letters: { key: string; value: string; headers: Record<string, string> }[] = [];
  await dlq.subscribe({ topic: `${s.topic}.dlq`, fromBeginning: true });
  await dlq.run({
    eachMessage: async ({ message: m }) => {
      const headers = Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, String(v)]));
      letters.push({ key: String(m.key), value: String(m.value), headers });
    },
  });
  await waitFor('3 dead letters', () => letters.length >= 3);
  const byWhy = new Map(letters.map((l) => [l.headers.why, l]));
  expect(byWhy.get('not-json')?.headers['x-dlq-reason']).toBe('value is not JSON');
  expect(byWhy.get('latitude')?.headers['x-dlq-reason']).toMatch(/latitude/);
  expect(byWhy.get('wrong-key')?.headers['x-dlq-reason']).toMatch(/message key must be/);
  for (const b of bad) {
    const letter = byWhy.get(b.why)!;
    const source = s.produced.find((p) => p.id === b.why)!;
    expect(letter).toMatchObject({ key: b.key, value: b.value });
    expect(letter.headers['x-dlq-source']).toBe(`${s.topic}/${source.partition}/${source.offset}`);
  }
  await waitFor('all offsets committed', async () => (await s.committed(groupId)).reduce((a, b) => a + b) === s.produced.length);

  const metrics = (await status(bridge, '/metrics')).body;
  expect(metrics).toMatch(/^bridge_messages_published_total(\{[^}]*\})? 120$/m);
  for (const reason of ['not_json', 'invalid_field', 'wrong_key']) expect(metrics).toMatch(new RegExp(`bridge_messages_dead_lettered_total\\{[^}]*reason="${reason}"[^}]*\\} 1`));
  expect(metrics).toMatch(/bridge_consumer_lag\{[^}]*partition="0"[^}]*\} 0/);
});

it('a bridge stopped mid-stream leaves only published offsets committed; its successor delivers the rest', async () => {
  const s = await scenario();
  const groupId = `bridge-${randomUUID()}`;
  const first = await s.bridge(groupId, { chunkSize: 10 });
  const total = 1_200;
  const producing = (async () => {
    for (let i = 0; i < total / 100; i++) await s.produce(100);
  })();
  await waitFor('the first bridge to be mid-stream', () => s.receivedIds().size >= 200, undefined, s.subscriber);
  await first.stop();
  const commits = await s.expectCommitsBehindPublished(groupId);
  await producing;
  const beforeSecond = s.receivedIds().size;
  expect(commits.reduce((a, b) => a + b)).toBeLessThan(total);

  const started = Date.now();
  await s.bridge(groupId, { chunkSize: 10 });
  await waitFor('every location after the restart', () => s.receivedIds().size === total, undefined, s.subscriber);
  logger.info({ beforeSecond, catchUpMs: Date.now() - started }, 'restart');
  // A clean stop commits everything the first bridge published, so its successor repeats nothing.
  await s.expectExactlyOnceInOrder();
  expect(s.received()).toHaveLength(total);
  await waitFor('all offsets committed', async () => (await s.expectCommitsBehindPublished(groupId)).reduce((a, b) => a + b) === total);
});

it('holds its commits while Redis is down and delivers once it is back', async () => {
  const redis = await startPrivateRedis();
  const port = redis.port;
  cleanups.push(() => redis.stop());
  const s = await scenario({ redisUrl: redis.url });
  const groupId = `bridge-${randomUUID()}`;
  const bridge = await s.bridge(groupId, { deliveryBackoff: { initialMs: 50, maxMs: 500 } });
  await s.produce(60);
  await waitFor('the first 60', () => s.receivedIds().size === 60, undefined, s.subscriber);
  await waitFor('60 committed', async () => (await s.committed(groupId)).reduce((a, b) => a + b) === 60);

  await redis.kill();
  await waitFor('/health to say 503', async () => (await status(bridge, '/health')).code === 503);
  const failuresBefore = (await bridge.metrics.deliveryFailures.get()).values[0]?.value ?? 0;
  await s.produce(60);
  await waitFor('the bridge to retry against the dead Redis', async () => ((await bridge.metrics.deliveryFailures.get()).values[0]?.value ?? 0) >= failuresBefore + 3);
  expect((await s.committed(groupId)).reduce((a, b) => a + b)).toBe(60);

  const downAt = Date.now();
  await redis.restart();
  // The subscriber is back once a probe published after its re-subscription reaches it.
  const probe = new Redis(`redis://127.0.0.1:${port}`);
  cleanups.push(() => probe.disconnect());
  let probes = 0;
  s.subscriber.on('message', (channel: string) => channel === s.tenantChannel && probes++);
  await waitFor('the subscriber to re-subscribe', async () => {
    if (s.subscriber.status === 'ready') await probe.publish(s.tenantChannel, JSON.stringify({ id: 'probe' }));
    return probes > 0;
  });
  await s.produce(60);
  const after = s.good().slice(120).map((p) => p.id);
  await waitFor('every location produced after the subscriber came back', () => after.every((id) => s.receivedIds().has(id)), undefined, s.subscriber);
  await waitFor('all 180 committed', async () => (await s.expectCommitsBehindPublished(groupId)).reduce((a, b) => a + b) === 180);
  expect((await status(bridge, '/health')).code).toBe(200);
  const whileDown = s.good().slice(60, 120).filter((p) => s.receivedIds().has(p.id)).length;
  logger.info({ recoveryMs: Date.now() - downAt, whileDownReceived: whileDown }, 'redis back');
  // Counted after a quiet period: what was produced while the subscriber could hear arrived exactly
  // once; what the bridge published while the subscriber was re-subscribing may be missing (Redis
  // pub/sub keeps nothing for an absent subscriber) but never doubled.
  const middle = new Set(s.good().slice(60, 120).map((p) => p.id));
  await s.expectExactlyOnceInOrder((p) => !middle.has(p.id));
  const doubled = [...middle].filter((id) => s.received().filter((e) => e.id === id).length > 1);
  expect(doubled).toEqual([]);
});

it('resumes after the broker goes down and comes back', async () => {
  const s = await scenario();
  const groupId = `bridge-${randomUUID()}`;
  // Few retries: kafkajs gives up while the broker is down, crashes, and restarts itself (restartOnFailure).
  const bridge = await s.bridge(groupId, { sessionTimeoutMs: 4_000, kafkaRetry: { initialRetryTime: 100, maxRetryTime: 500, retries: 3 } });
  await s.produce(60);
  await waitFor('the first 60', () => s.receivedIds().size === 60, undefined, s.subscriber);
  await waitFor('60 committed', async () => (await s.committed(groupId)).reduce((a, b) => a + b) === 60);

  await s.mock.setBrokerDown();
  const downFor = await waitFor('/health to say 503', async () => (await status(bridge, '/health')).code === 503);
  await s.mock.setBrokerUp();
  const upAt = Date.now();
  await s.produce(60);
  await waitFor('the rest after the broker came back', () => s.receivedIds().size === 120, 40_000, s.subscriber);
  logger.info({ downFor, catchUpMs: Date.now() - upAt }, 'broker back');
  // Everything before the outage was committed, so the restarted consumer resumes after it.
  await s.expectExactlyOnceInOrder();
  expect(s.received()).toHaveLength(120);
  await waitFor('/health to say 200', async () => (await status(bridge, '/health')).code === 200);
});
