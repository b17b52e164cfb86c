-- The write pipeline's two statements (service/pipeline.py): every write transaction is
-- BEGIN, lock_batch, write_batch, COMMIT, however many commands it carries.

-- name: lock_batch
-- Locks everything a batch of commands touches and reads what deciding them needs, in
-- one round trip: the transfers they change ($3), then the accounts they name ($2) and
-- the accounts of those transfers, each in id order, so every transaction takes its
-- locks in the same order (transfers before accounts, ids ascending) and none can wait
-- for another in a cycle. Also the external ids already taken among those new accounts
-- claim ($4), and now(), the transaction's time: the one clock for expiry decisions and
-- new rows.
-- For funds accessibility (docs/funds-availability.md): the unended scheduled parts of
-- the accounts releases work on ($5) and of the locked transfers (a reversal takes them
-- back), the parts named by id in any state ($6); the live monitors of the locked
-- accounts and those named by id ($7); and, for each locked account with debit limits,
-- what its debits used of each rolling window. Scheduled parts and monitors change only
-- with their account's row (its totals and version), so the account locks cover them.
-- Rows come back as the tables' own row types, the transfers' reversals as JSON beside.
WITH locked_transfers AS (
    SELECT t.*
    FROM transfers AS t
    WHERE t.tenant_id = $1 AND t.transfer_id = ANY($3::text[])
    ORDER BY t.transfer_id
    FOR UPDATE
),
moved_by_transfers AS (
    SELECT ARRAY(SELECT debit_account_id FROM locked_transfers)
           || ARRAY(SELECT credit_account_id FROM locked_transfers) AS ids
),
-- With them, in the same id order, the negative-balance reserves (docs/platforms.md) of
-- those that may need theirs: an account of a locked transfer (a reversal may need a
-- cover) and one that owes its reserve (a credit repays it). Read from the snapshot: an
-- account changed since fails its own lock below and the batch is retried.
locked_accounts AS (
    SELECT a.*
    FROM accounts AS a
    WHERE a.tenant_id = $1
      AND a.account_id = ANY($2::text[] || (SELECT ids FROM moved_by_transfers)
                             || ARRAY(SELECT r.negative_balance_reserve_account_id
                                      FROM accounts AS r
                                      WHERE r.tenant_id = $1
                                        AND r.account_id = ANY($2::text[]
                                            || (SELECT ids FROM moved_by_transfers))
                                        AND r.negative_balance_reserve_account_id IS NOT NULL
                                        AND (r.reserve_debt_minor > 0
                                             OR r.account_id = ANY(
                                                 (SELECT ids FROM moved_by_transfers)::text[]))))
    ORDER BY a.account_id
    FOR UPDATE
),
-- The holders the commands name ($11: a holder changed, or an account opened for it;
-- docs/platforms.md), locked after the accounts (the subquery makes the accounts' locks
-- come first), so a change of a holder and an account opened for it queue up.
locked_holders AS (
    SELECT h.*
    FROM holders AS h
    WHERE h.tenant_id = $1 AND h.holder_id = ANY($11::text[])
      AND (SELECT count(*) FROM locked_accounts) >= 0
    ORDER BY h.holder_id
    FOR UPDATE
),
-- The holders of the locked accounts (not named above), share-locked: a debit decided
-- against a holder's state keeps it until the debit commits, so a restriction (which
-- locks the row for update) waits for the debits already decided, and a debit that
-- comes after it fails its lock with a serialization failure and is retried against the
-- restriction. Once UpdateHolder has returned, no debit of the holder's accounts commits
-- that was decided without it (docs/platforms.md). Share locks do not wait for each
-- other: debits of one holder's accounts still run side by side.
shared_holders AS (
    SELECT h.*
    FROM holders AS h
    WHERE h.tenant_id = $1
      AND h.holder_id = ANY(ARRAY(SELECT holder_ref FROM locked_accounts
                                  WHERE holder_ref IS NOT NULL))
      AND NOT h.holder_id = ANY($11::text[])
      AND (SELECT count(*) FROM locked_holders) >= 0
    ORDER BY h.holder_id
    FOR SHARE
)
SELECT now() AS db_now,
       ARRAY(SELECT a::accounts FROM locked_accounts AS a) AS accounts,
       ARRAY(SELECT t::transfers FROM locked_transfers AS t ORDER BY t.transfer_id)
           AS transfers,
       -- Element by element with `transfers` (a row type inside an anonymous record is
       -- not decodable by the driver).
       ARRAY(SELECT transfer_reversals(t.tenant_id, t.transfer_id)
             FROM locked_transfers AS t ORDER BY t.transfer_id) AS reversals,
       -- Each as (external id, the account that has it): a refusal names the account.
       ARRAY(SELECT ARRAY[a.external_id, a.account_id]
             FROM accounts AS a
             WHERE a.tenant_id = $1 AND a.external_id = ANY($4::text[])) AS taken_external_ids,
       -- Three index lookups (not one OR, which would scan the table for the IN), and
       -- none at all for a batch that releases nothing and changes no transfer.
       CASE WHEN cardinality($5::text[]) + cardinality($6::text[]) + cardinality($3::text[]) = 0
            THEN '{}'::scheduled_funds[] ELSE
       ARRAY(SELECT f::scheduled_funds
             FROM scheduled_funds AS f
             WHERE f.tenant_id = $1
               AND f.funds_id IN (
                   SELECT o.funds_id FROM scheduled_funds AS o
                   WHERE o.tenant_id = $1 AND o.account_id = ANY($5::text[])
                     AND o.ended_at IS NULL
                   UNION ALL
                   SELECT o.funds_id FROM scheduled_funds AS o
                   WHERE o.tenant_id = $1 AND o.ended_at IS NULL
                     AND o.transfer_id = ANY(ARRAY(SELECT transfer_id FROM locked_transfers))
                   UNION ALL
                   SELECT unnest($6::text[]))) END AS funds,
       ARRAY(SELECT m::balance_monitors
             FROM balance_monitors AS m
             WHERE m.tenant_id = $1
               AND m.monitor_id IN (
                   SELECT o.monitor_id FROM balance_monitors AS o
                   WHERE o.tenant_id = $1 AND NOT o.deleted
                     AND o.account_id = ANY(ARRAY(SELECT account_id FROM locked_accounts))
                   UNION ALL
                   SELECT unnest($7::text[]))) AS monitors,
       ARRAY(SELECT jsonb_build_object(
                 'account_id', a.account_id,
                 'DAY', jsonb_build_array(
                     coalesce(sum(u.amount) FILTER (WHERE u.created_at > now() - interval '1 day'), 0),
                     count(u.amount) FILTER (WHERE u.created_at > now() - interval '1 day')),
                 'WEEK', jsonb_build_array(
                     coalesce(sum(u.amount) FILTER (WHERE u.created_at > now() - interval '7 days'), 0),
                     count(u.amount) FILTER (WHERE u.created_at > now() - interval '7 days')),
                 '30_DAYS', jsonb_build_array(coalesce(sum(u.amount), 0), count(u.amount)))
             FROM locked_accounts AS a
             LEFT JOIN LATERAL (
                 -- A debit counts at its amount while a hold, at its posted amount once
                 -- captured, not at all once voided or expired.
                 SELECT t.created_at,
                        CASE t.state WHEN 'POSTED' THEN t.posted_amount_minor
                                     ELSE t.amount_minor END AS amount
                 FROM transfers AS t
                 WHERE t.tenant_id = $1 AND t.debit_account_id = a.account_id
                   AND t.created_at > now() - interval '30 days'
                   AND t.state IN ('PENDING', 'POSTED')
             ) AS u ON true
             WHERE jsonb_array_length(coalesce(a.funds_policy -> 'debit_limits', '[]')) > 0
             GROUP BY a.account_id) AS debit_usage,
       -- External accounts, payouts and inbound transfers named by id ($8; docs/
       -- payouts.md). A payout or inbound transfer changes only with the transfers it
       -- owns, which the command names ($3) and this locks; an external account is read
       -- in the snapshot (a payout made just before its disabling is a payout made while
       -- it was active).
       ARRAY(SELECT x::external_accounts FROM external_accounts AS x
             WHERE x.tenant_id = $1 AND x.external_account_id = ANY($8::text[]))
           AS external_accounts,
       ARRAY(SELECT p::payouts FROM payouts AS p
             WHERE p.tenant_id = $1 AND p.payout_id = ANY($8::text[])) AS payouts,
       ARRAY(SELECT i::inbound_transfers FROM inbound_transfers AS i
             WHERE i.tenant_id = $1 AND i.inbound_id = ANY($8::text[])) AS inbound,
       -- The tenant's assets of the codes the commands name ($9: currency codes outside
       -- the ISO 4217 table, and codes to register; docs/assets.md), and, when a command
       -- registers one ($10), how many the tenant has. Not locked: an asset is never
       -- changed or deleted, and a concurrent registration of the same code meets this
       -- one on the primary key (or as a serialization failure) and is retried.
       ARRAY(SELECT s::assets FROM assets AS s
             WHERE s.tenant_id = $1 AND s.code = ANY($9::text[])) AS assets,
       CASE WHEN $10::boolean
            THEN (SELECT count(*) FROM assets AS s WHERE s.tenant_id = $1) ELSE 0 END
           AS asset_count,
       -- The holders named and those of the locked accounts (a debit reads its account's
       -- holder here); taken holder external ids among those claimed ($12) as (external
       -- id, holder), and, for holders being closed ($13), how many of their accounts are
       -- not closed (the holder's row lock keeps an account from being opened for it
       -- meanwhile).
       ARRAY(SELECT h::holders FROM locked_holders AS h
             UNION ALL
             SELECT h::holders FROM shared_holders AS h) AS holders,
       ARRAY(SELECT ARRAY[h.external_id, h.holder_id] FROM holders AS h
             WHERE h.tenant_id = $1 AND h.external_id = ANY($12::text[]))
           AS taken_holder_external_ids,
       ARRAY(SELECT jsonb_build_array(a.holder_ref, count(*)) FROM accounts AS a
             WHERE a.tenant_id = $1 AND a.holder_ref = ANY($13::text[]) AND a.state <> 'CLOSED'
             GROUP BY a.holder_ref) AS holder_open_accounts,
       -- For accounts being closed ($14), what other accounts owe each as their
       -- negative-balance reserve (docs/platforms.md): a reserve is not closed while
       -- owed. A debt changes only with a cover or a recovery, which lock the reserve,
       -- and the reserve is locked above: the sum cannot change under this batch.
       ARRAY(SELECT jsonb_build_array(a.negative_balance_reserve_account_id,
                                      sum(a.reserve_debt_minor))
             FROM accounts AS a
             WHERE a.tenant_id = $1 AND a.reserve_debt_minor > 0
               AND a.negative_balance_reserve_account_id = ANY($14::text[])
             GROUP BY a.negative_balance_reserve_account_id) AS reserve_debts_owed;

