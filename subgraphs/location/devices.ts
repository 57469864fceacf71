import type { Tx } from '../../lib/database';
import { isUuid } from '../../lib/ids';

/** Devices as the location subgraph stores them; RLS limits every query to the caller's tenant. */
export const deviceFields = { id: true, tenantId: true, name: true, createdAt: true } as const;
export type DeviceRecord = { id: string; tenantId: string; name: string; createdAt: Date };


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

export async function listDevicesById(tx: Tx, ids: readonly string[]): Promise<Map<string, DeviceRecord>> {
  const devices = await tx.device.findMany({ where: { id: { in: ids.filter(isUuid) } }, select: deviceFields });
  return new Map(devices.map((device) => [device.id, device]));
}
