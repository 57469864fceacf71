import DataLoader from 'dataloader';
import type { Caller } from '../../lib/caller';
import type { Database } from '../../lib/database';
import { requireCaller, scopeFor } from '../../lib/scope';

/** The auth subgraph's records: one row per Cognito user, with the platform role. */
export interface UserRecord {
  id: string;
  email: string;
  role: 'ADMIN' | 'MEMBER';
}

const fields = { id: true, email: true, role: true } as const;

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Creates or refreshes the row for a Cognito user. Registration and login act for no tenant. */
export async function saveUser(db: Database, user: UserRecord): Promise<UserRecord> {
  return db.inScope({ kind: 'system' }, (tx) =>
    tx.user.upsert({
      where: { id: user.id },
      create: user,
      update: { email: user.email, role: user.role },
      select: fields,
    }),
  );
}

/** A user's row if it exists; a user created only in Cognito keeps role MEMBER. */
export async function findUserForLogin(db: Database, id: string): Promise<UserRecord | null> {
  return db.inScope({ kind: 'system' }, (tx) => tx.user.findUnique({ where: { id }, select: fields }));
}

/**
 * Users as the caller may see them, read per request in one query however many a response needs
 * (`Tenant.members` resolves each member here). Rows RLS hides come back as null.
 */
export function visibleUsers(caller: Caller | null, db: Database): DataLoader<string, UserRecord | null> {
  return new DataLoader(async (ids) => {
    const rows = await db.inScope(scopeFor(requireCaller(caller)), (tx) => tx.user.findMany({ where: { id: { in: [...ids] } }, select: fields }));
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => byId.get(id) ?? null);
  });
}
