import { randomUUID } from 'node:crypto';
import type { Database, Tx } from '../../lib/database';
import { NotFound } from '../../lib/errors';
import { isUuid } from '../../lib/ids';
import { OUTBOX_CHANNEL, toEvent, type LocationRecord, type NewLocation } from '../../lib/locationStore';

/**
 * The data access as it was before issue 11 (every read a Prisma interactive transaction, ingest
 * per device through Prisma), kept verbatim so the microbenchmark compares both in one run on the
 * same pool. Not used by the platform.
 */

export function callerRecord(db: Database, userId: string) {
  return db.inScope({ kind: 'user', userId }, (tx) =>
    tx.user.findUnique({ where: { id: userId }, select: { role: true, membership: { select: { tenantId: true } } } }),
  );
}

export function devicesById(db: Database, scope: Parameters<Database['inScope']>[0], ids: readonly string[]) {
  return db.inScope(scope, (tx) =>
    tx.device.findMany({ where: { id: { in: ids.filter(isUuid) } }, select: { id: true, tenantId: true, name: true, createdAt: true } }),
  );
}

export function lastLocations(db: Database, scope: Parameters<Database['inScope']>[0], deviceIds: readonly string[]) {
  return db.inScope(
    scope,
    (tx) => tx.$queryRaw<LocationRecord[]>`
    SELECT DISTINCT ON (device_id)
      id, tenant_id AS "tenantId", device_id AS "deviceId", seq, latitude, longitude, accuracy, speed,
      heading, altitude, recorded_at AS "recordedAt", received_at AS "receivedAt"
    FROM locations
    WHERE device_id = ANY(${deviceIds as string[]}::uuid[])
    ORDER BY device_id, recorded_at DESC, seq DESC`,
  );
}

/**
 * `Tenant.__resolveReference` as it was: one transaction per reference, all at once as the
 * subgraph ran them. With the default maxWait (2 s) 500 of them already fail here with "Unable to
 * start a transaction in the given time" (as in the bench's reconnect storm), so the runner gives
 * this case a database whose wait is lifted, to measure their cost rather than the failure.
 */
export function tenantReferences(db: Database, scope: Parameters<Database['inScope']>[0], ids: readonly string[]) {
  return Promise.all(ids.map((id) => db.inScope(scope, (tx) => tx.tenant.findUnique({ where: { id }, select: { id: true, name: true, createdAt: true } }))));
}

/** `storeLocations` + `announceOutbox` as they were, in one Prisma transaction. */
export function recordBatch(db: Database, scope: Parameters<Database['inScope']>[0], locations: readonly NewLocation[], receivedAt: Date) {
  return db.inScope(scope, async (tx) => {
    const records = await storeLocations(tx, locations, receivedAt);
    await tx.$executeRaw`SELECT pg_notify(${OUTBOX_CHANNEL}, '')`;
    return records;
  });
}

async function storeLocations(tx: Tx, locations: readonly NewLocation[], receivedAt: Date): Promise<LocationRecord[]> {
  const byDevice = new Map<string, number[]>();
  locations.forEach((location, index) => {
    const indexes = byDevice.get(location.deviceId) ?? [];
    indexes.push(index);
    byDevice.set(location.deviceId, indexes);
  });
  const records: LocationRecord[] = new Array(locations.length);
  for (const deviceId of [...byDevice.keys()].sort()) {
    const indexes = byDevice.get(deviceId) as number[];
    const notFound = () => new NotFound('Device', { field: 'deviceId', index: indexes[0] as number });
    if (!isUuid(deviceId)) throw notFound();
    const updated = await tx.device.updateMany({ where: { id: deviceId }, data: { lastSeq: { increment: indexes.length } } });
    if (updated.count === 0) throw notFound();
    const device = await tx.device.findUniqueOrThrow({ where: { id: deviceId }, select: { tenantId: true, lastSeq: true } });
    const first = device.lastSeq - BigInt(indexes.length) + 1n;
    indexes.forEach((index, offset) => {
      const location = locations[index] as NewLocation;
      records[index] = { ...location, id: location.id ?? randomUUID(), tenantId: device.tenantId, seq: first + BigInt(offset), receivedAt };
    });
  }
  await tx.location.createMany({ data: records.map((r) => ({ ...r, seq: BigInt(r.seq), recordedAt: new Date(r.recordedAt), receivedAt })) });
  await tx.locationOutbox.createMany({
    data: records.map((r) => ({ locationId: r.id, tenantId: r.tenantId, deviceId: r.deviceId, payload: toEvent(r) })),
  });
  return records;
}
