import DataLoader from 'dataloader';
import type { Caller } from '../../lib/caller';
import { statement, type Database, type DatabaseScope, type Sql, type Tx } from '../../lib/database';
import { isUuid } from '../../lib/ids';
import { requireCaller, scopeFor } from '../../lib/scope';

/** The tenant subgraph's data access: tenants and who belongs to them. RLS scopes every query. */
export const tenantFields = { id: true, name: true, createdAt: true } as const;
export type TenantRecord = { id: string; name: string; createdAt: Date };

const TENANTS_BY_ID = statement<TenantRecord>`
  SELECT id, name, created_at AS "createdAt" FROM tenants WHERE id = ANY($1::uuid[])`;

const ALL_TENANTS = statement<TenantRecord>`
  SELECT id, name, created_at AS "createdAt" FROM tenants ORDER BY created_at, id`;

const TENANTS_OF_USERS = statement<TenantRecord & { userId: string }>`
  SELECT m.user_id AS "userId", t.id, t.name, t.created_at AS "createdAt"
  FROM tenant_members m JOIN tenants t ON t.id = m.tenant_id
  WHERE m.user_id = ANY($1::text[])`;

const MEMBERS_OF_TENANTS = statement<{ tenantId: string; userId: string }>`
  SELECT tenant_id AS "tenantId", user_id AS "userId" FROM tenant_members
  WHERE tenant_id = ANY($1::uuid[]) ORDER BY created_at, user_id`;

/** Tenants by id, as the scope sees them; ids that are not uuids name nothing. */
export async function findTenants(sql: Sql, ids: readonly string[]): Promise<Map<string, TenantRecord>> {
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return new Map();
  const rows = await sql.rows(TENANTS_BY_ID, [valid]);
  return new Map(rows.map((row) => [row.id, row]));
}

export function listTenants(sql: Sql): Promise<TenantRecord[]> {
  return sql.rows(ALL_TENANTS);
}

/** Each user's tenant, for the users who have one the scope may see. */
export async function tenantsOfUsers(sql: Sql, userIds: readonly string[]): Promise<Map<string, TenantRecord>> {
  const rows = await sql.rows(TENANTS_OF_USERS, [userIds]);
  return new Map(rows.map(({ userId, ...tenant }) => [userId, tenant]));
}

/** Each tenant's member ids, oldest membership first. */
export async function memberIdsOf(sql: Sql, tenantIds: readonly string[]): Promise<Map<string, string[]>> {
  const members = new Map<string, string[]>();
  const valid = tenantIds.filter(isUuid);
  if (valid.length === 0) return members;
  for (const { tenantId, userId } of await sql.rows(MEMBERS_OF_TENANTS, [valid])) {
    const list = members.get(tenantId) ?? [];
    list.push(userId);
    members.set(tenantId, list);
  }
  return members;
}

/**
 * Per request: whatever a response asks of many tenants, users or memberships is read in one
 * statement per kind, however many references it carries (the gateway resolves a batch of up to 500
 * live events with one `_entities` request, each event naming its tenant).
 */
export interface TenantLoaders {
  tenant: DataLoader<string, TenantRecord | null>;
  tenantOfUser: DataLoader<string, TenantRecord | null>;
  /** `tenantOfUser` for an anonymous request the gateway vouches for (see `User.tenant`): 'system' scope. */
  tenantOfUserAsSystem: DataLoader<string, TenantRecord | null>;
  memberIds: DataLoader<string, string[]>;
}

/** The loaders of one request, each in the caller's scope (an anonymous caller's are UNAUTHENTICATED). */
export function tenantLoadersFor(caller: Caller | null, db: Database): TenantLoaders {
  const byKey = <V>(scope: () => DatabaseScope, read: (sql: Sql, keys: readonly string[]) => Promise<Map<string, V>>, absent: V) =>
    new DataLoader<string, V>(async (keys) => {
      const found = await db.scoped(scope(), (sql) => read(sql, keys));
      return keys.map((key) => found.get(key) ?? absent);
    });
  const callerScope = () => scopeFor(requireCaller(caller));
  return {
    tenant: byKey<TenantRecord | null>(callerScope, findTenants, null),
    tenantOfUser: byKey<TenantRecord | null>(callerScope, tenantsOfUsers, null),
    tenantOfUserAsSystem: byKey<TenantRecord | null>(() => ({ kind: 'system' }), tenantsOfUsers, null),
    memberIds: byKey<string[]>(callerScope, memberIdsOf, []),
  };
}

/** The user who holds this email now (a retired row is a former holder, never a candidate). */
export function userByEmail(tx: Tx, email: string): Promise<{ id: string; role: 'ADMIN' | 'MEMBER' } | null> {
  return tx.user.findFirst({ where: { email, retiredAt: null }, select: { id: true, role: true } });
}

/** A user belongs to at most one tenant: adding them elsewhere moves them. */
export function setMembership(tx: Tx, userId: string, tenantId: string) {
  return tx.tenantMember.upsert({ where: { userId }, create: { userId, tenantId }, update: { tenantId } });
}