-- name: find_outcomes
-- The recorded outcomes of a batch's request ids, read just BEFORE its transaction, in
-- one statement of its own (a one-statement read, sessions.sql): inside the SERIALIZABLE
-- transaction this read would take SSI predicate locks on the B-tree pages where the ids
-- would be, which every concurrent batch inserts its own outcomes into, and batches would
-- fail each other. An outcome committed after this read is caught by the outcome's key
-- instead: the batch's write fails, and its retry reads again and finds it.
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT o.request_id, o.fingerprint, o.outcome
    FROM request_outcomes AS o
    WHERE o.tenant_id = $1 AND o.request_id = ANY($2::text[])
      AND declared.tenant IS NOT NULL
    OFFSET 0
) AS r;

-- name: write_batch
-- Writes what a batch decided, in one statement: accounts opened ($2) and changed ($3:
-- new totals, attributes, state and version, as the domain computed them under the locks
-- of lock_batch), transfers created ($4) and changed ($5: state, amounts, expiry, a
-- hold's steps), entries ($6), the requests' outcomes ($7), the events ($8: the outbox,
-- in the order the changes happened), scheduled parts of credits created ($9) and ended ($10),
-- balance monitors created or changed ($11), funds policy changes ($12), and external
-- accounts, payouts and inbound transfers created or changed ($13, $14, $15: docs/
-- payouts.md), tenant assets registered ($16: docs/assets.md), and holders created or
-- changed ($17: docs/platforms.md). Each parameter is an array of the table's own row
-- type: the columns are the table's, declared once, in its migration.
-- Events take their positions from the tenant's sequence while this transaction holds
-- the tenant's event lock (an advisory lock, kept to the commit), so positions become
-- visible in the order they were drawn (docs/events.md); the lock is taken only when
-- there are events, last of all locks, and the transaction then only commits. Then a
-- notification wakes the servers' event streams (delivered at commit, not before).
-- Entries are stamped with statement_timestamp(), not the transaction's now(): this
-- statement runs while the accounts are locked, so an account's entries are stamped in
-- version order, which keeps as-of reads (newest entry at or before a time) consistent.
-- Scheduled parts are created and ended at the same statement_timestamp(), so an as-of
-- read sees a credit's entry and its parts appear together.
WITH opened AS (
    INSERT INTO accounts
    SELECT * FROM unnest($2::accounts[])
    RETURNING 1
),
moved AS (
    UPDATE accounts AS a
    SET name = c.name,
        metadata = c.metadata,
        overdraft_mode = c.overdraft_mode,
        overdraft_limit_minor = c.overdraft_limit_minor,
        state = c.state,
        posted_debits_minor = c.posted_debits_minor,
        posted_credits_minor = c.posted_credits_minor,
        pending_debits_minor = c.pending_debits_minor,
        pending_credits_minor = c.pending_credits_minor,
        version = c.version,
        pending_availability_minor = c.pending_availability_minor,
        reserved_minor = c.reserved_minor,
        funds_policy = c.funds_policy,
        freeze_scope = c.freeze_scope,
        freeze_reason = c.freeze_reason,
        attributes_version = c.attributes_version,
        open_to_holders = c.open_to_holders,
        negative_balance_reserve_account_id = c.negative_balance_reserve_account_id,
        reserve_debt_minor = c.reserve_debt_minor,
        updated_at = now()
    FROM unnest($3::accounts[]) AS c
    WHERE a.tenant_id = $1 AND a.account_id = c.account_id
    RETURNING 1
),
created AS (
    INSERT INTO transfers
    SELECT * FROM unnest($4::transfers[])
    RETURNING 1
),
changed AS (
    UPDATE transfers AS t
    SET state = u.state,
        amount_minor = u.amount_minor,
        expires_at = u.expires_at,
        posted_amount_minor = u.posted_amount_minor,
        reversed_amount_minor = u.reversed_amount_minor,
        finalized_at = u.finalized_at,
        finalized_request_id = u.finalized_request_id,
        hold_steps = u.hold_steps,
        updated_at = now()
    FROM unnest($5::transfers[]) AS u
    WHERE t.tenant_id = $1 AND t.transfer_id = u.transfer_id
    RETURNING 1
),
written AS (
    INSERT INTO entries (
        tenant_id, account_id, account_version, transfer_id, direction, kind, amount_minor,
        posted_debits_minor, posted_credits_minor, pending_debits_minor, pending_credits_minor,
        created_at, pending_availability_minor, reserved_minor
    )
    SELECT e.tenant_id, e.account_id, e.account_version, e.transfer_id, e.direction, e.kind,
           e.amount_minor, e.posted_debits_minor, e.posted_credits_minor,
           e.pending_debits_minor, e.pending_credits_minor, statement_timestamp(),
           e.pending_availability_minor, e.reserved_minor
    FROM unnest($6::entries[]) AS e
    RETURNING 1
),
scheduled AS (
    INSERT INTO scheduled_funds
    SELECT f.tenant_id, f.funds_id, f.account_id, f.transfer_id, f.kind, f.amount_minor,
           f.available_at, f.remainder_of_id, statement_timestamp(),
           -- A part made and ended in one batch (a credit, then its early release).
           CASE WHEN f.ended_at IS NULL THEN NULL ELSE statement_timestamp() END, f.end_kind,
           f.ended_amount_minor, f.end_request_id, f.remainder_id
    FROM unnest($9::scheduled_funds[]) AS f
    RETURNING 1
),
ended AS (
    UPDATE scheduled_funds AS s
    SET ended_at = statement_timestamp(),
        end_kind = f.end_kind,
        ended_amount_minor = f.ended_amount_minor,
        end_request_id = f.end_request_id,
        remainder_id = f.remainder_id
    FROM unnest($10::scheduled_funds[]) AS f
    -- Only an unended part ends: a part ended twice would write no row and fail the
    -- batch (LedgerStore.write compares the counts).
    WHERE s.tenant_id = $1 AND s.funds_id = f.funds_id AND s.ended_at IS NULL
    RETURNING 1
),
monitored AS (
    INSERT INTO balance_monitors
    SELECT * FROM unnest($11::balance_monitors[])
    ON CONFLICT (tenant_id, monitor_id) DO UPDATE
    SET triggered = excluded.triggered,
        deleted = excluded.deleted,
        updated_at = excluded.updated_at
    RETURNING 1
),
audited AS (
    INSERT INTO account_policy_changes
    SELECT * FROM unnest($12::account_policy_changes[])
    RETURNING 1
),
registered AS (
    INSERT INTO external_accounts AS x
    SELECT * FROM unnest($13::external_accounts[])
    ON CONFLICT (tenant_id, external_account_id) DO UPDATE
    SET state = excluded.state, updated_at = excluded.updated_at
    RETURNING 1
),
paid_out AS (
    INSERT INTO payouts AS p
    SELECT * FROM unnest($14::payouts[])
    ON CONFLICT (tenant_id, payout_id) DO UPDATE
    SET state = excluded.state,
        return_transfer_id = excluded.return_transfer_id,
        failure_reason = excluded.failure_reason,
        return_reason = excluded.return_reason,
        updated_at = excluded.updated_at,
        processing_at = excluded.processing_at,
        settled_at = excluded.settled_at,
        returned_at = excluded.returned_at
    RETURNING 1
),
received AS (
    INSERT INTO inbound_transfers AS i
    SELECT * FROM unnest($15::inbound_transfers[])
    ON CONFLICT (tenant_id, inbound_id) DO UPDATE
    SET state = excluded.state,
        return_transfer_id = excluded.return_transfer_id,
        return_reason = excluded.return_reason,
        updated_at = excluded.updated_at,
        returned_at = excluded.returned_at
    RETURNING 1
),
registered_assets AS (
    INSERT INTO assets
    SELECT * FROM unnest($16::assets[])
    RETURNING 1
),
held AS (
    INSERT INTO holders AS h
    SELECT * FROM unnest($17::holders[])
    ON CONFLICT (tenant_id, holder_id) DO UPDATE
    SET name = excluded.name,
        metadata = excluded.metadata,
        state = excluded.state,
        version = excluded.version,
        updated_at = excluded.updated_at
    RETURNING 1
),
recorded AS (
    INSERT INTO request_outcomes
    SELECT * FROM unnest($7::request_outcomes[])
    RETURNING 1
),
event_lock AS (
    SELECT pg_advisory_xact_lock(1835887981, hashtext($1)) AS locked,
           format('event_positions.%I', $1)::regclass AS positions
),
logged AS (
    INSERT INTO events
    SELECT e.tenant_id, nextval(l.positions), e.type, now(), e.request_id, e.trace_id,
           e.account_ids, e.holder_ids, e.transfer_ids, e.payload
    FROM unnest($8::events[]) AS e, event_lock AS l  -- in array order: the order of the changes
    RETURNING position
),
notified AS (
    SELECT pg_notify('mm_events', $1 || ' ' || max(position)) FROM logged
    HAVING count(*) > 0
)
SELECT (SELECT count(*) FROM opened) AS accounts_opened,
       (SELECT count(*) FROM moved) AS accounts_moved,
       (SELECT count(*) FROM created) AS transfers_created,
       (SELECT count(*) FROM changed) AS transfers_changed,
       (SELECT count(*) FROM written) AS entries_written,
       (SELECT count(*) FROM recorded) AS outcomes_recorded,
       (SELECT count(*) FROM logged) AS events_logged,
       (SELECT count(*) FROM notified) AS notified,
       (SELECT count(*) FROM scheduled) AS funds_scheduled,
       (SELECT count(*) FROM ended) AS funds_ended,
       (SELECT count(*) FROM monitored) AS monitors_written,
       (SELECT count(*) FROM audited) AS policy_changes,
       (SELECT count(*) FROM registered) AS external_accounts_written,
       (SELECT count(*) FROM paid_out) AS payouts_written,
       (SELECT count(*) FROM received) AS inbound_written,
       (SELECT count(*) FROM registered_assets) AS assets_registered,
       (SELECT count(*) FROM held) AS holders_written;
