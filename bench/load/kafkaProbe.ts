import { Kafka, logLevel } from 'kafkajs';
import { monotonicMs } from '../stats';
import { runWorker } from '../workerProcess';

/**
 * Kafka's share of the end-to-end latency, measured on its own: a kafkajs producer set up as the
 * outbox relay's (idempotent, one request in flight, acks -1) and a consumer group member with the
 * bridge's maxWait, on the same broker, on a topic of the probe's own, paced as the device app is.
 * After its consumer joins, the mock answers slowly for a few seconds (ENVIRONMENT.md): messages
 * are sent until the last 20 arrive within twice the maxWait (at least 5 s, at most 15 s), then
 * `count` are measured from `send` to the consumer receiving them.
 */
export interface KafkaProbeInput {
  brokers: string[];
  topic: string;
  maxWaitMs: number;
  count: number;
}

export interface KafkaProbeResult {
  type: 'result';
  roundTrips: number[];
  warmupMs: number;
}

const pause = (min: number, max: number) => new Promise((resolve) => setTimeout(resolve, min + Math.random() * (max - min)));

runWorker<KafkaProbeInput>(async (input, runner) => {
  const kafka = new Kafka({ clientId: `bench-probe-${input.topic}`, brokers: input.brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer = kafka.consumer({ groupId: `${input.topic}-group`, maxWaitTimeInMs: input.maxWaitMs, sessionTimeout: 6000, heartbeatInterval: 500 });
  const arrivals = new Map<string, number>();
  const waiting = new Map<string, () => void>();
  let joined!: () => void;
  const hasJoined = new Promise<void>((resolve) => (joined = resolve));
  consumer.on(consumer.events.GROUP_JOIN, () => joined());
  await producer.connect();
  // The mock creates a topic on its first produce.
  await producer.send({ topic: input.topic, acks: -1, messages: [{ key: 'hello', value: 'hello' }] });
  await consumer.connect();
  await consumer.subscribe({ topics: [input.topic], fromBeginning: false });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const id = message.value?.toString() ?? '';
      arrivals.set(id, monotonicMs());
      waiting.get(id)?.();
    },
  });
  await Promise.race([hasJoined, pause(20_000, 20_000)]);
  const send = async (id: string) => {
    const arrived = new Promise<void>((resolve) => waiting.set(id, resolve));
    const sentAt = monotonicMs();
    await producer.send({ topic: input.topic, acks: -1, messages: [{ key: id, value: id }] });
    return { sentAt, arrived };
  };

  const warmupStart = monotonicMs();
  const recent: number[] = [];
  for (let i = 0; ; i++) {
    const { sentAt, arrived } = await send(`warm-${i}`);
    await Promise.race([arrived, pause(2_000, 2_000)]);
    const at = arrivals.get(`warm-${i}`);
    if (at !== undefined) recent.push(at - sentAt);
    const elapsed = monotonicMs() - warmupStart;
    const last = recent.slice(-20);
    if ((elapsed > 5_000 && last.length === 20 && Math.max(...last) < input.maxWaitMs * 2) || elapsed > 15_000) break;
    await pause(10, 30);
  }
  const warmupMs = monotonicMs() - warmupStart;

  const roundTrips: number[] = [];
  for (let i = 0; i < input.count; i++) {
    const { sentAt, arrived } = await send(`m-${i}`);
    await Promise.race([arrived, pause(5_000, 5_000)]);
    const at = arrivals.get(`m-${i}`);
    if (at !== undefined) roundTrips.push(at - sentAt);
    await pause(10, 30);
  }
  await consumer.disconnect().catch(() => undefined);
  await producer.disconnect().catch(() => undefined);
  const result: KafkaProbeResult = { type: 'result', roundTrips, warmupMs };
  runner.send(result as unknown as { type: string });
});
