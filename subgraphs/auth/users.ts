import DataLoader from 'dataloader';
import type { Caller } from '../../lib/caller';
import { statement, type Database, type Tx } from '../../lib/database';
import { requireCaller, scopeFor } from '../../lib/scope';

/** The auth subgraph's records: one row per Cognito user, with the platform role. */
export interface UserRecord {
  id: string;
  email: string;
  role: 'ADMIN' | 'MEMBER';
}

export interface StoredUser extends UserRecord {
  /** Set when another Cognito account took over the email: the row is a person who left. */
  retiredAt: Date | null;
}

const fields = { id: true, email: true, role: true } as const;

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: string }).code === 'P2002';
}

/**
 * Another Cognito account now holds this email (the pool was re-created, or the account deleted and
 * signed up again): whoever holds it now is a new person. The old rows keep no membership and no
 * role, and free the email.
 */
async function retireOtherHolders(tx: Tx, email: string, id: string): Promise<string[]> {
  const holders = await tx.user.findMany({ where: { email, retiredAt: null, id: { not: id } }, select: { id: true } });
  if (holders.length === 0) return [];
  const ids = holders.map((holder) => holder.id);
  await tx.tenantMember.deleteMany({ where: { userId: { in: ids } } });
  await tx.user.updateMany({ where: { id: { in: ids } }, data: { retiredAt: new Date(), role: 'MEMBER' } });
  return ids;
}

/**
 * Tells every gateway that these users' role or tenant changed (they cache both and hold sockets
 * authorized for the old ones): the tenant subgraph announces memberships, this one retirements
 * and role changes, on the same channel.
 */
export type AnnounceStandingChange = (userIds: readonly string[]) => Promise<void>;

/**
 * Records a Cognito account whose email is verified: creates its row, or brings it back to the
 * email. A given `role` is set; without one a new row is a MEMBER and an existing one keeps its role.
 * Runs in 'system' scope: registration, login and the bootstrap act for no tenant.
 */
export async function saveUser(
  db: Database,
  user: { id: string; email: string; role?: UserRecord['role'] },
  announce: AnnounceStandingChange,
): Promise<UserRecord> {
  const write = () =>
    db.inScope({ kind: 'system' }, async (tx) => {
      const changed = await retireOtherHolders(tx, user.email, user.id);
      const before = await tx.user.findUnique({ where: { id: user.id }, select: { role: true, retiredAt: true } });
      const saved = await tx.user.upsert({
        where: { id: user.id },
        create: { id: user.id, email: user.email, role: user.role ?? 'MEMBER' },
        update: { email: user.email, retiredAt: null, ...(user.role ? { role: user.role } : {}) },
        select: fields,
      });
      // Before its row existed the user counted as a MEMBER with no tenant.
      if (before ? before.role !== saved.role || before.retiredAt !== null : saved.role !== 'MEMBER') changed.push(user.id);
      return { saved, changed };
    });
  let written: Awaited<ReturnType<typeof write>>;
  try {
    written = await write();
  } catch (error) {
    // Two replicas recording the same account (or the same email) at once: the loser's insert hits
    // a unique index; the second attempt sees the winner's row and goes through.
    if (!isUniqueViolation(error)) throw error;
    written = await write();
  }
  if (written.changed.length) await announce(written.changed);
  return written.saved;
}

const USER_BY_ID = statement<StoredUser>`
  SELECT id, email, role, retired_at AS "retiredAt" FROM users WHERE id = $1`;

const USERS_BY_ID = statement<UserRecord>`
  SELECT id, email, role FROM users WHERE id = ANY($1::text[])`;

/** A user's row if it exists, retired or not. */
export async function findUser(db: Database, id: string): Promise<StoredUser | null> {
  const [user] = await db.scoped({ kind: 'system' }, (sql) => sql.rows(USER_BY_ID, [id]));
  return user ?? null;
}

/**
 * Users as the caller may see them, read per request in one query however many a response needs
 * (`Tenant.members` resolves each member here). Rows RLS hides come back as null.
 */
export function visibleUsers(caller: Caller | null, db: Database): DataLoader<string, UserRecord | null> {
  return new DataLoader(async (ids) => {
    const rows = await db.scoped(scopeFor(requireCaller(caller)), (sql) => sql.rows(USERS_BY_ID, [ids]));
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => byId.get(id) ?? null);
  });
}
