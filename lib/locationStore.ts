import { randomUUID } from 'node:crypto';
import { statement, type Sql } from './database';
import { NotFound } from './errors';
import { isUuid } from './ids';
import type { LocationEvent } from './locationEvent';

/**
 * How an accepted location is written, in one place for both ways in: `recordLocation(s)` in the
 * location subgraph, and the bridge, which accepts the locations other producers put on the Kafka
 * topic without a `seq`. Written this way, every location gets its per-device sequence from the
 * device's counter and reaches subscribers through the outbox relay, whoever produced it.
 */

/** The channel the outbox relay LISTENs on; a transaction that wrote outbox rows notifies it. */
export const OUTBOX_CHANNEL = 'location_outbox';

/** A location to store: validated, not yet given a sequence. */
export interface NewLocation {
  /** Kept when given (a producer's own id, so a replay of its message is recognised); else a new uuid. */
  id?: string;
  deviceId: string;
  latitude: number;
  longitude: number;
  accuracy: number | null;
  speed: number | null;
  heading: number | null;
  altitude: number | null;
  recordedAt: Date;
}

/** A stored location, as resolvers see it (from the database or from a Kafka/Redis event). */
export interface LocationRecord extends Omit<NewLocation, 'id' | 'recordedAt'> {
  id: string;
  tenantId: string;
  seq: bigint | number;
  recordedAt: Date | string;
  receivedAt: Date | string;
}

export function toEvent(location: LocationRecord): LocationEvent {
  return {
    id: location.id,
    tenantId: location.tenantId,
    deviceId: location.deviceId,
    seq: Number(location.seq),
    latitude: location.latitude,
    longitude: location.longitude,
    accuracy: location.accuracy,
    speed: location.speed,
    heading: location.heading,
    altitude: location.altitude,
    recordedAt: new Date(location.recordedAt).toISOString(),
    receivedAt: new Date(location.receivedAt).toISOString(),
  };
}

/**
 * Locks the devices a batch names, in id order: every writer (this subgraph's replicas, the bridge)
 * locks the same way, so two batches that share devices wait for each other instead of deadlocking.
 * FOR NO KEY UPDATE is the lock the counter's UPDATE takes anyway (so no upgrade later) and leaves
 * foreign-key checks of the new locations alone. It also reads the counters the lock protects.
 * Row-level security hides another tenant's device here, exactly like an unknown one.
 */
const LOCK_DEVICES = statement<{ id: string; tenantId: string; lastSeq: number }>`
  SELECT id, tenant_id AS "tenantId", last_seq AS "lastSeq" FROM devices
  WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE`;

/**
 * The rest of a batch in one statement, all from one JSON array of the events (the outbox payloads,
 * as `toEvent` builds them): each device's counter advances by its count, every location is
 * inserted, and every outbox row, in the array's order (the relay publishes by outbox id, so a
 * device's events reach Kafka in sequence order). The events carry what the locks read: tenant and
 * sequence. JSON rather than one array parameter per column: one serialization in V8, one parse in
 * PostgreSQL, and numbers keep every digit (float8 from the JSON text round-trips exactly).
 */
const WRITE_BATCH = statement`
  WITH events AS MATERIALIZED (
    SELECT e, n FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS batch(e, n)
  ),
  advanced AS (
    UPDATE devices d SET last_seq = d.last_seq + c.added
    FROM unnest($2::uuid[], $3::bigint[]) AS c(id, added)
    WHERE d.id = c.id
  ),
  stored AS (
    INSERT INTO locations (id, tenant_id, device_id, seq, latitude, longitude, accuracy, speed, heading, altitude, recorded_at, received_at)
    SELECT (e->>'id')::uuid, (e->>'tenantId')::uuid, (e->>'deviceId')::uuid, (e->>'seq')::bigint,
      (e->>'latitude')::float8, (e->>'longitude')::float8, (e->>'accuracy')::float8, (e->>'speed')::float8,
      (e->>'heading')::float8, (e->>'altitude')::float8, (e->>'recordedAt')::timestamptz, (e->>'receivedAt')::timestamptz
    FROM events
  )
  INSERT INTO location_outbox (location_id, tenant_id, device_id, payload)
  SELECT (e->>'id')::uuid, (e->>'tenantId')::uuid, (e->>'deviceId')::uuid, e FROM events ORDER BY n`;

/**
 * Stores locations and their outbox rows in the caller's transaction (`db.scoped`), in two
 * statements however large the batch: lock the devices (id order, so concurrent batches cannot
 * deadlock) and read their counters, then write counters, locations and outbox rows at once. Each
 * device's sequence numbers follow the order of `locations`. A device the transaction's scope
 * cannot see is `NOT_FOUND`, naming the first input that names such a device; nothing is written.
 */
export async function storeLocations(sql: Sql, locations: readonly NewLocation[], receivedAt: Date): Promise<LocationRecord[]> {
  if (locations.length === 0) return [];
  const notFound = (index: number) => new NotFound('Device', { field: 'deviceId', index });
  const invalid = locations.findIndex((location) => !isUuid(location.deviceId));
  if (invalid >= 0) throw notFound(invalid);
  // Counted by the lower-case id: PostgreSQL answers uuids in lower case whatever the input's case.
  const deviceIds = locations.map((location) => location.deviceId.toLowerCase());
  const added = new Map<string, number>();
  for (const id of deviceIds) added.set(id, (added.get(id) ?? 0) + 1);
  const locked = await sql.rows(LOCK_DEVICES, [[...added.keys()]]);
  const devices = new Map(locked.map((device) => [device.id, device]));
  const missing = deviceIds.findIndex((id) => !devices.has(id));
  if (missing >= 0) throw notFound(missing);

  const next = new Map(locked.map((device) => [device.id, device.lastSeq]));
  const records = locations.map((location, index): LocationRecord => {
    const deviceId = deviceIds[index] as string;
    const seq = (next.get(deviceId) as number) + 1;
    next.set(deviceId, seq);
    return { ...location, id: location.id ?? randomUUID(), deviceId, tenantId: (devices.get(deviceId) as { tenantId: string }).tenantId, seq, receivedAt };
  });
  await sql.run(WRITE_BATCH, [JSON.stringify(records.map(toEvent)), [...added.keys()], [...added.values()]]);
  return records;
}

const ANNOUNCE_OUTBOX = statement`SELECT pg_notify($1, '')`;

/** Wakes the outbox relays (every replica LISTENs); delivered when the transaction commits. */
export async function announceOutbox(sql: Sql): Promise<void> {
  await sql.run(ANNOUNCE_OUTBOX, [OUTBOX_CHANNEL]);
}
