import { randomUUID } from 'node:crypto';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import pg from 'pg';
import { CallerDirectory, type TokenVerifier } from '../../gateway/identity';
import { createDatabase, type Database, type DatabaseScope } from '../../lib/database';
import { announceOutbox, storeLocations, type NewLocation } from '../../lib/locationStore';
import { listDevicesById } from '../../subgraphs/location/devices';
import { lastLocations } from '../../subgraphs/location/locations';
import { tenantLoadersFor } from '../../subgraphs/tenant/tenants';
import { OutboxRelay } from '../../subgraphs/location/outboxRelay';
import { createLogger } from '../../lib/logger';
import { startKafkaMock } from '../../tools/kafka-mock';
import { createTestDatabase } from '../../test/support/testDatabase';
import { pidCpu } from '../processes';
import { fmt } from '../stats';
import * as before from './prismaPaths';

/**
 * `npx tsx bench/dataAccess/run.ts`: the data access of issue 11 before (Prisma interactive
 * transactions, ingest per device) and after (`db.scoped` on plain pg), in one process, one run,
 * on one pool of a database of its own (dropped at the end). Rounds alternate between the two so
 * the machine's drift hits both alike. For each case: operations/s, CPU ms per operation of this
 * process and of its PostgreSQL backends, and database round trips per operation (every
 * `pg` query call counted, Prisma's included). Bounded: fixed operation counts, nothing left running.
 */

const READ_OPS = Number(process.env.DATA_BENCH_READS ?? 3000);
const ROUNDS = Number(process.env.DATA_BENCH_ROUNDS ?? 3);
const IN_FLIGHT = 16;

let roundTrips = 0;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function counted(this: pg.Client, ...args: unknown[]) {
  roundTrips += 1;
  return (query as (...a: unknown[]) => unknown).apply(this, args);
} as typeof query;

interface Measure {
  ops: number;
  wallMs: number;
  nodeMs: number;
  postgresMs: number;
  roundTrips: number;
}

async function backends(owner: pg.Client, database: string): Promise<number[]> {
  const { rows } = await owner.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);
  return rows.map((row) => row.pid);
}

/** Runs `op` `total` times, `inFlight` at a time, and measures it. */
async function measure(owner: pg.Client, database: string, total: number, inFlight: number, op: (i: number) => Promise<unknown>): Promise<Measure> {
  const pgBefore = pidCpu(await backends(owner, database));
  const tripsBefore = roundTrips;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < total) await op(next++);
    }),
  );
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const trips = roundTrips - tripsBefore;
  let postgresMs = 0;
  for (const [pid, ms] of pidCpu(await backends(owner, database))) postgresMs += ms - (pgBefore.get(pid) ?? 0);
  return { ops: total, wallMs, nodeMs: (cpu.user + cpu.system) / 1000, postgresMs, roundTrips: trips };
}

function add(a: Measure | undefined, b: Measure): Measure {
  if (!a) return b;
  return { ops: a.ops + b.ops, wallMs: a.wallMs + b.wallMs, nodeMs: a.nodeMs + b.nodeMs, postgresMs: a.postgresMs + b.postgresMs, roundTrips: a.roundTrips + b.roundTrips };
}

interface Case {
  name: string;
  /** What one operation is, plural, for the table. */
  units: string;
  ops: number;
  inFlight: number;
  before(i: number): Promise<unknown>;
  after(i: number): Promise<unknown>;
}

