import { createHash } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import pg, { type ClientBase } from 'pg';
import { Prisma, PrismaClient } from '../generated/prisma/client';
import { isUuid } from './ids';

/**
 * The database of a process: one `pg` pool, and two ways to run a tenant-scoped transaction on it.
 *
 * The application connects as `fleet_app`, a role that row-level security binds (see
 * prisma/README.md). Every policy reads three transaction-local settings; both ways set them first
 * thing in the transaction, so they end with it and can never leak to another request through the
 * connection pool. Outside such a transaction nothing is set and every table reads as empty for
 * `fleet_app` (fail closed).
 *
 * - `scoped` runs constant SQL statements (see `statement`) on plain `pg`: BEGIN and the scope in
 *   one round trip, each statement prepared once per connection, then COMMIT. For the hot paths
 *   (the reads behind every request, ingest, the caller lookup): a Prisma interactive transaction
 *   costs several times the same statements (bench/README.md, "Data access").
 * - `inScope` is a Prisma interactive transaction with the typed client, for the cold paths
 *   (creating tenants and devices, memberships, users).
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
  /**
   * Longest wait for a pooled connection, ms (default 2000, Prisma's). As `createDatabase`'s
   * default it bounds every checkout of the pool, scoped or Prisma; per call it can only be shorter.
   */
  maxWait?: number;
  /** Longest the whole transaction may run before Prisma rolls it back, ms (Prisma's default 5000). */
  timeout?: number;
  isolationLevel?: Prisma.TransactionIsolationLevel;
}

/**
 * One SQL statement, fixed when the module loads: its text has `$n` parameters and nothing spliced
 * in, so no value can ever change what it does (see `statement`). `Row` is the shape of its rows.
 */
export interface Statement<Row> {
  /** The name it is prepared under on each connection (from a hash of the text). */
  readonly name: string;
  readonly text: string;
  /** Never set: carries `Row` for the type checker. */
  readonly row?: Row;
}

/**
 * Declares a statement: `` statement<Row>`SELECT … WHERE id = $1` ``. The template takes no
 * `${…}` (a type error, and refused at run time), so statement texts are constants and every value
 * travels as a parameter: the rule that keeps SQL injection, and with it a widened scope, out (see
 * prisma/README.md, "What RLS does not stop").
 */
