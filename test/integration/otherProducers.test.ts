import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Kafka, logLevel } from 'kafkajs';
import { adminSession, createTenant, graphql, memberOf, recordLocation, registerDevice, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import { connectDashboard, type Collected, type Dashboard } from '../support/subscriber';

/**
 * Locations other producers write to the Kafka topic, as CONTRACT.md allows: the Location fields plus
 * tenantId and deviceId, no `seq`. Produced with kcat itself (another client, another partitioner).
 * The bridge accepts them into PostgreSQL like recordLocation does, and subscribers receive them
 * from the outbox relay with the device's next sequence, once, even when the message is replayed.
 */
let stack: TestStack;
let member: Session;
let tenantId: string;
let otherTenantId: string;
let otherDeviceId: string;
const dashboards: Dashboard[] = [];

const SUBSCRIPTION = 'subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { id sequence latitude device { id name } } }';

beforeAll(async () => {
  stack = await startTestStack();
  const admin = await adminSession(stack);
  tenantId = await createTenant(stack, admin);
  member = await memberOf(stack, admin, tenantId);
  otherTenantId = await createTenant(stack, admin);
  otherDeviceId = await registerDevice(stack, await memberOf(stack, admin, otherTenantId, 'other'));
});
afterAll(async () => {
  await Promise.all(dashboards.map((d) => d.dispose()));
  await stack?.stop();
});

/** `kcat -P -K '|'`: one `key|value` line per message. */
async function kcat(messages: Array<{ key: string; value: unknown }>): Promise<void> {
  const child = spawn('kcat', ['-P', '-b', stack.kafkaBrokers.join(','), '-t', stack.topic, '-K', '|'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += String(chunk)));
  child.stdin.end(messages.map(({ key, value }) => `${key}|${JSON.stringify(value)}\n`).join(''));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`kcat exited with ${code}: ${stderr}`);
}

/** A location as another producer writes it: no `seq`. */
function location(tenant: string, deviceId: string, latitude: number) {
  const at = new Date().toISOString();
  return { id: randomUUID(), tenantId: tenant, deviceId, latitude, longitude: 7, speed: 2, recordedAt: at, receivedAt: at };
}

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

/** Everything that arrives: `expected` results, then a quiet period in which no further one may come. */
async function settle(live: Collected, expected: number, quietMs = 1_500): Promise<Array<{ id: string; sequence: number; latitude: number }>> {
  await live.waitFor(expected);
  await expect(live.until((results) => results.length > expected, quietMs)).rejects.toThrow(/condition not met/);
  expect(live.results.flatMap((r) => r.errors ?? [])).toEqual([]);
  return live.results.map((r) => r.data.locationUpdated);
}

const storedIds = (ids: string[]) =>
  stack.db.inScope({ kind: 'system' }, (tx) => tx.location.findMany({ where: { id: { in: ids } }, select: { id: true, seq: true } }));

