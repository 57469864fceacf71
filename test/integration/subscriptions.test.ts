import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import pg from 'pg';
import { adminSession, createTenant, graphql, memberOf, registerDevice, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import { connectDashboard, type Dashboard } from '../support/subscriber';

/**
 * The live path end to end: recordLocation → outbox → Kafka → bridge → Redis → gateway →
 * graphql-ws, with real services. Two tenants, several devices, per-device and per-tenant
 * subscribers, and a selection that reaches into all three subgraphs.
 */
let stack: TestStack;
let admin: Session;
const tenants: Array<{ id: string; name: string; member: Session; devices: string[] }> = [];
const dashboards: Dashboard[] = [];

const SELECTION = 'id sequence latitude longitude recordedAt device { id name tenant { id name } }';
const BY_DEVICE = `subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { ${SELECTION} } }`;

function dashboard(token: string | null, params?: Record<string, unknown>): Dashboard {
  const opened = connectDashboard(stack.wsUrl, token, params);
  dashboards.push(opened);
  return opened;
}

async function record(member: Session, inputs: Array<{ deviceId: string; latitude: number }>): Promise<Array<{ id: string; sequence: number }>> {
  const response = await graphql(stack.gatewayUrl, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id sequence } }', {
    i: inputs.map((input) => ({ ...input, longitude: 10 })),
  }, { token: member.token });
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.recordLocations;
}

beforeAll(async () => {
  stack = await startTestStack({ callerRecheckMs: 500 });
  admin = await adminSession(stack);
  for (const label of ['A', 'B']) {
    const name = `Fleet ${label} ${randomUUID().slice(0, 6)}`;
    const id = await createTenant(stack, admin, name);
    const member = await memberOf(stack, admin, id);
    const devices = [await registerDevice(stack, member, `${label}-1`), await registerDevice(stack, member, `${label}-2`)];
    tenants.push({ id, name, member, devices });
  }
});
afterAll(async () => {
  await Promise.all(dashboards.map((d) => d.dispose()));
  await stack?.stop();
});

test('every accepted location reaches each matching subscriber once, in order, with cross-subgraph fields', async () => {
  const [a, b] = tenants as [(typeof tenants)[number], (typeof tenants)[number]];
  const [a1, a2] = a.devices as [string, string];
  const viewer = dashboard(a.member.token);
  const onA1 = viewer.subscribe(BY_DEVICE, { t: a.id, d: a1 });
  const onA1Again = viewer.subscribe(BY_DEVICE, { t: a.id, d: a1 }); // same selection: shares one group
  const onTenantA = dashboard(a.member.token).subscribe(BY_DEVICE, { t: a.id });
  const adminOnA2 = dashboard(admin.token).subscribe(BY_DEVICE, { t: a.id, d: a2 });
  const onTenantB = dashboard(b.member.token).subscribe(BY_DEVICE, { t: b.id });
  // A subscription is live once the gateway authorized it and joined Redis: its registry says so.
  await waitForSubscriptionCount(5);

  const sent: Array<{ id: string; sequence: number; deviceId: string }> = [];
  for (let round = 0; round < 5; round += 1) {
    const inputs = [
      { deviceId: a1, latitude: round },
      { deviceId: a2, latitude: 50 + round },
      { deviceId: a1, latitude: round + 0.5 },
    ];
    const accepted = await record(a.member, inputs);
    accepted.forEach((location, i) => sent.push({ ...location, deviceId: (inputs[i] as { deviceId: string }).deviceId }));
  }
  const forA1 = sent.filter((l) => l.deviceId === a1);
  const forA2 = sent.filter((l) => l.deviceId === a2);

  const [gotA1, gotA1Again, gotTenant, gotA2] = await Promise.all([
    onA1.waitFor(forA1.length),
    onA1Again.waitFor(forA1.length),
    onTenantA.waitFor(sent.length),
    adminOnA2.waitFor(forA2.length),
  ]);
  const ids = (results: Array<{ data?: any }>) => results.map((r) => r.data.locationUpdated.id);
  expect(ids(gotA1)).toEqual(forA1.map((l) => l.id));
  expect(ids(gotA1Again)).toEqual(forA1.map((l) => l.id));
  expect(ids(gotA2)).toEqual(forA2.map((l) => l.id));
  // Per-tenant: every location once; within each device, acceptance order.
  expect(new Set(ids(gotTenant))).toEqual(new Set(sent.map((l) => l.id)));
  expect(ids(gotTenant)).toHaveLength(sent.length);
  for (const device of [a1, a2]) {
    const sequences = gotTenant.filter((r) => r.data.locationUpdated.device.id === device).map((r) => r.data.locationUpdated.sequence);
    expect(sequences).toEqual([...sequences].sort((x, y) => x - y));
  }
  expect(gotA1[0]?.errors).toBeUndefined();
  expect(gotA1[0]?.data.locationUpdated.device).toEqual({ id: a1, name: 'A-1', tenant: { id: a.id, name: a.name } });

  // Tenant B's dashboard heard nothing of A; after B records, it hears exactly B.
  const [b1] = b.devices as [string];
  const [onlyB] = await record(b.member, [{ deviceId: b1, latitude: 7 }]);
  const [gotB] = await onTenantB.waitFor(1);
  expect(gotB?.data.locationUpdated.id).toBe(onlyB?.id);
  expect(onTenantB.results).toHaveLength(1);
  expect(JSON.stringify(onTenantB.results)).not.toContain(a.id);
});

