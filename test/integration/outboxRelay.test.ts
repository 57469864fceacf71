import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Kafka, Partitioners, logLevel, type Consumer } from 'kafkajs';
import pg from 'pg';
import { createDatabase, type Database } from '../../lib/database';
import { createLogger } from '../../lib/logger';
import { storeLocations } from '../../lib/locationStore';
import { OutboxRelay, RELAY_LOCK_KEY } from '../../subgraphs/location/outboxRelay';
import { startTcpProxy, type TcpProxy } from '../support/tcpProxy';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase';

/**
 * Durability of accepted locations: what the mutation committed reaches Kafka even when the process
 * that accepted it died before publishing, and of two relays (two replicas) only the one holding the
 * lock on a live session publishes: each row once, in order, through a clean stop, a cut connection
 * and a half-open one.
 */
const logger = createLogger('relay-test', process.env.TEST_LOG_LEVEL ?? 'silent');
let database: TestDatabase;
let db: Database;
let owner: pg.Client;
let kafka: Kafka;
let tenantId: string;
let deviceId: string;
const consumers: Consumer[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDatabase({ url: database.appUrl });
  owner = new pg.Client({ connectionString: database.ownerUrl });
  await owner.connect();
  kafka = new Kafka({ clientId: 'relay-test', brokers: [process.env.TEST_KAFKA_BROKERS as string], logLevel: logLevel.NOTHING });
  ({ tenantId, deviceId } = await db.inScope({ kind: 'system' }, async (tx) => {
    const tenant = await tx.tenant.create({ data: { name: `relay ${randomUUID()}` } });
    const device = await tx.device.create({ data: { tenantId: tenant.id, name: 'relay device' } });
    return { tenantId: tenant.id, deviceId: device.id };
  }));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await Promise.all(consumers.map((c) => c.disconnect()));
  await owner?.end();
  await db?.close();
  await database?.drop();
});

/** What the location subgraph commits for an accepted location, without publishing it. */
async function accept(count: number): Promise<string[]> {
  const receivedAt = new Date();
  const inputs = Array.from({ length: count }, (_, i) => ({ deviceId, latitude: i % 90, longitude: 0, accuracy: null, speed: null, heading: null, altitude: null, recordedAt: receivedAt }));
  const stored = await db.scoped({ kind: 'member', tenantId, userId: 'relay-test' }, (sql) => storeLocations(sql, inputs, receivedAt));
  return stored.map((location) => location.id);
}

type Published = { key: string; id: string; seq: number };

/**
 * Everything on `topic`, read from the beginning until, with at least `expected` messages in, a
 * whole `quietMs` passes with nothing new: duplicates that arrive late are counted too.
 */
async function drain(topic: string, expected: number, quietMs = 1_500): Promise<Published[]> {
  const consumer = kafka.consumer({ groupId: `relay-test-${randomUUID()}`, maxWaitTimeInMs: 50, sessionTimeout: 6000, heartbeatInterval: 500 });
  consumers.push(consumer);
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen: Published[] = [];
  let arrived = () => {};
  await consumer.run({
    eachMessage: async ({ message }) => {
      const event = JSON.parse(String(message.value)) as { id: string; seq: number };
      seen.push({ key: String(message.key), id: event.id, seq: event.seq });
      arrived();
    },
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const before = seen.length;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, quietMs);
      arrived = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    if (seen.length === before && seen.length >= expected) break;
    if (Date.now() > deadline) throw new Error(`expected ${expected} messages on ${topic}, got ${seen.length}`);
  }
  await consumer.disconnect();
  return seen;
}

/** A relay whose producer records the ids of every send it attempts, at the moment it attempts it. */
function relay(topic: string, options: { databaseUrl?: string } = {}) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  const sent: string[] = [];
  const send = producer.send.bind(producer);
  producer.send = (record) => {
    sent.push(...record.messages.map((m) => (JSON.parse(String(m.value)) as { id: string }).id));
    return send(record);
  };
  const started = new OutboxRelay({ databaseUrl: options.databaseUrl ?? database.appUrl, producer, topic, logger, idleMs: 200, sessionTimeoutMs: 1_000 });
  started.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await started.stop();
    await producer.disconnect();
  };
  cleanups.push(stop);
  return { relay: started, sent, stop };
}

/** Resolves once `relay` is (or is no longer) the publisher, on its `leadership` event. */
async function leading(relay: OutboxRelay, expected = true): Promise<void> {
  const signal = AbortSignal.timeout(20_000);
  while (relay.isLeader !== expected) await once(relay, 'leadership', { signal });
}

