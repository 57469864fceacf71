import { statement, type Sql, type Tx } from '../../lib/database';
import { isUuid } from '../../lib/ids';

/** Devices as the location subgraph stores them; RLS limits every query to the caller's tenant. */
export const deviceFields = { id: true, tenantId: true, name: true, createdAt: true } as const;
export type DeviceRecord = { id: string; tenantId: string; name: string; createdAt: Date };

const ALL_DEVICES = statement<DeviceRecord>`
  SELECT id, tenant_id AS "tenantId", name, created_at AS "createdAt" FROM devices ORDER BY created_at, id`;

const TENANT_DEVICES = statement<DeviceRecord>`
  SELECT id, tenant_id AS "tenantId", name, created_at AS "createdAt" FROM devices WHERE tenant_id = $1::uuid ORDER BY created_at, id`;

const DEVICES_BY_ID = statement<DeviceRecord>`
  SELECT id, tenant_id AS "tenantId", name, created_at AS "createdAt" FROM devices WHERE id = ANY($1::uuid[])`;

/** The devices the scope sees (a member: its tenant's; the platform: all), or one tenant's. */
export function listDevices(sql: Sql, tenantId?: string): Promise<DeviceRecord[]> {
  if (tenantId === undefined) return sql.rows(ALL_DEVICES);
  if (!isUuid(tenantId)) return Promise.resolve([]);
  return sql.rows(TENANT_DEVICES, [tenantId]);
}

export function createDevice(tx: Tx, tenantId: string, name: string): Promise<DeviceRecord> {
  return tx.device.create({ data: { tenantId, name }, select: deviceFields });
}

export async function listDevicesById(sql: Sql, ids: readonly string[]): Promise<Map<string, DeviceRecord>> {
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return new Map();
  const devices = await sql.rows(DEVICES_BY_ID, [valid]);
  return new Map(devices.map((device) => [device.id, device]));
}
