import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import pg from 'pg';
import { CallerDirectory, TokenVerifier } from '../../gateway/identity';
import { startGateway, type RunningGateway } from '../../gateway/server';
import { SUPERGRAPH_CONFIG, composedSupergraph } from '../../gateway/supergraph';
import { createDatabase, type Database } from '../../lib/database';
import { createLogger } from '../../lib/logger';
import { adminSession, codes, createTenant, graphql, memberOf, recordLocation, registerDevice, type Session } from '../support/client';
import { freePort } from '../support/redisServer';
import { startTestStack, type TestStack } from '../support/stack';
import { connectDashboard, type Dashboard } from '../support/subscriber';
import { idTokenClaims, mintJwt } from '../support/tokens';

/**
 * Who the caller is, under the conditions that broke it before: a socket whose user was moved while
 * the announcement was missed, a stale token on a public mutation, a database that cannot answer,
 * and a hundred dashboards reconnecting at once.
 */
let stack: TestStack;
let admin: Session;
let tenantA: string;
let tenantB: string;
const dashboards: Dashboard[] = [];

beforeAll(async () => {
  // Every lookup reads the database (no cache) and the periodic re-check is far away: what is
  // tested is the per-operation check, as after a missed membership announcement.
  stack = await startTestStack({ identityCacheTtlMs: 0, callerRecheckMs: 600_000 });
  admin = await adminSession(stack);
  tenantA = await createTenant(stack, admin);
  tenantB = await createTenant(stack, admin);
});
afterAll(async () => {
  await Promise.all(dashboards.map((d) => d.dispose()));
  await stack?.stop();
});

function dashboard(token: string): Dashboard {
  const opened = connectDashboard(stack.wsUrl, token);
  dashboards.push(opened);
  return opened;
}

/** Moves a user as if the Redis announcement had been lost: straight in the database. */
async function moveSilently(userId: string, tenantId: string): Promise<void> {
  const owner = new pg.Client({ connectionString: stack.database.ownerUrl });
  await owner.connect();
  try {
    await owner.query('UPDATE tenant_members SET tenant_id = $1 WHERE user_id = $2', [tenantId, userId]);
  } finally {
    await owner.end();
  }
}

async function subscriptionsAtLeast(count: number): Promise<void> {
  const registry = stack.gateway.subscriptions;
  const timeout = AbortSignal.timeout(30_000);
  while (registry.size < count) await once(registry, 'changed', { signal: timeout });
}

describe('a socket stays bound to the caller it was authorized for', () => {
  test('an operation sent after a silent move closes the socket with 4403; nothing of the old tenant follows', async () => {
    const mover = await memberOf(stack, admin, tenantA, 'mover');
    const stayer = await memberOf(stack, admin, tenantA, 'stayer');
    const deviceId = await registerDevice(stack, stayer);
    const socket = dashboard(mover.token);
    const before = stack.gateway.subscriptions.size;
    const live = socket.subscribe('subscription($t: ID!) { locationUpdated(tenantId: $t) { id } }', { t: tenantA });
    await subscriptionsAtLeast(before + 1);

    await moveSilently(mover.userId, tenantB);
    // Any operation: before the fix it re-read the caller and silently took the new tenant.
    socket.subscribe('{ me { id } }');
    expect((await socket.closed).code).toBe(4403);
    await recordLocation(stack, stayer, { deviceId, latitude: 1, longitude: 1 });
    expect(live.results).toEqual([]);
  });

  test('the periodic re-check compares with what the socket was authorized for', async () => {
    const recheck = await startTestStack({ identityCacheTtlMs: 0, callerRecheckMs: 200 });
    try {
      const recheckAdmin = await adminSession(recheck);
      const [a, b] = [await createTenant(recheck, recheckAdmin), await createTenant(recheck, recheckAdmin)];
      const mover = await memberOf(recheck, recheckAdmin, a, 'mover');
      const socket = connectDashboard(recheck.wsUrl, mover.token);
      dashboards.push(socket);
      const answered = socket.subscribe('{ me { id } }');
      await answered.waitFor(1);
      const owner = new pg.Client({ connectionString: recheck.database.ownerUrl });
      await owner.connect();
      await owner.query('UPDATE tenant_members SET tenant_id = $1 WHERE user_id = $2', [b, mover.userId]);
      await owner.end();
      expect((await socket.closed).code).toBe(4403);
    } finally {
      await recheck.stop();
    }
  });
});

