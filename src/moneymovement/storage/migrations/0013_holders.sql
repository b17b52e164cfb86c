-- Holders (docs/platforms.md): whoever a tenant's accounts belong to (a platform's
-- sellers, drivers, merchants), each with an external id unique in its tenant, a name,
-- metadata and a state (ACTIVE, RESTRICTED: its accounts take no new debits, CLOSED:
-- for good, once all its accounts are closed).
CREATE TABLE holders (
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    holder_id    text NOT NULL CHECK (holder_id ~ '^hld_[a-z2-7]{26}$'),
    external_id  text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 128),
    name         text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    metadata     jsonb NOT NULL DEFAULT '{}',
    state        text NOT NULL CHECK (state IN ('ACTIVE', 'RESTRICTED', 'CLOSED')),
    version      bigint NOT NULL CHECK (version >= 1),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, holder_id),
    CONSTRAINT holders_external_id UNIQUE (tenant_id, external_id)
);
-- ListHolders: newest first, as ListAccounts.
CREATE INDEX holders_newest_first ON holders (tenant_id, created_at DESC, holder_id DESC);

-- An account's holder as a reference the database checks. accounts.holder_id stays the
-- free-form text it always was (existing rows keep any string, old clients send any
-- string, ListAccounts and the events still filter on it); holder_ref is set, to the
-- same value, only when an account is opened for a holder by its hld_ id, and then the
-- holder must exist in the account's tenant. Existing rows keep NULL: nothing written
-- before holders existed named one (a free-form string that merely looks like a hld_
-- id stays free-form).
ALTER TABLE accounts
    ADD COLUMN holder_ref text,
    ADD CONSTRAINT accounts_holder_ref_is_holder_id
        CHECK (holder_ref IS NULL OR holder_ref = holder_id),
    ADD CONSTRAINT accounts_holder_ref_fkey FOREIGN KEY (tenant_id, holder_ref)
        REFERENCES holders (tenant_id, holder_id);
-- A holder's accounts: the restriction's, closing's and GetHolderBalances' reads.
CREATE INDEX accounts_of_holder ON accounts (tenant_id, holder_ref)
    WHERE holder_ref IS NOT NULL;

-- The holders' events (docs/events.md).
ALTER TABLE events
    DROP CONSTRAINT events_type_check,
    ADD CONSTRAINT events_type_check CHECK (type IN (
        'ACCOUNT_CREATED', 'ACCOUNT_UPDATED', 'ACCOUNT_FROZEN', 'ACCOUNT_UNFROZEN',
        'ACCOUNT_CLOSED', 'TRANSFER_CREATED', 'TRANSFER_POSTED', 'TRANSFER_VOIDED',
        'TRANSFER_EXPIRED', 'TRANSFER_REVERSED', 'BATCH_COMMITTED', 'FUNDS_RELEASED',
        'BALANCE_MONITOR_TRIGGERED', 'BALANCE_MONITOR_CLEARED', 'PAYOUT_CREATED',
        'PAYOUT_PROCESSING', 'PAYOUT_POSTED', 'PAYOUT_FAILED', 'PAYOUT_CANCELED',
        'PAYOUT_RETURNED', 'INBOUND_TRANSFER_RECEIVED', 'INBOUND_TRANSFER_RETURNED',
        'TRANSFER_CAPTURED', 'TRANSFER_INCREMENTED', 'TRANSFER_EXTENDED',
        'HOLDER_CREATED', 'HOLDER_UPDATED'));

ALTER TABLE holders ENABLE ROW LEVEL SECURITY;
ALTER TABLE holders FORCE ROW LEVEL SECURITY;

DO $$
DECLARE
    role_name text := (SELECT name FROM service_role);
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON holders TO %I', role_name);
    EXECUTE format('CREATE POLICY tenant_isolation ON holders TO %I '
                   'USING (tenant_id = current_setting(''moneymovement.tenant_id'', true)) '
                   'WITH CHECK (tenant_id = current_setting(''moneymovement.tenant_id'', '
                   'true))', role_name);
    EXECUTE format('CREATE POLICY ledger_owner ON holders TO %I USING (true)', current_user);
END
$$;
