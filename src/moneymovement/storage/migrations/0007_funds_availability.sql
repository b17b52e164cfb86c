-- Funds accessibility (docs/funds-availability.md): credits that become available later,
-- rolling and minimum reserves, early release, debit limits, a debit-only freeze, and
-- balance monitors. Columns are appended, so the tables' row types (which write_batch
-- sends) keep their earlier columns in place.

-- The account's two new totals: the unended AVAILABILITY and RESERVE parts of its credits
-- (scheduled_funds below). Both are in the posted balance and neither is available.
ALTER TABLE accounts
    ADD COLUMN pending_availability_minor bigint NOT NULL DEFAULT 0
        CHECK (pending_availability_minor >= 0),
    ADD COLUMN reserved_minor bigint NOT NULL DEFAULT 0 CHECK (reserved_minor >= 0),
    -- The account's funds policy as the domain writes it (domain/policies.py): availability
    -- delay, reserves, early release, debit limits, maximum balance. '{}' is no policy.
    ADD COLUMN funds_policy jsonb NOT NULL DEFAULT '{}',
    -- What a freeze stops: ALL (every transfer, as before) or DEBITS (money out only).
    ADD COLUMN freeze_scope text CHECK (freeze_scope IN ('ALL', 'DEBITS')),
    ADD COLUMN freeze_reason text NOT NULL DEFAULT '' CHECK (length(freeze_reason) <= 500);

UPDATE accounts SET freeze_scope = 'ALL' WHERE state = 'FROZEN';

ALTER TABLE accounts
    ADD CONSTRAINT accounts_freeze_scope_when_frozen
        CHECK ((state = 'FROZEN') = (freeze_scope IS NOT NULL)),
    -- Invariant 3, now with the parts that are posted but not available yet.
    DROP CONSTRAINT accounts_within_overdraft_policy,
    ADD CONSTRAINT accounts_within_overdraft_policy CHECK (
        overdraft_mode = 'UNLIMITED'
        OR CASE normal_balance
            WHEN 'CREDIT' THEN posted_credits_minor::numeric - posted_debits_minor
                               - pending_debits_minor
            ELSE posted_debits_minor::numeric - posted_credits_minor - pending_credits_minor
           END - pending_availability_minor - reserved_minor >= -overdraft_limit_minor
    ),
    DROP CONSTRAINT accounts_closed_only_when_empty,
    ADD CONSTRAINT accounts_closed_only_when_empty CHECK (
        state <> 'CLOSED'
        OR (posted_debits_minor = posted_credits_minor
            AND pending_debits_minor = 0 AND pending_credits_minor = 0
            AND pending_availability_minor = 0 AND reserved_minor = 0)
    ),
    -- Only a credit-normal account (a balance someone owns) has availability or reserves.
    ADD CONSTRAINT accounts_availability_on_credit_normal CHECK (
        normal_balance = 'CREDIT' OR (pending_availability_minor = 0 AND reserved_minor = 0)
    );

-- The new event types (domain/events.py).
ALTER TABLE events
    DROP CONSTRAINT events_type_check,
    ADD CONSTRAINT events_type_check CHECK (type IN (
        'ACCOUNT_CREATED', 'ACCOUNT_UPDATED', 'ACCOUNT_FROZEN', 'ACCOUNT_UNFROZEN',
        'ACCOUNT_CLOSED', 'TRANSFER_CREATED', 'TRANSFER_POSTED', 'TRANSFER_VOIDED',
        'TRANSFER_EXPIRED', 'TRANSFER_REVERSED', 'BATCH_COMMITTED', 'FUNDS_RELEASED',
        'BALANCE_MONITOR_TRIGGERED', 'BALANCE_MONITOR_CLEARED'));

-- The running values of the two new totals after each entry, for statements.
ALTER TABLE entries
    ADD COLUMN pending_availability_minor bigint NOT NULL DEFAULT 0
        CHECK (pending_availability_minor >= 0),
    ADD COLUMN reserved_minor bigint NOT NULL DEFAULT 0 CHECK (reserved_minor >= 0);

-- The availability a transfer asked for, as asked: a time, or a delay from its posting.
ALTER TABLE transfers
    ADD COLUMN available_at timestamptz,
    ADD COLUMN availability_delay interval,
    ADD CONSTRAINT transfers_one_availability
        CHECK (available_at IS NULL OR availability_delay IS NULL);

