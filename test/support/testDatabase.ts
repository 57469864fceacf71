import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../tools/migrate';
import { appUrlFor } from '../../tools/localStack';

/** A fresh, migrated database for one test file, dropped at the end. */
export interface TestDatabase {
  ownerUrl: string;
  appUrl: string;
  drop(): Promise<void>;
}

const SERVER = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `fleet_test_${randomBytes(6).toString('hex')}`;
  const ownerUrl = new URL(SERVER);
  ownerUrl.pathname = `/${name}`;
  const appUrl = appUrlFor(ownerUrl.toString());
  await migrate({ databaseUrl: ownerUrl.toString(), appDatabaseUrl: appUrl, createDatabase: true });
  return {
    ownerUrl: ownerUrl.toString(),
    appUrl,
    drop: async () => {
      const admin = new pg.Client({ connectionString: SERVER });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}
