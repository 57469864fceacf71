import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { CALLER_HEADER, signCaller, type Caller } from '../../lib/caller';
import { UserPool } from '../../lib/cognito/userPool';
import { createDatabase, type Database } from '../../lib/database';
import { createLogger } from '../../lib/logger';
import type { RunningSubgraph } from '../../lib/subgraph';
import { startTenantSubgraph } from '../../subgraphs/tenant/server';
import { graphql } from '../support/client';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase';

/**
 * The tenant subgraph reads in batches: however many `Tenant` or `User` references one request
 * carries (the gateway resolves up to 500 live events with one `_entities` request), it costs one
 * database transaction and one statement per kind of read, in the caller's scope. Counted on the
 * subgraph's own database (its pool's checkouts and `scoped`'s statements), on real PostgreSQL.
 */
const secret = `tenant-loaders-${randomUUID()}-${randomUUID()}`;
let database: TestDatabase;
let db: Database;
let redis: Redis;
let subgraph: RunningSubgraph;
const counted = { checkouts: 0, statements: [] as string[] };

/** Three tenants, each with three members; one user with no tenant. */
const tenants = Array.from({ length: 3 }, (_, t) => ({ id: randomUUID(), name: `loaders ${t} ${randomUUID()}`, members: Array.from({ length: 3 }, () => randomUUID()) }));
const loner = randomUUID();

beforeAll(async () => {
  database = await createTestDatabase();
  const owner = new pg.Client({ connectionString: database.ownerUrl });
  await owner.connect();
  try {
    for (const tenant of tenants) {
      await owner.query('INSERT INTO tenants (id, name) VALUES ($1, $2)', [tenant.id, tenant.name]);
      for (const member of tenant.members) {
        await owner.query("INSERT INTO users (id, email, role) VALUES ($1, $2, 'MEMBER')", [member, `${member}@fleet.test`]);
        await owner.query('INSERT INTO tenant_members (user_id, tenant_id) VALUES ($1, $2)', [member, tenant.id]);
      }
    }
    await owner.query("INSERT INTO users (id, email, role) VALUES ($1, $2, 'MEMBER')", [loner, `${loner}@fleet.test`]);
  } finally {
    await owner.end();
  }
  db = createDatabase({
    url: database.appUrl,
    observer: { checkout: () => void (counted.checkouts += 1), statement: (text) => void counted.statements.push(text) },
  });
  redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true });
  subgraph = await startTenantSubgraph({
    port: 0,
    callerSigningSecret: secret,
    db,
    // Never called by these queries (only addTenantMember reaches Cognito).
    userPool: new UserPool({ region: 'us-east-1', userPoolId: 'unused', clientId: 'unused', endpoint: 'http://127.0.0.1:9' }),
    redis,
    redisPrefix: `test:${randomUUID().slice(0, 8)}:`,
    logger: createLogger('tenant-loaders-test', process.env.TEST_LOG_LEVEL ?? 'silent'),
  });
});

afterAll(async () => {
  await subgraph?.stop();
  redis?.disconnect();
  await db?.close();
  await database?.drop();
});

const admin: Caller = { userId: 'loaders-admin', email: 'admin@fleet.test', role: 'ADMIN', tenantId: null };
const memberOf = (t: number): Caller => ({ userId: tenants[t]!.members[0]!, email: 'm@fleet.test', role: 'MEMBER', tenantId: tenants[t]!.id });

/** One request straight to the subgraph as the gateway sends it, and what it cost the database. */
async function entities(caller: Caller, representations: unknown[], selection: string) {
  counted.checkouts = 0;
  counted.statements = [];
  const response = await graphql(subgraph.url, `query($r: [_Any!]!) { _entities(representations: $r) { ${selection} } }`, { r: representations }, {
    headers: { [CALLER_HEADER]: signCaller(caller, secret) },
  });
  expect(response.errors).toBeUndefined();
  return { entities: response.data?._entities as Array<Record<string, any> | null>, checkouts: counted.checkouts, statements: counted.statements.length };
}

test('500 Tenant references in one request are one transaction and one statement', async () => {
  const representations = Array.from({ length: 500 }, (_, i) => ({ __typename: 'Tenant', id: tenants[i % 3]!.id }));
  const result = await entities(admin, representations, '... on Tenant { id name }');
  expect(result.entities.map((tenant) => tenant?.name)).toEqual(representations.map((_, i) => tenants[i % 3]!.name));
  expect({ checkouts: result.checkouts, statements: result.statements }).toEqual({ checkouts: 1, statements: 1 });
});

test("a member's batch resolves its own tenant and nulls the others, in one statement", async () => {
  const representations = [...tenants.map((tenant) => ({ __typename: 'Tenant', id: tenant.id })), { __typename: 'Tenant', id: randomUUID() }, { __typename: 'Tenant', id: 'not-a-uuid' }];
  const result = await entities(memberOf(1), representations, '... on Tenant { id name }');
  expect(result.entities).toEqual([null, { id: tenants[1]!.id, name: tenants[1]!.name }, null, null, null]);
  expect({ checkouts: result.checkouts, statements: result.statements }).toEqual({ checkouts: 1, statements: 1 });
});

test("every user's tenant, for many users at once, is one statement (a member sees only its tenant's)", async () => {
  const users = [...tenants.flatMap((tenant) => tenant.members), loner];
  const representations = users.map((id) => ({ __typename: 'User', id }));
  const asAdmin = await entities(admin, representations, '... on User { id tenant { id } }');
  expect(asAdmin.entities.map((user) => user?.tenant?.id ?? null)).toEqual([...tenants.flatMap((tenant) => tenant.members.map(() => tenant.id)), null]);
  expect({ checkouts: asAdmin.checkouts, statements: asAdmin.statements }).toEqual({ checkouts: 1, statements: 1 });

  const asMember = await entities(memberOf(0), representations, '... on User { id tenant { id } }');
  expect(asMember.entities.map((user) => user?.tenant?.id ?? null)).toEqual([...tenants[0]!.members.map(() => tenants[0]!.id), ...Array(7).fill(null)]);
  expect(asMember.checkouts).toBe(1);
});

test("every tenant's members, for many tenants at once: one statement for the tenants, one for the members", async () => {
  const representations = tenants.map((tenant) => ({ __typename: 'Tenant', id: tenant.id }));
  const result = await entities(admin, representations, '... on Tenant { id members { id } }');
  // Oldest membership first; these were created within milliseconds, so compare them as sets.
  expect(result.entities.map((tenant) => tenant?.members.map((member: { id: string }) => member.id).sort())).toEqual(tenants.map((tenant) => [...tenant.members].sort()));
  expect({ checkouts: result.checkouts, statements: result.statements }).toEqual({ checkouts: 2, statements: 2 });
});
