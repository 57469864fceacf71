-- A Cognito account that is re-created keeps its email but gets a new `sub`: the pool was
-- re-created while the database stayed (another checkout, `.local` deleted, a move from the
-- emulator to a real pool), or the account was deleted and signed up again. Whoever holds the
-- email now is a new person: the old row is retired (it keeps no membership and no role, see
-- subgraphs/auth/users.ts) and frees the email. So emails are unique among active rows only, and
-- the unique index that stopped the new row (and the admin bootstrap with it) becomes partial.
--
-- The DDL is what `prisma migrate dev` generates for the schema change (previewFeatures
-- "partialIndexes"). No grant or policy changes: fleet_app already updates `users` and deletes
-- `tenant_members` in the platform's scopes.

-- AlterTable
ALTER TABLE "users" ADD COLUMN "retired_at" TIMESTAMPTZ(3);

-- DropIndex
DROP INDEX "users_email_key";

-- CreateIndex
CREATE UNIQUE INDEX "users_email_active_key" ON "users"("email") WHERE ("retired_at" IS NULL);
