import { PrismaPg } from '@prisma/adapter-pg';
import type { ClientBase } from 'pg';
import { Prisma, PrismaClient } from '../generated/prisma/client';
import { isUuid } from './ids';

/**
 * The Prisma client factory and the tenant-scoped transaction.
 *
 * The application connects as `fleet_app`, a role that row-level security binds (see
 * prisma/README.md). Every policy reads three transaction-local settings; `inScope` sets them as the
 * first statement of an interactive transaction, so they end with it and can never leak to another
 * request through the connection pool. Outside `inScope` nothing is set and every table reads as
 * empty for `fleet_app` (fail closed).
 */

export { Prisma, PrismaClient };
export type { Device, Location, LocationOutbox, Role, Tenant, TenantMember, User } from '../generated/prisma/client';

/** The client handed to `inScope`'s work: every model, `$queryRaw`, `$executeRaw`; no `$transaction`. */
export type Tx = Prisma.TransactionClient;

export type DatabaseScope =
  | { kind: 'member'; tenantId: string; userId: string }
  | { kind: 'admin'; userId: string }
  | { kind: 'system' }
  | { kind: 'user'; userId: string }; // a signed-in user with no tenant: sees only their own rows

export interface ScopeTransactionOptions {
  /** Longest wait for a pooled connection, ms (Prisma's default 2000). */
  maxWait?: number;
  /** Longest the whole transaction may run before Prisma rolls it back, ms (Prisma's default 5000). */
  timeout?: number;
  isolationLevel?: Prisma.TransactionIsolationLevel;
}

export interface Database {
  /**
   * The bare client. Outside `inScope` it sees no rows of any table (nothing is set); use it only for
   * connection checks (`SELECT 1`) and `$disconnect`.
   */
  client: PrismaClient;
  /** Runs `work` in one transaction in which the row-level security policies see `scope`. */
  inScope<T>(scope: DatabaseScope, work: (tx: Tx) => Promise<T>, options?: ScopeTransactionOptions): Promise<T>;
  /** For health checks: true when `SELECT 1` answers within `timeoutMs` (default 2000); never throws. */
  ping(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

/** The values of `app.scope`, `app.tenant_id` and `app.user_id` for a scope ('' = unset). */
export function scopeSettings(scope: DatabaseScope): { scope: string; tenantId: string; userId: string } {
  switch (scope.kind) {
    case 'member':
      if (!isUuid(scope.tenantId)) throw new TypeError(`inScope: tenantId is not a uuid: ${JSON.stringify(scope.tenantId)}`);
      return { scope: 'member', tenantId: scope.tenantId, userId: requireUserId(scope.userId) };
    case 'admin':
      return { scope: 'admin', tenantId: '', userId: requireUserId(scope.userId) };
    case 'user':
      return { scope: 'user', tenantId: '', userId: requireUserId(scope.userId) };
    case 'system':
      return { scope: 'system', tenantId: '', userId: '' };
    default: {
      const unknownScope: never = scope;
      throw new TypeError(`inScope: unknown scope ${JSON.stringify(unknownScope)}`);
    }
  }
}

function requireUserId(userId: string): string {
  if (typeof userId !== 'string' || userId.length === 0) throw new TypeError('inScope: userId must be a non-empty string');
  return userId;
}

/**
 * `inScope` for a dedicated `pg` session instead of the pool: BEGIN, the scope's settings
 * (transaction-local, as in `inScope`), `work`, COMMIT; ROLLBACK if anything fails. For a process
 * whose work must run on one particular connection: the outbox relay reads and deletes outbox rows
 * on the session that holds its advisory lock, so a lost session cannot publish.
 */
export async function inSessionScope<T>(session: ClientBase, scope: DatabaseScope, work: () => Promise<T>): Promise<T> {
  const settings = scopeSettings(scope);
  await session.query('BEGIN');
  try {
    await session.query("SELECT set_config('app.scope', $1, true), set_config('app.tenant_id', $2, true), set_config('app.user_id', $3, true)", [
      settings.scope,
      settings.tenantId,
      settings.userId,
    ]);
    const result = await work();
    await session.query('COMMIT');
    return result;
  } catch (error) {
    await session.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

export function createDatabase(options: { url: string; poolSize?: number; transactionOptions?: ScopeTransactionOptions }): Database {
  const adapter = new PrismaPg({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    application_name: 'fleet',
  });
  const client = new PrismaClient({ adapter });
  const defaults = options.transactionOptions ?? {};

  return {
    client,
    async inScope(scope, work, txOptions) {
      // Validate before taking a connection, so a bad scope never reaches the database.
      const settings = scopeSettings(scope);
      return await client.$transaction(
        async (tx) => {
          // One round trip; `true` = local to this transaction.
          await tx.$executeRaw`SELECT set_config('app.scope', ${settings.scope}, true), set_config('app.tenant_id', ${settings.tenantId}, true), set_config('app.user_id', ${settings.userId}, true)`;
          return work(tx);
        },
        { ...defaults, ...txOptions },
      );
    },
    async ping(timeoutMs = 2000) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      const answered = client.$executeRaw`SELECT 1`.then(
        () => true,
        () => false,
      );
      try {
        return await Promise.race([answered, timedOut]);
      } finally {
        clearTimeout(timer);
      }
    },
    close: () => client.$disconnect(),
  };
}
