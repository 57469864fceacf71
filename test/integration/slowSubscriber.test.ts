import { once } from 'node:events';
import WebSocket from 'ws';
import { adminSession, createTenant, graphql, memberOf, registerDevice, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import { connectDashboard, type Dashboard } from '../support/subscriber';

/**
 * Back-pressure and limits: a dashboard that stops reading is dropped (close 1013) once its bounded
 * queue fills, without delaying anyone else; open subscriptions are capped per connection and tenant.
 */
let stack: TestStack;
let member: Session;
let tenantId: string;
let deviceId: string;
const dashboards: Dashboard[] = [];
const QUEUE = 100;

beforeAll(async () => {
  // Wide results (400 aliases, past the default alias limit) fill the socket quickly; the limit is raised for it.
  stack = await startTestStack({ limits: { queueCapacity: QUEUE, perConnection: 2, perTenant: 4 }, gateway: { operationLimits: { maxAliases: 1000 } } });
  const admin = await adminSession(stack);
  tenantId = await createTenant(stack, admin);
  member = await memberOf(stack, admin, tenantId);
  deviceId = await registerDevice(stack, member);
});
afterAll(async () => {
  await Promise.all(dashboards.map((d) => d.dispose()));
  await stack?.stop();
});

async function untilSubscriptions(predicate: (size: number) => boolean): Promise<void> {
  const registry = stack.gateway.subscriptions;
  const timeout = AbortSignal.timeout(30_000);
  while (!predicate(registry.size)) await once(registry, 'changed', { signal: timeout });
}

// Large results (long aliases are cheap to resolve) fill the socket's kernel buffers after a few hundred
// events instead of tens of thousands.
const WIDE = Array.from({ length: 400 }, (_, i) => `${'f'.repeat(60)}${i}: latitude`).join(' ');
const wideSubscription = (alias: string) => `subscription($t: ID!, $d: ID) { ${alias}: locationUpdated(tenantId: $t, deviceId: $d) { sequence ${WIDE} } }`;

test('a subscriber that stops reading is dropped while another receives everything in order', async () => {
  const fast = connectDashboard(stack.wsUrl, member.token);
  dashboards.push(fast);
  const fastResults = fast.subscribe(wideSubscription('fast'), { t: tenantId, d: deviceId });

  // The slow client speaks graphql-transport-ws by hand so it can stop reading its socket.
  const slow = new WebSocket(stack.wsUrl, 'graphql-transport-ws');
  await once(slow, 'open');
  slow.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${member.token}` } }));
  await once(slow, 'message');
  slow.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: wideSubscription('slow'), variables: { t: tenantId, d: deviceId } } }));
  await untilSubscriptions((size) => size === 2);
  const slowSocket = (slow as unknown as { _socket: import('node:net').Socket })._socket;
  slowSocket.pause();
  const closed = new Promise<number>((resolve) => slow.once('close', (code) => resolve(code)));
  const droppedBefore = stack.gateway.subscriptions.stats.slowSubscribersDropped;

  const total = 400;
  for (let start = 0; start < total; start += 200) {
    const inputs = Array.from({ length: 200 }, (_, i) => ({ deviceId, latitude: ((start + i) % 180) - 89, longitude: 0 }));
    const response = await graphql(stack.gatewayUrl, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }', { i: inputs }, { token: member.token });
    expect(response.errors).toBeUndefined();
  }
  // The slow subscriber leaves the registry: its queue stopped at capacity and its socket is closed
  // (1013, then cut: a client that reads nothing cannot receive the close frame behind its backlog).
  await untilSubscriptions((size) => size === 1);
  expect(stack.gateway.subscriptions.stats.slowSubscribersDropped).toBe(droppedBefore + 1);
  slowSocket.resume();
  expect([1013, 1006]).toContain(await closed);
  // Meanwhile the fast one receives everything, in order.
  const delivered = await fastResults.waitFor(total, 60_000);
  expect(delivered.map((r) => r.data.fast.sequence)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
});

test('open subscriptions are limited per connection and per tenant with RATE_LIMITED', async () => {
  // A tenant of its own, so the first test's subscriber does not count against the tenant limit.
  const admin = await adminSession(stack);
  const tenantId = await createTenant(stack, admin);
  const member = await memberOf(stack, admin, tenantId);
  const query = 'subscription($t: ID!) { locationUpdated(tenantId: $t) { id } }';
  const first = connectDashboard(stack.wsUrl, member.token);
  dashboards.push(first);
  const before = stack.gateway.subscriptions.size;
  first.subscribe(query, { t: tenantId });
  first.subscribe(query, { t: tenantId });
  await untilSubscriptions((size) => size === before + 2);
  const third = (await first.subscribe(query, { t: tenantId }).ended()) as Array<{ extensions: Record<string, unknown> }>;
  expect(third[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'subscriptionsPerConnection' });

  const second = connectDashboard(stack.wsUrl, member.token);
  dashboards.push(second);
  second.subscribe(query, { t: tenantId });
  second.subscribe(query, { t: tenantId });
  await untilSubscriptions((size) => size === before + 4);
  const third2 = connectDashboard(stack.wsUrl, member.token);
  dashboards.push(third2);
  const fifth = (await third2.subscribe(query, { t: tenantId }).ended()) as Array<{ extensions: Record<string, unknown> }>;
  expect(fifth[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 'subscriptionsPerTenant' });
});
