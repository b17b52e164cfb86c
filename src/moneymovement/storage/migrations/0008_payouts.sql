-- Money in and out over bank rails (docs/payouts.md): external accounts (bank
-- destinations), payouts and inbound transfers. A payout's or inbound transfer's money
-- moves in ordinary transfers that it owns; each state change of one is one transaction
-- with its ledger movements and its event. Columns are appended to `transfers`, so its row
-- type (which write_batch sends) keeps its earlier columns in place.

-- The payout or inbound transfer a transfer belongs to: only it moves the transfer (the
-- transfer RPCs refuse to post, void or reverse it), and such a hold never expires (a
-- payout's hold lasts as long as the rail takes).
ALTER TABLE transfers ADD COLUMN owner_id text;

DO $$
BEGIN
    -- The first migration's unnamed "a hold has an expiry" check, found by what it says.
    EXECUTE (SELECT format('ALTER TABLE transfers DROP CONSTRAINT %I', conname)
             FROM pg_constraint
             WHERE conrelid = 'transfers'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%expires_at IS NOT NULL%');
END
$$;

ALTER TABLE transfers ADD CONSTRAINT transfers_pending_expires_unless_owned
    CHECK (state <> 'PENDING' OR expires_at IS NOT NULL OR owner_id IS NOT NULL);

-- A bank destination: what a ledger needs of it, never the full account number.
CREATE TABLE external_accounts (
    tenant_id            text NOT NULL,
    external_account_id  text NOT NULL,
    rail                 text NOT NULL,
    currency_code        text NOT NULL,
    routing_reference    text NOT NULL CHECK (length(routing_reference) BETWEEN 1 AND 64),
    last4                text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    -- A keyed hash of the routing reference and account number: the same destination
    -- registered twice has the same fingerprint (within a tenant).
    fingerprint          text NOT NULL,
    holder_name          text NOT NULL DEFAULT '' CHECK (length(holder_name) <= 200),
    metadata             jsonb NOT NULL DEFAULT '{}',
    state                text NOT NULL CHECK (state IN ('ACTIVE', 'DISABLED')),
    request_id           text NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, external_account_id)
);

CREATE INDEX external_accounts_newest_first
    ON external_accounts (tenant_id, created_at DESC, external_account_id DESC);
CREATE INDEX external_accounts_by_fingerprint ON external_accounts (tenant_id, fingerprint);

-- A payout: PENDING -> PROCESSING -> POSTED (-> RETURNED), or FAILED, or CANCELED (only
-- from PENDING). Its amount (and fee) are held on the source account from creation; the
-- holds are captured when it posts, voided when it fails or is canceled; a return is a
-- new transfer back from the rail's settlement account.
CREATE TABLE payouts (
    tenant_id              text NOT NULL,
    payout_id              text NOT NULL,
    request_id             text NOT NULL,
    account_id             text NOT NULL,
    external_account_id    text NOT NULL,
    settlement_account_id  text NOT NULL,
    rail                   text NOT NULL,
    amount_minor           bigint NOT NULL CHECK (amount_minor > 0),
    currency_code          text NOT NULL,
    method                 text NOT NULL CHECK (method IN ('STANDARD', 'INSTANT')),
    description            text NOT NULL DEFAULT '',
    metadata               jsonb NOT NULL DEFAULT '{}',
    state                  text NOT NULL CHECK (state IN ('PENDING', 'PROCESSING', 'POSTED',
                                                          'FAILED', 'CANCELED', 'RETURNED')),
    hold_transfer_id       text NOT NULL,
    fee_minor              bigint NOT NULL DEFAULT 0 CHECK (fee_minor >= 0),
    fee_account_id         text,
    fee_transfer_id        text,
    return_transfer_id     text,
    failure_reason         text NOT NULL DEFAULT '',
    return_reason          text NOT NULL DEFAULT '',
    -- When the worker may hand it to the rail (a STANDARD payout waits for its cut-off).
    submit_after           timestamptz NOT NULL,
    trace_id               text,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    processing_at          timestamptz,
    settled_at             timestamptz,
    returned_at            timestamptz,
    PRIMARY KEY (tenant_id, payout_id),
    UNIQUE (tenant_id, hold_transfer_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id),
    FOREIGN KEY (tenant_id, external_account_id)
        REFERENCES external_accounts (tenant_id, external_account_id),
    FOREIGN KEY (tenant_id, hold_transfer_id) REFERENCES transfers (tenant_id, transfer_id),
    FOREIGN KEY (tenant_id, fee_transfer_id) REFERENCES transfers (tenant_id, transfer_id),
    FOREIGN KEY (tenant_id, return_transfer_id) REFERENCES transfers (tenant_id, transfer_id),
    CHECK ((fee_minor > 0) = (fee_transfer_id IS NOT NULL)),
    CHECK ((state = 'RETURNED') = (return_transfer_id IS NOT NULL)),
    CHECK ((state IN ('POSTED', 'FAILED', 'CANCELED', 'RETURNED')) = (settled_at IS NOT NULL))
);

CREATE INDEX payouts_newest_first ON payouts (tenant_id, created_at DESC, payout_id DESC);
CREATE INDEX payouts_by_account ON payouts (tenant_id, account_id, created_at DESC, payout_id DESC);
CREATE INDEX payouts_to_submit ON payouts (submit_after) WHERE state = 'PENDING';
CREATE INDEX payouts_in_flight ON payouts (processing_at) WHERE state = 'PROCESSING';
CREATE INDEX payouts_recently_posted ON payouts (settled_at) WHERE state = 'POSTED';

-- Money that arrived from a rail, credited to an account: RECEIVED, then perhaps
-- RETURNED (the rail took it back: the credit is reversed). The rail's own reference is
-- unique per rail: a notice delivered twice credits once.
CREATE TABLE inbound_transfers (
    tenant_id              text NOT NULL,
    inbound_id             text NOT NULL,
    request_id             text NOT NULL,
    rail                   text NOT NULL,
    rail_reference         text NOT NULL,
    account_id             text NOT NULL,
    settlement_account_id  text NOT NULL,
    amount_minor           bigint NOT NULL CHECK (amount_minor > 0),
    currency_code          text NOT NULL,
    description            text NOT NULL DEFAULT '',
    state                  text NOT NULL CHECK (state IN ('RECEIVED', 'RETURNED')),
    transfer_id            text NOT NULL,
    return_transfer_id     text,
    return_reason          text NOT NULL DEFAULT '',
    trace_id               text,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    returned_at            timestamptz,
    PRIMARY KEY (tenant_id, inbound_id),
    UNIQUE (tenant_id, rail, rail_reference),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id),
    FOREIGN KEY (tenant_id, transfer_id) REFERENCES transfers (tenant_id, transfer_id),
    FOREIGN KEY (tenant_id, return_transfer_id) REFERENCES transfers (tenant_id, transfer_id),
    CHECK ((state = 'RETURNED') = (return_transfer_id IS NOT NULL))
);

