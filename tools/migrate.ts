import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Client, type ClientConfig } from 'pg';
import { commonEnv, loadConfig, url } from '../lib/config';
import { createLogger } from '../lib/logger';

/**
 * Applies prisma/migrations without Prisma's schema engine (which cannot be downloaded everywhere),
 * keeping Prisma's bookkeeping: each folder's migration.sql runs once, in name order, and is recorded
 * in `_prisma_migrations` exactly as `prisma migrate deploy` records it (same table, sha256 checksum),
 * so either tool can take over from the other. See prisma/README.md.
 *
 *   tsx tools/migrate.ts        # DATABASE_URL (owner), APP_DATABASE_URL (fleet_app, dev/test password)
 */

export const MIGRATIONS_DIR = path.resolve(__dirname, '..', 'prisma', 'migrations');

/** The application role the migrations create; the only role `appDatabaseUrl` may name. */
export const APP_ROLE = 'fleet_app';

/** `prisma migrate` serialises itself on this advisory lock; using the same key serialises us with it. */
const PRISMA_MIGRATE_LOCK = 72707369;

// Prisma's own DDL for its bookkeeping table (schema engine, PostgreSQL flavour).
const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
)`;

export interface MigrateOptions {
  /** Owner connection (creates the schema and the role; never the application's role). */
  databaseUrl: string;
  /** The application's URL: for local development and tests only, gives fleet_app LOGIN and this URL's password. */
  appDatabaseUrl?: string;
  /** Create the database named in `databaseUrl` first if it does not exist (connects to `postgres` for that). */
  createDatabase?: boolean;
  logger?: (msg: string) => void;
  /** Defaults to prisma/migrations of this repository. */
  migrationsDir?: string;
}

export interface Migration {
  name: string;
  sql: string;
  /** sha256 hex of migration.sql's bytes, as Prisma computes it. */
  checksum: string;
}

/** The migration folders (those holding a migration.sql), in name order, as Prisma orders them. */
export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((entry) => entry.isDirectory() && existsSync(path.join(dir, entry.name, 'migration.sql')))
    .map((entry) => entry.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const bytes = await readFile(path.join(dir, name, 'migration.sql'));
      return { name, sql: bytes.toString('utf8'), checksum: createHash('sha256').update(bytes).digest('hex') };
    }),
  );
}

export async function migrate(options: MigrateOptions): Promise<{ applied: string[] }> {
  const log = options.logger ?? (() => {});
  const migrations = await readMigrations(options.migrationsDir);
  if (options.createDatabase) await createDatabaseIfMissing(options.databaseUrl, log);

  const client = new Client(clientConfig(options.databaseUrl));
  await client.connect();
  const applied: string[] = [];
  try {
    // Session-level: held across the per-migration transactions, released on unlock or disconnect.
    await client.query('SELECT pg_advisory_lock($1)', [PRISMA_MIGRATE_LOCK]);
    try {
      await client.query(CREATE_MIGRATIONS_TABLE);
      const { rows } = await client.query<{ migration_name: string; checksum: string; finished_at: Date | null; rolled_back_at: Date | null }>(
        'SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY started_at',
      );
      const failed = rows.filter((row) => row.finished_at === null && row.rolled_back_at === null);
      if (failed.length > 0) {
        // What `prisma migrate deploy` refuses with P3009.
        throw new Error(
          `migration ${failed.map((row) => row.migration_name).join(', ')} failed earlier and is recorded as unfinished in _prisma_migrations; ` +
            'fix the database by hand, then mark it (prisma migrate resolve, or update/delete the row) and run again',
        );
      }
      const done = new Map(rows.filter((row) => row.finished_at !== null && row.rolled_back_at === null).map((row) => [row.migration_name, row.checksum]));
      const local = new Set(migrations.map((m) => m.name));
      for (const name of done.keys()) if (!local.has(name)) log(`migration ${name} is recorded in the database but missing from ${options.migrationsDir ?? MIGRATIONS_DIR}`);

      for (const migration of migrations) {
        const recorded = done.get(migration.name);
        if (recorded !== undefined) {
          if (recorded !== migration.checksum) log(`migration ${migration.name} was modified after it was applied (checksum differs)`);
          continue;
        }
        await applyMigration(client, migration);
        applied.push(migration.name);
        log(`applied migration ${migration.name}`);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATE_LOCK]).catch(() => {});
    }
    if (options.appDatabaseUrl) await setAppPassword(client, options.appDatabaseUrl, log);
  } finally {
    await client.end();
  }
  return { applied };
}

/** One migration, and its `_prisma_migrations` row, in one transaction: it applies entirely or not at all. */
async function applyMigration(client: Client, migration: Migration): Promise<void> {
  await client.query('BEGIN');
  try {
    const id = randomUUID();
    await client.query(
      'INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at, applied_steps_count) VALUES ($1, $2, $3, now(), 0)',
      [id, migration.checksum, migration.name],
    );
    await client.query(migration.sql); // simple query protocol: the whole multi-statement script
    await client.query('UPDATE _prisma_migrations SET finished_at = clock_timestamp(), applied_steps_count = 1 WHERE id = $1', [id]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`migration ${migration.name} failed and was rolled back: ${reason}`, { cause: error });
  }
}

async function createDatabaseIfMissing(databaseUrl: string, log: (msg: string) => void): Promise<void> {
  const name = databaseName(databaseUrl);
  const maintenanceUrl = new URL(databaseUrl);
  maintenanceUrl.pathname = '/postgres';
  const admin = new Client(clientConfig(maintenanceUrl.toString()));
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return;
    try {
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
      log(`created database ${name}`);
    } catch (error) {
      // Another process created it between the check and now.
      if ((error as { code?: string }).code !== '42P04') throw error;
    }
  } finally {
    await admin.end();
  }
}

/** Local development and tests only: lets fleet_app log in with the password in `appDatabaseUrl`. */
async function setAppPassword(client: Client, appDatabaseUrl: string, log: (msg: string) => void): Promise<void> {
  const parsed = new URL(appDatabaseUrl);
  const user = decodeURIComponent(parsed.username);
  if (user !== APP_ROLE) throw new Error(`appDatabaseUrl must connect as ${APP_ROLE}, not ${JSON.stringify(user)}`);
  const password = decodeURIComponent(parsed.password);
  const sql = password
    ? `ALTER ROLE ${client.escapeIdentifier(APP_ROLE)} LOGIN PASSWORD ${client.escapeLiteral(password)}`
    : `ALTER ROLE ${client.escapeIdentifier(APP_ROLE)} LOGIN`;
  // Roles are cluster-wide: migrations of other databases (parallel test files) may alter the same
  // role at the same moment, which PostgreSQL reports as "tuple concurrently updated". Retry.
  for (let attempt = 1; ; attempt++) {
    try {
      await client.query(sql);
      break;
    } catch (error) {
      if (attempt >= 5 || !/concurrently/.test((error as Error).message)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
    }
  }
  log(`${APP_ROLE} may log in${password ? ' with the password of the app database url' : ''}`);
}

function databaseName(databaseUrl: string): string {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.replace(/^\//, ''));
  if (!name) throw new Error('the database url names no database');
  return name;
}

function clientConfig(databaseUrl: string): ClientConfig {
  return { connectionString: databaseUrl, application_name: 'fleet-migrate' };
}

async function main(): Promise<void> {
  const config = loadConfig(
    commonEnv.extend({
      DATABASE_URL: url('postgresql://postgres@127.0.0.1:5432/fleet'),
      APP_DATABASE_URL: url('postgresql://fleet_app:fleet_app@127.0.0.1:5432/fleet'),
    }),
  );
  const logger = createLogger('migrate', config.LOG_LEVEL);
  const { applied } = await migrate({
    databaseUrl: config.DATABASE_URL,
    appDatabaseUrl: config.APP_DATABASE_URL,
    createDatabase: true,
    logger: (msg) => logger.info(msg),
  });
  if (applied.length === 0) logger.info('database is up to date');
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`migrate: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
