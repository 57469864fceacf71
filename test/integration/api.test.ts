import { randomUUID } from 'node:crypto';
import { adminSession, codes, createTenant, graphql, login, memberOf, recordLocation, registerDevice, type Session } from '../support/client';
import { verificationCode } from '../support/mailbox';
import { startTestStack, type TestStack } from '../support/stack';

/** Every query and mutation of CONTRACT.md through the gateway: the happy path and each error code it can give. */
let stack: TestStack;
let admin: Session;
let tenantId: string;
let member: Session;
let deviceId: string;

const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();

beforeAll(async () => {
  stack = await startTestStack({ minIntervalMs: 0 });
  admin = await adminSession(stack);
  tenantId = await createTenant(stack, admin, `Acme ${randomUUID().slice(0, 6)}`);
  member = await memberOf(stack, admin, tenantId);
  deviceId = await registerDevice(stack, member, 'truck 1');
});
afterAll(async () => {
  await stack?.stop();
});

const gql = (query: string, variables: Record<string, unknown> = {}, token?: string) => graphql(stack.gatewayUrl, query, variables, { token });

describe('auth', () => {
  test('register creates a MEMBER with no tenant; it cannot grant a role; confirmRegistration completes it; a confirmed email is taken', async () => {
    const email = `new-${randomUUID().slice(0, 8)}@fleet.test`;
    const registered = await gql('mutation($e: String!) { register(email: $e, password: "long-enough-1") { id email role tenant { id } } }', { e: email });
    expect(registered.data?.register).toMatchObject({ email, role: 'MEMBER', tenant: null });
    const confirmed = await gql('mutation($e: String!, $c: String!) { confirmRegistration(email: $e, code: $c) { id email role tenant { id } } }', { e: email, c: verificationCode(email) });
    expect(confirmed.data?.confirmRegistration).toEqual({ id: registered.data?.register.id, email, role: 'MEMBER', tenant: null });
    const again = await gql('mutation($e: String!) { register(email: $e, password: "long-enough-1") { id } }', { e: email });
    expect(codes(again)).toEqual(['BAD_USER_INPUT']);
    expect(again.errors?.[0]?.extensions?.field).toBe('email');
  });

  test.each([
    ['email', 'not-an-email', 'long-enough-1'],
    ['password', 'short@fleet.test', 'short'],
  ])('register rejects a bad %s with BAD_USER_INPUT naming it', async (field, email, password) => {
    const response = await gql('mutation($e: String!, $p: String!) { register(email: $e, password: $p) { id } }', { e: email, p: password });
    expect(codes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe(field);
  });

  test('login returns a session whose token the gateway accepts; bad credentials are UNAUTHENTICATED alike', async () => {
    const session = await gql('mutation($e: String!) { login(email: $e, password: "member-password-1") { idToken accessToken refreshToken expiresIn user { id email role tenant { id } } } }', { e: member.email });
    const login = session.data?.login;
    expect(login.expiresIn).toBeGreaterThan(0);
    expect(login.user).toEqual({ id: member.userId, email: member.email, role: 'MEMBER', tenant: { id: tenantId } });
    const wrongPassword = await gql('mutation($e: String!) { login(email: $e, password: "wrong-password") { idToken } }', { e: member.email });
    const unknownUser = await gql('mutation { login(email: "nobody@fleet.test", password: "wrong-password") { idToken } }');
    expect(codes(wrongPassword)).toEqual(['UNAUTHENTICATED']);
    expect(wrongPassword.errors?.[0]?.message).toBe(unknownUser.errors?.[0]?.message);
  });

  test('refreshSession returns fresh tokens that carry the current tenant; a bad refresh token is UNAUTHENTICATED', async () => {
    const fresh = await graphql<any>(stack.gatewayUrl, 'mutation($r: String!) { refreshSession(refreshToken: $r) { idToken refreshToken user { id tenant { id } } } }', { r: member.refreshToken });
    expect(fresh.data?.refreshSession.user).toEqual({ id: member.userId, tenant: { id: tenantId } });
    const claims = JSON.parse(Buffer.from(fresh.data?.refreshSession.idToken.split('.')[1], 'base64url').toString());
    expect(claims['custom:tenant_id']).toBe(tenantId);
    const bad = await gql('mutation { refreshSession(refreshToken: "not-a-token") { idToken } }');
    expect(codes(bad)).toEqual(['UNAUTHENTICATED']);
  });

  test('me is the caller, and UNAUTHENTICATED without a token', async () => {
    expect((await gql('{ me { id email role } }', {}, member.token)).data?.me).toEqual({ id: member.userId, email: member.email, role: 'MEMBER' });
    const anonymous = await gql('{ me { id } }');
    expect(anonymous.status).toBe(200);
    expect(codes(anonymous)).toEqual(['UNAUTHENTICATED']);
  });
});

describe('tenants', () => {
  test('createTenant is ADMIN-only and names are unique', async () => {
    const name = `Globex ${randomUUID().slice(0, 6)}`;
    const created = await gql('mutation($n: String!) { createTenant(name: $n) { id name createdAt members { id } devices { id } } }', { n: name }, admin.token);
    expect(created.data?.createTenant).toMatchObject({ name, members: [], devices: [] });
    expect(new Date(created.data?.createTenant.createdAt).toISOString()).toBe(created.data?.createTenant.createdAt);
    expect(codes(await gql('mutation($n: String!) { createTenant(name: $n) { id } }', { n: name }, admin.token))).toEqual(['BAD_USER_INPUT']);
    expect(codes(await gql('mutation { createTenant(name: "   ") { id } }', {}, admin.token))).toEqual(['BAD_USER_INPUT']);
    expect(codes(await gql('mutation { createTenant(name: "x") { id } }', {}, member.token))).toEqual(['FORBIDDEN']);
    expect(codes(await gql('mutation { createTenant(name: "x") { id } }'))).toEqual(['UNAUTHENTICATED']);
  });

  test('addTenantMember: ADMIN-only, NOT_FOUND for an unknown tenant or user, and the next login carries the tenant', async () => {
    const other = await memberOf(stack, admin, null, 'joiner');
    expect((await gql('{ me { tenant { id } } }', {}, other.token)).data?.me.tenant).toBeNull();
    const added = await gql('mutation($t: ID!, $e: String!) { addTenantMember(tenantId: $t, email: $e) { id email tenant { id } } }', { t: tenantId, e: other.email }, admin.token);
    expect(added.data?.addTenantMember).toEqual({ id: other.userId, email: other.email, tenant: { id: tenantId } });
    const relogged = await login(stack, other.email, 'member-password-1');
    expect(JSON.parse(Buffer.from(relogged.token.split('.')[1] as string, 'base64url').toString())['custom:tenant_id']).toBe(tenantId);

    const variables = (t: string, e: string) => ({ t, e });
    const mutation = 'mutation($t: ID!, $e: String!) { addTenantMember(tenantId: $t, email: $e) { id } }';
    expect(codes(await gql(mutation, variables(randomUUID(), other.email), admin.token))).toEqual(['NOT_FOUND']);
    expect(codes(await gql(mutation, variables(tenantId, 'ghost@fleet.test'), admin.token))).toEqual(['NOT_FOUND']);
    expect(codes(await gql(mutation, variables(tenantId, stack.admin.email), admin.token))).toEqual(['BAD_USER_INPUT']);
    expect(codes(await gql(mutation, variables(tenantId, other.email), member.token))).toEqual(['FORBIDDEN']);
  });

  test('tenant and tenants: ADMIN sees all, a MEMBER only their own, members resolve across subgraphs', async () => {
    const own = await gql('query($id: ID!) { tenant(id: $id) { id members { id email role } } }', { id: tenantId }, member.token);
    expect(own.data?.tenant.members).toEqual(expect.arrayContaining([{ id: member.userId, email: member.email, role: 'MEMBER' }]));
    const mine = await gql('{ tenants { id } }', {}, member.token);
    expect(mine.data?.tenants).toEqual([{ id: tenantId }]);
    const all = await gql('{ tenants { id } }', {}, admin.token);
    expect(all.data?.tenants.length).toBeGreaterThanOrEqual(2);
    expect(codes(await gql('query($id: ID!) { tenant(id: $id) { id } }', { id: randomUUID() }, admin.token))).toEqual(['NOT_FOUND']);
    expect(codes(await gql('{ tenant(id: "not-a-uuid") { id } }', {}, member.token))).toEqual(['NOT_FOUND']);
    expect(codes(await gql('{ tenants { id } }'))).toEqual(['UNAUTHENTICATED']);
  });
});

describe('devices and locations', () => {
  test('registerDevice needs a tenant member; ADMIN and tenantless users are FORBIDDEN', async () => {
    const device = await gql('mutation { registerDevice(name: "van 7") { id name tenant { id } lastLocation { id } } }', {}, member.token);
    expect(device.data?.registerDevice).toMatchObject({ name: 'van 7', tenant: { id: tenantId }, lastLocation: null });
    expect(codes(await gql('mutation { registerDevice(name: "x") { id } }', {}, admin.token))).toEqual(['FORBIDDEN']);
    const loner = await memberOf(stack, admin, null, 'loner');
    expect(codes(await gql('mutation { registerDevice(name: "x") { id } }', {}, loner.token))).toEqual(['FORBIDDEN']);
    expect(codes(await gql('mutation { registerDevice(name: "") { id } }', {}, member.token))).toEqual(['BAD_USER_INPUT']);
  });

  test('recordLocation stores every field, assigns id, sequence and receivedAt, and shows up in lastLocation and history', async () => {
    const recordedAt = minutesAgo(1);
    const response = await gql(
      'mutation($i: LocationInput!) { recordLocation(input: $i) { id sequence latitude longitude accuracy speed heading altitude recordedAt receivedAt device { id name } } }',
      { i: { deviceId, latitude: 52.52, longitude: 13.405, accuracy: 4.5, speed: 12.3, heading: 270, altitude: 34, recordedAt } },
      member.token,
    );
    const location = response.data?.recordLocation;
    expect(location).toMatchObject({ latitude: 52.52, longitude: 13.405, accuracy: 4.5, speed: 12.3, heading: 270, altitude: 34, recordedAt, device: { id: deviceId, name: 'truck 1' } });
    expect(location.sequence).toBe(1);
    expect(Date.parse(location.receivedAt)).toBeGreaterThanOrEqual(Date.parse(recordedAt));
    const device = await gql('query($id: ID!) { device(id: $id) { lastLocation { id } locations { edges { node { id } } } } }', { id: deviceId }, member.token);
    expect(device.data?.device.lastLocation.id).toBe(location.id);
    expect(device.data?.device.locations.edges.map((e: any) => e.node.id)).toEqual([location.id]);
  });

  test('recordedAt defaults to receivedAt', async () => {
    const response = await gql('mutation($d: ID!) { recordLocation(input: { deviceId: $d, latitude: 1, longitude: 2 }) { recordedAt receivedAt accuracy } }', { d: deviceId }, member.token);
    expect(response.data?.recordLocation.recordedAt).toBe(response.data?.recordLocation.receivedAt);
    expect(response.data?.recordLocation.accuracy).toBeNull();
  });

  test.each([
    ['latitude', { latitude: 90.0001 }],
    ['latitude', { latitude: -91 }],
    ['longitude', { longitude: 180.5 }],
    ['accuracy', { accuracy: -1 }],
    ['speed', { speed: -0.1 }],
    ['heading', { heading: 360.1 }],
    ['recordedAt', { recordedAt: new Date(Date.now() + 10 * 60_000).toISOString() }],
    ['recordedAt', { recordedAt: new Date(Date.now() - 8 * 24 * 3_600_000).toISOString() }],
  ])('recordLocation rejects an out-of-range %s with BAD_USER_INPUT naming it', async (field, override) => {
    const response = await gql('mutation($i: LocationInput!) { recordLocation(input: $i) { id } }', { i: { deviceId, latitude: 1, longitude: 1, ...override } }, member.token);
    expect(codes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors?.[0]?.extensions?.field).toBe(field);
  });

  test('recordLocation: unknown device NOT_FOUND, ADMIN FORBIDDEN, anonymous UNAUTHENTICATED', async () => {
    const mutation = 'mutation($i: LocationInput!) { recordLocation(input: $i) { id } }';
    expect(codes(await gql(mutation, { i: { deviceId: randomUUID(), latitude: 1, longitude: 1 } }, member.token))).toEqual(['NOT_FOUND']);
    expect(codes(await gql(mutation, { i: { deviceId, latitude: 1, longitude: 1 } }, admin.token))).toEqual(['FORBIDDEN']);
    expect(codes(await gql(mutation, { i: { deviceId, latitude: 1, longitude: 1 } }))).toEqual(['UNAUTHENTICATED']);
  });

  test('recordLocations is all or nothing, at most 1000, and keeps per-device order in sequence numbers', async () => {
    const batchDevice = await registerDevice(stack, member, 'batch');
    const inputs = Array.from({ length: 5 }, (_, i) => ({ deviceId: batchDevice, latitude: i, longitude: i, recordedAt: minutesAgo(10 - i) }));
    const accepted = await gql('mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id sequence latitude } }', { i: inputs }, member.token);
    expect(accepted.data?.recordLocations.map((l: any) => l.sequence)).toEqual([1, 2, 3, 4, 5]);

    const mixed = [...inputs, { deviceId: batchDevice, latitude: 100, longitude: 0 }];
    const refused = await gql('mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }', { i: mixed }, member.token);
    expect(codes(refused)).toEqual(['BAD_USER_INPUT']);
    expect(refused.errors?.[0]?.extensions).toMatchObject({ field: 'latitude', index: 5 });
    const tooMany = Array.from({ length: 1001 }, () => ({ deviceId: batchDevice, latitude: 0, longitude: 0 }));
    expect(codes(await gql('mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }', { i: tooMany }, member.token))).toEqual(['BAD_USER_INPUT']);
    const history = await gql('query($id: ID!) { device(id: $id) { locations(first: 100) { edges { node { sequence } } } } }', { id: batchDevice }, member.token);
    expect(history.data?.device.locations.edges).toHaveLength(5);
  });

  test('Device.locations pages newest first with cursors and from/to filters', async () => {
    const pagedDevice = await registerDevice(stack, member, 'paged');
    const times = Array.from({ length: 7 }, (_, i) => minutesAgo(70 - i * 10));
    await gql('mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }', { i: times.map((t, i) => ({ deviceId: pagedDevice, latitude: i, longitude: 0, recordedAt: t })) }, member.token);
    const page = (args: string) =>
      gql(`query($id: ID!) { device(id: $id) { locations(${args}) { edges { cursor node { recordedAt } } pageInfo { hasNextPage endCursor } } } }`, { id: pagedDevice }, member.token);
    const first = (await page('first: 3')).data?.device.locations;
    expect(first.edges.map((e: any) => e.node.recordedAt)).toEqual([times[6], times[5], times[4]]);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = (await page(`first: 3, after: "${first.pageInfo.endCursor}"`)).data?.device.locations;
    expect(second.edges.map((e: any) => e.node.recordedAt)).toEqual([times[3], times[2], times[1]]);
    const last = (await page(`first: 3, after: "${second.pageInfo.endCursor}"`)).data?.device.locations;
    expect(last.edges.map((e: any) => e.node.recordedAt)).toEqual([times[0]]);
    expect(last.pageInfo).toEqual({ hasNextPage: false, endCursor: last.edges[0].cursor });
    const window = (await page(`from: "${times[2]}", to: "${times[4]}"`)).data?.device.locations;
    expect(window.edges.map((e: any) => e.node.recordedAt)).toEqual([times[4], times[3], times[2]]);
    expect(codes(await page('first: 0'))).toEqual(['BAD_USER_INPUT']);
    expect(codes(await page('first: 1001'))).toEqual(['BAD_USER_INPUT']);
    expect(codes(await page('after: "garbage"'))).toEqual(['BAD_USER_INPUT']);
  });

  test('one query crosses all three subgraphs', async () => {
    await recordLocation(stack, member, { deviceId, latitude: 48.85, longitude: 2.35 });
    const response = await gql('{ me { email tenant { name devices { name lastLocation { latitude longitude recordedAt } } } } }', {}, member.token);
    expect(response.errors).toBeUndefined();
    expect(response.data?.me.tenant.devices).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'truck 1', lastLocation: expect.objectContaining({ latitude: 48.85, longitude: 2.35 }) })]));
  });

  test('device and devices: NOT_FOUND for unknown ids, ADMIN sees every tenant', async () => {
    expect(codes(await gql('query($id: ID!) { device(id: $id) { id } }', { id: randomUUID() }, member.token))).toEqual(['NOT_FOUND']);
    const mine = await gql('{ devices { id tenant { id } } }', {}, member.token);
    expect(mine.data?.devices.every((d: any) => d.tenant.id === tenantId)).toBe(true);
    const all = await gql('{ devices { id } }', {}, admin.token);
    expect(all.data?.devices.map((d: any) => d.id)).toContain(deviceId);
  });
});