test('subscribers that share a selection share one set of entity fetches per event', async () => {
  const tenantId = await createTenant(stack, admin, `Shared ${randomUUID().slice(0, 6)}`);
  const [first, second] = [await memberOf(stack, admin, tenantId), await memberOf(stack, admin, tenantId)] as [Session, Session];
  const deviceId = await registerDevice(stack, first, 'shared');
  const before = stack.gateway.subscriptions.size;
  const watchers = [dashboard(first.token), dashboard(second.token), dashboard(second.token)].map((d) => d.subscribe(BY_DEVICE, { t: tenantId, d: deviceId }));
  await waitForSubscriptionCount(before + 3);
  const resolvedBefore = stack.gateway.subscriptions.stats.eventsResolved;
  await record(first, [1, 2, 3].map((latitude) => ({ deviceId, latitude })));
  const delivered = await Promise.all(watchers.map((w) => w.waitFor(3)));
  expect(delivered.map((results) => results.map((r) => r.data.locationUpdated.latitude))).toEqual([[1, 2, 3], [1, 2, 3], [1, 2, 3]]);
  // Three subscribers, three events: three plan executions, not nine.
  expect(stack.gateway.subscriptions.stats.eventsResolved - resolvedBefore).toBe(3);
  // Operators see the same on /metrics.
  const metrics = await (await fetch(`${stack.gateway.metricsUrl}/metrics`)).text();
  expect(metrics).toMatch(new RegExp(`^fleet_gateway_events_resolved_total\\{[^}]*\\} ${stack.gateway.subscriptions.stats.eventsResolved}$`, 'm'));
});

test('a field error while resolving an event reaches the subscriber as a GraphQL error, and the stream goes on', async () => {
  const [a] = tenants as [(typeof tenants)[number]];
  const deviceId = await registerDevice(stack, a.member, 'errors');
  const before = stack.gateway.subscriptions.size;
  const live = dashboard(a.member.token).subscribe(
    'subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { sequence device { locations(first: 0) { edges { cursor } } } } }',
    { t: a.id, d: deviceId },
  );
  await waitForSubscriptionCount(before + 1);
  await record(a.member, [{ deviceId, latitude: 1 }, { deviceId, latitude: 2 }]);
  const results = await live.waitFor(2);
  expect(results.map((r) => r.errors?.map((e: { extensions: { code: string; field: string } }) => [e.extensions.code, e.extensions.field]))).toEqual([
    [['BAD_USER_INPUT', 'first']],
    [['BAD_USER_INPUT', 'first']],
  ]);
  expect(JSON.stringify(results)).not.toMatch(/stacktrace|node_modules/);
});

