import type { Tx } from '../../lib/database';

/** Devices as the location subgraph stores them; RLS limits every query to the caller's tenant. */
export const deviceFields = { id: true, tenantId: true, name: true, createdAt: true } as const;
export type DeviceRecord = { id: string; tenantId: string; name: string; createdAt: Date };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids are opaque to clients: one that is not a UUID names no device. */
export function isDeviceId(id: string): boolean {
  return UUID.test(id);
}

export function findDevice(tx: Tx, id: string): Promise<DeviceRecord | null> {
  if (!isDeviceId(id)) return Promise.resolve(null);
  return tx.device.findUnique({ where: { id }, select: deviceFields });
}

export function listDevices(tx: Tx, tenantId?: string): Promise<DeviceRecord[]> {
  return tx.device.findMany({
    where: tenantId ? { tenantId } : {},
    select: deviceFields,
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
  });
}

export function createDevice(tx: Tx, tenantId: string, name: string): Promise<DeviceRecord> {
  return tx.device.create({ data: { tenantId, name }, select: deviceFields });
}