/** Bridge metrics are state without an event of their own: polled. */
async function replaysCounted(count: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const values = (await stack.bridge!.metrics.locationsAccepted.get()).values;
    if ((values.find((v) => v.labels.result === 'replayed')?.value ?? 0) >= count) return;
    if (Date.now() > deadline) throw new Error(`the bridge did not count ${count} replays`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("a location without a seq reaches a subscriber once, with the device's next sequence; its replay is not stored again", async () => {
  const deviceId = await registerDevice(stack, member);
  const live = await watch(deviceId);
  const first = await recordLocation(stack, member, { deviceId, latitude: 1, longitude: 0 });
  const second = await recordLocation(stack, member, { deviceId, latitude: 2, longitude: 0 });

  const produced = location(tenantId, deviceId, 3);
  await kcat([{ key: `${tenantId}:${deviceId}`, value: produced }]);
  const [, , third] = await live.waitFor(3);
  expect(third?.data.locationUpdated).toMatchObject({ id: produced.id, sequence: 3, latitude: 3, device: { id: deviceId } });

  // The same message again (the producer retried, or the topic is replayed): recognised by its id.
  await kcat([{ key: `${tenantId}:${deviceId}`, value: produced }]);
  await replaysCounted(1);
  const fourth = await recordLocation(stack, member, { deviceId, latitude: 4, longitude: 0 });
  expect(fourth.sequence).toBe(4);

  const delivered = await settle(live, 4);
  expect(delivered.map((l) => [l.id, l.sequence])).toEqual([
    [first.id, 1],
    [second.id, 2],
    [produced.id, 3],
    [fourth.id, 4],
  ]);
  expect(await storedIds([produced.id])).toEqual([{ id: produced.id, seq: 3n }]);
  const history = await graphql(stack.gatewayUrl, 'query($d: ID!) { device(id: $d) { lastLocation { id } locations { edges { node { id } } } } }', { d: deviceId }, { token: member.token });
  expect(history.data?.device.locations.edges.map((e: { node: { id: string } }) => e.node.id)).toContain(produced.id);
});

test('a location for a device outside its tenant, or one whose id belongs to another device, goes to the DLQ with a reason', async () => {
  const deviceId = await registerDevice(stack, member);
  const neighbour = await registerDevice(stack, member);
  const live = await watch(null);
  const taken = await recordLocation(stack, member, { deviceId: neighbour, latitude: 5, longitude: 0 });
  await live.waitFor(1);

  const refused = [
    { why: 'no such device', value: location(tenantId, randomUUID(), 10) },
    { why: "another tenant's device, named in this tenant", value: location(tenantId, otherDeviceId, 11) },
    { why: "this tenant's device, named in another tenant", value: location(otherTenantId, deviceId, 12) },
    { why: "an id another device's location has", value: { ...location(tenantId, deviceId, 13), id: taken.id } },
  ];
  await kcat(refused.map(({ value }) => ({ key: `${value.tenantId}:${value.deviceId}`, value })));
  const good = await recordLocation(stack, member, { deviceId, latitude: 14, longitude: 0 });

  const consumer = new Kafka({ clientId: 'dlq-reader', brokers: stack.kafkaBrokers, logLevel: logLevel.NOTHING }).consumer({
    groupId: `dlq-${randomUUID()}`,
    maxWaitTimeInMs: 50,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
  });
  await consumer.connect();
  await consumer.subscribe({ topic: `${stack.topic}.dlq`, fromBeginning: true });
  const letters = new Map<string, { reason: string; source: string }>();
  const allFour = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`expected ${refused.length} dead letters, got ${JSON.stringify([...letters.values()])}`)), 30_000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        const { id, deviceId: device } = JSON.parse(String(message.value)) as { id: string; deviceId: string };
        letters.set(`${id}/${device}`, { reason: String(message.headers?.['x-dlq-reason']), source: String(message.headers?.['x-dlq-source']) });
        if (letters.size === refused.length) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await allFour.finally(() => consumer.disconnect());

  const reasonOf = (value: { id: string; deviceId: string }) => letters.get(`${value.id}/${value.deviceId}`)?.reason;
  expect(reasonOf(refused[0]!.value)).toMatch(new RegExp(`^unknown device: ${refused[0]!.value.deviceId}`));
  expect(reasonOf(refused[1]!.value)).toMatch(new RegExp(`^unknown device: ${otherDeviceId} is not a device of tenant ${tenantId}`));
  expect(reasonOf(refused[2]!.value)).toMatch(new RegExp(`^unknown device: ${deviceId} is not a device of tenant ${otherTenantId}`));
  expect(reasonOf(refused[3]!.value)).toMatch(new RegExp(`^id conflict: location ${taken.id}`));
  for (const letter of letters.values()) expect(letter.source).toMatch(new RegExp(`^${stack.topic}/\\d+/\\d+$`));

  // Nothing of them was stored or delivered; the tenant's own location went through.
  expect(await storedIds(refused.slice(0, 3).map((r) => r.value.id))).toEqual([]);
  expect((await settle(live, 2)).map((l) => l.id)).toEqual([taken.id, good.id]);
});