CREATE INDEX inbound_transfers_newest_first
    ON inbound_transfers (tenant_id, created_at DESC, inbound_id DESC);

ALTER TABLE events
    DROP CONSTRAINT events_type_check,
    ADD CONSTRAINT events_type_check CHECK (type IN (
        'ACCOUNT_CREATED', 'ACCOUNT_UPDATED', 'ACCOUNT_FROZEN', 'ACCOUNT_UNFROZEN',
        'ACCOUNT_CLOSED', 'TRANSFER_CREATED', 'TRANSFER_POSTED', 'TRANSFER_VOIDED',
        'TRANSFER_EXPIRED', 'TRANSFER_REVERSED', 'BATCH_COMMITTED', 'FUNDS_RELEASED',
        'BALANCE_MONITOR_TRIGGERED', 'BALANCE_MONITOR_CLEARED', 'PAYOUT_CREATED',
        'PAYOUT_PROCESSING', 'PAYOUT_POSTED', 'PAYOUT_FAILED', 'PAYOUT_CANCELED',
        'PAYOUT_RETURNED', 'INBOUND_TRANSFER_RECEIVED', 'INBOUND_TRANSFER_RETURNED'));

ALTER TABLE external_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE external_accounts FORCE ROW LEVEL SECURITY;
ALTER TABLE payouts ENABLE ROW LEVEL SECURITY;
ALTER TABLE payouts FORCE ROW LEVEL SECURITY;
ALTER TABLE inbound_transfers ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbound_transfers FORCE ROW LEVEL SECURITY;

-- The payout worker's cross-tenant reads, as the owner (like expired_holds): payouts due
-- to be handed to the rail, and payouts at the rail (PROCESSING) or POSTED within the
-- window a rail may still return them. Each is then moved in a transaction of its tenant.
CREATE FUNCTION payouts_to_submit(max_rows integer)
RETURNS TABLE (tenant_id text, payout_id text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT p.tenant_id, p.payout_id FROM payouts AS p
    WHERE p.state = 'PENDING' AND p.submit_after <= now()
    ORDER BY p.submit_after
    LIMIT max_rows
$$;
REVOKE ALL ON FUNCTION payouts_to_submit(integer) FROM PUBLIC;

CREATE FUNCTION payouts_in_flight(max_rows integer, returns_within interval)
RETURNS TABLE (tenant_id text, payout_id text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    (SELECT p.tenant_id, p.payout_id FROM payouts AS p
     WHERE p.state = 'PROCESSING'
     ORDER BY p.processing_at
     LIMIT max_rows)
    UNION ALL
    (SELECT p.tenant_id, p.payout_id FROM payouts AS p
     WHERE p.state = 'POSTED' AND p.settled_at > now() - returns_within
     ORDER BY p.settled_at DESC
     LIMIT max_rows)
$$;
REVOKE ALL ON FUNCTION payouts_in_flight(integer, interval) FROM PUBLIC;

DO $$
DECLARE
    role_name text := (SELECT name FROM service_role);
    tbl text;
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION payouts_to_submit(integer) TO %I', role_name);
    EXECUTE format('GRANT EXECUTE ON FUNCTION payouts_in_flight(integer, interval) TO %I', role_name);
    FOREACH tbl IN ARRAY ARRAY['external_accounts', 'payouts', 'inbound_transfers']
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO %I', tbl, role_name);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I TO %I '
                       'USING (tenant_id = current_setting(''moneymovement.tenant_id'', true)) '
                       'WITH CHECK (tenant_id = current_setting(''moneymovement.tenant_id'', '
                       'true))', tbl, role_name);
        EXECUTE format('CREATE POLICY ledger_owner ON %I TO %I USING (true)', tbl, current_user);
    END LOOP;
END
$$;