export function statement<Row = Record<string, unknown>>(strings: TemplateStringsArray, ...spliced: never[]): Statement<Row> {
  if (strings.length !== 1 || spliced.length !== 0) throw new TypeError('statement: the text must be constant; pass values as $n parameters');
  const text = strings[0] as string;
  return { name: `fleet_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, text };
}

/** What `scoped` hands its work: statements run in the transaction, in its scope. */
export interface Sql {
  /** The rows of one statement. */
  rows<Row>(statement: Statement<Row>, values?: readonly unknown[]): Promise<Row[]>;
  /** Runs one statement; answers how many rows it wrote (or returned). */
  run(statement: Statement<unknown>, values?: readonly unknown[]): Promise<number>;
}

/** Test hooks: what the database was asked to do (e.g. to prove a request costs one query). */
export interface DatabaseObserver {
  /** A connection was taken from the pool (one per transaction, scoped or Prisma, and per bare query). */
  checkout?(): void;
  /** A statement ran inside `scoped` (BEGIN and COMMIT not counted). */
  statement?(text: string): void;
}

export interface Database {
  /**
   * The bare client. Outside `inScope` it sees no rows of any table (nothing is set); use it only for
   * connection checks (`SELECT 1`) and `$disconnect`.
   */
  client: PrismaClient;
  /** Runs `work` in one Prisma transaction in which the row-level security policies see `scope`. */
  inScope<T>(scope: DatabaseScope, work: (tx: Tx) => Promise<T>, options?: ScopeTransactionOptions): Promise<T>;
  /** Runs `work`'s statements in one `pg` transaction in which the row-level security policies see `scope`. */
  scoped<T>(scope: DatabaseScope, work: (sql: Sql) => Promise<T>): Promise<T>;
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

/**
 * User ids are Cognito `sub`s (uuids); tests and tools use short names. Nothing else is accepted,
 * because `beginScope` sends the id as a literal: none of these characters can end or escape one.
 */
const USER_ID = /^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$/;

/** Whether a user id can be a scope's (`USER_ID`). */
export function isScopeUserId(userId: unknown): userId is string {
  return typeof userId === 'string' && USER_ID.test(userId);
}

function requireUserId(userId: string): string {
  if (!isScopeUserId(userId)) {
    throw new TypeError('inScope: userId must be 1 to 128 letters, digits or _ . @ : - (a Cognito sub)');
  }
  return userId;
}

/**
 * BEGIN and the scope's settings in one simple-protocol round trip (a parameterised set_config would
 * be a second one). The one place SQL text carries values, and why that is safe: the scope kind is
 * one of four constants, the tenant a validated uuid, the user id limited to `USER_ID`'s characters
 * (no quote, no backslash), all checked by `scopeSettings` before anything is sent; the timeout is
 * an integer. The settings are transaction-local (`true`), as in `inScope`.
 */
function beginScope(scope: DatabaseScope, statementTimeoutMs?: number): string {
  const settings = scopeSettings(scope);
  const timeout = statementTimeoutMs === undefined ? '' : `, set_config('statement_timeout', '${Math.trunc(statementTimeoutMs)}', true)`;
  return (
    `BEGIN; SELECT set_config('app.scope', '${settings.scope}', true), set_config('app.tenant_id', '${settings.tenantId}', true), ` +
    `set_config('app.user_id', '${settings.userId}', true)${timeout}`
  );
}

/** `Sql` on one connection inside its transaction. */
function sqlOn(connection: ClientBase, observer: DatabaseObserver | undefined): Sql {
  const query = async <Row>(statement: Statement<Row>, values: readonly unknown[] | undefined) => {
    observer?.statement?.(statement.text);
    return connection.query<Row & pg.QueryResultRow>({ name: statement.name, text: statement.text, values: values as unknown[] | undefined });
  };
  return {
    rows: async (statement, values) => (await query(statement, values)).rows,
    run: async (statement, values) => (await query(statement, values)).rowCount ?? 0,
  };
}

/**
 * `scoped` for a dedicated `pg` session instead of the pool: BEGIN and the scope's settings in one
 * round trip, `work`, COMMIT; ROLLBACK if anything fails. For a process whose work must run on one
 * particular connection: the outbox relay reads and deletes outbox rows on the session that holds
 * its advisory lock, so a lost session cannot publish.
 */
export async function inSessionScope<T>(session: ClientBase, scope: DatabaseScope, work: () => Promise<T>): Promise<T> {
  const begin = beginScope(scope);
  await session.query(begin);
  try {
    const result = await work();
    await session.query('COMMIT');
    return result;
  } catch (error) {
    await session.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** int8 columns (counters, sequences, counts) as numbers: they stay far below 2^53. */
function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`int8 value ${text} is beyond JavaScript's safe integers`);
  return value;
}

const INT8_OID = 20;
const statementTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

export function createDatabase(options: {
  url: string;
  poolSize?: number;
  transactionOptions?: ScopeTransactionOptions;
  observer?: DatabaseObserver;
}): Database {
  const defaults = options.transactionOptions ?? {};
  const observer = options.observer;
  // One pool per process, shared by Prisma (through its adapter) and `scoped`, so both count
  // against the same connection budget. Prisma passes its own type parsers with every query; the
  // pool's `types` apply to `scoped` only.
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    application_name: 'fleet',
    // Prisma's maxWait for a connection, for every checkout.
    connectionTimeoutMillis: defaults.maxWait ?? 2_000,
    types: statementTypes,
  });
  // A pooled connection that fails while idle is dropped by the pool; the next checkout opens a new
  // one. Without a listener the 'error' event would end the process.
  pool.on('error', () => undefined);
  if (observer?.checkout) pool.on('acquire', () => observer.checkout?.());
  const client = new PrismaClient({ adapter: new PrismaPg(pool) });
  const statementTimeoutMs = defaults.timeout ?? 5_000;

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
    async scoped(scope, work) {
      // Built (and the scope validated) before taking a connection, so a bad scope never reaches it.
      // Each statement is bounded like Prisma's transactions (a lock wait cannot hold a connection forever).
      const begin = beginScope(scope, statementTimeoutMs);
      const connection = await pool.connect();
      let unusable: Error | undefined;
      try {
        await connection.query(begin);
        const result = await work(sqlOn(connection, observer));
        await connection.query('COMMIT');
        return result;
      } catch (error) {
        await connection.query('ROLLBACK').catch((rollbackFailed: Error) => {
          unusable = rollbackFailed;
        });
        throw error;
      } finally {
        // A connection whose ROLLBACK failed may still be inside the transaction: close it, never reuse it.
        connection.release(unusable);
      }
    },
    async ping(timeoutMs = 2000) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      const answered = pool.query('SELECT 1').then(
        () => true,
        () => false,
      );
      try {
        return await Promise.race([answered, timedOut]);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await client.$disconnect();
      await pool.end();
    },
  };
}
