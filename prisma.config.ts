import { defineConfig } from 'prisma/config';

/**
 * Prisma CLI configuration (Prisma 7). Used by `prisma generate` (see tools/prisma-generate.mjs) and,
 * where the native schema engine is available, by `prisma migrate deploy`. The URL is the *owner*
 * connection that applies migrations, never the application's `fleet_app` role; it defaults to the
 * same local database as `tools/migrate.ts`.
 */
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: {
    url: process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/fleet',
  },
});
