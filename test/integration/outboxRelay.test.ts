import { randomUUID } from 'node:crypto';
import { Kafka, Partitioners, logLevel, type Consumer } from 'kafkajs';
import { createDatabase, type Database } from '../../lib/database';
import { createLogger } from '../../lib/logger';
import { storeLocations } from '../../subgraphs/location/locations';
import { OutboxRelay } from '../../subgraphs/location/outboxRelay';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase';

/**
 * Durability of accepted locations: what the mutation committed reaches Kafka even when the process
 * that accepted it died before publishing, and two relays (two replicas) publish each row once, in order.
 */
const logger = createLogger('relay-test', process.env.TEST_LOG_LEVEL ?? 'silent');
let database: TestDatabase;
let db: Database;
let kafka: Kafka;
let tenantId: string;
let deviceId: string;
const consumers: Consumer[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDatabase({ url: database.appUrl });
  kafka = new Kafka({ clientId: 'relay-test', brokers: [process.env.TEST_KAFKA_BROKERS as string], logLevel: logLevel.NOTHING });
  ({ tenantId, deviceId } = await db.inScope({ kind: 'system' }, async (tx) => {
    const tenant = await tx.tenant.create({ data: { name: `relay ${randomUUID()}` } });
    const device = await tx.device.create({ data: { tenantId: tenant.id, name: 'relay device' } });
    return { tenantId: tenant.id, deviceId: device.id };
  }));
});
afterAll(async () => {
  await Promise.all(consumers.map((c) => c.disconnect()));
  await db?.close();
  await database?.drop();
});

/** What the location subgraph commits for an accepted location, without publishing it. */
async function accept(count: number): Promise<string[]> {
  const receivedAt = new Date();
  const inputs = Array.from({ length: count }, (_, i) => ({ deviceId, latitude: i % 90, longitude: 0, accuracy: null, speed: null, heading: null, altitude: null, recordedAt: receivedAt }));
  const stored = await db.inScope({ kind: 'member', tenantId, userId: 'relay-test' }, (tx) => storeLocations(tx, inputs, receivedAt));
  return stored.map((location) => location.id);
}

async function collect(topic: string, expected: number): Promise<Array<{ key: string; id: string; seq: number }>> {
  const consumer = kafka.consumer({ groupId: `relay-test-${randomUUID()}`, maxWaitTimeInMs: 50, sessionTimeout: 6000, heartbeatInterval: 500 });
  consumers.push(consumer);
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen: Array<{ key: string; id: string; seq: number }> = [];
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        const event = JSON.parse(String(message.value)) as { id: string; seq: number };
        seen.push({ key: String(message.key), id: event.id, seq: event.seq });
        if (seen.length === expected) resolve();
      },
    });
  });
  return seen;
}

function relay(topic: string) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  const started = new OutboxRelay({ db, databaseUrl: database.appUrl, producer, topic, logger, idleMs: 200 });
  started.start();
  return { relay: started, stop: async () => { await started.stop(); await producer.disconnect(); } };
}

test('locations committed before a crash are published by the next relay, once each and in order', async () => {
  const topic = `relay-${randomUUID()}`;
  const ids = await accept(25); // accepted, then the process "died": nothing published yet
  expect(await db.inScope({ kind: 'system' }, (tx) => tx.locationOutbox.count())).toBe(25);

  const [first, second] = [relay(topic), relay(topic)]; // two replicas start after the restart
  const seen = await collect(topic, 25);
  expect(seen.map((m) => m.id)).toEqual(ids);
  expect(seen.map((m) => m.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  expect(new Set(seen.map((m) => m.key))).toEqual(new Set([`${tenantId}:${deviceId}`]));
  expect([first.relay.isLeader, second.relay.isLeader].filter(Boolean)).toHaveLength(1);

  // The leader's rows are gone once Kafka acknowledged them; a new location flows through at once.
  const [next] = await accept(1);
  const after = await collect(topic, 26);
  expect(after.map((m) => m.id)).toEqual([...ids, next]);
  expect(await db.inScope({ kind: 'system' }, (tx) => tx.locationOutbox.count())).toBe(0);

  // The leader stops (a crash or a deploy): its advisory lock goes with its session, the other takes over.
  const [leader, standby] = first.relay.isLeader ? [first, second] : [second, first];
  await leader.stop();
  const [late] = await accept(1);
  const latest = await collect(topic, 27);
  expect(latest.map((m) => m.id).slice(-1)).toEqual([late]);
  expect(standby.relay.isLeader).toBe(true);
  await standby.stop();
});
