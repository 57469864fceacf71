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
  expect(await inA((tx) => tx.device.updateMany({ where: { id: B.device }, data: { name: 'renamed' } }))).toEqual({ count: 0 });
  expect(await inA((tx) => tx.device.deleteMany({ where: { tenantId: B.tenant } }))).toEqual({ count: 0 });
  // Moving one's own device into another tenant fails the WITH CHECK.
  await expect(inA((tx) => tx.device.update({ where: { id: A.device }, data: { tenantId: B.tenant } }))).rejects.toThrow(/row-level security/);
  const { rows } = await owner.query('SELECT tenant_id, name FROM devices WHERE id = $1', [B.device]);
  expect(rows).toEqual([{ tenant_id: B.tenant, name: 'truck' }]);
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
