import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Kafka, logLevel } from 'kafkajs';
import { startKafkaMock, type KafkaMock } from '../../tools/kafka-mock';
import { adminSession, createTenant, graphql, memberOf, registerDevice, type Session } from '../support/client';
import { startPrivateRedis, type PrivateRedis } from '../support/redisServer';
import { startTestStack, type TestStack } from '../support/stack';
import { connectDashboard, type Collected, type Dashboard } from '../support/subscriber';

/**
 * The delivery guarantee under faults, with a broker and a Redis of this file's own so they can be
 * taken down: bridge restarts and Kafka replays, a broker outage, a Redis restart, and malformed
 * messages on the topic. Subscribers must see every accepted location once and in order.
 */
let kafka: KafkaMock;
let redis: PrivateRedis;
let stack: TestStack;
let member: Session;
let tenantId: string;
const dashboards: Dashboard[] = [];

const SUBSCRIPTION = 'subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { id sequence latitude device { id name } } }';

beforeAll(async () => {
  kafka = await startKafkaMock();
  redis = await startPrivateRedis();
  stack = await startTestStack({ kafkaBrokers: [kafka.bootstrap], redisUrl: redis.url });
  const admin = await adminSession(stack);
  tenantId = await createTenant(stack, admin);
  member = await memberOf(stack, admin, tenantId);
});
afterAll(async () => {
  await Promise.all(dashboards.map((d) => d.dispose()));
  await stack?.stop();
  await Promise.all([kafka?.stop(), redis?.stop()]);
});

async function watch(deviceId: string | null): Promise<Collected> {
  const subscriptions = stack.gateway.subscriptions;
  const before = subscriptions.size;
  const dashboard = connectDashboard(stack.wsUrl, member.token);
  dashboards.push(dashboard);
  const collected = dashboard.subscribe(SUBSCRIPTION, { t: tenantId, d: deviceId });
  const timeout = AbortSignal.timeout(20_000);
  while (subscriptions.size <= before) await once(subscriptions, 'changed', { signal: timeout });
  return collected;
}

async function record(deviceId: string, latitudes: number[]): Promise<string[]> {
  const response = await graphql(stack.gatewayUrl, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }', {
    i: latitudes.map((latitude) => ({ deviceId, latitude, longitude: 0 })),
  }, { token: member.token });
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.recordLocations.map((l: { id: string }) => l.id);
}

const idsOf = (results: Array<{ data?: any }>) => results.map((r) => r.data.locationUpdated.id);

test('a bridge restart and a full Kafka replay still deliver each location exactly once, in order', async () => {
  const deviceId = await registerDevice(stack, member);
  const live = await watch(deviceId);
  const sent = await record(deviceId, [1, 2, 3]);
  await live.waitFor(3);

  await stack.bridge?.stop();
  sent.push(...(await record(deviceId, [4, 5, 6]))); // accepted while no bridge runs: they wait in Kafka
  const restarted = await stack.startBridge();
  await restarted.ready;
  // A second consumer group reads the topic from the beginning: every message is published again.
  const replay = await stack.startBridge(`replay-${randomUUID().slice(0, 6)}`);
  await replay.ready;
  sent.push(...(await record(deviceId, [7])));

  const delivered = await live.waitFor(sent.length);
  expect(idsOf(delivered)).toEqual(sent);
  // The replay has been published by now (it started before location 7, which arrived); nothing more came.
  await record(deviceId, [8]).then((ids) => sent.push(...ids));
  await live.waitFor(sent.length);
  expect(idsOf(live.results)).toEqual(sent);
  await replay.stop();
});

test('a broker outage delays locations but loses and reorders none', async () => {
  const deviceId = await registerDevice(stack, member);
  const live = await watch(deviceId);
  const sent = await record(deviceId, [1]);
  await live.waitFor(1);
  await kafka.setBrokerDown();
  // Accepted while Kafka is away: the mutation still succeeds, the outbox holds them.
  sent.push(...(await record(deviceId, [2, 3])), ...(await record(deviceId, [4])));
  const waiting = await stack.db.inScope({ kind: 'system' }, (tx) => tx.locationOutbox.count({ where: { deviceId } }));
  expect(waiting).toBe(3);
  await kafka.setBrokerUp();
  sent.push(...(await record(deviceId, [5])));
  expect(idsOf(await live.waitFor(sent.length, 60_000))).toEqual(sent);
});

test('after a Redis restart every subscriber receives every location accepted meanwhile, in order, and keeps receiving', async () => {
  const deviceId = await registerDevice(stack, member);
  const byDevice = await watch(deviceId);
  const byTenant = await watch(null);
  const sent = await record(deviceId, [1]);
  await Promise.all([byDevice.waitFor(1), byTenant.waitFor(1)]);

  await redis.kill();
  // Accepted while no gateway could hear Redis: only the history has them.
  sent.push(...(await record(deviceId, [2, 3])), ...(await record(deviceId, [4])));
  await redis.restart();
  // Filled from the history without any new location being recorded.
  expect(idsOf(await byDevice.waitFor(4, 30_000))).toEqual(sent);
  const ofDevice = () => byTenant.results.filter((r) => r.data.locationUpdated.device.id === deviceId);
  await byTenant.until(() => ofDevice().length >= 4, 30_000);

  sent.push(...(await record(deviceId, [5])));
  expect(idsOf(await byDevice.waitFor(5, 30_000))).toEqual(sent);
  await byTenant.waitFor(5, 30_000);
  expect(idsOf(ofDevice())).toEqual(sent);
});

test('malformed messages produced straight to the topic go to the DLQ while good ones keep flowing', async () => {
  const deviceId = await registerDevice(stack, member);
  const live = await watch(deviceId);
  const client = new Kafka({ clientId: 'kcat-like', brokers: [kafka.bootstrap], logLevel: logLevel.NOTHING });
  const producer = client.producer();
  await producer.connect();
  const key = `${tenantId}:${deviceId}`;
  await producer.send({
    topic: stack.topic,
    messages: [
      { key, value: 'not json' },
      { key, value: JSON.stringify({ id: randomUUID(), tenantId, deviceId, latitude: 123, longitude: 0, recordedAt: new Date().toISOString(), receivedAt: new Date().toISOString() }) },
      { key: 'wrong-key', value: JSON.stringify({ id: randomUUID(), tenantId, deviceId, latitude: 1, longitude: 0, recordedAt: new Date().toISOString(), receivedAt: new Date().toISOString() }) },
    ],
  });
  await producer.disconnect();
  const good = await record(deviceId, [10]);
  expect(idsOf(await live.waitFor(1))).toEqual(good);

  const consumer = client.consumer({ groupId: `dlq-reader-${randomUUID().slice(0, 6)}`, maxWaitTimeInMs: 50, sessionTimeout: 6000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic: `${stack.topic}.dlq`, fromBeginning: true });
  const reasons: string[] = [];
  const allThree = new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        reasons.push(String(message.headers?.['x-dlq-reason']));
        if (reasons.length === 3) resolve();
      },
    });
  });
  await allThree;
  await consumer.disconnect();
  // The DLQ keeps each message's key, so the three may sit in different partitions: compare as a set.
  expect(reasons).toHaveLength(3);
  expect(reasons).toEqual(expect.arrayContaining([expect.stringMatching(/JSON/i), expect.stringMatching(/latitude/), expect.stringMatching(/key/)]));
});