-- The parts of credits that are not available yet, each ending once: RELEASED by the
-- sweeper at or after its time, RELEASED_EARLY by ReleaseFunds, REVERSED when a reversal
-- of its credit takes it back. A part that ends for less than its amount hands the rest
-- to a remainder row (same transfer, kind and time). Rows are inserted, then ended; no
-- other change is ever made, so "what was pending at time T" is the rows alive at T.
CREATE TABLE scheduled_funds (
    tenant_id           text NOT NULL,
    funds_id            text NOT NULL,
    account_id          text NOT NULL,
    transfer_id         text NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('AVAILABILITY', 'RESERVE')),
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    available_at        timestamptz NOT NULL,
    remainder_of_id     text,
    created_at          timestamptz NOT NULL,
    ended_at            timestamptz,
    end_kind            text CHECK (end_kind IN ('RELEASED', 'RELEASED_EARLY', 'REVERSED')),
    ended_amount_minor  bigint,
    end_request_id      text,
    remainder_id        text,
    PRIMARY KEY (tenant_id, funds_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id),
    FOREIGN KEY (tenant_id, transfer_id) REFERENCES transfers (tenant_id, transfer_id),
    FOREIGN KEY (tenant_id, remainder_of_id) REFERENCES scheduled_funds (tenant_id, funds_id),
    CHECK ((ended_at IS NULL) = (end_kind IS NULL)),
    CHECK ((ended_at IS NULL) = (ended_amount_minor IS NULL)),
    CHECK (ended_amount_minor BETWEEN 1 AND amount_minor),
    -- A remainder exactly when the row ended for less than all of it.
    CHECK ((remainder_id IS NOT NULL) = (ended_amount_minor < amount_minor)),
    -- The sweeper never releases a part before its time.
    CHECK (end_kind IS DISTINCT FROM 'RELEASED' OR ended_at >= available_at)
);

CREATE INDEX scheduled_funds_due ON scheduled_funds (available_at) WHERE ended_at IS NULL;
CREATE INDEX scheduled_funds_by_account
    ON scheduled_funds (tenant_id, account_id, available_at, funds_id);
CREATE INDEX scheduled_funds_open_by_account
    ON scheduled_funds (tenant_id, account_id, available_at) WHERE ended_at IS NULL;
CREATE INDEX scheduled_funds_by_transfer ON scheduled_funds (tenant_id, transfer_id)
    WHERE ended_at IS NULL;

-- Conditions on an account's balances, edge-triggered: `triggered` is whether the
-- condition held after the last change; each flip is an event.
CREATE TABLE balance_monitors (
    tenant_id        text NOT NULL,
    monitor_id       text NOT NULL,
    account_id       text NOT NULL,
    field            text NOT NULL CHECK (field IN ('AVAILABLE', 'POSTED', 'PENDING_AVAILABILITY',
                                                    'RESERVED', 'PENDING_INBOUND',
                                                    'PENDING_OUTBOUND')),
    operator         text NOT NULL CHECK (operator IN ('BELOW', 'AT_OR_BELOW', 'ABOVE',
                                                       'AT_OR_ABOVE')),
    threshold_minor  bigint NOT NULL,
    description      text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    triggered        boolean NOT NULL,
    deleted          boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, monitor_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id)
);

CREATE INDEX balance_monitors_by_account ON balance_monitors (tenant_id, account_id)
    WHERE NOT deleted;

-- Every change of an account's funds policy, with who asked: the audit trail. Policy
-- changes apply to credits after them; parts already scheduled keep their times.
CREATE TABLE account_policy_changes (
    tenant_id    text NOT NULL,
    account_id   text NOT NULL,
    version      bigint NOT NULL,
    before       jsonb NOT NULL,
    after        jsonb NOT NULL,
    request_id   text NOT NULL,
    trace_id     text,
    changed_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, account_id, version),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id)
);

ALTER TABLE scheduled_funds ENABLE ROW LEVEL SECURITY;
ALTER TABLE scheduled_funds FORCE ROW LEVEL SECURITY;
ALTER TABLE balance_monitors ENABLE ROW LEVEL SECURITY;
ALTER TABLE balance_monitors FORCE ROW LEVEL SECURITY;
ALTER TABLE account_policy_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE account_policy_changes FORCE ROW LEVEL SECURITY;

-- The sweeper's cross-tenant read, as the owner (like expired_holds): the accounts with
-- parts due now. Each account's parts are then released in a transaction of its tenant.
CREATE FUNCTION accounts_with_due_funds(max_rows integer)
RETURNS TABLE (tenant_id text, account_id text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT f.tenant_id, f.account_id FROM scheduled_funds AS f
    WHERE f.ended_at IS NULL AND f.available_at <= now()
    GROUP BY f.tenant_id, f.account_id
    ORDER BY min(f.available_at)
    LIMIT max_rows
$$;
REVOKE ALL ON FUNCTION accounts_with_due_funds(integer) FROM PUBLIC;

DO $$
DECLARE
    role_name text := (SELECT name FROM service_role);
    tbl text;
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION accounts_with_due_funds(integer) TO %I',
                   role_name);
    FOREACH tbl IN ARRAY ARRAY['scheduled_funds', 'balance_monitors', 'account_policy_changes']
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