async function main() {
  const database = await createTestDatabase();
  const name = new URL(database.ownerUrl).pathname.slice(1);
  const owner = new pg.Client({ connectionString: database.ownerUrl });
  await owner.connect();
  const db: Database = createDatabase({ url: database.appUrl });
  const patient: Database = createDatabase({ url: database.appUrl, transactionOptions: { maxWait: 60_000, timeout: 60_000 } });
  try {
    const fixtures = await seed(owner);
    const verifier = { verify: async (token: string) => ({ sub: token, email: `${token}@fleet.bench`, exp: 0 }) } as unknown as TokenVerifier;
    // Lifetime 0: every lookup reads (the cache is the lead's part of issue 11, not this benchmark's).
    const directory = new CallerDirectory(verifier, db, { cacheTtlMs: 0 });
    const admin: DatabaseScope = { kind: 'admin', userId: 'bench-admin' };
    const adminCaller = { userId: 'bench-admin', email: 'admin@fleet.bench', role: 'ADMIN' as const, tenantId: null };
    const member = (i: number) => fixtures.members[i % fixtures.members.length] as (typeof fixtures.members)[number];
    const memberScope = (i: number): DatabaseScope => ({ kind: 'member', tenantId: member(i).tenantId, userId: member(i).userId });
    const references = Array.from({ length: 500 }, (_, i) => fixtures.tenants[i % fixtures.tenants.length] as string);
    const writer = (i: number) => fixtures.writers[i % fixtures.writers.length] as (typeof fixtures.writers)[number];
    const batch = (i: number): NewLocation[] =>
      Array.from({ length: 100 }, (_, k) => ({
        deviceId: writer(i).devices[k % writer(i).devices.length] as string,
        latitude: 52 + k / 1000,
        longitude: 13 + i / 100_000,
        accuracy: 5,
        speed: null,
        heading: null,
        altitude: null,
        recordedAt: new Date(),
      }));
    const writerScope = (i: number): DatabaseScope => ({ kind: 'member', tenantId: writer(i).tenantId, userId: 'bench-writer' });

    const cases: Case[] = [
      {
        // In-flight lookups of one user share a read, as in the gateway: round trips per lookup can be below 3.
        name: "caller lookup (the gateway's role + tenant of a user)",
        units: 'lookups',
        ops: READ_OPS,
        inFlight: IN_FLIGHT,
        before: (i) => before.callerRecord(db, member(i).userId),
        after: (i) => directory.callerFor(member(i).userId),
      },
      {
        name: 'devices by id (a DataLoader batch of 7)',
        units: 'reads',
        ops: READ_OPS,
        inFlight: IN_FLIGHT,
        before: (i) => before.devicesById(db, memberScope(i), member(i).devices),
        after: (i) => db.scoped(memberScope(i), (sql) => listDevicesById(sql, member(i).devices)),
      },
      {
        name: 'last locations of 7 devices',
        units: 'reads',
        ops: READ_OPS,
        inFlight: IN_FLIGHT,
        before: (i) => before.lastLocations(db, memberScope(i), member(i).devices),
        after: (i) => db.scoped(memberScope(i), (sql) => lastLocations(sql, member(i).devices)),
      },
      {
        name: '500 Tenant references in one `_entities` request (ADMIN)',
        units: 'requests',
        ops: Math.max(10, Math.round(READ_OPS / 200)),
        inFlight: 1,
        before: () => before.tenantReferences(patient, admin, references),
        after: () => {
          const loaders = tenantLoadersFor(adminCaller, patient);
          return Promise.all(references.map((id) => loaders.tenant.load(id)));
        },
      },
      {
        name: 'recordLocations batch of 100 over 10 devices, 4 writers',
        units: 'batches',
        ops: Math.max(40, Math.round(READ_OPS / 15)),
        inFlight: 4,
        before: (i) => before.recordBatch(db, writerScope(i), batch(i), new Date()),
        after: (i) =>
          db.scoped(writerScope(i), async (sql) => {
            await storeLocations(sql, batch(i), new Date());
            await announceOutbox(sql);
          }),
      },
    ];

    const lines = [
      `Data access before/after, ${ROUNDS} alternating rounds each (${new Date().toISOString()}, load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' / ')})`,
      '',
      '| case | path | ops/s | node CPU ms/op | PostgreSQL CPU ms/op | round trips/op |',
      '| --- | --- | --- | --- | --- | --- |',
    ];
    // DATA_BENCH_ONLY=relay (or a case's first word) runs part of it, e.g. under --cpu-prof.
    const only = process.env.DATA_BENCH_ONLY;
    for (const benchCase of cases.filter((c) => !only || c.name.startsWith(only))) {
      // Warm-up: prepared statements, Prisma's query cache, V8.
      await measure(owner, name, Math.ceil(benchCase.ops / 10), benchCase.inFlight, benchCase.before);
      await measure(owner, name, Math.ceil(benchCase.ops / 10), benchCase.inFlight, benchCase.after);
      let was: Measure | undefined;
      let now: Measure | undefined;
      for (let round = 0; round < ROUNDS; round++) {
        was = add(was, await measure(owner, name, benchCase.ops, benchCase.inFlight, benchCase.before));
        now = add(now, await measure(owner, name, benchCase.ops, benchCase.inFlight, benchCase.after));
      }
      for (const [path, m] of [['Prisma (before)', was], ['scoped pg (after)', now]] as const) {
        const result = m as Measure;
        lines.push(
          `| ${benchCase.name} | ${path} | ${fmt((result.ops / result.wallMs) * 1000, 0)} ${benchCase.units} | ${fmt(result.nodeMs / result.ops, 3)} | ${fmt(result.postgresMs / result.ops, 3)} | ${fmt(result.roundTrips / result.ops, 1)} |`,
        );
      }
      const a = was as Measure;
      const b = now as Measure;
      lines.push(
        `| | after / before | ${fmt(b.ops / b.wallMs / (a.ops / a.wallMs))}x | ${fmt(b.nodeMs / a.nodeMs)}x | ${fmt(b.postgresMs / a.postgresMs)}x | ${fmt(b.roundTrips / a.roundTrips)}x |`,
      );
      console.log(lines.slice(-3).join('\n'));
    }
    lines.push('', '| outbox relay, 20,000 rows waiting | rows/s drained | node CPU ms/row | PostgreSQL CPU ms/row |', '| --- | --- | --- | --- |');
    for (const batchSize of only && only !== 'relay' ? [] : [500, 1000, 2000]) {
      const drained = await relayDrain(owner, name, database.appUrl, db, fixtures.writers, batchSize);
      lines.push(`| batches of ${batchSize} | ${fmt(drained.rowsPerS, 0)} | ${fmt(drained.nodeMs, 4)} | ${fmt(drained.postgresMs, 4)} |`);
      console.log(lines[lines.length - 1]);
    }
    console.log(`\n${lines.join('\n')}`);
  } finally {
    await db.close();
    await patient.close();
    await owner.end();
    await database.drop();
  }
}

