import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createDatabase, statement, type Database, type DatabaseScope } from '../../lib/database';
import { NotFound } from '../../lib/errors';
import { announceOutbox, storeLocations, type NewLocation } from '../../lib/locationStore';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase';

/**
 * Ingest's statements on real PostgreSQL as `fleet_app`: a batch is a handful of statements
 * whatever its size, concurrent batches over the same devices neither deadlock nor break a
 * device's sequence, and row-level security still refuses another tenant's devices through them,
 * with nothing written.
 */
let database: TestDatabase;
let db: Database;
let owner: pg.Client;
const statements: string[] = [];
const A = { tenant: randomUUID(), devices: Array.from({ length: 5 }, () => randomUUID()) };
const B = { tenant: randomUUID(), devices: [randomUUID()] };
const memberA: DatabaseScope = { kind: 'member', tenantId: A.tenant, userId: 'store-member-a' };

beforeAll(async () => {
  database = await createTestDatabase();
  owner = new pg.Client({ connectionString: database.ownerUrl });
  await owner.connect();
  for (const side of [A, B]) {
    await owner.query('INSERT INTO tenants (id, name) VALUES ($1, $2)', [side.tenant, `store ${side.tenant}`]);
    await owner.query("INSERT INTO devices (id, tenant_id, name) SELECT d, $2, 'device' FROM unnest($1::uuid[]) AS d", [side.devices, side.tenant]);
  }
  db = createDatabase({ url: database.appUrl, poolSize: 10, observer: { statement: (text) => void statements.push(text) } });
});

afterAll(async () => {
  await db?.close();
  await owner?.end();
  await database?.drop();
});

function location(deviceId: string, latitude = 10): NewLocation {
  return { deviceId, latitude, longitude: 20, accuracy: 3.5, speed: null, heading: 90, altitude: -1.25, recordedAt: new Date() };
}

/** What PostgreSQL holds, read as the owner: counters, each device's sequences, outbox order. */
async function stored(deviceIds: readonly string[]) {
  const counters = await owner.query<{ id: string; last_seq: string }>('SELECT id, last_seq FROM devices WHERE id = ANY($1::uuid[])', [deviceIds]);
  const locations = await owner.query<{ device_id: string; seq: string }>('SELECT device_id, seq FROM locations WHERE device_id = ANY($1::uuid[]) ORDER BY device_id, seq', [deviceIds]);
  const outbox = await owner.query<{ device_id: string; seq: number }>("SELECT device_id, (payload->>'seq')::int AS seq FROM location_outbox WHERE device_id = ANY($1::uuid[]) ORDER BY id", [deviceIds]);
  return { counters: new Map(counters.rows.map((r) => [r.id, Number(r.last_seq)])), locations: locations.rows, outbox: outbox.rows };
}

test('a batch of 100 over 5 devices is two statements (lock, write) plus the announcement, and stores what it returns', async () => {
  const inputs = Array.from({ length: 100 }, (_, i) => location(A.devices[i % 5]!, i / 10));
  statements.length = 0;
  const records = await db.scoped(memberA, async (sql) => {
    const written = await storeLocations(sql, inputs, new Date());
    await announceOutbox(sql);
    return written;
  });
  expect(statements).toHaveLength(3);
  expect(records.map((r) => r.seq)).toEqual(inputs.map((_, i) => Math.floor(i / 5) + 1));
  const rows = await owner.query('SELECT id, tenant_id, device_id, seq, latitude, longitude, accuracy, speed, heading, altitude FROM locations WHERE id = ANY($1::uuid[])', [records.map((r) => r.id)]);
  const byId = new Map(rows.rows.map((row) => [row.id, row]));
  for (const [i, record] of records.entries()) {
    expect(byId.get(record.id)).toEqual({ id: record.id, tenant_id: A.tenant, device_id: inputs[i]!.deviceId, seq: String(record.seq), latitude: i / 10, longitude: 20, accuracy: 3.5, speed: null, heading: 90, altitude: -1.25 });
  }
  const outbox = await owner.query<{ payload: Record<string, unknown> }>('SELECT payload FROM location_outbox WHERE location_id = $1', [records[7]!.id]);
  expect(outbox.rows[0]?.payload).toMatchObject({ id: records[7]!.id, tenantId: A.tenant, deviceId: inputs[7]!.deviceId, seq: records[7]!.seq, latitude: 0.7 });
});

