-- Initial schema of the fleet location platform.
--
-- The table DDL below is what `prisma migrate dev` generates from prisma/schema.prisma. Everything
-- after "Row-level security" is hand-written (Prisma's schema language cannot express it):
-- CHECK constraints, the application role `fleet_app`, its grants, the scope functions and the
-- RLS policies. prisma/README.md explains the design.
--
-- Applied by `tools/migrate.ts` (no Prisma engine needed) or by `prisma migrate deploy`; both
-- record it in `_prisma_migrations`. Never edit this file once applied anywhere: its sha256 is the
-- recorded checksum. Add a new migration folder instead.

-- CreateEnum
CREATE TYPE "role" AS ENUM ('ADMIN', 'MEMBER');

-- CreateTable
CREATE TABLE "users" (
    "id" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "role" "role" NOT NULL DEFAULT 'MEMBER',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "tenants" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tenants_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "tenant_members" (
    "user_id" TEXT NOT NULL,
    "tenant_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tenant_members_pkey" PRIMARY KEY ("user_id")
);

-- CreateTable
CREATE TABLE "devices" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "last_seq" BIGINT NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "devices_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "locations" (
    "id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "device_id" UUID NOT NULL,
    "seq" BIGINT NOT NULL,
    "latitude" DOUBLE PRECISION NOT NULL,
    "longitude" DOUBLE PRECISION NOT NULL,
    "accuracy" DOUBLE PRECISION,
    "speed" DOUBLE PRECISION,
    "heading" DOUBLE PRECISION,
    "altitude" DOUBLE PRECISION,
    "recorded_at" TIMESTAMPTZ(3) NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "locations_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "location_outbox" (
    "id" BIGSERIAL NOT NULL,
    "location_id" UUID NOT NULL,
    "tenant_id" UUID NOT NULL,
    "device_id" UUID NOT NULL,
    "payload" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "location_outbox_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");

-- CreateIndex
CREATE UNIQUE INDEX "tenants_name_key" ON "tenants"("name");

-- CreateIndex
CREATE INDEX "tenant_members_tenant_id_idx" ON "tenant_members"("tenant_id");

-- CreateIndex
CREATE INDEX "devices_tenant_id_idx" ON "devices"("tenant_id");

-- CreateIndex
CREATE UNIQUE INDEX "devices_tenant_id_id_key" ON "devices"("tenant_id", "id");

-- CreateIndex
CREATE INDEX "locations_device_id_recorded_at_seq_idx" ON "locations"("device_id", "recorded_at" DESC, "seq" DESC);

-- CreateIndex
CREATE UNIQUE INDEX "locations_device_id_seq_key" ON "locations"("device_id", "seq");

-- AddForeignKey
ALTER TABLE "tenant_members" ADD CONSTRAINT "tenant_members_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tenant_members" ADD CONSTRAINT "tenant_members_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "devices" ADD CONSTRAINT "devices_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "locations" ADD CONSTRAINT "locations_tenant_id_device_id_fkey" FOREIGN KEY ("tenant_id", "device_id") REFERENCES "devices"("tenant_id", "id") ON DELETE CASCADE ON UPDATE CASCADE;

-- ---------------------------------------------------------------------------------------------
-- CHECK constraints (defence in depth: the API validates the same ranges first)
-- ---------------------------------------------------------------------------------------------

ALTER TABLE "users" ADD CONSTRAINT "users_email_lower_check" CHECK ("email" = lower("email"));

ALTER TABLE "locations"
    ADD CONSTRAINT "locations_latitude_check" CHECK ("latitude" BETWEEN -90 AND 90),
    ADD CONSTRAINT "locations_longitude_check" CHECK ("longitude" BETWEEN -180 AND 180),
    ADD CONSTRAINT "locations_accuracy_check" CHECK ("accuracy" >= 0),
    ADD CONSTRAINT "locations_speed_check" CHECK ("speed" >= 0),
    ADD CONSTRAINT "locations_heading_check" CHECK ("heading" BETWEEN 0 AND 360);

-- ---------------------------------------------------------------------------------------------
-- Row-level security
-- ---------------------------------------------------------------------------------------------

-- The application role. Roles are cluster-wide, so this is idempotent (several databases of one
-- cluster share it) and tolerates a concurrent creation by another database's migration. It
-- cannot log in: giving it LOGIN and a password is an operator's job (tools/migrate.ts does it for
-- local development and tests when given APP_DATABASE_URL).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fleet_app') THEN
        BEGIN
            CREATE ROLE fleet_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created meanwhile by a migration of another database
        END;
    END IF;
END
$$;

-- Whatever an older cluster gave it, the application role never bypasses RLS. (Only altered when
-- needed: an unconditional ALTER ROLE would collide with concurrent migrations of other databases.)
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'fleet_app' AND (rolsuper OR rolbypassrls)) THEN
        ALTER ROLE fleet_app NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO fleet_app', current_schema());
END
$$;

