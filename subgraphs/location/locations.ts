import type { DeviceSequence, SequenceRange } from '../../lib/locationEvent';
import { statement, type Sql } from '../../lib/database';
import { BadUserInput } from '../../lib/errors';
import type { LocationRecord } from '../../lib/locationStore';
import { isUuid } from '../../lib/ids';

/** A location row as every statement here selects it (the columns of `LocationRecord`). */
const LAST_LOCATIONS = statement<LocationRecord>`
  SELECT DISTINCT ON (device_id)
    id, tenant_id AS "tenantId", device_id AS "deviceId", seq, latitude, longitude, accuracy, speed,
    heading, altitude, recorded_at AS "recordedAt", received_at AS "receivedAt"
  FROM locations
  WHERE device_id = ANY($1::uuid[])
  ORDER BY device_id, recorded_at DESC, seq DESC`;

/**
 * The newest location (by recordedAt, then seq) of each device, in one query: a list of devices
 * asks once, not once per device. DISTINCT ON walks the (device_id, recorded_at, seq) index.
 */
export async function lastLocations(sql: Sql, deviceIds: readonly string[]): Promise<Map<string, LocationRecord>> {
  const valid = deviceIds.filter(isUuid);
  if (valid.length === 0) return new Map();
  const rows = await sql.rows(LAST_LOCATIONS, [valid]);
  return new Map(rows.map((row) => [row.deviceId, row]));
}


const LOCATIONS_BETWEEN = statement<LocationRecord>`
  SELECT l.id, l.tenant_id AS "tenantId", l.device_id AS "deviceId", l.seq, l.latitude, l.longitude, l.accuracy,
    l.speed, l.heading, l.altitude, l.recorded_at AS "recordedAt", l.received_at AS "receivedAt"
  FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS r(device_id, after_seq, before_seq)
  CROSS JOIN LATERAL (
    SELECT * FROM locations
    WHERE device_id = r.device_id AND seq > r.after_seq AND (r.before_seq IS NULL OR seq < r.before_seq)
    ORDER BY seq DESC LIMIT $4::int
  ) l
  ORDER BY l.device_id, l.seq`;

/**
 * Accepted locations by per-device sequence: for each range, the newest `limit` inside it, oldest
 * first. One statement however many ranges: a LATERAL walk of the (device_id, seq) unique index.
 */
export async function locationsBetween(sql: Sql, ranges: readonly SequenceRange[], limit: number): Promise<LocationRecord[]> {
  const valid = ranges.filter((r) => isUuid(r.deviceId));
  if (valid.length === 0) return [];
  return sql.rows(LOCATIONS_BETWEEN, [valid.map((r) => r.deviceId), valid.map((r) => r.after), valid.map((r) => r.before ?? null), limit]);
}

const TENANT_POSITIONS = statement<DeviceSequence>`
  SELECT id AS "deviceId", last_seq AS sequence FROM devices WHERE tenant_id = $1::uuid`;

const DEVICE_POSITION = statement<DeviceSequence>`
  SELECT id AS "deviceId", last_seq AS sequence FROM devices WHERE tenant_id = $1::uuid AND id = $2::uuid`;

/** The newest accepted sequence of each device of a tenant (or of one device), 0 before any. */
export async function devicePositions(sql: Sql, tenantId: string, deviceId?: string | null): Promise<DeviceSequence[]> {
  if (!isUuid(tenantId) || (deviceId && !isUuid(deviceId))) return [];
  return deviceId ? sql.rows(DEVICE_POSITION, [tenantId, deviceId]) : sql.rows(TENANT_POSITIONS, [tenantId]);
}

export interface LocationPageArgs {
  from?: Date | null;
  to?: Date | null;
  first?: number | null;
  after?: string | null;
}

export const MAX_PAGE = 1000;

type Cursor = { r: string; s: string };

function encodeCursor(location: LocationRecord): string {
  const cursor: Cursor = { r: new Date(location.recordedAt).toISOString(), s: String(location.seq) };
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(after: string): { recordedAt: Date; seq: bigint } {
  try {
    const cursor = JSON.parse(Buffer.from(after, 'base64url').toString()) as Cursor;
    const recordedAt = new Date(cursor.r);
    if (typeof cursor.r !== 'string' || Number.isNaN(recordedAt.getTime()) || !/^\d+$/.test(cursor.s)) throw new Error();
    return { recordedAt, seq: BigInt(cursor.s) };
  } catch {
    throw new BadUserInput('after', 'after is not a cursor this API returned');
  }
}

/**
 * One page of a device's history, newest `recordedAt` first, keyset-paged on (recordedAt, seq). The
 * bounds are never NULL (an absent one is ±infinity, an absent cursor the top), so even the generic
 * plan of the prepared statement turns all of them into ranges of the (device_id, recorded_at DESC,
 * seq DESC) index rather than filters.
 */
const LOCATION_PAGE = statement<LocationRecord>`
  SELECT id, tenant_id AS "tenantId", device_id AS "deviceId", seq, latitude, longitude, accuracy, speed,
    heading, altitude, recorded_at AS "recordedAt", received_at AS "receivedAt"
  FROM locations
  WHERE device_id = $1::uuid
    AND recorded_at >= COALESCE($2::timestamptz, '-infinity') AND recorded_at <= COALESCE($3::timestamptz, 'infinity')
    AND (recorded_at, seq) < (COALESCE($4::timestamptz, 'infinity'), COALESCE($5::bigint, 9223372036854775807))
  ORDER BY recorded_at DESC, seq DESC
  LIMIT $6::int`;

export async function locationPage(sql: Sql, deviceId: string, args: LocationPageArgs) {
  const first = args.first ?? 100;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) throw new BadUserInput('first', `first must be 1 to ${MAX_PAGE}`);
  if (args.from && args.to && args.from > args.to) throw new BadUserInput('from', 'from must not be after to');
  const cursor = args.after ? decodeCursor(args.after) : null;
  const rows = isUuid(deviceId)
    ? await sql.rows(LOCATION_PAGE, [
        deviceId,
        args.from?.toISOString() ?? null,
        args.to?.toISOString() ?? null,
        cursor?.recordedAt.toISOString() ?? null,
        cursor ? String(cursor.seq) : null,
        first + 1,
      ])
    : [];
  const page = rows.slice(0, first);
  return {
    edges: page.map((node) => ({ cursor: encodeCursor(node), node })),
    pageInfo: { hasNextPage: rows.length > first, endCursor: page.length ? encodeCursor(page[page.length - 1] as LocationRecord) : null },
  };
}
