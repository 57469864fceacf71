import type { Tx } from '../../lib/database';
import { BadUserInput } from '../../lib/errors';
import type { LocationRecord } from '../../lib/locationStore';
import { isUuid } from '../../lib/ids';

const locationFields = {
  id: true,
  tenantId: true,
  deviceId: true,
  seq: true,
  latitude: true,
  longitude: true,
  accuracy: true,
  speed: true,
  heading: true,
  altitude: true,
  recordedAt: true,
  receivedAt: true,
} as const;

/**
 * The newest location (by recordedAt, then seq) of each device, in one query: a list of devices
 * asks once, not once per device. DISTINCT ON walks the (device_id, recorded_at, seq) index.
 */
export async function lastLocations(tx: Tx, deviceIds: readonly string[]): Promise<Map<string, LocationRecord>> {
  const rows = await tx.$queryRaw<LocationRecord[]>`
    SELECT DISTINCT ON (device_id)
      id, tenant_id AS "tenantId", device_id AS "deviceId", seq, latitude, longitude, accuracy, speed,
      heading, altitude, recorded_at AS "recordedAt", received_at AS "receivedAt"
    FROM locations
    WHERE device_id = ANY(${deviceIds as string[]}::uuid[])
    ORDER BY device_id, recorded_at DESC, seq DESC`;
  return new Map(rows.map((row) => [row.deviceId, row]));
}

/** A device's last seen (or accepted) per-device sequence. */
export interface DeviceSequence {
  deviceId: string;
  sequence: number;
}

/** A range of one device's sequence, both ends excluded (`before` null: up to the newest). */
export interface SequenceRange {
  deviceId: string;
  after: number;
  before?: number | null;
}

/**
 * Accepted locations by per-device sequence: for each range, the newest `limit` inside it, oldest
 * first. One statement however many ranges: a LATERAL walk of the (device_id, seq) unique index.
 */
export async function locationsBetween(tx: Tx, ranges: readonly SequenceRange[], limit: number): Promise<LocationRecord[]> {
  const valid = ranges.filter((r) => isUuid(r.deviceId));
  if (valid.length === 0) return [];
  return tx.$queryRaw<LocationRecord[]>`
    SELECT l.id, l.tenant_id AS "tenantId", l.device_id AS "deviceId", l.seq, l.latitude, l.longitude, l.accuracy,
      l.speed, l.heading, l.altitude, l.recorded_at AS "recordedAt", l.received_at AS "receivedAt"
    FROM unnest(${valid.map((r) => r.deviceId)}::uuid[], ${valid.map((r) => r.after)}::bigint[], ${valid.map((r) => r.before ?? null)}::bigint[])
      AS r(device_id, after_seq, before_seq)
    CROSS JOIN LATERAL (
      SELECT * FROM locations
      WHERE device_id = r.device_id AND seq > r.after_seq AND (r.before_seq IS NULL OR seq < r.before_seq)
      ORDER BY seq DESC LIMIT ${limit}
    ) l
    ORDER BY l.device_id, l.seq`;
}

/** The newest accepted sequence of each device of a tenant (or of one device), 0 before any. */
export async function devicePositions(tx: Tx, tenantId: string, deviceId?: string | null): Promise<DeviceSequence[]> {
  if (!isUuid(tenantId) || (deviceId && !isUuid(deviceId))) return [];
  const devices = await tx.device.findMany({
    where: { tenantId, ...(deviceId ? { id: deviceId } : {}) },
    select: { id: true, lastSeq: true },
  });
  return devices.map((device) => ({ deviceId: device.id, sequence: Number(device.lastSeq) }));
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

/** Newest `recordedAt` first; keyset paging on (recordedAt, seq), which the index covers. */
export async function locationPage(tx: Tx, deviceId: string, args: LocationPageArgs) {
  const first = args.first ?? 100;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) throw new BadUserInput('first', `first must be 1 to ${MAX_PAGE}`);
  if (args.from && args.to && args.from > args.to) throw new BadUserInput('from', 'from must not be after to');
  const cursor = args.after ? decodeCursor(args.after) : null;
  const rows = await tx.location.findMany({
    where: {
      deviceId,
      recordedAt: { ...(args.from ? { gte: args.from } : {}), ...(args.to ? { lte: args.to } : {}) },
      ...(cursor
        ? { OR: [{ recordedAt: { lt: cursor.recordedAt } }, { recordedAt: cursor.recordedAt, seq: { lt: cursor.seq } }] }
        : {}),
    },
    orderBy: [{ recordedAt: 'desc' }, { seq: 'desc' }],
    take: first + 1,
    select: locationFields,
  });
  const page = rows.slice(0, first);
  return {
    edges: page.map((node) => ({ cursor: encodeCursor(node), node })),
    pageInfo: { hasNextPage: rows.length > first, endCursor: page.length ? encodeCursor(page[page.length - 1] as LocationRecord) : null },
  };
}
