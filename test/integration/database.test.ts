import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { createDatabase, type Database, type DatabaseScope, type Tx } from '../../lib/database';
import { MIGRATIONS_DIR, migrate } from '../../tools/migrate';

/**
 * Row-level security against a real PostgreSQL: a fresh database per run, migrated as the owner
 * (postgres), then used as `fleet_app` through `createDatabase`, exactly as the subgraphs use it.
 */

const SERVER = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const DB_NAME = `fleet_test_${randomBytes(6).toString('hex')}`;

function urlFor(database: string, user?: { name: string; password: string }): string {
  const url = new URL(SERVER);
  url.pathname = `/${database}`;
  if (user) {
    url.username = user.name;
    url.password = user.password;
  }
  return url.toString();
}

const ownerUrl = urlFor(DB_NAME);
const appUrl = urlFor(DB_NAME, { name: 'fleet_app', password: 'fleet_app' });

const A = { tenant: randomUUID(), device: randomUUID(), member: 'user-a', location: randomUUID() };
const B = { tenant: randomUUID(), device: randomUUID(), member: 'user-b', location: randomUUID() };
const memberA: DatabaseScope = { kind: 'member', tenantId: A.tenant, userId: A.member };

let db: Database;
let owner: Client;

function location(t: typeof A, seq: number, overrides: Record<string, unknown> = {}) {
  return { id: randomUUID(), tenantId: t.tenant, deviceId: t.device, seq: BigInt(seq), latitude: 52.5, longitude: 13.4, recordedAt: new Date(), receivedAt: new Date(), ...overrides };
}

beforeAll(async () => {
  await migrate({ databaseUrl: ownerUrl, appDatabaseUrl: appUrl, createDatabase: true });
  owner = new Client({ connectionString: ownerUrl });
  await owner.connect();
  db = createDatabase({ url: appUrl, poolSize: 4 });
  // Seeded through the application's own path: 'system' scope as fleet_app.
  await db.inScope({ kind: 'system' }, async (tx) => {
    await tx.user.createMany({ data: [{ id: A.member, email: 'a@example.com' }, { id: B.member, email: 'b@example.com' }, { id: 'admin', email: 'admin@example.com', role: 'ADMIN' }, { id: 'loner', email: 'loner@example.com' }] });
    for (const t of [A, B]) {
      await tx.tenant.create({ data: { id: t.tenant, name: `tenant ${t.tenant}` } });
      await tx.tenantMember.create({ data: { userId: t.member, tenantId: t.tenant } });
      await tx.device.create({ data: { id: t.device, tenantId: t.tenant, name: 'truck' } });
      await tx.location.create({ data: location(t, 1, { id: t.location }) });
      await tx.locationOutbox.create({ data: { locationId: t.location, tenantId: t.tenant, deviceId: t.device, payload: { seq: 1 } } });
    }
  });
});

afterAll(async () => {
  await db?.close();
  await owner?.end();
  const server = new Client({ connectionString: SERVER });
  await server.connect();
  await server.query(`DROP DATABASE IF EXISTS "${DB_NAME}" WITH (FORCE)`);
  await server.end();
});

