-- name: get_balances
SELECT account_id, currency_code, normal_balance, posted_debits_minor, posted_credits_minor,
       pending_debits_minor, pending_credits_minor, version, now() AS as_of
FROM accounts
WHERE tenant_id = $1 AND account_id = ANY($2::text[]);
