-- name: write_postings
-- Writes transfers, their entries and the accounts' new totals in one statement: one
-- round trip, and the hot account rows stay locked for as short a time as possible.
-- The accounts were locked (lock_accounts) and their new totals computed by the domain.
-- Arrays: $2..$7 account changes, $8..$21 new transfers, $22..$31 entries, $32..$36
-- changes to existing transfers (locked by lock_transfer in the same transaction), $37
-- the new transfers' reversal_of_id; $38..$40 the requests' outcomes (request ids,
-- fingerprints, outcomes), recorded with the effect they describe: usually one, none for
-- the sweeper, several for a hot account's coalesced transfers.
WITH moved AS (
    UPDATE accounts AS a
    SET posted_debits_minor = c.posted_debits_minor,
        posted_credits_minor = c.posted_credits_minor,
        pending_debits_minor = c.pending_debits_minor,
        pending_credits_minor = c.pending_credits_minor,
        version = c.version,
        updated_at = now()
    FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
        AS c (account_id, posted_debits_minor, posted_credits_minor, pending_debits_minor,
              pending_credits_minor, version)
    -- "= ANY" gives the planner an index condition: without it, joining the unnest()
    -- may read the whole accounts index for every transfer.
    WHERE a.tenant_id = $1 AND a.account_id = ANY($2::text[]) AND a.account_id = c.account_id
    RETURNING 1
),
created AS (
    INSERT INTO transfers (
        tenant_id, transfer_id, request_id, batch_index, batch_id, debit_account_id,
        credit_account_id, currency_code, amount_minor, state, posted_amount_minor,
        description, metadata, expires_at, trace_id, reversal_of_id
    )
    SELECT $1, t.* FROM unnest(
        $8::text[], $9::text[], $10::int[], $11::text[], $12::text[], $13::text[],
        $14::text[], $15::bigint[], $16::text[], $17::bigint[], $18::text[], $19::jsonb[],
        $20::timestamptz[], $21::text[], $37::text[]
    ) AS t
    RETURNING 1
),
changed AS (
    UPDATE transfers AS t
    SET state = u.state,
        posted_amount_minor = u.posted_amount_minor,
        reversed_amount_minor = u.reversed_amount_minor,
        finalized_at = CASE WHEN t.state = 'PENDING' AND u.state <> 'PENDING'
                            THEN now() ELSE t.finalized_at END,
        finalized_request_id = CASE WHEN t.state = 'PENDING' AND u.state <> 'PENDING'
                                    THEN u.finalized_request_id ELSE t.finalized_request_id END,
        updated_at = now()
    FROM unnest($32::text[], $33::text[], $34::bigint[], $35::bigint[], $36::text[])
        AS u (transfer_id, state, posted_amount_minor, reversed_amount_minor,
              finalized_request_id)
    WHERE t.tenant_id = $1 AND t.transfer_id = ANY($32::text[]) AND t.transfer_id = u.transfer_id
    RETURNING 1
),
written AS (
    -- statement_timestamp(), not the transaction's now(): this statement runs while the
    -- accounts are locked, so an account's entries are stamped in version order, which
    -- keeps as-of reads (newest entry at or before a time) consistent.
    INSERT INTO entries (
        tenant_id, account_id, account_version, transfer_id, direction, kind, amount_minor,
        posted_debits_minor, posted_credits_minor, pending_debits_minor, pending_credits_minor,
        created_at
    )
    SELECT $1, e.*, statement_timestamp() FROM unnest(
        $22::text[], $23::bigint[], $24::text[], $25::text[], $26::text[], $27::bigint[],
        $28::bigint[], $29::bigint[], $30::bigint[], $31::bigint[]
    ) AS e
    RETURNING 1
),
recorded AS (
    INSERT INTO request_outcomes (tenant_id, request_id, fingerprint, outcome)
    SELECT $1, o.* FROM unnest($38::text[], $39::bytea[], $40::jsonb[]) AS o
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) AS accounts_moved,
       (SELECT count(*) FROM created) AS transfers_created,
       (SELECT count(*) FROM changed) AS transfers_changed,
       (SELECT count(*) FROM written) AS entries_written,
       (SELECT count(*) FROM recorded) AS outcomes_recorded;

-- name: get_transfer
SELECT t.*,
       transfer_reversals(t.tenant_id, t.transfer_id) AS reversals
FROM transfers AS t
WHERE t.tenant_id = $1 AND t.transfer_id = $2;

-- name: list_transfers
-- Newest first; the page cursor is the (created_at, transfer_id) of the last row returned.
SELECT t.*,
       transfer_reversals(t.tenant_id, t.transfer_id) AS reversals
FROM transfers AS t
WHERE t.tenant_id = $1
  AND ($2::text IS NULL OR t.debit_account_id = $2 OR t.credit_account_id = $2)
  AND ($3::text IS NULL OR t.state = $3)
  AND ($4::timestamptz IS NULL OR t.created_at >= $4)
  AND ($5::timestamptz IS NULL OR t.created_at < $5)
  AND t.metadata @> $6::jsonb
  AND ($7::text IS NULL OR t.batch_id = $7)
  AND ($8::text IS NULL OR t.trace_id = $8)
  AND ($9::timestamptz IS NULL OR (t.created_at, t.transfer_id) < ($9, $10::text))
ORDER BY t.created_at DESC, t.transfer_id DESC
LIMIT $11;

-- name: lock_transfer
-- Locks one transfer for a state change (post, void, expiry, reversal). Taken before the
-- accounts' locks, and never more than one transfer per transaction: no lock cycles.
SELECT t.*, now() AS db_now,
       transfer_reversals(t.tenant_id, t.transfer_id) AS reversals
FROM transfers AS t
WHERE t.tenant_id = $1 AND t.transfer_id = $2
FOR UPDATE OF t;

-- name: find_expired_holds
-- For the sweeper, across tenants: holds past their expiry, oldest first. Row-level
-- security hides other tenants from the service's role; this function runs as the
-- owner and returns ids only (migrations/0003).
SELECT tenant_id, transfer_id FROM expired_holds($1);