test('migrations are recorded as Prisma records them, and a second run applies nothing', async () => {
  const { rows } = await owner.query('SELECT migration_name, checksum, finished_at, rolled_back_at, applied_steps_count FROM _prisma_migrations ORDER BY migration_name');
  expect(rows.length).toBeGreaterThan(0);
  for (const row of rows) {
    const sql = readFileSync(path.join(MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
    expect(row.checksum).toBe(createHash('sha256').update(sql).digest('hex'));
    expect(row.finished_at).toBeInstanceOf(Date);
    expect(row.rolled_back_at).toBeNull();
    expect(row.applied_steps_count).toBe(1);
  }
  await expect(migrate({ databaseUrl: ownerUrl })).resolves.toEqual({ applied: [] });
});

test('fleet_app is neither superuser nor owner and cannot bypass RLS; every table forces RLS', async () => {
  const [me] = await db.client.$queryRaw<{ user: string }[]>`SELECT current_user AS "user"`;
  expect(me?.user).toBe('fleet_app');
  const role = await owner.query("SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'fleet_app'");
  expect(role.rows).toEqual([{ rolsuper: false, rolbypassrls: false, rolcreaterole: false, rolcreatedb: false }]);
  const tables = await owner.query(
    "SELECT c.relname, pg_get_userbyid(c.relowner) AS owner, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname <> '_prisma_migrations' ORDER BY 1",
  );
  expect(tables.rows.map((r) => r.relname)).toEqual(['devices', 'location_outbox', 'locations', 'tenant_members', 'tenants', 'users']);
  for (const t of tables.rows) expect(t).toMatchObject({ owner: 'postgres', relrowsecurity: true, relforcerowsecurity: true });
  // No grant on the bookkeeping table.
  await expect(db.client.$queryRaw`SELECT * FROM _prisma_migrations`).rejects.toThrow(/permission denied/);
});

test("a member's unscoped reads return only their tenant's rows", async () => {
  const seen = await db.inScope(memberA, async (tx) => ({
    tenants: await tx.tenant.findMany(),
    members: await tx.tenantMember.findMany(),
    devices: await tx.device.findMany(),
    locations: await tx.location.findMany(),
    outbox: await tx.locationOutbox.findMany(),
    users: await tx.user.findMany({ orderBy: { id: 'asc' } }),
    raw: await tx.$queryRaw<{ id: string; tenant_id: string }[]>`SELECT * FROM locations`,
  }));
  expect(seen.tenants.map((t) => t.id)).toEqual([A.tenant]);
  expect(seen.members.map((m) => m.userId)).toEqual([A.member]);
  expect(seen.devices.map((d) => d.id)).toEqual([A.device]);
  expect(seen.locations.map((l) => l.id)).toEqual([A.location]);
  expect(seen.outbox.map((o) => o.tenantId)).toEqual([A.tenant]);
  expect(seen.users.map((u) => u.id)).toEqual([A.member]);
  expect(seen.raw.map((r) => [r.id, r.tenant_id])).toEqual([[A.location, A.tenant]]);
});

test("a member cannot write into another tenant or touch its rows", async () => {
  const inA = <T>(work: (tx: Tx) => Promise<T>) => db.inScope(memberA, work);
  await expect(inA((tx) => tx.device.create({ data: { tenantId: B.tenant, name: 'intruder' } }))).rejects.toThrow(/row-level security/);
  await expect(inA((tx) => tx.location.create({ data: location(B, 99) }))).rejects.toThrow(/row-level security/);
  await expect(inA((tx) => tx.tenantMember.create({ data: { userId: 'loner', tenantId: B.tenant } }))).rejects.toThrow(/row-level security/);
  // Only the platform writes users: the member's own row is invisible to UPDATE ("not found").
  await expect(inA((tx) => tx.user.update({ where: { id: A.member }, data: { role: 'ADMIN' } }))).rejects.toThrow();
  // The one column a member may update (its devices' counters) is out of reach on another tenant's device.
  expect(await inA((tx) => tx.device.updateMany({ where: { id: B.device }, data: { lastSeq: { increment: 1 } } }))).toEqual({ count: 0 });
  expect(await inA((tx) => tx.device.deleteMany({ where: { tenantId: B.tenant } }))).toEqual({ count: 0 });
  // A device's tenant and name cannot be updated at all (column grant), so no device moves tenant.
  await expect(inA((tx) => tx.device.update({ where: { id: A.device }, data: { tenantId: B.tenant } }))).rejects.toThrow(/permission denied for table devices/);
  await expect(inA((tx) => tx.device.updateMany({ where: { id: B.device }, data: { name: 'renamed' } }))).rejects.toThrow(/permission denied for table devices/);
  const { rows } = await owner.query('SELECT tenant_id, name, last_seq FROM devices WHERE id = $1', [B.device]);
  expect(rows).toEqual([{ tenant_id: B.tenant, name: 'truck', last_seq: '0' }]);
});

test('with no scope every table reads as empty, and no scope outlives its transaction', async () => {
  const c = db.client;
  const counts = await Promise.all([c.user.count(), c.tenant.count(), c.tenantMember.count(), c.device.count(), c.location.count(), c.locationOutbox.count()]);
  expect(counts).toEqual([0, 0, 0, 0, 0, 0]);
  await expect(c.device.create({ data: { tenantId: A.tenant, name: 'x' } })).rejects.toThrow(/row-level security/);

  const single = createDatabase({ url: appUrl, poolSize: 1 }); // one connection: the next query reuses it
  try {
    expect(await single.inScope({ kind: 'system' }, (tx) => tx.device.count())).toBe(2);
    await expect(single.inScope(memberA, async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    const [settings] = await single.client.$queryRaw<{ scope: string | null; tenant: string | null }[]>`SELECT current_setting('app.scope', true) AS scope, current_setting('app.tenant_id', true) AS tenant`;
    expect([settings?.scope ?? '', settings?.tenant ?? '']).toEqual(['', '']);
    expect(await single.client.device.count()).toBe(0);
  } finally {
    await single.close();
  }
});

test('user, admin and system scopes', async () => {
  const asUser = await db.inScope({ kind: 'user', userId: A.member }, async (tx) => ({
    users: await tx.user.findMany(),
    membership: await tx.tenantMember.findUnique({ where: { userId: A.member } }),
    tenants: await tx.tenant.count(),
    devices: await tx.device.count(),
  }));
  expect(asUser.users.map((u) => u.id)).toEqual([A.member]);
  expect(asUser.membership?.tenantId).toBe(A.tenant);
  expect([asUser.tenants, asUser.devices]).toEqual([0, 0]);
  expect(await db.inScope({ kind: 'admin', userId: 'admin' }, (tx) => tx.tenant.count())).toBe(2);
  expect(await db.inScope({ kind: 'system' }, (tx) => tx.location.count())).toBe(2);
  await expect(db.inScope({ kind: 'member', tenantId: 'not-a-uuid', userId: 'x' }, async () => 1)).rejects.toThrow(/uuid/);
});

test('the device counter is a BigInt raised atomically', async () => {
  const lastSeq = await db.inScope(memberA, async (tx) => {
    await tx.device.update({ where: { id: A.device }, data: { lastSeq: { increment: 3 } } });
    return (await tx.device.findUniqueOrThrow({ where: { id: A.device }, select: { lastSeq: true } })).lastSeq;
  });
  expect(lastSeq).toBe(3n);
});

test('the composite foreign key and the CHECK constraints hold even for the platform', async () => {
  const system = <T>(work: (tx: Tx) => Promise<T>) => db.inScope({ kind: 'system' }, work);
  // Location of tenant B on tenant A's device.
  await expect(system((tx) => tx.location.create({ data: location(A, 50, { tenantId: B.tenant }) }))).rejects.toThrow(/foreign key/i);
  await expect(system((tx) => tx.location.create({ data: location(A, 51, { latitude: 91 }) }))).rejects.toThrow(/latitude_check/);
  await expect(system((tx) => tx.location.create({ data: location(A, 52, { heading: 361 }) }))).rejects.toThrow(/heading_check/);
  await expect(system((tx) => tx.user.create({ data: { id: 'upper', email: 'Upper@Example.com' } }))).rejects.toThrow(/email_lower_check/);
});

/**
 * Role, not only tenant: statements a member's resolvers never make, run as fleet_app in that
 * member's own tenant, where tenant isolation alone lets them through. An UPDATE or DELETE whose
 * rows the policy hides matches nothing (PostgreSQL reports 0 rows, not an error); an INSERT that
 * fails its WITH CHECK, a column without a grant and the counter's trigger raise.
 */
describe('the database enforces what a role may write', () => {
  const user: DatabaseScope = { kind: 'user', userId: 'loner' };
  const run = (scope: DatabaseScope, work: (tx: Tx) => Promise<number>) => db.inScope(scope, work);
  const snapshot = async () => {
    const { rows } = await owner.query(
      `SELECT (SELECT row_to_json(t) FROM tenants t WHERE id = $1) AS tenant,
              (SELECT json_agg(m ORDER BY user_id) FROM tenant_members m WHERE tenant_id = $1) AS members,
              (SELECT json_agg(d ORDER BY id) FROM devices d WHERE tenant_id = $1) AS devices,
              (SELECT count(*)::int FROM locations WHERE tenant_id = $1) AS locations,
              (SELECT count(*)::int FROM location_outbox WHERE tenant_id = $1) AS outbox,
              (SELECT json_agg(u ORDER BY id) FROM users u) AS users`,
      [A.tenant],
    );
    return rows[0];
  };

  // Hidden from the command's policy: the statement matches no row.
  test.each<[string, DatabaseScope, (tx: Tx) => Promise<number>]>([
    ['rename its tenant', memberA, (tx) => tx.$executeRaw`UPDATE tenants SET name = 'taken over' WHERE id = ${A.tenant}::uuid`],
    ['delete its tenant (cascading to devices and locations)', memberA, (tx) => tx.$executeRaw`DELETE FROM tenants WHERE id = ${A.tenant}::uuid`],
    ['move a membership', memberA, (tx) => tx.$executeRaw`UPDATE tenant_members SET created_at = now() WHERE user_id = ${A.member}`],
    ['remove a member', memberA, (tx) => tx.$executeRaw`DELETE FROM tenant_members WHERE tenant_id = ${A.tenant}::uuid`],
    ['delete a device', memberA, (tx) => tx.$executeRaw`DELETE FROM devices WHERE id = ${A.device}::uuid`],
    ['make itself ADMIN', memberA, (tx) => tx.$executeRaw`UPDATE users SET role = 'ADMIN' WHERE id = ${A.member}`],
    ['drop outbox rows before they are published', memberA, (tx) => tx.$executeRaw`DELETE FROM location_outbox WHERE tenant_id = ${A.tenant}::uuid`],
    ['(no tenant) change its own user row', user, (tx) => tx.$executeRaw`UPDATE users SET email = 'x@example.com' WHERE id = 'loner'`],
    ['(no tenant) advance a device counter', user, (tx) => tx.$executeRaw`UPDATE devices SET last_seq = last_seq + 1`],
  ])('refused, matching no row: %s', async (_what, scope, statement) => {
    const before = await snapshot();
    expect(await run(scope, statement)).toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  // Refused with an error: a WITH CHECK, a missing column grant, or the counter's trigger.
  test.each<[string, DatabaseScope, (tx: Tx) => Promise<number>, RegExp]>([
    ['create a tenant', memberA, (tx) => tx.$executeRaw`INSERT INTO tenants (id, name) VALUES (${randomUUID()}::uuid, 'mine')`, /row-level security/],
    ['add a member to its own tenant', memberA, (tx) => tx.$executeRaw`INSERT INTO tenant_members (user_id, tenant_id) VALUES ('loner', ${A.tenant}::uuid)`, /row-level security/],
    ['rename a device', memberA, (tx) => tx.$executeRaw`UPDATE devices SET name = 'renamed' WHERE id = ${A.device}::uuid`, /permission denied for table devices/],
    ["move a device to another tenant", memberA, (tx) => tx.$executeRaw`UPDATE devices SET tenant_id = ${B.tenant}::uuid WHERE id = ${A.device}::uuid`, /permission denied for table devices/],
    ['wind a device counter back', memberA, (tx) => tx.$executeRaw`UPDATE devices SET last_seq = last_seq - 1 WHERE id = ${A.device}::uuid`, /last_seq may only grow/],
    ['register a device with a running counter', memberA, (tx) => tx.$executeRaw`INSERT INTO devices (id, tenant_id, name, last_seq) VALUES (${randomUUID()}::uuid, ${A.tenant}::uuid, 'x', 5)`, /row-level security/],
    ['create a user', memberA, (tx) => tx.$executeRaw`INSERT INTO users (id, email) VALUES ('mallory', 'mallory@example.com')`, /row-level security/],
    ['rewrite a location', memberA, (tx) => tx.$executeRaw`UPDATE locations SET latitude = 0 WHERE tenant_id = ${A.tenant}::uuid`, /permission denied for table locations/],
    ['rewrite an outbox row', memberA, (tx) => tx.$executeRaw`UPDATE location_outbox SET payload = '{}' WHERE tenant_id = ${A.tenant}::uuid`, /permission denied for table location_outbox/],
    ['(no tenant) join a tenant', user, (tx) => tx.$executeRaw`INSERT INTO tenant_members (user_id, tenant_id) VALUES ('loner', ${A.tenant}::uuid)`, /row-level security/],
    ['(no tenant) register a device', user, (tx) => tx.$executeRaw`INSERT INTO devices (id, tenant_id, name) VALUES (${randomUUID()}::uuid, ${A.tenant}::uuid, 'x')`, /row-level security/],
    ['(no tenant) record a location', user, (tx) => tx.$executeRaw`INSERT INTO locations (id, tenant_id, device_id, seq, latitude, longitude, recorded_at, received_at) VALUES (${randomUUID()}::uuid, ${A.tenant}::uuid, ${A.device}::uuid, 1000, 0, 0, now(), now())`, /row-level security/],
  ])('refused with an error: %s', async (_what, scope, statement, error) => {
    const before = await snapshot();
    await expect(run(scope, statement)).rejects.toThrow(error);
    expect(await snapshot()).toEqual(before);
  });

  test("a member still writes what its resolvers write: a device, its counter, locations and outbox rows", async () => {
    const device = randomUUID();
    const location = randomUUID();
    const written = await run(memberA, async (tx) => {
      let rows = await tx.$executeRaw`INSERT INTO devices (id, tenant_id, name) VALUES (${device}::uuid, ${A.tenant}::uuid, 'new truck')`;
      rows += await tx.$executeRaw`UPDATE devices SET last_seq = last_seq + 1 WHERE id = ${device}::uuid`;
      rows += await tx.$executeRaw`INSERT INTO locations (id, tenant_id, device_id, seq, latitude, longitude, recorded_at, received_at) VALUES (${location}::uuid, ${A.tenant}::uuid, ${device}::uuid, 1, 1, 2, now(), now())`;
      rows += await tx.$executeRaw`INSERT INTO location_outbox (location_id, tenant_id, device_id, payload) VALUES (${location}::uuid, ${A.tenant}::uuid, ${device}::uuid, '{}')`;
      return rows;
    });
    expect(written).toBe(4);
    const { rows } = await owner.query('SELECT last_seq FROM devices WHERE id = $1', [device]);
    expect(rows).toEqual([{ last_seq: '1' }]);
  });

  test('admin and system keep what the subgraphs and the relay do', async () => {
    const tenant = randomUUID();
    await db.inScope({ kind: 'admin', userId: 'admin' }, async (tx) => {
      await tx.tenant.create({ data: { id: tenant, name: `tenant ${tenant}` } });
      await tx.tenantMember.upsert({ where: { userId: 'loner' }, create: { userId: 'loner', tenantId: tenant }, update: { tenantId: tenant } });
    });
    await db.inScope({ kind: 'system' }, async (tx) => {
      await tx.user.upsert({ where: { id: 'loner' }, create: { id: 'loner', email: 'loner@example.com' }, update: { email: 'loner@example.com' } });
      expect((await tx.locationOutbox.deleteMany({ where: { tenantId: B.tenant } })).count).toBe(1);
    });
    const { rows } = await owner.query('SELECT tenant_id FROM tenant_members WHERE user_id = $1', ['loner']);
    expect(rows).toEqual([{ tenant_id: tenant }]);
    // Back where the other tests expect the seeds.
    await db.inScope({ kind: 'admin', userId: 'admin' }, (tx) => tx.tenantMember.delete({ where: { userId: 'loner' } }));
  });
});
