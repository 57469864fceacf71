import { randomUUID } from 'node:crypto';
import type { Tx } from './database';
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
 * Stores locations and their outbox rows in the caller's transaction. Each device's row is locked
 * while its counter advances, so per-device sequence numbers follow acceptance order even with
 * concurrent writers; devices are locked in id order so two batches cannot deadlock. A device the
 * transaction's scope cannot see is `NOT_FOUND` (naming the first input that names it).
 */
export async function storeLocations(tx: Tx, locations: readonly NewLocation[], receivedAt: Date): Promise<LocationRecord[]> {
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
    // RLS hides another tenant's device: the update matches no row, exactly as for an unknown id.
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

/** Wakes the outbox relays (every replica LISTENs); delivered when the transaction commits. */
export async function announceOutbox(tx: Tx): Promise<void> {
  await tx.$executeRaw`SELECT pg_notify(${OUTBOX_CHANNEL}, '')`;
}
