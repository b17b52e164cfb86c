-- Assets beyond ISO 4217 (docs/assets.md): a tenant registers asset codes of its own,
-- each with its exponent, and opens accounts in them like in any currency.

-- A tenant's asset. Never changed or deleted once registered (accounts count in it):
-- the service role may read and insert, nothing else, so the write pipeline can read
-- one without locking it and a listing outside the write transaction stays true.
CREATE TABLE assets (
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    code         text NOT NULL CHECK (code ~ '^[A-Z][A-Z0-9]{2,11}$'),
    exponent     smallint NOT NULL CHECK (exponent BETWEEN 0 AND 18),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    request_id   text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, code)
);

-- An account's currency is an ISO 4217 code or a tenant asset's: the first migration's
-- unnamed three-letter check, found by what it says, gives way to the assets' shape
-- (which every three-letter code has). Added NOT VALID, then validated: the rows there
-- all pass, and validating takes no lock that stops writes.
DO $$
BEGIN
    EXECUTE (SELECT format('ALTER TABLE accounts DROP CONSTRAINT %I', conname)
             FROM pg_constraint
             WHERE conrelid = 'accounts'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%currency_code ~ %[A-Z]{3}%');
END
$$;
ALTER TABLE accounts ADD CONSTRAINT accounts_currency_code_shape
    CHECK (currency_code ~ '^[A-Z][A-Z0-9]{2,11}$') NOT VALID;
ALTER TABLE accounts VALIDATE CONSTRAINT accounts_currency_code_shape;

-- The database's own guard that an account's code longer than three characters, or
-- with a digit, is one of its tenant's assets (a three-letter code may be ISO 4217,
-- whose table only the code has: the write pipeline checks those, domain/assets.py).
-- Fires only for such codes, so an ISO account costs nothing; after the row's checks,
-- so a malformed code is the shape check's to refuse; runs as the inserting role, whose
-- row-level security shows it its own tenant's assets only.
CREATE FUNCTION accounts_asset_registered() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM assets AS s
                   WHERE s.tenant_id = NEW.tenant_id AND s.code = NEW.currency_code) THEN
        RAISE EXCEPTION 'currency % is not an asset of tenant %', NEW.currency_code, NEW.tenant_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_asset_registered
    AFTER INSERT ON accounts FOR EACH ROW
    WHEN (NEW.currency_code !~ '^[A-Z]{3}$')
    EXECUTE FUNCTION accounts_asset_registered();

ALTER TABLE assets ENABLE ROW LEVEL SECURITY;
ALTER TABLE assets FORCE ROW LEVEL SECURITY;

DO $$
DECLARE
    role_name text := (SELECT name FROM service_role);
BEGIN
    EXECUTE format('GRANT SELECT, INSERT ON assets TO %I', role_name);
    EXECUTE format('GRANT EXECUTE ON FUNCTION accounts_asset_registered() TO %I', role_name);
    EXECUTE format('CREATE POLICY tenant_isolation ON assets TO %I '
                   'USING (tenant_id = current_setting(''moneymovement.tenant_id'', true)) '
                   'WITH CHECK (tenant_id = current_setting(''moneymovement.tenant_id'', '
                   'true))', role_name);
    EXECUTE format('CREATE POLICY ledger_owner ON assets TO %I USING (true)', current_user);
END
$$;
