-- name: get_transfer
-- A one-statement read, as get_account (accounts.sql).
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT t.*,
           transfer_reversals(t.tenant_id, t.transfer_id) AS reversals
    FROM transfers AS t
    WHERE t.tenant_id = $1 AND t.transfer_id = $2 AND declared.tenant IS NOT NULL
    OFFSET 0
) AS r;

-- name: list_transfers
-- Newest first; the page cursor is the (created_at, transfer_id) of the last row returned.
-- Metadata filters as list_accounts': $6 pairs, $12 keys that must all be present.
-- $13: only transfers touching an account of that holder (a call acting for a holder).
-- A one-statement read, as get_account (accounts.sql).
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT t.*,
           transfer_reversals(t.tenant_id, t.transfer_id) AS reversals
    FROM transfers AS t
    WHERE t.tenant_id = $1 AND declared.tenant IS NOT NULL
      AND ($2::text IS NULL OR t.debit_account_id = $2 OR t.credit_account_id = $2)
      AND ($3::text IS NULL OR t.state = $3)
      AND ($4::timestamptz IS NULL OR t.created_at >= $4)
      AND ($5::timestamptz IS NULL OR t.created_at < $5)
      AND t.metadata @> $6::jsonb
      AND t.metadata ?& $12::text[]
      AND ($7::text IS NULL OR t.batch_id = $7)
      AND ($8::text IS NULL OR t.trace_id = $8)
      AND ($13::text IS NULL OR EXISTS (
          SELECT 1 FROM accounts AS a
          WHERE a.tenant_id = $1 AND a.holder_id = $13
            AND a.account_id IN (t.debit_account_id, t.credit_account_id)))
      AND ($9::timestamptz IS NULL OR (t.created_at, t.transfer_id) < ($9, $10::text))
    ORDER BY t.created_at DESC, t.transfer_id DESC
    LIMIT $11
    OFFSET 0
) AS r;

-- name: find_expired_holds
-- For the sweeper, across tenants: holds past their expiry, oldest first. Row-level
-- security hides other tenants from the service's role; this function runs as the
-- owner and returns ids only (migrations/0003).
SELECT tenant_id, transfer_id FROM expired_holds($1);
