-- The ledger: tenants, accounts, transfers, entries and request outcomes.
-- Every tenant-owned table has the tenant id as the first column of its keys, so that
-- each query is tenant-scoped by its index and a future sharded engine can split by it.
-- Money is bigint minor units. The constraints below back the invariants the code checks.

CREATE TABLE tenants (
    tenant_id   text PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens, stored only as SHA-256 digests.
CREATE TABLE api_tokens (
    token_id      text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (tenant_id),
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE accounts (
    tenant_id              text NOT NULL REFERENCES tenants (tenant_id),
    account_id             text NOT NULL,
    external_id            text,
    name                   text NOT NULL DEFAULT '',
    currency_code          text NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    normal_balance         text NOT NULL CHECK (normal_balance IN ('CREDIT', 'DEBIT')),
    overdraft_mode         text NOT NULL CHECK (overdraft_mode IN ('NONE', 'LIMITED', 'UNLIMITED')),
    overdraft_limit_minor  bigint NOT NULL DEFAULT 0 CHECK (overdraft_limit_minor >= 0),
    holder_id              text NOT NULL DEFAULT '',
    metadata               jsonb NOT NULL DEFAULT '{}',
    state                  text NOT NULL CHECK (state IN ('ACTIVE', 'FROZEN', 'CLOSED')),
    posted_debits_minor    bigint NOT NULL DEFAULT 0 CHECK (posted_debits_minor >= 0),
    posted_credits_minor   bigint NOT NULL DEFAULT 0 CHECK (posted_credits_minor >= 0),
    pending_debits_minor   bigint NOT NULL DEFAULT 0 CHECK (pending_debits_minor >= 0),
    pending_credits_minor  bigint NOT NULL DEFAULT 0 CHECK (pending_credits_minor >= 0),
    -- Starts at 1, so that expected_version = 0 can mean "do not check".
    version                bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id),
    -- Lets transfers reference (account, currency), so the database itself refuses a
    -- transfer whose currency differs from an account's.
    UNIQUE (tenant_id, account_id, currency_code),
    CONSTRAINT accounts_limit_needs_limited_mode
        CHECK (overdraft_mode = 'LIMITED' OR overdraft_limit_minor = 0),
    -- Invariant 3: the available balance (posted minus pending outbound, signed by the
    -- normal balance) never goes below the overdraft floor. numeric: no overflow here.
    CONSTRAINT accounts_within_overdraft_policy CHECK (
        overdraft_mode = 'UNLIMITED'
        OR CASE normal_balance
            WHEN 'CREDIT' THEN posted_credits_minor::numeric - posted_debits_minor
                               - pending_debits_minor
            ELSE posted_debits_minor::numeric - posted_credits_minor - pending_credits_minor
           END >= -overdraft_limit_minor
    ),
    CONSTRAINT accounts_closed_only_when_empty CHECK (
        state <> 'CLOSED'
        OR (posted_debits_minor = posted_credits_minor
            AND pending_debits_minor = 0 AND pending_credits_minor = 0)
    )
);

CREATE UNIQUE INDEX accounts_external_id ON accounts (tenant_id, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX accounts_newest_first ON accounts (tenant_id, created_at DESC, account_id DESC);

CREATE TABLE transfers (
    tenant_id              text NOT NULL,
    transfer_id            text NOT NULL,
    request_id             text NOT NULL,
    -- Items of one CreateTransfers share its request_id and differ by their index.
    batch_index            integer NOT NULL DEFAULT 0 CHECK (batch_index >= 0),
    batch_id               text,
    debit_account_id       text NOT NULL,
    credit_account_id      text NOT NULL,
    currency_code          text NOT NULL,
    amount_minor           bigint NOT NULL CHECK (amount_minor > 0),
    state                  text NOT NULL
                           CHECK (state IN ('PENDING', 'POSTED', 'VOIDED', 'EXPIRED')),
    posted_amount_minor    bigint NOT NULL DEFAULT 0,
    reversed_amount_minor  bigint NOT NULL DEFAULT 0,
    reversal_of_id         text,
    description            text NOT NULL DEFAULT '',
    metadata               jsonb NOT NULL DEFAULT '{}',
    expires_at             timestamptz,
    -- When the hold was posted, voided or expired, and by which request (none for expiry).
    finalized_at           timestamptz,
    finalized_request_id   text,
    trace_id               text CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, transfer_id),
    -- Invariant 4: a transfer's request id is used once, forever.
    UNIQUE (tenant_id, request_id, batch_index),
    CHECK (debit_account_id <> credit_account_id),
    FOREIGN KEY (tenant_id, debit_account_id, currency_code)
        REFERENCES accounts (tenant_id, account_id, currency_code),
    FOREIGN KEY (tenant_id, credit_account_id, currency_code)
        REFERENCES accounts (tenant_id, account_id, currency_code),
    FOREIGN KEY (tenant_id, reversal_of_id) REFERENCES transfers (tenant_id, transfer_id),
    -- Invariant 5: a posted amount never exceeds the hold; reversals never exceed it.
    CHECK (posted_amount_minor BETWEEN 0 AND amount_minor),
    CHECK (reversed_amount_minor BETWEEN 0 AND posted_amount_minor),
    CHECK ((state = 'POSTED') = (posted_amount_minor > 0)),
    CHECK (state <> 'PENDING' OR expires_at IS NOT NULL)
);

CREATE INDEX transfers_newest_first ON transfers (tenant_id, created_at DESC, transfer_id DESC);
CREATE INDEX transfers_by_debit_account
    ON transfers (tenant_id, debit_account_id, created_at DESC, transfer_id DESC);
CREATE INDEX transfers_by_credit_account
    ON transfers (tenant_id, credit_account_id, created_at DESC, transfer_id DESC);
CREATE INDEX transfers_open_holds ON transfers (expires_at) WHERE state = 'PENDING';
CREATE INDEX transfers_by_batch ON transfers (tenant_id, batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX transfers_by_trace ON transfers (tenant_id, trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX transfers_by_reversed ON transfers (tenant_id, reversal_of_id)
    WHERE reversal_of_id IS NOT NULL;

-- One row per change of one account's balances: the account's statement. The key is the
-- account version the entry produced, so entries are numbered per account and a
-- statement page can resume from a version however many entries arrive meanwhile.
CREATE TABLE entries (
    tenant_id              text NOT NULL,
    account_id             text NOT NULL,
    account_version        bigint NOT NULL CHECK (account_version > 0),
    transfer_id            text NOT NULL,
    direction              text NOT NULL CHECK (direction IN ('DEBIT', 'CREDIT')),
    kind                   text NOT NULL CHECK (kind IN ('POSTED', 'PENDING', 'PENDING_RELEASED')),
    amount_minor           bigint NOT NULL CHECK (amount_minor > 0),
    -- The account's totals right after this entry (running balances).
    posted_debits_minor    bigint NOT NULL CHECK (posted_debits_minor >= 0),
    posted_credits_minor   bigint NOT NULL CHECK (posted_credits_minor >= 0),
    pending_debits_minor   bigint NOT NULL CHECK (pending_debits_minor >= 0),
    pending_credits_minor  bigint NOT NULL CHECK (pending_credits_minor >= 0),
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id, account_version),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, account_id),
    FOREIGN KEY (tenant_id, transfer_id) REFERENCES transfers (tenant_id, transfer_id)
);

CREATE INDEX entries_by_transfer ON entries (tenant_id, transfer_id);

-- The outcome of each mutating request, so that a repeat returns it instead of acting
-- again (invariant 4). Written in the same transaction as the effect it records.
CREATE TABLE request_outcomes (
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    request_id   text NOT NULL,
    fingerprint  bytea NOT NULL,
    outcome      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);

CREATE INDEX request_outcomes_by_age ON request_outcomes (created_at);
