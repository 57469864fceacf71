import type { Tx } from '../../lib/database';
import { isUuid } from '../../lib/ids';

/** The tenant subgraph's data access: tenants and who belongs to them. RLS scopes every query. */
export const tenantFields = { id: true, name: true, createdAt: true } as const;
export type TenantRecord = { id: string; name: string; createdAt: Date };

export function findTenant(tx: Tx, id: string): Promise<TenantRecord | null> {
  if (!isUuid(id)) return Promise.resolve(null);
  return tx.tenant.findUnique({ where: { id }, select: tenantFields });
}

export function listTenants(tx: Tx): Promise<TenantRecord[]> {
  return tx.tenant.findMany({ select: tenantFields, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
}

export async function tenantOfUser(tx: Tx, userId: string): Promise<TenantRecord | null> {
  const membership = await tx.tenantMember.findUnique({ where: { userId }, select: { tenant: { select: tenantFields } } });
  return membership?.tenant ?? null;
}

export async function memberIds(tx: Tx, tenantId: string): Promise<string[]> {
  const rows = await tx.tenantMember.findMany({ where: { tenantId }, select: { userId: true }, orderBy: { createdAt: 'asc' } });
  return rows.map((row) => row.userId);
}

/** The user who holds this email now (a retired row is a former holder, never a candidate). */
export function userByEmail(tx: Tx, email: string): Promise<{ id: string; role: 'ADMIN' | 'MEMBER' } | null> {
  return tx.user.findFirst({ where: { email, retiredAt: null }, select: { id: true, role: true } });
}

/** A user belongs to at most one tenant: adding them elsewhere moves them. */
export function setMembership(tx: Tx, userId: string, tenantId: string) {
  return tx.tenantMember.upsert({ where: { userId }, create: { userId, tenantId }, update: { tenantId } });
}
