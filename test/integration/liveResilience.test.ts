import { once } from 'node:events';
import { adminSession, codes, createTenant, graphql, memberOf, registerDevice, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import { connectDashboard, type Collected, type Dashboard } from '../support/subscriber';
import { startTcpProxy, type TcpProxy } from '../support/tcpProxy';

/**
 * Live delivery when a subgraph fails: a passing outage costs no subscriber a location (the
 * resolution is retried), a lasting one ends in an error naming each location, a hung subgraph
 * times out, and one tenant's backlog is bounded without holding up another tenant.
 * The tenant subgraph sits behind a TCP proxy so it can also be made to hang.
 */
const RETRY_BOUND_MS = 5_000;
const PENDING_PER_TENANT = 40;
let stack: TestStack;
let proxy: TcpProxy | undefined;
let admin: Session;
const dashboards: Dashboard[] = [];

const WITH_TENANT = 'subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { id sequence device { name tenant { name } } } }';
const LOCATION_ONLY = 'subscription($t: ID!) { locationUpdated(tenantId: $t) { id sequence } }';

beforeAll(async () => {
  stack = await startTestStack({
    subgraphTimeoutMs: 1_000,
    live: { retryBoundMs: RETRY_BOUND_MS, pendingPerTenant: PENDING_PER_TENANT },
    route: async (name, url) => {
      if (name !== 'tenant') return url;
      const target = new URL(url);
      proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
      return `http://127.0.0.1:${proxy.port}${target.pathname}`;
    },
  });
  admin = await adminSession(stack);
});
afterAll(async () => {
  await Promise.all(dashboards.map((d) => d.dispose()));
  await stack?.stop();
  await proxy?.close();
});

async function fleet(): Promise<{ tenantId: string; member: Session; deviceId: string }> {
  const tenantId = await createTenant(stack, admin);
  const member = await memberOf(stack, admin, tenantId);
  return { tenantId, member, deviceId: await registerDevice(stack, member) };
}

async function watch(token: string, query: string, variables: Record<string, unknown>): Promise<Collected> {
  const registry = stack.gateway.subscriptions;
  const before = registry.size;
  const dashboard = connectDashboard(stack.wsUrl, token);
  dashboards.push(dashboard);
  const collected = dashboard.subscribe(query, variables);
  const timeout = AbortSignal.timeout(20_000);
  while (registry.size <= before) await once(registry, 'changed', { signal: timeout });
  return collected;
}

async function record(member: Session, deviceId: string, count: number): Promise<Array<{ id: string; sequence: number }>> {
  const inputs = Array.from({ length: count }, (_, i) => ({ deviceId, latitude: i % 80, longitude: 0 }));
  const response = await graphql(stack.gatewayUrl, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id sequence } }', { i: inputs }, { token: member.token });
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.recordLocations;
}

test('a subgraph stopped and restarted mid-stream costs no subscriber a location', async () => {
  const { tenantId, member, deviceId } = await fleet();
  const live = await watch(member.token, WITH_TENANT, { t: tenantId, d: deviceId });
  const sent = await record(member, deviceId, 5);
  await live.waitFor(5);
  await stack.stopSubgraph('tenant');
  sent.push(...(await record(member, deviceId, 5)));
  await stack.startSubgraph('tenant');
  sent.push(...(await record(member, deviceId, 5)));
  const results = await live.waitFor(15, 30_000);
  expect(results.map((r) => r.errors)).toEqual(sent.map(() => undefined));
  expect(results.map((r) => r.data.locationUpdated.id)).toEqual(sent.map((l) => l.id));
  expect(results.map((r) => r.data.locationUpdated.sequence)).toEqual(sent.map((l) => l.sequence));
});

test('past the retry bound each location still unresolved arrives as an error naming it, and the stream goes on', async () => {
  const { tenantId, member, deviceId } = await fleet();
  const live = await watch(member.token, WITH_TENANT, { t: tenantId, d: deviceId });
  await stack.stopSubgraph('tenant');
  const lost = await record(member, deviceId, 2);
  try {
    await live.until((results) => results.length >= 2, RETRY_BOUND_MS + 20_000);
  } finally {
    await stack.startSubgraph('tenant');
  }
  const [after] = await record(member, deviceId, 1);
  const results = await live.waitFor(3, 30_000);
  expect(results.slice(0, 2).map((r) => r.errors?.map((e: { extensions: unknown }) => e.extensions))).toEqual(
    lost.map((l) => [{ code: 'INTERNAL_SERVER_ERROR', locationId: l.id, deviceId, sequence: l.sequence }]),
  );
  expect(results[0]?.errors?.[0].message).toContain(lost[0]?.id);
  expect(results[2]?.data.locationUpdated.id).toBe(after?.id);
});

test('a hung subgraph costs a query an error after the fetch timeout, not a hung request', async () => {
  proxy?.freeze();
  try {
    const response = await graphql(stack.gatewayUrl, '{ tenants { name } }', {}, { token: admin.token });
    expect(codes(response)).toContain('INTERNAL_SERVER_ERROR');
  } finally {
    proxy?.thaw();
  }
});

test("one tenant's backlog is bounded (its group is shed with RATE_LIMITED) while another tenant's locations keep flowing", async () => {
  const stuck = await fleet();
  const flowing = await fleet();
  const stuckLive = await watch(stuck.member.token, WITH_TENANT, { t: stuck.tenantId, d: stuck.deviceId });
  const flowingLive = await watch(flowing.member.token, LOCATION_ONLY, { t: flowing.tenantId });
  proxy?.freeze();
  try {
    await record(stuck.member, stuck.deviceId, PENDING_PER_TENANT + 20);
    const error = await stuckLive.ended(30_000).then(() => stuckLive.results.at(-1)?.errors?.[0]);
    expect(error?.extensions).toEqual({ code: 'RATE_LIMITED', retryAfterMs: 1000, limit: 'pendingLocationsPerTenant' });
    expect(stuckLive.completed).toBe(true);
    // Meanwhile the other tenant, whose selection needs no hung subgraph, got everything.
    const sent = await record(flowing.member, flowing.deviceId, 10);
    const results = await flowingLive.waitFor(10, 30_000);
    expect(results.map((r) => r.data.locationUpdated.id)).toEqual(sent.map((l) => l.id));
  } finally {
    proxy?.thaw();
  }
  expect(stack.gateway.subscriptions.stats.groupsShed).toBeGreaterThanOrEqual(1);
});
