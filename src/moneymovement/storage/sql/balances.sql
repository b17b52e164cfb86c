-- name: get_balances
-- A one-statement read, as get_account: one snapshot for every account asked.
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT account_id, currency_code, normal_balance, posted_debits_minor, posted_credits_minor,
           pending_debits_minor, pending_credits_minor, version, now() AS as_of
    FROM accounts
    WHERE tenant_id = $1 AND account_id = ANY($2::text[]) AND declared.tenant IS NOT NULL
    OFFSET 0
) AS r;

-- name: get_balance_as_of
-- The running balances of the newest entry written at or before $3 (zero before any).
-- A one-statement read, as get_account.
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT a.account_id, a.currency_code, a.normal_balance,
           coalesce(e.posted_debits_minor, 0) AS posted_debits_minor,
           coalesce(e.posted_credits_minor, 0) AS posted_credits_minor,
           coalesce(e.pending_debits_minor, 0) AS pending_debits_minor,
           coalesce(e.pending_credits_minor, 0) AS pending_credits_minor,
           coalesce(e.account_version, 0) AS version,
           $3::timestamptz AS as_of
    FROM accounts AS a
    LEFT JOIN LATERAL (
        SELECT * FROM entries
        WHERE tenant_id = a.tenant_id AND account_id = a.account_id AND created_at <= $3
        ORDER BY account_version DESC
        LIMIT 1
    ) AS e ON true
    WHERE a.tenant_id = $1 AND a.account_id = $2 AND declared.tenant IS NOT NULL
    OFFSET 0
) AS r;