describe('a stale token on public mutations', () => {
  let user: Session;
  let expired: string;
  beforeAll(async () => {
    user = await memberOf(stack, admin, tenantA, 'stale');
    expired = mintJwt(idTokenClaims(stack, user, { exp: Math.floor(Date.now() / 1000) - 60 }));
  });

  test('refreshSession and login run as anonymous when the attached token does not verify', async () => {
    for (const token of [expired, 'not-a-jwt']) {
      const refreshed = await graphql(stack.gatewayUrl, 'mutation($r: String!) { refreshSession(refreshToken: $r) { idToken user { id } } }', { r: user.refreshToken }, { token });
      expect(refreshed.status).toBe(200);
      expect(refreshed.data?.refreshSession.user.id).toBe(user.userId);
      const signedIn = await graphql(stack.gatewayUrl, 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }', { e: user.email, p: 'member-password-1' }, { token });
      expect(signedIn.data?.login.user.id).toBe(user.userId);
    }
  });

  test('anything else with that token stays UNAUTHENTICATED (401)', async () => {
    const mixed = await graphql(stack.gatewayUrl, 'mutation($r: String!) { refreshSession(refreshToken: $r) { idToken } registerDevice(name: "sneaky") { id } }', { r: user.refreshToken }, { token: expired });
    const query = await graphql(stack.gatewayUrl, '{ me { id } }', {}, { token: expired });
    for (const response of [mixed, query]) {
      expect(response.status).toBe(401);
      expect(codes(response)).toEqual(['UNAUTHENTICATED']);
      expect(response.data ?? null).toBeNull();
    }
  });
});

describe('a database that cannot answer is a server error, never a bad token', () => {
  let gateway: RunningGateway;
  let unreachable: Database;
  let member: Session;
  beforeAll(async () => {
    member = await memberOf(stack, admin, tenantA, 'unlucky');
    const closedPort = await freePort();
    unreachable = createDatabase({ url: `postgresql://fleet_app:fleet_app@127.0.0.1:${closedPort}/nowhere` });
    const verifier = new TokenVerifier({ region: stack.cognito.region, userPoolId: stack.cognito.userPoolId, clientId: stack.cognito.clientId, issuer: stack.cognito.issuer });
    gateway = await startGateway({
      port: 0,
      supergraph: composedSupergraph({ configPath: SUPERGRAPH_CONFIG, routingUrls: stack.subgraphUrls }),
      callerSigningSecret: stack.callerSigningSecret,
      identity: new CallerDirectory(verifier, unreachable, { cacheTtlMs: 0 }),
      db: unreachable,
      redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
      redisPrefix: stack.redisPrefix,
      limits: { perConnection: 10, perTenant: 100, queueCapacity: 100 },
      logger: createLogger('test', 'silent'),
    });
  });
  afterAll(async () => {
    await gateway?.stop();
    await unreachable?.close();
  });

  test('over HTTP: 503 INTERNAL_SERVER_ERROR with a retry hint', async () => {
    const response = await graphql(gateway.url, '{ me { id } }', {}, { token: member.token });
    expect(response.status).toBe(503);
    expect(response.errors).toEqual([{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR', retryAfterMs: 1000 } }]);
    // A token that does not verify is still the client's problem.
    const bad = await graphql(gateway.url, '{ me { id } }', {}, { token: 'not-a-jwt' });
    expect([bad.status, codes(bad)]).toEqual([401, ['UNAUTHENTICATED']]);
  });

  test('over graphql-ws: closed with 1013 (try again later), which clients retry', async () => {
    const socket = connectDashboard(gateway.url.replace(/^http/, 'ws'), member.token);
    dashboards.push(socket);
    const { code, reason } = await socket.closed;
    expect(code).toBe(1013);
    expect(reason).toMatch(/retry/i);
  });
});

test('a reconnect storm: 100 sockets of 100 users with 10 subscriptions each all open, none refused', async () => {
  const deviceIds = [] as string[];
  const owner = await memberOf(stack, admin, tenantA, 'owner');
  for (let i = 0; i < 10; i++) deviceIds.push(await registerDevice(stack, owner, `storm-${i}`));
  // A hundred members of tenant A, recorded as the platform does, with tokens as Cognito signs them.
  const users = Array.from({ length: 100 }, () => ({ userId: randomUUID(), email: `storm-${randomUUID().slice(0, 8)}@fleet.test` }));
  const db = new pg.Client({ connectionString: stack.database.ownerUrl });
  await db.connect();
  for (const user of users) {
    await db.query('INSERT INTO users (id, email, role) VALUES ($1, $2, $3)', [user.userId, user.email, 'MEMBER']);
    await db.query('INSERT INTO tenant_members (user_id, tenant_id) VALUES ($1, $2)', [user.userId, tenantA]);
  }
  await db.end();
  const before = stack.gateway.subscriptions.size;
  const sockets = users.map((user) => dashboard(mintJwt(idTokenClaims(stack, user))));
  const subscriptions = sockets.flatMap((socket) =>
    deviceIds.map((d) => socket.subscribe('subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { id } }', { t: tenantA, d })),
  );
  await subscriptionsAtLeast(before + 1000);
  expect(subscriptions.filter((s) => s.error !== undefined || s.completed)).toEqual([]);
  const closed = await Promise.race([Promise.any(sockets.map((s) => s.closed)), Promise.resolve('none')]);
  expect(closed).toBe('none');
});
