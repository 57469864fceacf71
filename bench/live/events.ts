import { createHash } from 'node:crypto';
import pg from 'pg';
import type { LocationEvent } from '../../lib/locationEvent';

/**
 * Location events the live rows publish straight to Redis (bypassing the outbox, Kafka and the
 * bridge, so the ingest path is not what limits the rate). Each is derived from (device, sequence)
 * alone, so the publisher process and the runner, which records the same locations in the
 * database first (the gateway reads the history when it fills a gap), build identical ones.
 */
export interface DeviceRange {
  deviceId: string;
  /** First and last sequence, inclusive. */
  from: number;
  to: number;
}

/** A stable UUID (version 5 layout) for the location `seq` of a device. */
function locationId(deviceId: string, seq: number): string {
  const hex = createHash('sha1').update(`${deviceId}:${seq}`).digest('hex');
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export function benchEvent(tenantId: string, deviceId: string, seq: number, baseMs: number): LocationEvent {
  const at = new Date(baseMs + seq).toISOString();
  return {
    id: locationId(deviceId, seq),
    tenantId,
    deviceId,
    seq,
    latitude: ((seq * 7) % 170) - 85 + 0.5,
    longitude: ((seq * 13) % 350) - 175 + 0.25,
    recordedAt: at,
    receivedAt: at,
  };
}

/** Events of all ranges, interleaved device by device so each device's stay in order. */
export function* interleaved(tenantId: string, ranges: readonly DeviceRange[], baseMs: number): Generator<LocationEvent> {
  const longest = Math.max(0, ...ranges.map((r) => r.to - r.from + 1));
  for (let k = 0; k < longest; k++) {
    for (const range of ranges) {
      const seq = range.from + k;
      if (seq <= range.to) yield benchEvent(tenantId, range.deviceId, seq, baseMs);
    }
  }
}

/** Each device's current sequence (its last accepted location's), read as the owner. */
export async function currentSequences(owner: pg.Client, deviceIds: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await owner.query<{ id: string; last_seq: string }>('SELECT id, last_seq FROM devices WHERE id = ANY($1::uuid[])', [deviceIds]);
  return new Map(rows.map((r) => [r.id, Number(r.last_seq)]));
}

/**
 * Records the events of `ranges` as accepted locations (as the owner: the bench stands in for the
 * location subgraph here) and moves each device's sequence counter to the range's end.
 */
export async function recordEvents(owner: pg.Client, tenantId: string, ranges: readonly DeviceRange[], baseMs: number): Promise<void> {
  const events = [...interleaved(tenantId, ranges, baseMs)];
  const CHUNK = 10_000;
  for (let i = 0; i < events.length; i += CHUNK) {
    const chunk = events.slice(i, i + CHUNK);
    await owner.query(
      `INSERT INTO locations (id, tenant_id, device_id, seq, latitude, longitude, recorded_at, received_at)
       SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::float8[], $6::float8[], $7::timestamptz[], $8::timestamptz[])`,
      [
        chunk.map((e) => e.id),
        chunk.map((e) => e.tenantId),
        chunk.map((e) => e.deviceId),
        chunk.map((e) => e.seq),
        chunk.map((e) => e.latitude),
        chunk.map((e) => e.longitude),
        chunk.map((e) => e.recordedAt),
        chunk.map((e) => e.receivedAt),
      ],
    );
  }
  await owner.query('UPDATE devices SET last_seq = r.seq FROM unnest($1::uuid[], $2::bigint[]) AS r(id, seq) WHERE devices.id = r.id', [
    ranges.map((r) => r.deviceId),
    ranges.map((r) => r.to),
  ]);
}