describe('transport', () => {
  test('queries work over HTTP GET too; mutations over GET and subscriptions over HTTP are refused', async () => {
    const get = (query: string) =>
      fetch(`${stack.gatewayUrl}?query=${encodeURIComponent(query)}`, { headers: { authorization: `Bearer ${member.token}` } }).then(async (r) => ({ status: r.status, ...((await r.json()) as object) }) as any);
    expect((await get('{ me { id } }')).data).toEqual({ me: { id: member.userId } });
    expect(codes(await get('mutation { registerDevice(name: "x") { id } }'))).toEqual(['BAD_USER_INPUT']);
    const overHttp = await gql('subscription($t: ID!) { locationUpdated(tenantId: $t) { id } }', { t: tenantId }, member.token);
    expect(codes(overHttp)).toEqual(['BAD_USER_INPUT']);
  });
});

describe('errors', () => {
  test('malformed queries are BAD_USER_INPUT and nothing internal leaks', async () => {
    const parse = await gql('{ me { id ');
    expect(codes(parse)).toEqual(['BAD_USER_INPUT']);
    const unknown = await gql('{ nope }');
    expect(codes(unknown)).toEqual(['BAD_USER_INPUT']);
    const text = JSON.stringify([parse, unknown]);
    expect(text).not.toMatch(/stacktrace|at .*\.ts:\d+|node_modules/);
  });
});