describe('authorization', () => {
  test('no token or a bad token closes the socket with 4401', async () => {
    expect((await dashboard(null).closed).code).toBe(4401);
    expect((await dashboard('not-a-jwt').closed).code).toBe(4401);
    expect((await dashboard(null, { Authorization: 'Bearer nope' }).closed).code).toBe(4401);
  });

  test('Authorization (capitalised) in connection_init is accepted too', async () => {
    const [a] = tenants as [(typeof tenants)[number]];
    const before = stack.gateway.subscriptions.size;
    const live = dashboard(null, { Authorization: `Bearer ${a.member.token}` }).subscribe(BY_DEVICE, { t: a.id, d: a.devices[0] });
    await waitForSubscriptionCount(before + 1);
    expect(live.error).toBeUndefined();
    live.unsubscribe();
    await waitForSubscriptionCount(before);
  });

  test("another tenant's tenant or device is NOT_FOUND, exactly like an unknown one", async () => {
    const [a, b] = tenants as [(typeof tenants)[number], (typeof tenants)[number]];
    const socket = dashboard(a.member.token);
    const otherTenant = socket.subscribe(BY_DEVICE, { t: b.id });
    const unknownTenant = socket.subscribe(BY_DEVICE, { t: randomUUID() });
    const otherDevice = socket.subscribe(BY_DEVICE, { t: a.id, d: b.devices[0] });
    const unknownDevice = socket.subscribe(BY_DEVICE, { t: a.id, d: randomUUID() });
    const errors = await Promise.all([otherTenant, unknownTenant, otherDevice, unknownDevice].map((s) => s.ended()));
    const summary = errors.map((e) => (e as Array<{ message: string; extensions: { code: string } }>).map((x) => [x.extensions.code, x.message]));
    expect(summary).toEqual([
      [['NOT_FOUND', 'Tenant not found']],
      [['NOT_FOUND', 'Tenant not found']],
      [['NOT_FOUND', 'Device not found']],
      [['NOT_FOUND', 'Device not found']],
    ]);
  });

  test('a socket whose user changed tenant without an announcement is closed with 4403 on the next recheck', async () => {
    const [a, b] = tenants as [(typeof tenants)[number], (typeof tenants)[number]];
    const mover = await memberOf(stack, admin, a.id, 'quiet-mover');
    const socket = dashboard(mover.token);
    const before = stack.gateway.subscriptions.size;
    socket.subscribe(BY_DEVICE, { t: a.id });
    // Registered means authorized as a member of A: the socket holds tenant A from here on.
    await waitForSubscriptionCount(before + 1);
    // Moved straight in the database (as the owner): no Redis announcement reaches the gateway.
    const owner = new pg.Client({ connectionString: stack.database.ownerUrl });
    await owner.connect();
    await owner.query('UPDATE tenant_members SET tenant_id = $1 WHERE user_id = $2', [b.id, mover.userId]);
    await owner.end();
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the socket was not closed')), 10_000).unref());
    expect((await Promise.race([socket.closed, timeout])).code).toBe(4403);
  });

  test('a malformed subscription is BAD_USER_INPUT', async () => {
    const [a] = tenants as [(typeof tenants)[number]];
    const socket = dashboard(a.member.token);
    const error = (await socket.subscribe('subscription { locationUpdated(tenantId: 1) { nope } }').ended()) as Array<{ extensions: { code: string } }>;
    expect(error.map((e) => e.extensions.code)).toEqual(['BAD_USER_INPUT']);
  });
});

/** A subscription is live once the gateway registered it (authorized, joined Redis): await that event. */
async function waitForSubscriptionCount(count: number): Promise<void> {
  const subscriptions = stack.gateway.subscriptions;
  const timeout = AbortSignal.timeout(20_000);
  while (subscriptions.size !== count) {
    await once(subscriptions, 'changed', { signal: timeout });
  }
}