-- Least privilege: only what the subgraphs, the bridge and the outbox relay do.
GRANT SELECT, INSERT, UPDATE ON "users" TO fleet_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON "tenants" TO fleet_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON "tenant_members" TO fleet_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON "devices" TO fleet_app;
GRANT SELECT, INSERT ON "locations" TO fleet_app;
-- UPDATE only so the relay can lock rows (SELECT ... FOR UPDATE SKIP LOCKED) before deleting them.
GRANT SELECT, INSERT, UPDATE, DELETE ON "location_outbox" TO fleet_app;
GRANT USAGE ON SEQUENCE "location_outbox_id_seq" TO fleet_app;

-- The request scope, set transaction-locally by lib/database.ts (`inScope`):
--   app.scope     'member' | 'admin' | 'system' | 'user' | '' (unset or '' sees nothing)
--   app.tenant_id the member's tenant (uuid text) or ''
--   app.user_id   the caller's user id (Cognito sub) or ''
-- Each function reads its setting without raising when it is unset and maps '' to NULL, so an
-- unset scope compares to NULL and matches no row. STABLE + LANGUAGE sql lets the planner inline
-- them and use an index on tenant_id.
CREATE FUNCTION app_current_scope() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.scope', true), '') $$;

CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

CREATE FUNCTION app_current_user() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('app.user_id', true), '') $$;

-- True for a platform ADMIN (all tenants) and for a platform process acting for no user.
CREATE FUNCTION app_is_platform() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(app_current_scope() IN ('admin', 'system'), false) $$;

-- True when the caller is a member of `tenant` (NULL, i.e. not visible, when no tenant is set).
CREATE FUNCTION app_is_tenant(tenant uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT app_current_scope() = 'member' AND tenant = app_current_tenant() $$;

REVOKE ALL ON FUNCTION app_current_scope(), app_current_tenant(), app_current_user(), app_is_platform(), app_is_tenant(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_current_scope(), app_current_tenant(), app_current_user(), app_is_platform(), app_is_tenant(uuid) TO fleet_app;

-- FORCE applies the policies to the tables' owner too (superusers still bypass them).
ALTER TABLE "users" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "users" FORCE ROW LEVEL SECURITY;
ALTER TABLE "tenants" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "tenants" FORCE ROW LEVEL SECURITY;
ALTER TABLE "tenant_members" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "tenant_members" FORCE ROW LEVEL SECURITY;
ALTER TABLE "devices" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "devices" FORCE ROW LEVEL SECURITY;
ALTER TABLE "locations" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "locations" FORCE ROW LEVEL SECURITY;
ALTER TABLE "location_outbox" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "location_outbox" FORCE ROW LEVEL SECURITY;

-- Tenant-owned tables: the platform sees and writes everything, a member only their tenant's
-- rows; WITH CHECK stops a member writing a row into another tenant.
CREATE POLICY "tenants_isolation" ON "tenants"
    USING (app_is_platform() OR app_is_tenant("id"))
    WITH CHECK (app_is_platform() OR app_is_tenant("id"));

CREATE POLICY "devices_isolation" ON "devices"
    USING (app_is_platform() OR app_is_tenant("tenant_id"))
    WITH CHECK (app_is_platform() OR app_is_tenant("tenant_id"));

CREATE POLICY "locations_isolation" ON "locations"
    USING (app_is_platform() OR app_is_tenant("tenant_id"))
    WITH CHECK (app_is_platform() OR app_is_tenant("tenant_id"));

CREATE POLICY "location_outbox_isolation" ON "location_outbox"
    USING (app_is_platform() OR app_is_tenant("tenant_id"))
    WITH CHECK (app_is_platform() OR app_is_tenant("tenant_id"));

CREATE POLICY "tenant_members_isolation" ON "tenant_members"
    USING (app_is_platform() OR app_is_tenant("tenant_id"))
    WITH CHECK (app_is_platform() OR app_is_tenant("tenant_id"));

-- Any signed-in caller may read their own membership (to learn their tenant).
CREATE POLICY "tenant_members_self_read" ON "tenant_members" FOR SELECT
    USING (app_current_scope() IS NOT NULL AND "user_id" = app_current_user());

-- Users: the platform reads and writes all rows (login upserts in 'system' scope); a signed-in
-- caller reads their own row; a member also reads the users who are members of their tenant
-- (the subquery is itself filtered by tenant_members' policies). Only the platform writes.
CREATE POLICY "users_read" ON "users" FOR SELECT
    USING (
        app_is_platform()
        OR (app_current_scope() IS NOT NULL AND "id" = app_current_user())
        OR (app_current_scope() = 'member' AND EXISTS (
            SELECT 1 FROM "tenant_members" m
            WHERE m."user_id" = "users"."id" AND m."tenant_id" = app_current_tenant()
        ))
    );

CREATE POLICY "users_platform_write" ON "users"
    USING (app_is_platform())
    WITH CHECK (app_is_platform());
