-- The service's role, one per database, and usable on PostgreSQL 16+.
--
-- 0003 used one role, moneymovement_service, for every database of a server. Roles are
-- server-wide, so the owner of another moneymovement database on the same server, made
-- a member of it by its own migration, could SET ROLE to it here and read this ledger.
-- And on PostgreSQL 16+ a non-superuser who creates a role gets ADMIN on it but not SET,
-- so the service could not switch to it at all.
--
-- Now each database makes its own role, with a random name recorded in `service_role`;
-- the pool reads the name and switches to it (storage/sql/sessions.sql). The old role
-- keeps nothing here: its grants and policies move to the new one.

CREATE TABLE service_role (
    name       text PRIMARY KEY CHECK (name ~ '^mm_service_[0-9a-f]{16}$'),
    singleton  boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton)
);
-- Read at connection start, before the switch, by whichever login the service uses.
GRANT SELECT ON service_role TO PUBLIC;

DO $$
DECLARE
    role_name text := 'mm_service_' || substr(md5(random()::text || clock_timestamp()::text), 1, 16);
BEGIN
    EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT', role_name);
    -- SET ROLE needs membership with the SET option (PostgreSQL 16+), plain membership
    -- before that. A superuser needs neither, and a grant to one is harmless.
    IF current_setting('server_version_num')::int >= 160000 THEN
        EXECUTE format('GRANT %I TO %I WITH INHERIT FALSE, SET TRUE', role_name, current_user);
    ELSE
        EXECUTE format('GRANT %I TO %I', role_name, current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', role_name);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON accounts, transfers, entries, '
                   'request_outcomes, tenants, api_tokens TO %I', role_name);
    EXECUTE format('GRANT EXECUTE ON FUNCTION expired_holds(integer) TO %I', role_name);
    EXECUTE format('ALTER POLICY tenant_isolation ON accounts TO %I', role_name);
    EXECUTE format('ALTER POLICY tenant_isolation ON transfers TO %I', role_name);
    EXECUTE format('ALTER POLICY tenant_isolation ON entries TO %I', role_name);
    EXECUTE format('ALTER POLICY tenant_isolation ON request_outcomes TO %I', role_name);
    INSERT INTO service_role (name) VALUES (role_name);
END
$$;

-- The shared role of 0003 keeps no access to this database.
REVOKE ALL ON accounts, transfers, entries, request_outcomes, tenants, api_tokens
    FROM moneymovement_service;
REVOKE ALL ON FUNCTION expired_holds(integer) FROM moneymovement_service;
REVOKE ALL ON SCHEMA public FROM moneymovement_service;
