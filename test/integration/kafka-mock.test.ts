import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Kafka, logLevel, Partitioners, type Consumer, type KafkaConfig, type LogEntry, type Producer } from 'kafkajs';
import { startKafkaMock, type KafkaMock } from '../../tools/kafka-mock/index';

// The mock holds an empty fetch for the whole maxWait, and delays the first JoinGroup of a group by
// a fixed 3 s; its session check also drops a member still waiting in JoinGroup once sessionTimeout
// passes, so sessionTimeout must stay above 3 s or the first join never completes.
const CONSUMER = { maxWaitTimeInMs: 50, sessionTimeout: 4000, heartbeatInterval: 200, rebalanceTimeout: 4000 };

/** Resolves with the first truthy value of check(), re-checked whenever emitter emits event. */
function waitFor<T>(emitter: EventEmitter, event: string, check: () => T | undefined | false, what: string, ms = 10_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const test = () => {
      const v = check();
      if (!v) return;
      done();
      resolve(v);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    const done = () => {
      clearTimeout(timer);
      emitter.off(event, test);
    };
    emitter.on(event, test);
    test();
  });
}

describe('tools/kafka-mock with kafkajs', () => {
  let mock: KafkaMock;
  const cleanup: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    mock = await startKafkaMock({ topics: [{ name: 'preset', partitions: 2 }] });
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });
  afterAll(() => mock?.stop());

  const client = (extra: Partial<KafkaConfig> = {}) =>
    new Kafka({ clientId: 'kafka-mock-test', brokers: mock.bootstrap.split(','), logLevel: logLevel.NOTHING, ...extra });

  async function producerOf(kafka: Kafka): Promise<Producer> {
    const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    cleanup.push(() => producer.disconnect());
    return producer;
  }

  /** A joined consumer group member; `received` grows (and `got` fires) as messages arrive. */
  async function consumerOf(kafka: Kafka, topic: string) {
    const consumer: Consumer = kafka.consumer({ groupId: `g-${randomUUID()}`, ...CONSUMER });
    cleanup.push(() => consumer.disconnect());
    const got = new EventEmitter();
    const received: Array<{ key: string; value: string; partition: number }> = [];
    const joined = new Promise<void>((resolve) => {
      const off = consumer.on(consumer.events.GROUP_JOIN, () => (off(), resolve()));
    });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message, partition }) => {
        received.push({ key: String(message.key), value: String(message.value), partition });
        got.emit('message');
      },
    });
    await joined;
    return { got, received };
  }

  test('idempotent producer and a consumer group deliver keyed messages in order per key', async () => {
    const topic = `t-${randomUUID()}`;
    await mock.createTopic(topic, 3);
    const kafka = client();
    const producer = await producerOf(kafka);
    const { got, received } = await consumerOf(kafka, topic);

    const keys = ['device-a', 'device-b', 'device-c'];
    for (let batch = 0; batch < 4; batch++) {
      const messages = keys.flatMap((key) => [0, 1, 2, 3, 4].map((i) => ({ key, value: `${key}:${batch * 5 + i}` })));
      const meta = await producer.send({ topic, messages });
      expect(meta.every((m) => m.errorCode === 0)).toBe(true);
    }
    await waitFor(got, 'message', () => received.length >= 60, '60 messages');

    expect(received).toHaveLength(60); // no duplicates on the happy path
    for (const key of keys) {
      const mine = received.filter((m) => m.key === key);
      expect(mine.map((m) => m.value)).toEqual(Array.from({ length: 20 }, (_, i) => `${key}:${i}`));
      expect(new Set(mine.map((m) => m.partition)).size).toBe(1);
    }
  });

  test('broker down: produce fails fast or rides through on retries; both work again after up', async () => {
    const topic = `t-${randomUUID()}`;
    await mock.createTopic(topic, 1);
    // Few retries: a send during the outage gives up within ~100 ms.
    const fast = await producerOf(client({ retry: { initialRetryTime: 50, retries: 1 } }));
    // More retries (~5 s of backoff) and its log events, to see it fail while the broker is down.
    const logs = new EventEmitter();
    const steady = await producerOf(
      client({ retry: { initialRetryTime: 100, retries: 8 }, logLevel: logLevel.ERROR, logCreator: () => (e: LogEntry) => logs.emit('log', e) }),
    );
    const { got, received } = await consumerOf(client(), topic);
    const values = () => [...new Set(received.map((m) => m.value))]; // at-least-once: ignore redeliveries

    await fast.send({ topic, messages: [{ key: 'k', value: 'before' }] });
    await waitFor(got, 'message', () => values().includes('before'), '"before"');

    await mock.setBrokerDown();
    await expect(fast.send({ topic, messages: [{ key: 'k', value: 'lost' }] })).rejects.toThrow(/ECONNREFUSED/);

    let refusals = 0;
    logs.on('log', (e: LogEntry) => /ECONNREFUSED/.test(String(e.log.message)) && refusals++);
    let settled = false;
    const pending = steady.send({ topic, messages: [{ key: 'k', value: 'during' }] }).finally(() => (settled = true));
    await waitFor(logs, 'log', () => refusals > 0, 'the steady producer to hit the closed port');
    expect(settled).toBe(false);
    await mock.setBrokerUp();
    const meta = await pending; // the retried send went through once the broker was back
    expect(meta[0]?.errorCode).toBe(0);

    await fast.send({ topic, messages: [{ key: 'k', value: 'after' }] });
    await waitFor(got, 'message', () => values().includes('after'), '"after" to be consumed');
    expect(values()).toEqual(['before', 'during', 'after']);
  });

  test('commands report errors; topics passed at start exist', async () => {
    await expect(mock.createTopic('preset', 2)).rejects.toThrow(/already exists/i);
    await expect(mock.createTopic('bad name', 1)).rejects.toThrow(/invalid topic name/);
    await expect(mock.setBrokerDown(2)).rejects.toThrow(/unknown broker/);
    const admin = client().admin();
    await admin.connect();
    cleanup.push(() => admin.disconnect());
    const [meta] = (await admin.fetchTopicMetadata({ topics: ['preset'] })).topics;
    expect(meta?.partitions).toHaveLength(2);
  });

  test('stop() ends the process, is idempotent, and later commands reject', async () => {
    const other = await startKafkaMock({ brokers: 2 });
    expect(other.bootstrap).toMatch(/^127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/);
    process.kill(other.pid, 0); // alive
    await Promise.all([other.stop(), other.stop()]);
    await other.stop();
    await expect(other.exited).resolves.toEqual({ code: 0, signal: null });
    expect(() => process.kill(other.pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    await expect(other.setBrokerUp()).rejects.toThrow(/stopped/);
  });
});
