-- Tenant isolation in the database itself, beneath the tenant filter of every query.
--
-- The service works as a role that owns nothing (0004: one per database; here, first,
-- the shared moneymovement_service), switched to on each new connection. Row-level
-- security is enabled and forced on every tenant-owned table, and that role's policy lets a
-- transaction see and write only rows of the tenant it declared with
-- set_config('moneymovement.tenant_id', <tenant>, true) when it began. A transaction that
-- declared none sees nothing. A query that forgot its tenant filter therefore still
-- cannot read or change another tenant's money.
--
-- The owner (whoever runs the migrations) keeps full access for migrations, `verify`
-- and the sweeper's cross-tenant scan, by an explicit policy: FORCE makes row-level
-- security apply to the owner too, so no other role gets anything by accident.

-- (Superseded by 0004, which gives each database a role of its own; this shared role is
-- kept for databases migrated before it, and keeps nothing once 0004 has run. Both
-- blocks tolerate a second database on the same server: the role may already exist, and
-- on PostgreSQL 16+ only its creator or a superuser may grant it.)
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'moneymovement_service') THEN
        CREATE ROLE moneymovement_service NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- another database's migration created it meanwhile
END
$$;

DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'moneymovement_service', 'MEMBER') THEN
        EXECUTE format('GRANT moneymovement_service TO %I', current_user);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    NULL;  -- not needed any more: 0004 switches the service to a role of this database
END
$$;

GRANT USAGE ON SCHEMA public TO moneymovement_service;
GRANT SELECT, INSERT, UPDATE ON accounts, transfers, entries, request_outcomes
    TO moneymovement_service;
-- The directory is not tenant data: a token is resolved before the tenant is known.
GRANT SELECT, INSERT, UPDATE ON tenants, api_tokens TO moneymovement_service;

ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
ALTER TABLE transfers ENABLE ROW LEVEL SECURITY;
ALTER TABLE transfers FORCE ROW LEVEL SECURITY;
ALTER TABLE entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE entries FORCE ROW LEVEL SECURITY;
ALTER TABLE request_outcomes ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_outcomes FORCE ROW LEVEL SECURITY;

-- current_setting(..., true) is NULL when nothing was declared, and NULL matches no row.
CREATE POLICY tenant_isolation ON accounts TO moneymovement_service
    USING (tenant_id = current_setting('moneymovement.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('moneymovement.tenant_id', true));
CREATE POLICY tenant_isolation ON transfers TO moneymovement_service
    USING (tenant_id = current_setting('moneymovement.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('moneymovement.tenant_id', true));
CREATE POLICY tenant_isolation ON entries TO moneymovement_service
    USING (tenant_id = current_setting('moneymovement.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('moneymovement.tenant_id', true));
CREATE POLICY tenant_isolation ON request_outcomes TO moneymovement_service
    USING (tenant_id = current_setting('moneymovement.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('moneymovement.tenant_id', true));

DO $$
BEGIN
    EXECUTE format('CREATE POLICY ledger_owner ON accounts TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY ledger_owner ON transfers TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY ledger_owner ON entries TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY ledger_owner ON request_outcomes TO %I USING (true)',
                   current_user);
END
$$;

-- The sweeper's one cross-tenant read, as the owner: which holds are past their expiry.
-- It returns ids only; each hold is then expired in a transaction of its own tenant.
CREATE FUNCTION expired_holds(max_rows integer)
RETURNS TABLE (tenant_id text, transfer_id text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT t.tenant_id, t.transfer_id FROM transfers AS t
    WHERE t.state = 'PENDING' AND t.expires_at <= now()
    ORDER BY t.expires_at
    LIMIT max_rows
$$;
REVOKE ALL ON FUNCTION expired_holds(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION expired_holds(integer) TO moneymovement_service;
