import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createDatabase, statement, type Database, type DatabaseScope } from '../../lib/database';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase';

/**
 * `db.scoped`, the plain-pg transaction of the hot paths, keeps `inScope`'s guarantees on real
 * PostgreSQL as `fleet_app`: the scope is set in the transaction and ends with it (one pooled
 * connection, so the next user of it is the same backend), a scope that is not strictly valid never
 * reaches the database (its values are sent as literals), statement texts are constants, and a
 * statement waiting on a lock is bounded.
 */
let database: TestDatabase;
let db: Database;
let owner: pg.Client;
let checkouts = 0;
const tenant = randomUUID();
const device = randomUUID();
const member: DatabaseScope = { kind: 'member', tenantId: tenant, userId: 'scoped-member' };

const SETTINGS = statement<{ scope: string; tenant: string; user: string }>`
  SELECT current_setting('app.scope', true) AS scope, current_setting('app.tenant_id', true) AS tenant, current_setting('app.user_id', true) AS "user"`;
const DEVICES = statement<{ id: string }>`SELECT id FROM devices`;
const LOCK = statement<{ id: string }>`SELECT id FROM devices WHERE id = $1 FOR NO KEY UPDATE`;

beforeAll(async () => {
  database = await createTestDatabase();
  owner = new pg.Client({ connectionString: database.ownerUrl });
  await owner.connect();
  await owner.query('INSERT INTO tenants (id, name) VALUES ($1, $2)', [tenant, `scoped ${tenant}`]);
  await owner.query("INSERT INTO devices (id, tenant_id, name) VALUES ($1, $2, 'device')", [device, tenant]);
  // One connection: whatever a transaction leaves on it, the next one would see.
  db = createDatabase({ url: database.appUrl, poolSize: 1, transactionOptions: { timeout: 500 }, observer: { checkout: () => void (checkouts += 1) } });
});

afterAll(async () => {
  await db?.close();
  await owner?.end();
  await database?.drop();
});

/** The settings as a transaction with no scope sees them, on the same (only) pooled connection. */
const unscoped = () => db.client.$queryRaw<Array<{ scope: string | null }>>`SELECT current_setting('app.scope', true) AS scope`;

test('the scope holds inside the transaction and is gone after it, committed or failed', async () => {
  expect(await db.scoped(member, (sql) => sql.rows(SETTINGS))).toEqual([{ scope: 'member', tenant, user: 'scoped-member' }]);
  expect(await db.scoped(member, (sql) => sql.rows(DEVICES))).toEqual([{ id: device }]);
  expect((await unscoped())[0]?.scope ?? '').toBe('');
  await expect(
    db.scoped({ kind: 'admin', userId: 'scoped-admin' }, async (sql) => {
      await sql.rows(SETTINGS);
      throw new Error('work failed');
    }),
  ).rejects.toThrow('work failed');
  expect((await unscoped())[0]?.scope ?? '').toBe('');
  // Outside any scope, fleet_app reads nothing.
  expect(await db.client.device.findMany()).toEqual([]);
});

test.each([
  ['a quote in the user id', { kind: 'member', tenantId: randomUUID(), userId: "x', true), set_config('app.scope', 'admin" }],
  ['a backslash in the user id', { kind: 'admin', userId: 'x\\' }],
  ['a space in the user id', { kind: 'user', userId: 'a b' }],
  ['an empty user id', { kind: 'user', userId: '' }],
  ['a user id over 128 characters', { kind: 'user', userId: 'u'.repeat(129) }],
  ['a tenant that is not a uuid', { kind: 'member', tenantId: "00000000-0000-0000-0000-000000000000'", userId: 'u' }],
  ['an unknown kind', { kind: 'root' }],
])('a scope with %s is refused before any connection is taken', async (_name, scope) => {
  const before = checkouts;
  await expect(db.scoped(scope as DatabaseScope, (sql) => sql.rows(SETTINGS))).rejects.toThrow(TypeError);
  expect(checkouts).toBe(before);
});

test('Cognito subs and the short ids of tools and tests are valid scope user ids', async () => {
  for (const userId of [randomUUID(), 'relay-test', 'user_1', 'admin@fleet.local', 'svc:bridge', 'a.b']) {
    expect(await db.scoped({ kind: 'user', userId }, (sql) => sql.rows(SETTINGS))).toEqual([{ scope: 'user', tenant: '', user: userId }]);
  }
});

test('a statement text cannot take a spliced value', () => {
  const spliced = 'x';
  // @ts-expect-error: `${…}` in a statement is a type error, so values can only be $n parameters
  expect(() => statement`SELECT ${spliced}`).toThrow(/constant/);
});

test('a statement waiting on a lock is bounded (transactionOptions.timeout), and the connection is usable after', async () => {
  await owner.query('BEGIN');
  try {
    await owner.query('SELECT id FROM devices WHERE id = $1 FOR UPDATE', [device]);
    const started = Date.now();
    await expect(db.scoped(member, (sql) => sql.rows(LOCK, [device]))).rejects.toThrow(/statement timeout/);
    expect(Date.now() - started).toBeLessThan(5_000);
  } finally {
    await owner.query('ROLLBACK');
  }
  expect(await db.scoped(member, (sql) => sql.rows(LOCK, [device]))).toEqual([{ id: device }]);
});
