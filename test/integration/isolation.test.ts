import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { signCaller, type Caller } from '../../lib/caller';
import { createDatabase, type Database, type DatabaseScope, type Tx } from '../../lib/database';
import { adminSession, codes, createTenant, graphql, memberOf, recordLocation, registerDevice, type GraphQLResponse, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * Tenant isolation, attacked: a member of tenant A tries every door to tenant B (gateway, each
 * subgraph directly with forged identities, a stale token after a tenant change, and the database
 * as fleet_app). Every response is searched for B's ids and names.
 */
interface Side { id: string; name: string; member: Session; devices: Array<{ id: string; name: string }>; locationIds: string[] }
let stack: TestStack;
let admin: Session;
let A: Side;
let B: Side;

async function seed(label: string): Promise<Side> {
  const name = `${label} ${randomUUID().slice(0, 8)}`;
  const id = await createTenant(stack, admin, name);
  const member = await memberOf(stack, admin, id, label.toLowerCase());
  const side: Side = { id, name, member, devices: [], locationIds: [] };
  for (const n of [1, 2]) {
    const deviceName = `${label}-truck-${n}-${randomUUID().slice(0, 6)}`;
    const deviceId = await registerDevice(stack, member, deviceName);
    side.devices.push({ id: deviceId, name: deviceName });
    for (const lat of [10, 11, 12]) side.locationIds.push((await recordLocation(stack, member, { deviceId, latitude: lat + n, longitude: 20 })).id);
  }
  return side;
}

beforeAll(async () => {
  stack = await startTestStack({ minIntervalMs: 0 });
  admin = await adminSession(stack);
  A = await seed('Alpha');
  B = await seed('Beta');
});
afterAll(async () => {
  await stack?.stop();
});

const secretsOf = (s: Side) => [s.id, s.name, s.member.userId, s.member.email, ...s.devices.flatMap((d) => [d.id, d.name]), ...s.locationIds];
/** Which of a tenant's ids and names appear anywhere in a body; [] is the only acceptable answer. */
const leaked = (body: unknown, side: Side = B) => secretsOf(side).filter((secret) => JSON.stringify(body).includes(secret));
const asA = (query: string, variables: Record<string, unknown> = {}) => graphql(stack.gatewayUrl, query, variables, { token: A.member.token });
const asB = (query: string, variables: Record<string, unknown> = {}) => graphql(stack.gatewayUrl, query, variables, { token: B.member.token });
const errorsWithoutPath = (r: GraphQLResponse) => (r.errors ?? []).map(({ path: _path, ...rest }) => rest);
const ids = (list: Array<{ id: string }> | undefined) => (list ?? []).map((x) => x.id).sort();
const LOCATIONS = 'query($d: ID!) { device(id: $d) { locations(first: 1000) { edges { node { id } } } } }';
const countLocations = async (token: string, d: string) =>
  ((await graphql(stack.gatewayUrl, LOCATIONS, { d }, { token })).data?.device?.locations.edges.length as number | undefined) ?? -1;

/** B's resource and a random uuid must get the same answer (status, data, errors apart from path). */
async function expectSameAsNonexistent(query: string, variable: string, bValue: string, extra: Record<string, unknown> = {}) {
  const forB = await asA(query, { ...extra, [variable]: bValue });
  const forNothing = await asA(query, { ...extra, [variable]: randomUUID() });
  expect(codes(forB)).toEqual(['NOT_FOUND']);
  expect({ status: forB.status, data: forB.data, errors: errorsWithoutPath(forB) }).toEqual({ status: forNothing.status, data: forNothing.data, errors: errorsWithoutPath(forNothing) });
  expect(leaked(forB)).toEqual([]);
}

describe('reads through the gateway as a member of A', () => {
  test('tenant(id: B) is NOT_FOUND exactly like a random id; tenants lists only A', async () => {
    await expectSameAsNonexistent('query($t: ID!) { tenant(id: $t) { id name members { id email } devices { id name } } }', 't', B.id);
    const all = await asA('{ tenants { id name members { id email tenant { id } } devices { id lastLocation { id } } } }');
    expect(ids(all.data?.tenants)).toEqual([A.id]);
    expect(leaked(all)).toEqual([]);
  });

  test("device(id: B's device), with every nested selection, is NOT_FOUND exactly like a random id", async () => {
    const deep = 'query($d: ID!) { device(id: $d) { id name tenant { id name } lastLocation { id latitude } locations { edges { node { id device { name } } } } } }';
    for (const device of B.devices) await expectSameAsNonexistent(deep, 'd', device.id);
    await expectSameAsNonexistent(LOCATIONS, 'd', B.devices[0]!.id);
  });

  test("devices, Tenant.devices, me.tenant and every nested path show only A's devices and locations", async () => {
    // A page of 100 holds every location of A's devices; 1000 per device is past the gateway's cost limit.
    const response = await asA(`query($a: ID!) {
      devices { id name lastLocation { id device { tenant { id members { email } } } } }
      tenant(id: $a) { devices { id locations(first: 100) { edges { node { id device { id } } } } } }
      me { tenant { id devices { id } members { id tenant { id } } } }
    }`, { a: A.id });
    expect(response.errors).toBeUndefined();
    for (const list of [response.data.devices, response.data.tenant.devices, response.data.me.tenant.devices]) expect(ids(list)).toEqual(ids(A.devices));
    expect(leaked(response)).toEqual([]);
  });
});

describe('writes as a member of A', () => {
  const RECORD = 'mutation($d: ID!) { recordLocation(input: { deviceId: $d, latitude: 1, longitude: 1 }) { id } }';
  const BATCH = 'mutation($a: ID!, $x: ID!) { recordLocations(inputs: [{ deviceId: $a, latitude: 1, longitude: 1 }, { deviceId: $x, latitude: 2, longitude: 2 }]) { id } }';

  test("recordLocation to B's device is the nonexistent-device error, and B gets no location", async () => {
    const before = await countLocations(B.member.token, B.devices[0]!.id);
    await expectSameAsNonexistent(RECORD, 'd', B.devices[0]!.id);
    expect(await countLocations(B.member.token, B.devices[0]!.id)).toBe(before);
  });

  test("a batch mixing A's and B's devices is rejected whole, like one naming a nonexistent device", async () => {
    const [aDevice, bDevice] = [A.devices[0]!.id, B.devices[1]!.id];
    const [aBefore, bBefore] = [await countLocations(A.member.token, aDevice), await countLocations(B.member.token, bDevice)];
    await expectSameAsNonexistent(BATCH, 'x', bDevice, { a: aDevice });
    expect(await countLocations(A.member.token, aDevice)).toBe(aBefore);
    expect(await countLocations(B.member.token, bDevice)).toBe(bBefore);
  });

  test('registerDevice always lands in A; a tenant argument is not accepted', async () => {
    const created = await asA('mutation { registerDevice(name: "planted") { id tenant { id } } }');
    expect(created.data?.registerDevice.tenant).toEqual({ id: A.id });
    expect(ids((await asB('{ devices { id } }')).data?.devices)).not.toContain(created.data?.registerDevice.id);
    const smuggled = await asA('mutation($t: ID!) { registerDevice(name: "x", tenantId: $t) { id } }', { t: B.id });
    expect(codes(smuggled)).toEqual(['BAD_USER_INPUT']);
  });

  test('addTenantMember and createTenant are FORBIDDEN to a member; B keeps its members', async () => {
    const pull = await asA('mutation($t: ID!, $e: String!) { addTenantMember(tenantId: $t, email: $e) { id } }', { t: A.id, e: B.member.email });
    const push = await asA('mutation($t: ID!, $e: String!) { addTenantMember(tenantId: $t, email: $e) { id } }', { t: B.id, e: A.member.email });
    const create = await asA('mutation { createTenant(name: "mine now") { id } }');
    for (const response of [pull, push, create]) expect(codes(response)).toEqual(['FORBIDDEN']);
    expect((await asB('{ me { tenant { id } } }')).data?.me.tenant).toEqual({ id: B.id });
    expect((await asA('{ me { tenant { id } } }')).data?.me.tenant).toEqual({ id: A.id });
  });
});

describe('forged identity', () => {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const forged = (): Caller => ({ userId: B.member.userId, email: B.member.email, role: 'ADMIN', tenantId: B.id });
  const genuineA = (): Caller => ({ userId: A.member.userId, email: A.member.email, role: 'MEMBER', tenantId: A.id });
  const headers: Array<[string, () => string | undefined]> = [
    ['no x-fleet-caller', () => undefined],
    ['hand-made, garbage signature', () => `${encode({ caller: forged(), exp: Date.now() + 60_000 })}.${'A'.repeat(43)}`],
    ['hand-made, empty signature', () => `${encode({ caller: forged(), exp: Date.now() + 60_000 })}.`],
    ['signed with a wrong secret', () => signCaller(forged(), 'not-the-secret')],
    ['validly signed, expired 10 minutes ago', () => signCaller(forged(), stack.callerSigningSecret, Date.now() - 10 * 60_000)],
    ["B's body under the valid signature of A's caller", () => `${encode({ caller: forged(), exp: Date.now() + 60_000 })}.${signCaller(genuineA(), stack.callerSigningSecret).split('.')[1]}`],
  ];
  type Op = [string, () => Record<string, unknown>];
  const operations: Record<'auth' | 'tenant' | 'location', Op[]> = {
    auth: [['query($r: [_Any!]!) { me { id email } _entities(representations: $r) { ... on User { id email role } } }', () => ({ r: [{ __typename: 'User', id: B.member.userId }] })]],
    tenant: [
      ['query($t: ID!, $r: [_Any!]!) { tenant(id: $t) { name } tenants { id name } _entities(representations: $r) { ... on Tenant { name members { id } } ... on User { tenant { id name } } } }',
        () => ({ t: B.id, r: [{ __typename: 'Tenant', id: B.id }, { __typename: 'User', id: B.member.userId }] })],
      ['mutation($t: ID!, $e: String!) { addTenantMember(tenantId: $t, email: $e) { id } }', () => ({ t: B.id, e: A.member.email })],
      ['mutation { createTenant(name: "forged tenant") { id } }', () => ({})],
    ],
    location: [
      ['query($d: ID!, $r: [_Any!]!) { device(id: $d) { name } devices { id name } _entities(representations: $r) { ... on Device { name lastLocation { id } } ... on Tenant { devices { id name } } } }',
        () => ({ d: B.devices[0]!.id, r: [{ __typename: 'Device', id: B.devices[0]!.id }, { __typename: 'Tenant', id: B.id }] })],
      ['mutation($d: ID!) { recordLocation(input: { deviceId: $d, latitude: 1, longitude: 1 }) { id } }', () => ({ d: B.devices[0]!.id })],
      ['mutation { registerDevice(name: "forged device") { id } }', () => ({})],
    ],
  };
  const cases = (['auth', 'tenant', 'location'] as const).flatMap((subgraph) => headers.map(([name, header]) => [subgraph, name, header] as const));

  test.each(cases)('straight at the %s subgraph, %s: UNAUTHENTICATED and no data', async (subgraph, _name, header) => {
    const value = header();
    for (const [query, variables] of operations[subgraph]) {
      const response = await graphql(stack.subgraphUrls[subgraph], query, variables(), { headers: value ? { 'x-fleet-caller': value } : {} });
      expect(codes(response).length).toBeGreaterThan(0);
      expect(new Set(codes(response))).toEqual(new Set(['UNAUTHENTICATED']));
      expect(leaked(response)).toEqual([]);
    }
  });

  test("_entities with a genuine A caller answers B's ids exactly like random ids", async () => {
    const header = { 'x-fleet-caller': signCaller(genuineA(), stack.callerSigningSecret) };
    const probes: Array<[keyof typeof operations, string, (t: string, u: string, d: string) => unknown[]]> = [
      ['auth', '... on User { email role }', (_t, u) => [{ __typename: 'User', id: u }]],
      ['tenant', '... on Tenant { name members { id } } ... on User { tenant { name } }', (t, u) => [{ __typename: 'Tenant', id: t }, { __typename: 'User', id: u }]],
      ['location', '... on Device { name lastLocation { latitude } } ... on Tenant { devices { name } }', (t, _u, d) => [{ __typename: 'Device', id: d }, { __typename: 'Tenant', id: t }]],
    ];
    for (const [subgraph, selection, representations] of probes) {
      const ask = (r: unknown[]) => graphql(stack.subgraphUrls[subgraph], `query($r: [_Any!]!) { _entities(representations: $r) { ${selection} } }`, { r }, { headers: header });
      const forB = await ask(representations(B.id, B.member.userId, B.devices[0]!.id));
      expect(forB).toEqual(await ask(representations(randomUUID(), randomUUID(), randomUUID())));
      expect(leaked(forB)).toEqual([]);
    }
  });

  test('the gateway ignores client-sent x-tenant-id, x-user-id and a validly signed x-fleet-caller', async () => {
    const spoof = { 'x-tenant-id': B.id, 'x-user-id': B.member.userId, 'x-fleet-caller': signCaller(forged(), stack.callerSigningSecret) };
    const query = 'query($t: ID!) { tenants { id name } devices { id name } me { id role } tenant(id: $t) { name } }';
    const withToken = await graphql(stack.gatewayUrl, query, { t: B.id }, { token: A.member.token, headers: spoof });
    expect(ids(withToken.data?.tenants)).toEqual([A.id]);
    expect(withToken.data?.me).toEqual({ id: A.member.userId, role: 'MEMBER' });
    expect(codes(withToken)).toEqual(['NOT_FOUND']);
    const anonymous = await graphql(stack.gatewayUrl, query, { t: B.id }, { headers: spoof });
    const create = await graphql(stack.gatewayUrl, 'mutation { createTenant(name: "via spoofed header") { id } }', {}, { headers: spoof });
    for (const response of [anonymous, create]) {
      expect(codes(response).length).toBeGreaterThan(0);
      expect(new Set(codes(response))).toEqual(new Set(['UNAUTHENTICATED']));
    }
    for (const response of [withToken, anonymous, create]) expect(leaked(response)).toEqual([]);
  });

  test('public auth mutations need no caller, and a forged ADMIN header does not change what they return', async () => {
    const headers = { 'x-fleet-caller': signCaller(forged(), 'not-the-secret') };
    const login = await graphql(stack.subgraphUrls.auth, 'mutation($e: String!) { login(email: $e, password: "member-password-1") { user { id role } } }', { e: A.member.email }, { headers });
    expect(login.data?.login.user).toEqual({ id: A.member.userId, role: 'MEMBER' });
  });
});

/** A graphql-ws connection to the gateway, authenticated as `token`. */
async function openSocket(token: string): Promise<Client> {
  // Closes are observed through 'closed' events; the default non-lazy error handler would only log them.
  const client = createClient({ url: stack.wsUrl, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0, connectionParams: { authorization: `Bearer ${token}` }, onNonLazyError: () => undefined });
  await new Promise<void>((resolve, reject) => {
    client.on('connected', () => resolve());
    client.on('closed', reject);
  });
  return client;
}

/**
 * The first thing an operation over the socket yields: `{ delivered }`, `{ refused }` or 'silence'
 * (nothing within 6 s). `trigger` runs right after the operation is sent and is awaited too, so no
 * request outlives the test.
 */
async function firstOutcome(client: Client, query: string, variables: Record<string, unknown> = {}, trigger?: () => Promise<unknown>): Promise<unknown> {
  let stop: () => void = () => undefined;
  const outcome = new Promise<unknown>((resolve) => {
    // Only a timeout cancels: cancelling after `next` makes graphql-ws release its lock twice and close the socket.
    const done = (value: unknown) => {
      clearTimeout(timer);
      resolve(value);
    };
    const timer = setTimeout(() => {
      stop();
      done('silence');
    }, 6000);
    stop = client.subscribe({ query, variables }, { next: (v) => done({ delivered: v }), error: (e) => done({ refused: e }), complete: () => done('completed') });
  });
  const [result] = await Promise.all([outcome, trigger?.()]);
  return result;
}
const SUBSCRIBE = 'subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { id latitude device { name tenant { name } } } }';
const refusal = (outcome: unknown) => (outcome as { refused?: Array<{ extensions?: unknown }> }).refused?.map((e) => e.extensions);

describe('subscriptions as a member of A', () => {
  test("locationUpdated for B's tenant or B's device is refused like a nonexistent one, and nothing of B is delivered", async () => {
    const socket = await openSocket(A.member.token);
    try {
      const bRecords = () => recordLocation(stack, B.member, { deviceId: B.devices[0]!.id, latitude: 33, longitude: 3 });
      const attempts = [{ t: B.id }, { t: B.id, d: B.devices[0]!.id }, { t: A.id, d: B.devices[0]!.id }];
      for (const variables of attempts) {
        const forB = await firstOutcome(socket, SUBSCRIBE, variables, bRecords);
        const forNothing = await firstOutcome(socket, SUBSCRIBE, { t: variables.t === B.id ? randomUUID() : A.id, ...(variables.d ? { d: randomUUID() } : {}) });
        expect(refusal(forB)).toEqual([{ code: 'NOT_FOUND' }]);
        expect(forB).toEqual(forNothing);
        expect(leaked(forB)).toEqual([]);
      }
    } finally {
      await socket.dispose();
    }
  });
});

describe('a token minted before the member was moved from A to B', () => {
  let mover: Session;
  let closedOnMove: Promise<unknown>;
  beforeAll(async () => {
    mover = await memberOf(stack, admin, A.id, 'mover');
    const socket = await openSocket(mover.token); // opened while still a member of A
    closedOnMove = new Promise((resolve) => socket.on('closed', (event) => resolve((event as { code: number }).code)));
    const moved = await graphql(stack.gatewayUrl, 'mutation($t: ID!, $e: String!) { addTenantMember(tenantId: $t, email: $e) { id } }', { t: B.id, e: mover.email }, { token: admin.token });
    expect(moved.errors).toBeUndefined();
  });

  test('over HTTP the old token opens B (the database is authoritative), and nothing of A', async () => {
    const response = await graphql(stack.gatewayUrl, 'query($a: ID!, $d: ID!) { tenants { id } devices { id } me { tenant { id } } tenant(id: $a) { name } device(id: $d) { name } }', { a: A.id, d: A.devices[0]!.id }, { token: mover.token });
    expect(response.data?.tenants).toEqual([{ id: B.id }]);
    expect(response.data?.me.tenant).toEqual({ id: B.id });
    expect(ids(response.data?.devices)).toEqual(ids(B.devices));
    expect(codes(response)).toEqual(['NOT_FOUND', 'NOT_FOUND']);
    expect(leaked(response, A)).toEqual([]);
  });

  test('a WebSocket opened before the move is closed with 4403', async () => {
    expect(await closedOnMove).toBe(4403);
  });

  test('a WebSocket opened again with the old token can neither read A, write into A, nor subscribe to A', async () => {
    const socket = await openSocket(mover.token);
    try {
      const read = await firstOutcome(socket, '{ tenants { id name } devices { id name } }');
      const write = await firstOutcome(socket, 'mutation { registerDevice(name: "left behind") { id tenant { id name } } }');
      const subscribe = await firstOutcome(socket, SUBSCRIBE, { t: A.id }, () => recordLocation(stack, A.member, { deviceId: A.devices[0]!.id, latitude: 45, longitude: 7 }));
      expect({ read: leaked(read, A), write: leaked(write, A), subscribe: leaked(subscribe, A) }).toEqual({ read: [], write: [], subscribe: [] });
      expect(JSON.stringify(read)).toContain(B.id);
      expect(refusal(subscribe)).toEqual([{ code: 'NOT_FOUND' }]);
    } finally {
      await socket.dispose();
    }
  });
});

describe('the database as fleet_app', () => {
  let db: Database;
  let memberA: DatabaseScope;
  const inA = <T>(work: (tx: Tx) => Promise<T>) => db.inScope(memberA, work);
  beforeAll(() => {
    db = createDatabase({ url: stack.database.appUrl, poolSize: 1 });
    memberA = { kind: 'member', tenantId: A.id, userId: A.member.userId };
  });
  afterAll(async () => {
    await db?.close();
  });

  test("deliberately unscoped queries in A's member scope see only A's rows", async () => {
    const seen = await inA(async (tx) => ({
      locations: await tx.location.findMany(),
      devices: await tx.device.findMany(),
      tenants: await tx.tenant.findMany(),
      members: await tx.tenantMember.findMany(),
      users: await tx.user.findMany(),
      raw: await tx.$queryRaw<Array<{ tenant_id: string }>>`SELECT * FROM locations`,
      outbox: await tx.$queryRaw<Array<{ tenant_id: string }>>`SELECT tenant_id FROM location_outbox`,
    }));
    expect(seen.locations.length).toBeGreaterThanOrEqual(A.locationIds.length);
    for (const rows of [seen.locations, seen.devices, seen.members]) expect(new Set(rows.map((r) => r.tenantId))).toEqual(new Set([A.id]));
    for (const rows of [seen.raw, seen.outbox]) expect(rows.every((r) => r.tenant_id === A.id)).toBe(true);
    expect(ids(seen.tenants)).toEqual([A.id]);
    expect(leaked(JSON.parse(JSON.stringify(seen, (_k, v) => (typeof v === 'bigint' ? String(v) : v))))).toEqual([]);
  });

  test('writes into B are refused or match nothing', async () => {
    const bDevice = B.devices[0]!.id;
    await expect(inA((tx) => tx.device.create({ data: { tenantId: B.id, name: 'planted' } }))).rejects.toThrow();
    await expect(inA((tx) => tx.location.create({ data: { id: randomUUID(), tenantId: B.id, deviceId: bDevice, seq: 999n, latitude: 0, longitude: 0, recordedAt: new Date(), receivedAt: new Date() } }))).rejects.toThrow();
    await expect(inA((tx) => tx.tenantMember.update({ where: { userId: A.member.userId }, data: { tenantId: B.id } }))).rejects.toThrow();
    await expect(inA((tx) => tx.tenant.update({ where: { id: B.id }, data: { name: 'pwned' } }))).rejects.toThrow();
    // lastSeq: the only device column fleet_app may update at all (names are refused outright).
    expect(await inA((tx) => tx.device.updateMany({ where: { id: bDevice }, data: { lastSeq: { increment: 1 } } }))).toEqual({ count: 0 });
  });

  test.each([
    ['SET ROLE postgres'],
    ['SET SESSION AUTHORIZATION postgres'],
    ['ALTER TABLE locations DISABLE ROW LEVEL SECURITY'],
    ['CREATE POLICY open_door ON locations USING (true)'],
    ['CREATE TABLE public.stash (x int)'],
    ['SET LOCAL row_security = off; SELECT * FROM locations'],
  ])('an escape attempt fails: %s', async (sql) => {
    await expect(inA(async (tx) => {
      for (const statement of sql.split('; ')) await tx.$executeRawUnsafe(statement);
    })).rejects.toThrow();
  });

  test('RESET ROLE leaves fleet_app bound by RLS', async () => {
    const seen = await inA(async (tx) => {
      await tx.$executeRawUnsafe('RESET ROLE');
      const [who] = await tx.$queryRaw<Array<{ user: string }>>`SELECT current_user AS "user"`;
      return { who: who?.user, tenants: ids(await tx.tenant.findMany()) };
    });
    expect(seen).toEqual({ who: 'fleet_app', tenants: [A.id] });
  });

  // Known limit, stated in prisma/README.md: fleet_app can change its own `app.*` settings, so RLS
  // holds against resolver bugs (a forgotten filter, a wrong id) but not against SQL injection. What
  // keeps that door shut is that only lib/database.ts sets the settings (transaction-local) and no
  // product code runs SQL assembled from strings. This checks that rule over the whole tree.
  test('only lib/database.ts sets the scope settings, and no product code runs string-built SQL (Prisma or pg)', () => {
    const offenders: string[] = [];
    for (const dir of ['lib', 'gateway', 'subgraphs', 'bridge']) {
      for (const file of readdirSync(path.join(ROOT, dir), { recursive: true }) as string[]) {
        if (!file.endsWith('.ts')) continue;
        const relative = path.join(dir, file);
        const source = readFileSync(path.join(ROOT, relative), 'utf8');
        if (/\$(query|execute)RawUnsafe/.test(source)) offenders.push(`${relative}: raw SQL from a string`);
        // Plain pg too: a query text is a constant (`statement`, or a string literal), values travel as $n
        // parameters. Only lib/database.ts splices anything: the validated scope literals of BEGIN.
        if (relative !== path.join('lib', 'database.ts') && /(\.query(<[^>]*>)?\(|\btext:)\s*`[^`]*\$\{/.test(source)) offenders.push(`${relative}: pg query text built from values`);
        if (relative !== path.join('lib', 'database.ts') && /set_config\(|SET\s+(LOCAL\s+)?app\./i.test(source)) offenders.push(`${relative}: sets a scope setting`);
      }
    }
    expect(offenders).toEqual([]);
  });

  test('outside any scope every table reads as empty', async () => {
    expect(await db.client.location.findMany()).toEqual([]);
    expect(await db.client.device.findMany()).toEqual([]);
    expect(await db.client.tenant.findMany()).toEqual([]);
    expect(await db.client.tenantMember.findMany()).toEqual([]);
    expect(await db.client.user.findMany()).toEqual([]);
    expect(await db.client.$queryRaw`SELECT count(*)::int AS n FROM locations`).toEqual([{ n: 0 }]);
  });
});
