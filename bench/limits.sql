-- The physical limits of the database, as functions make bench installs in its own
-- database (schema mm_bench, dropped at the end of the run; never a migration of the
-- service). pgbench calls each with one statement in autocommit, so one transfer (or one
-- group of 100) costs one round trip and one durable SERIALIZABLE transaction: the
-- isolation comes from default_transaction_isolation (PGOPTIONS, bench/limits.py), the
-- role is the service's own, and row-level security applies as in the service.
--
-- Both do the service's work for an immediate transfer: declare the tenant, lock both
-- accounts FOR UPDATE in id order, check them (state, currency, overdraft floor), write
-- the accounts' new totals, the transfer, its two entries with running balances, and
-- the request's outcome row (fingerprint and JSON, of the size the service writes).

-- name: install_schema
CREATE SCHEMA IF NOT EXISTS mm_bench;

-- name: grant_schema
-- The service's role (migrations/0004) calls the functions; its name is per database.
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA mm_bench TO %I', (SELECT name FROM service_role));
END
$$;

-- name: install_account_id
-- Account number -> id, as bench.sql seeds them (bench/accounts.py).
CREATE OR REPLACE FUNCTION mm_bench.account_id(n integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN 'acct_' || translate(lpad(n::text, 26, '0'), '0123456789', 'abcdefghij');

-- name: install_within_floor
-- The domain's overdraft rule (domain/accounts.py, require_within_policy): the available
-- balance after the change, signed by the normal balance, is not below the floor.
CREATE OR REPLACE FUNCTION mm_bench.within_floor(
    normal_balance text, overdraft_mode text, overdraft_limit_minor bigint,
    posted_debits_minor bigint, posted_credits_minor bigint,
    pending_debits_minor bigint, pending_credits_minor bigint
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN overdraft_mode = 'UNLIMITED'
    OR CASE normal_balance
           WHEN 'CREDIT' THEN posted_credits_minor::numeric - posted_debits_minor
                              - pending_debits_minor
           ELSE posted_debits_minor::numeric - posted_credits_minor - pending_credits_minor
       END >= CASE overdraft_mode WHEN 'LIMITED' THEN -overdraft_limit_minor ELSE 0 END;

-- name: install_transfer
-- One transfer. A refused one records its rejection as the outcome, as the service does,
-- and returns the reason; an accepted one returns 'POSTED'.
CREATE OR REPLACE FUNCTION mm_bench.transfer(
    p_tenant text, p_debit text, p_credit text, p_currency text, p_amount bigint,
    p_transfer_id text, p_request_id text, p_fingerprint bytea, p_outcome jsonb,
    p_trace_id text
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    locked accounts;
    dr accounts;
    cr accounts;
    refused text;
BEGIN
    PERFORM set_config('moneymovement.tenant_id', p_tenant, true);
    FOR locked IN
        SELECT * FROM accounts
        WHERE tenant_id = p_tenant AND account_id IN (p_debit, p_credit)
        ORDER BY account_id
        FOR UPDATE
    LOOP
        IF locked.account_id = p_debit THEN dr := locked; ELSE cr := locked; END IF;
    END LOOP;
    refused := CASE
        WHEN p_debit = p_credit THEN 'SAME_ACCOUNT'
        WHEN dr.account_id IS NULL OR cr.account_id IS NULL THEN 'ACCOUNT_NOT_FOUND'
        WHEN 'CLOSED' IN (dr.state, cr.state) THEN 'ACCOUNT_CLOSED'
        WHEN 'FROZEN' IN (dr.state, cr.state) THEN 'ACCOUNT_FROZEN'
        WHEN dr.currency_code <> p_currency OR cr.currency_code <> p_currency
            THEN 'CURRENCY_MISMATCH'
        WHEN NOT mm_bench.within_floor(
                 dr.normal_balance, dr.overdraft_mode, dr.overdraft_limit_minor,
                 dr.posted_debits_minor + p_amount, dr.posted_credits_minor,
                 dr.pending_debits_minor, dr.pending_credits_minor)
          OR NOT mm_bench.within_floor(
                 cr.normal_balance, cr.overdraft_mode, cr.overdraft_limit_minor,
                 cr.posted_debits_minor, cr.posted_credits_minor + p_amount,
                 cr.pending_debits_minor, cr.pending_credits_minor)
            THEN 'INSUFFICIENT_FUNDS'
    END;
    IF refused IS NOT NULL THEN
        INSERT INTO request_outcomes (tenant_id, request_id, fingerprint, outcome)
        VALUES (p_tenant, p_request_id, p_fingerprint,
                jsonb_build_object('rejected', jsonb_build_object('reason', refused)));
        RETURN refused;
    END IF;
    -- Balances first, then the FK-bearing inserts, as the service's write_postings.
    UPDATE accounts
    SET posted_debits_minor = dr.posted_debits_minor + p_amount,
        version = dr.version + 1, updated_at = now()
    WHERE tenant_id = p_tenant AND account_id = p_debit;
    UPDATE accounts
    SET posted_credits_minor = cr.posted_credits_minor + p_amount,
        version = cr.version + 1, updated_at = now()
    WHERE tenant_id = p_tenant AND account_id = p_credit;
    INSERT INTO transfers (tenant_id, transfer_id, request_id, debit_account_id,
                           credit_account_id, currency_code, amount_minor, state,
                           posted_amount_minor, trace_id)
    VALUES (p_tenant, p_transfer_id, p_request_id, p_debit, p_credit, p_currency, p_amount,
            'POSTED', p_amount, p_trace_id);
    INSERT INTO entries (tenant_id, account_id, account_version, transfer_id, direction, kind,
                         amount_minor, posted_debits_minor, posted_credits_minor,
                         pending_debits_minor, pending_credits_minor, created_at)
    VALUES (p_tenant, p_debit, dr.version + 1, p_transfer_id, 'DEBIT', 'POSTED', p_amount,
            dr.posted_debits_minor + p_amount, dr.posted_credits_minor,
            dr.pending_debits_minor, dr.pending_credits_minor, statement_timestamp()),
           (p_tenant, p_credit, cr.version + 1, p_transfer_id, 'CREDIT', 'POSTED', p_amount,
            cr.posted_debits_minor, cr.posted_credits_minor + p_amount,
            cr.pending_debits_minor, cr.pending_credits_minor, statement_timestamp());
    INSERT INTO request_outcomes (tenant_id, request_id, fingerprint, outcome)
    VALUES (p_tenant, p_request_id, p_fingerprint, p_outcome);
    RETURN 'POSTED';
END
$$;

-- name: install_random_batch
-- n random transfers among accounts 1..p_accounts (debit and credit distinct), with
-- random ids, as arrays: what a group of n commands hands to mm_bench.transfers.
CREATE OR REPLACE FUNCTION mm_bench.random_batch(p_accounts integer, n integer)
RETURNS TABLE (debits text[], credits text[], amounts bigint[], transfer_ids text[],
               request_ids text[])
LANGUAGE sql VOLATILE
AS $$
    SELECT array_agg(mm_bench.account_id(d) ORDER BY i),
           array_agg(mm_bench.account_id(c + (c >= d)::int) ORDER BY i),
           array_agg(amount ORDER BY i),
           array_agg('tr_' || replace(gen_random_uuid()::text, '-', '') ORDER BY i),
           array_agg(replace(gen_random_uuid()::text, '-', '') ORDER BY i)
    FROM (
        SELECT i,
               1 + floor(random() * p_accounts)::int AS d,
               1 + floor(random() * (p_accounts - 1))::int AS c,
               1 + floor(random() * 1000)::bigint AS amount
        FROM generate_series(1, n) AS i
    ) AS picked
$$;

-- name: install_transfers
-- A group of transfers in one transaction, set-wise (arrays and unnest): every account
-- locked once in id order, each transfer's entries numbered per account in the group's
-- order with running balances, each account's totals written once, each transfer with
-- its own outcome row. All or nothing: a refused transfer fails the group (the bench's
-- accounts have no floor, so none is). Returns the number of transfers written.
CREATE OR REPLACE FUNCTION mm_bench.transfers(
    p_tenant text, p_debits text[], p_credits text[], p_amounts bigint[],
    p_transfer_ids text[], p_request_ids text[], p_currency text, p_fingerprint bytea,
    p_outcome jsonb
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    wanted integer := cardinality(p_debits);
    refused integer;
    legs integer;
    e_account text[];
    e_version bigint[];
    e_transfer text[];
    e_direction text[];
    e_amount bigint[];
    e_posted_debits bigint[];
    e_posted_credits bigint[];
    e_pending_debits bigint[];
    e_pending_credits bigint[];
    written integer;
BEGIN
    PERFORM set_config('moneymovement.tenant_id', p_tenant, true);
    WITH batch AS MATERIALIZED (
        SELECT * FROM unnest(p_debits, p_credits, p_amounts, p_transfer_ids)
            WITH ORDINALITY AS b (debit, credit, amount, transfer_id, i)
    ),
    leg AS (
        SELECT i, debit AS account_id, 'DEBIT' AS direction, amount, transfer_id FROM batch
        UNION ALL
        SELECT i, credit, 'CREDIT', amount, transfer_id FROM batch
    ),
    locked AS MATERIALIZED (
        SELECT * FROM accounts
        WHERE tenant_id = p_tenant AND account_id = ANY(p_debits || p_credits)
        ORDER BY account_id
        FOR UPDATE
    ),
    running AS (
        SELECT l.account_id, l.direction, l.amount, l.transfer_id, l.i,
               a.version + row_number() OVER w AS account_version,
               a.posted_debits_minor + coalesce(sum(l.amount)
                   FILTER (WHERE l.direction = 'DEBIT') OVER w, 0)::bigint AS pd,
               a.posted_credits_minor + coalesce(sum(l.amount)
                   FILTER (WHERE l.direction = 'CREDIT') OVER w, 0)::bigint AS pc,
               a.pending_debits_minor AS pending_debits,
               a.pending_credits_minor AS pending_credits,
               a.state, a.currency_code, a.normal_balance, a.overdraft_mode,
               a.overdraft_limit_minor
        FROM leg AS l
        JOIN locked AS a USING (account_id)
        WINDOW w AS (PARTITION BY l.account_id ORDER BY l.i
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )
    SELECT count(*),
           count(*) FILTER (WHERE state <> 'ACTIVE' OR currency_code <> p_currency
                            OR NOT mm_bench.within_floor(
                                normal_balance, overdraft_mode, overdraft_limit_minor,
                                pd, pc, pending_debits, pending_credits)),
           array_agg(account_id ORDER BY account_id, account_version),
           array_agg(account_version ORDER BY account_id, account_version),
           array_agg(transfer_id ORDER BY account_id, account_version),
           array_agg(direction ORDER BY account_id, account_version),
           array_agg(amount ORDER BY account_id, account_version),
           array_agg(pd ORDER BY account_id, account_version),
           array_agg(pc ORDER BY account_id, account_version),
           array_agg(pending_debits ORDER BY account_id, account_version),
           array_agg(pending_credits ORDER BY account_id, account_version)
    INTO legs, refused, e_account, e_version, e_transfer, e_direction, e_amount,
         e_posted_debits, e_posted_credits, e_pending_debits, e_pending_credits
    FROM running;
    IF legs <> 2 * wanted OR refused > 0 THEN
        RAISE EXCEPTION 'mm_bench.transfers: % of % legs found, % refused',
            legs, 2 * wanted, refused;
    END IF;
    WITH moved AS (
        -- Each account's totals after its last entry of the group.
        UPDATE accounts AS a
        SET posted_debits_minor = f.posted_debits, posted_credits_minor = f.posted_credits,
            version = f.version, updated_at = now()
        FROM (
            SELECT DISTINCT ON (account_id) account_id, version, posted_debits,
                   posted_credits
            FROM unnest(e_account, e_version, e_posted_debits, e_posted_credits)
                AS e (account_id, version, posted_debits, posted_credits)
            ORDER BY account_id, version DESC
        ) AS f
        WHERE a.tenant_id = p_tenant AND a.account_id = ANY(e_account)
          AND a.account_id = f.account_id
        RETURNING 1
    ),
    created AS (
        INSERT INTO transfers (tenant_id, transfer_id, request_id, debit_account_id,
                               credit_account_id, currency_code, amount_minor, state,
                               posted_amount_minor)
        SELECT p_tenant, t.transfer_id, t.request_id, t.debit, t.credit, p_currency,
               t.amount, 'POSTED', t.amount
        FROM unnest(p_transfer_ids, p_request_ids, p_debits, p_credits, p_amounts)
            AS t (transfer_id, request_id, debit, credit, amount)
        RETURNING 1
    ),
    written_entries AS (
        INSERT INTO entries (tenant_id, account_id, account_version, transfer_id, direction,
                             kind, amount_minor, posted_debits_minor, posted_credits_minor,
                             pending_debits_minor, pending_credits_minor, created_at)
        SELECT p_tenant, e.account_id, e.version, e.transfer_id, e.direction, 'POSTED',
               e.amount, e.posted_debits, e.posted_credits, e.pending_debits,
               e.pending_credits, statement_timestamp()
        FROM unnest(e_account, e_version, e_transfer, e_direction, e_amount,
                    e_posted_debits, e_posted_credits, e_pending_debits, e_pending_credits)
            AS e (account_id, version, transfer_id, direction, amount, posted_debits,
                  posted_credits, pending_debits, pending_credits)
        RETURNING 1
    ),
    recorded AS (
        INSERT INTO request_outcomes (tenant_id, request_id, fingerprint, outcome)
        SELECT p_tenant, r, p_fingerprint, p_outcome FROM unnest(p_request_ids) AS r
        RETURNING 1
    )
    -- Every part of a WITH runs to completion, read or not.
    SELECT count(*) INTO written FROM created;
    RETURN written;
END
$$;

-- name: uninstall
DROP SCHEMA IF EXISTS mm_bench CASCADE;