test('concurrent batches naming the same devices in different orders neither deadlock nor break any sequence', async () => {
  const before = await stored(A.devices);
  const writers = 8;
  const rounds = 6;
  // Each batch names the devices in its own order (a rotation), so their first-use orders differ.
  const batch = (writer: number, round: number) => Array.from({ length: 25 }, (_, i) => location(A.devices[(i + writer + round) % 5]!, writer));
  const results = await Promise.all(
    Array.from({ length: writers }, async (_, writer) => {
      const returned: Array<{ deviceId: string; seq: number }> = [];
      for (let round = 0; round < rounds; round++) {
        const records = await db.scoped(memberA, (sql) => storeLocations(sql, batch(writer, round), new Date()));
        returned.push(...records.map((r) => ({ deviceId: r.deviceId, seq: Number(r.seq) })));
      }
      return returned;
    }),
  );
  const after = await stored(A.devices);
  for (const device of A.devices) {
    const from = before.counters.get(device)!;
    const added = writers * rounds * 5;
    expect(after.counters.get(device)).toBe(from + added);
    // Exactly from+1 .. from+added, each once: no gap, no sequence handed out twice.
    const seqs = after.locations.filter((l) => l.device_id === device).map((l) => Number(l.seq));
    expect(seqs).toEqual(Array.from({ length: from + added }, (_, i) => i + 1));
    // The relay publishes by outbox id: each device's rows are in sequence order there.
    const published = after.outbox.filter((o) => o.device_id === device).map((o) => o.seq);
    expect(published).toEqual([...published].sort((x, y) => x - y));
    // Within each batch, a device's sequences follow the order of the inputs.
    for (const returned of results) {
      const mine = returned.filter((r) => r.deviceId === device).map((r) => r.seq);
      expect(mine).toEqual([...mine].sort((x, y) => x - y));
    }
  }
});

test("another tenant's device is NOT_FOUND exactly like an unknown one, and nothing of the batch is written", async () => {
  const before = await stored([...A.devices, ...B.devices]);
  const refuse = async (scope: DatabaseScope, inputs: NewLocation[]) => {
    const error = await db.scoped(scope, (sql) => storeLocations(sql, inputs, new Date())).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFound);
    return (error as NotFound).extensions;
  };
  const intoB = await refuse(memberA, [location(A.devices[0]!), location(A.devices[1]!), location(B.devices[0]!), location(A.devices[2]!)]);
  const unknown = await refuse(memberA, [location(A.devices[0]!), location(A.devices[1]!), location(randomUUID()), location(A.devices[2]!)]);
  expect(intoB).toEqual({ code: 'NOT_FOUND', field: 'deviceId', index: 2 });
  expect(unknown).toEqual(intoB);
  // Not a uuid names nothing either; a tenant-less user sees no device at all.
  expect(await refuse(memberA, [location(A.devices[0]!), location('not-a-uuid')])).toEqual({ code: 'NOT_FOUND', field: 'deviceId', index: 1 });
  expect(await refuse({ kind: 'user', userId: 'store-loner' }, [location(A.devices[0]!)])).toEqual({ code: 'NOT_FOUND', field: 'deviceId', index: 0 });
  expect(await stored([...A.devices, ...B.devices])).toEqual(before);
});

test('a batch that fails half-way (an id already taken) writes nothing: counters, locations and outbox as before', async () => {
  const [taken] = await db.scoped(memberA, (sql) => storeLocations(sql, [location(A.devices[3]!)], new Date()));
  const before = await stored(A.devices);
  const inputs = [location(A.devices[3]!), location(A.devices[4]!), { ...location(A.devices[4]!), id: taken!.id }];
  await expect(db.scoped(memberA, (sql) => storeLocations(sql, inputs, new Date()))).rejects.toThrow(/duplicate key/);
  expect(await stored(A.devices)).toEqual(before);
});

/** What storeLocations' statements do, aimed at tenant B directly (storeLocations itself never gets there: its lock finds no B device). */
const PLANT_LOCATION = statement`
  INSERT INTO locations (id, tenant_id, device_id, seq, latitude, longitude, recorded_at, received_at)
  SELECT $1, $2, $3, 1, 0, 0, now(), now()`;
const PLANT_OUTBOX = statement`INSERT INTO location_outbox (location_id, tenant_id, device_id, payload) VALUES ($1, $2, $3, '{}')`;
const BUMP_COUNTER = statement`UPDATE devices SET last_seq = last_seq + 1 WHERE id = $1`;
const LOCK_DEVICE = statement`SELECT id FROM devices WHERE id = $1 FOR NO KEY UPDATE`;

test("in a member's scope the ingest statements cannot touch another tenant: RLS checks every row", async () => {
  const before = await stored(B.devices);
  const plant = [randomUUID(), B.tenant, B.devices[0]];
  await expect(db.scoped(memberA, (sql) => sql.run(PLANT_LOCATION, plant))).rejects.toThrow(/row-level security/);
  await expect(db.scoped(memberA, (sql) => sql.run(PLANT_OUTBOX, plant))).rejects.toThrow(/row-level security/);
  expect(await db.scoped(memberA, (sql) => sql.run(BUMP_COUNTER, [B.devices[0]]))).toBe(0);
  expect(await db.scoped(memberA, (sql) => sql.rows(LOCK_DEVICE, [B.devices[0]]))).toEqual([]);
  expect(await stored(B.devices)).toEqual(before);
});
