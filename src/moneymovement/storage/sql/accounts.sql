-- name: insert_account
INSERT INTO accounts (
    tenant_id, account_id, external_id, name, currency_code, normal_balance,
    overdraft_mode, overdraft_limit_minor, holder_id, metadata, state
)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'ACTIVE')
ON CONFLICT (tenant_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
RETURNING *;

-- name: get_account
SELECT * FROM accounts WHERE tenant_id = $1 AND account_id = $2;

-- name: lock_accounts
-- Rows are locked in account id order, the same order in every transaction, so two
-- transfers between the same accounts queue behind each other instead of deadlocking.
-- now() is the transaction time: the one clock for expiry decisions and new rows.
SELECT *, now() AS db_now FROM accounts
WHERE tenant_id = $1 AND account_id = ANY($2::text[])
ORDER BY account_id
FOR UPDATE;

-- name: update_account
UPDATE accounts
SET name = $3, metadata = $4, overdraft_mode = $5, overdraft_limit_minor = $6,
    state = $7, version = $8, updated_at = now()
WHERE tenant_id = $1 AND account_id = $2
RETURNING *;

-- name: list_accounts
-- Newest first; the page cursor is the (created_at, account_id) of the last row returned.
SELECT * FROM accounts
WHERE tenant_id = $1
  AND ($2::text IS NULL OR currency_code = $2)
  AND ($3::text IS NULL OR state = $3)
  AND ($4::text IS NULL OR holder_id = $4)
  AND ($5::text IS NULL OR external_id = $5)
  AND metadata @> $6::jsonb
  AND ($7::timestamptz IS NULL OR (created_at, account_id) < ($7, $8::text))
ORDER BY created_at DESC, account_id DESC
LIMIT $9;