/**
 * The relay alone: 20,000 outbox rows written first (200 batches), then one relay publishes them to
 * the Kafka mock until the table is empty. The table has no event for "empty", so it is polled.
 */
async function relayDrain(
  owner: pg.Client,
  database: string,
  appUrl: string,
  db: Database,
  writers: Array<{ tenantId: string; devices: string[] }>,
  batchSize: number,
) {
  await owner.query('DELETE FROM location_outbox');
  for (let i = 0; i < 200; i++) {
    const writer = writers[i % writers.length] as (typeof writers)[number];
    const batch = Array.from({ length: 100 }, (_, k) => ({
      deviceId: writer.devices[k % writer.devices.length] as string,
      latitude: 1,
      longitude: 2,
      accuracy: null,
      speed: null,
      heading: null,
      altitude: null,
      recordedAt: new Date(),
    }));
    await db.scoped({ kind: 'system' }, (sql) => storeLocations(sql, batch, new Date()));
  }
  const mock = await startKafkaMock();
  const kafka = new Kafka({ clientId: 'bench-relay', brokers: [mock.bootstrap], logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  const topic = `bench-relay-${randomUUID()}`;
  // A first send creates the topic, so the drain does not time topic creation.
  await producer.connect();
  await producer.send({ topic, messages: [{ key: 'warm-up', value: '{}' }] });
  const relay = new OutboxRelay({ databaseUrl: appUrl, producer, topic, logger: createLogger('bench-relay', 'silent'), batchSize, idleMs: 50 });
  try {
    const pgBefore = pidCpu(await backends(owner, database));
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    relay.start();
    for (;;) {
      const { rows } = await owner.query<{ n: number }>('SELECT count(*)::int AS n FROM location_outbox');
      if (rows[0]?.n === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const wallMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    let postgresMs = 0;
    for (const [pid, ms] of pidCpu(await backends(owner, database))) postgresMs += ms - (pgBefore.get(pid) ?? 0);
    return { rowsPerS: 20_000 / (wallMs / 1000), nodeMs: (cpu.user + cpu.system) / 1000 / 20_000, postgresMs: postgresMs / 20_000 };
  } finally {
    await relay.stop();
    await producer.disconnect();
    await mock.stop();
  }
}

/** 4 tenants × 5 members × 7 devices with 5 locations each; 4 writers with 10 devices each. As the owner. */
async function seed(owner: pg.Client) {
  const tenants: string[] = [];
  const members: Array<{ userId: string; tenantId: string; devices: string[] }> = [];
  const writers: Array<{ tenantId: string; devices: string[] }> = [];
  await owner.query("INSERT INTO users (id, email, role) VALUES ('bench-admin', 'admin@fleet.bench', 'ADMIN'), ('bench-writer', 'writer@fleet.bench', 'MEMBER')");
  const tenant = async (label: string, devices: number) => {
    const id = randomUUID();
    await owner.query('INSERT INTO tenants (id, name) VALUES ($1, $2)', [id, `${label} ${id}`]);
    const deviceIds = Array.from({ length: devices }, () => randomUUID());
    await owner.query("INSERT INTO devices (id, tenant_id, name) SELECT d, $2, 'device' FROM unnest($1::uuid[]) AS d", [deviceIds, id]);
    return { id, deviceIds };
  };
  for (let t = 0; t < 4; t++) {
    const { id, deviceIds } = await tenant('query', 7);
    tenants.push(id);
    await owner.query(
      `INSERT INTO locations (id, tenant_id, device_id, seq, latitude, longitude, recorded_at, received_at)
       SELECT gen_random_uuid(), $2, d, s, 52, 13, now() - s * interval '1 minute', now() FROM unnest($1::uuid[]) AS d, generate_series(1, 5) AS s`,
      [deviceIds, id],
    );
    await owner.query('UPDATE devices SET last_seq = 5 WHERE tenant_id = $1', [id]);
    for (let m = 0; m < 5; m++) {
      const userId = randomUUID();
      await owner.query("INSERT INTO users (id, email, role) VALUES ($1, $2, 'MEMBER')", [userId, `${userId}@fleet.bench`]);
      await owner.query('INSERT INTO tenant_members (user_id, tenant_id) VALUES ($1, $2)', [userId, id]);
      members.push({ userId, tenantId: id, devices: deviceIds });
    }
  }
  for (let w = 0; w < 4; w++) {
    const { id, deviceIds } = await tenant('ingest', 10);
    writers.push({ tenantId: id, devices: deviceIds });
  }
  return { tenants, members, writers };
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