/** The backend (pid) holding the relay's lock in this test's database, seen from the owner. */
async function lockHolder(): Promise<number | undefined> {
  const { rows } = await owner.query<{ pid: number }>(
    `SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
     WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1 AND l.granted`,
    [RELAY_LOCK_KEY],
  );
  return rows[0]?.pid;
}

/** The outbox has no event of its own when the relay deletes rows: polled. */
async function outboxEmptied(): Promise<void> {
  const deadline = Date.now() + 20_000;
  while ((await db.inScope({ kind: 'system' }, (tx) => tx.locationOutbox.count())) > 0) {
    if (Date.now() > deadline) throw new Error('the outbox was not emptied');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A leader behind a proxy, a standby connected directly, and the first rows published by the leader. */
async function leaderBehindProxy(topic: string): Promise<{ proxy: TcpProxy; leader: ReturnType<typeof relay>; standby: ReturnType<typeof relay>; before: string[] }> {
  const target = new URL(database.appUrl);
  const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
  cleanups.push(() => proxy.close());
  const leader = relay(topic, { databaseUrl: proxy.urlFor(database.appUrl) });
  await leading(leader.relay);
  const standby = relay(topic);
  const before = await accept(5);
  await outboxEmptied();
  expect(leader.sent).toEqual(before);
  expect(standby.relay.isLeader).toBe(false);
  return { proxy, leader, standby, before };
}

test('locations committed before a crash are published by the next relay, once each and in order', async () => {
  const topic = `relay-${randomUUID()}`;
  const ids = await accept(25); // accepted, then the process "died": nothing published yet
  expect(await db.inScope({ kind: 'system' }, (tx) => tx.locationOutbox.count())).toBe(25);

  const [first, second] = [relay(topic), relay(topic)]; // two replicas start after the restart
  const seen = await drain(topic, 25);
  expect(seen.map((m) => m.id)).toEqual(ids);
  expect(seen.map((m) => m.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  expect(new Set(seen.map((m) => m.key))).toEqual(new Set([`${tenantId}:${deviceId}`]));
  expect([first.relay.isLeader, second.relay.isLeader].filter(Boolean)).toHaveLength(1);

  // The leader's rows are gone once Kafka acknowledged them; a new location flows through at once.
  const [next] = await accept(1);
  expect((await drain(topic, 26)).map((m) => m.id)).toEqual([...ids, next]);
  await outboxEmptied();

  // The leader stops (a crash or a deploy): its advisory lock goes with its session, the other takes over.
  const [leader, standby] = first.relay.isLeader ? [first, second] : [second, first];
  await leader.stop();
  const [late] = await accept(1);
  expect((await drain(topic, 27)).map((m) => m.id)).toEqual([...ids, next, late]);
  expect(standby.relay.isLeader).toBe(true);
  expect(standby.sent).toEqual([late]);
});

test("the leader's connection is cut: it steps down, the standby publishes the rest, once each", async () => {
  const topic = `relay-${randomUUID()}`;
  const { proxy, leader, standby, before } = await leaderBehindProxy(topic);
  const pid = await lockHolder();
  expect(pid).toBeDefined();

  // Its backend is terminated and it cannot come back (no new connections through its proxy).
  proxy.stopListening();
  await owner.query('SELECT pg_terminate_backend($1)', [pid]);
  await leading(leader.relay, false);
  const after = await accept(5);
  await leading(standby.relay);
  expect(await lockHolder()).not.toBe(pid);

  const seen = await drain(topic, 10);
  expect(seen.map((m) => m.id)).toEqual([...before, ...after]);
  expect(leader.sent).toEqual(before);
  expect(standby.sent).toEqual(after);
});

test('a half-open leader session: the standby takes over, the frozen leader publishes nothing more, nothing is lost or doubled', async () => {
  const topic = `relay-${randomUUID()}`;
  const { proxy, leader, standby, before } = await leaderBehindProxy(topic);
  const pid = await lockHolder();

  // The network between the leader and PostgreSQL goes silent (no FIN, no RST); PostgreSQL then
  // ends the backend, which releases the lock. The leader hears of neither.
  proxy.freeze();
  await owner.query('SELECT pg_terminate_backend($1)', [pid]);
  await leading(standby.relay);
  const after = await accept(5);
  // The leader learns it only from its own round-trip timeout, and steps down.
  await leading(leader.relay, false);

  const seen = await drain(topic, 10);
  expect(seen.map((m) => m.id)).toEqual([...before, ...after]);
  const first = seen[0]!.seq;
  expect(seen.map((m) => m.seq)).toEqual(Array.from({ length: 10 }, (_, i) => first + i));
  expect(leader.sent).toEqual(before);
  expect(standby.sent).toEqual(after);
  expect(leader.relay.isLeader).toBe(false);
});
