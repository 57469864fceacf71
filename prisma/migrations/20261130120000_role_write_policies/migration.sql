-- The database enforces role, not only tenant.
--
-- The init migration's policies were one per table FOR ALL: whatever a scope could read, it could
-- also write. Under a member's scope that let fleet_app rename or delete its own tenant (cascading
-- to its devices and locations), write tenant_members, delete devices or rename them, and delete
-- outbox rows before they were published; only resolver code stopped it. Here each table gets one
-- policy per command, and a member may write only what its resolvers write:
--   registerDevice  INSERT a device of its tenant, with its counter at 0
--   recordLocation  UPDATE that device's last_seq (upwards), INSERT locations and outbox rows
-- A signed-in user without a tenant ('user' scope) writes nothing. The platform ('admin', 'system')
-- keeps every write it had, except on the outbox, which only the relay ('system') consumes.
--
-- All scopes share the role fleet_app, so what must hold for every scope is a grant (devices: only
-- last_seq may be updated; nobody updates outbox rows) or a trigger (a counter never goes back).
-- prisma/README.md has the resulting table.

-- ---------------------------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------------------------

-- No process renames a device or moves it to another tenant; the only update is the counter.
REVOKE UPDATE ON "devices" FROM fleet_app;
GRANT UPDATE ("last_seq") ON "devices" TO fleet_app;

-- The relay reads and deletes outbox rows; nothing updates them.
REVOKE UPDATE ON "location_outbox" FROM fleet_app;

-- ---------------------------------------------------------------------------------------------
-- Policies, one per command
-- ---------------------------------------------------------------------------------------------

DROP POLICY "tenants_isolation" ON "tenants";
DROP POLICY "tenant_members_isolation" ON "tenant_members";
DROP POLICY "devices_isolation" ON "devices";
DROP POLICY "locations_isolation" ON "locations";
DROP POLICY "location_outbox_isolation" ON "location_outbox";
DROP POLICY "users_platform_write" ON "users";
-- Kept as they were: "tenant_members_self_read" and "users_read" (both FOR SELECT).

-- Tenants: a member reads its own; only the platform creates, renames or deletes one.
CREATE POLICY "tenants_read" ON "tenants" FOR SELECT
    USING (app_is_platform() OR app_is_tenant("id"));
CREATE POLICY "tenants_insert" ON "tenants" FOR INSERT
    WITH CHECK (app_is_platform());
CREATE POLICY "tenants_update" ON "tenants" FOR UPDATE
    USING (app_is_platform())
    WITH CHECK (app_is_platform());
CREATE POLICY "tenants_delete" ON "tenants" FOR DELETE
    USING (app_is_platform());

-- Memberships: a member reads its tenant's (and anyone their own, "tenant_members_self_read");
-- only the platform (addTenantMember, as ADMIN) writes them.
CREATE POLICY "tenant_members_read" ON "tenant_members" FOR SELECT
    USING (app_is_platform() OR app_is_tenant("tenant_id"));
CREATE POLICY "tenant_members_insert" ON "tenant_members" FOR INSERT
    WITH CHECK (app_is_platform());
CREATE POLICY "tenant_members_update" ON "tenant_members" FOR UPDATE
    USING (app_is_platform())
    WITH CHECK (app_is_platform());
CREATE POLICY "tenant_members_delete" ON "tenant_members" FOR DELETE
    USING (app_is_platform());

-- Devices: a member registers devices in its tenant (counter at 0) and advances their counters
-- (the column grant above limits every UPDATE to last_seq); only the platform deletes one.
CREATE POLICY "devices_read" ON "devices" FOR SELECT
    USING (app_is_platform() OR app_is_tenant("tenant_id"));
CREATE POLICY "devices_insert" ON "devices" FOR INSERT
    WITH CHECK (app_is_platform() OR (app_is_tenant("tenant_id") AND "last_seq" = 0));
CREATE POLICY "devices_update" ON "devices" FOR UPDATE
    USING (app_is_platform() OR app_is_tenant("tenant_id"))
    WITH CHECK (app_is_platform() OR app_is_tenant("tenant_id"));
CREATE POLICY "devices_delete" ON "devices" FOR DELETE
    USING (app_is_platform());

-- Locations are append-only (fleet_app has no UPDATE or DELETE grant on them).
CREATE POLICY "locations_read" ON "locations" FOR SELECT
    USING (app_is_platform() OR app_is_tenant("tenant_id"));
CREATE POLICY "locations_insert" ON "locations" FOR INSERT
    WITH CHECK (app_is_platform() OR app_is_tenant("tenant_id"));

-- The outbox: written with the location; deleted only by the relay, once Kafka has the row.
CREATE POLICY "location_outbox_read" ON "location_outbox" FOR SELECT
    USING (app_is_platform() OR app_is_tenant("tenant_id"));
CREATE POLICY "location_outbox_insert" ON "location_outbox" FOR INSERT
    WITH CHECK (app_is_platform() OR app_is_tenant("tenant_id"));
CREATE POLICY "location_outbox_delete" ON "location_outbox" FOR DELETE
    USING (app_current_scope() = 'system');

-- Users: only the platform writes them (login upserts in 'system' scope). DELETE is covered for
-- the platform as the old FOR ALL policy covered it; fleet_app has no DELETE grant on users today.
CREATE POLICY "users_insert" ON "users" FOR INSERT
    WITH CHECK (app_is_platform());
CREATE POLICY "users_update" ON "users" FOR UPDATE
    USING (app_is_platform())
    WITH CHECK (app_is_platform());
CREATE POLICY "users_delete" ON "users" FOR DELETE
    USING (app_is_platform());

-- ---------------------------------------------------------------------------------------------
-- A device's counter only moves forward
-- ---------------------------------------------------------------------------------------------

-- Sequences already handed out must never be handed out again: winding last_seq back would make
-- the next accepted location collide with (device_id, seq) or, worse, reorder what subscribers see.
-- Holds for every scope (and the owner), so it is a trigger rather than a policy.
CREATE FUNCTION devices_last_seq_only_grows() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW."last_seq" < OLD."last_seq" THEN
        RAISE EXCEPTION 'devices.last_seq may only grow (% to %)', OLD."last_seq", NEW."last_seq"
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER "devices_last_seq_only_grows" BEFORE UPDATE OF "last_seq" ON "devices"
    FOR EACH ROW EXECUTE FUNCTION devices_last_seq_only_grows();
