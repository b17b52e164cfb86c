-- name: get_account
-- A one-statement read (sessions.sql, "One round trip per read").
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT * FROM accounts
    WHERE tenant_id = $1 AND account_id = $2 AND declared.tenant IS NOT NULL
    OFFSET 0
) AS r;

-- name: list_accounts
-- Newest first; the page cursor is the (created_at, account_id) of the last row returned.
-- Metadata filters: $6 pairs that must all be present, $10 keys that must all be present
-- with any value (?& of no keys is true). A one-statement read, as get_account.
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT * FROM accounts
    WHERE tenant_id = $1 AND declared.tenant IS NOT NULL
      AND ($2::text IS NULL OR currency_code = $2)
      AND ($3::text IS NULL OR state = $3)
      AND ($4::text IS NULL OR holder_id = $4)
      AND ($5::text IS NULL OR external_id = $5)
      AND metadata @> $6::jsonb
      AND metadata ?& $10::text[]
      AND ($7::timestamptz IS NULL OR (created_at, account_id) < ($7, $8::text))
    ORDER BY created_at DESC, account_id DESC
    LIMIT $9
    OFFSET 0
) AS r;

-- name: account_holders
-- The holder_id of each existing account among $2: what a call acting for a holder may
-- see (domain/holder_scope.py). An account's holder never changes, so this may be read
-- apart from what it guards. A one-statement read, as get_account.
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT account_id, holder_id FROM accounts
    WHERE tenant_id = $1 AND account_id = ANY($2::text[]) AND declared.tenant IS NOT NULL
    OFFSET 0
) AS r;
