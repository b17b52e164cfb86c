-- Reads of external accounts, payouts and inbound transfers (docs/payouts.md); writes
-- are write_batch's. Each runs in a read of the tenant ($1).

-- name: get_external_account
SELECT * FROM external_accounts WHERE tenant_id = $1 AND external_account_id = $2;

-- name: list_external_accounts
-- Newest first, after the keyset ($2, $3); only those with fingerprint $4 when given.
SELECT *
FROM external_accounts
WHERE tenant_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, external_account_id) < ($2, $3::text))
  AND ($4::text IS NULL OR fingerprint = $4)
ORDER BY created_at DESC, external_account_id DESC
LIMIT $5;

-- name: get_payout
SELECT * FROM payouts WHERE tenant_id = $1 AND payout_id = $2;

-- name: list_payouts
-- Newest first, after the keyset ($2, $3); filtered by source account ($4), state ($5)
-- and external account ($6) when given; from accounts of holder $8 only when given (a
-- call acting for a holder).
SELECT *
FROM payouts AS p
WHERE tenant_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, payout_id) < ($2, $3::text))
  AND ($4::text IS NULL OR account_id = $4)
  AND ($8::text IS NULL OR EXISTS (
      SELECT 1 FROM accounts AS a
      WHERE a.tenant_id = $1 AND a.account_id = p.account_id AND a.holder_id = $8))
  AND ($5::text IS NULL OR state = $5)
  AND ($6::text IS NULL OR external_account_id = $6)
ORDER BY created_at DESC, payout_id DESC
LIMIT $7;

-- name: get_inbound_transfer
SELECT * FROM inbound_transfers WHERE tenant_id = $1 AND inbound_id = $2;

-- name: find_inbound_transfer
-- By the rail's own reference (unique per rail).
SELECT * FROM inbound_transfers WHERE tenant_id = $1 AND rail = $2 AND rail_reference = $3;

-- name: list_inbound_transfers
-- Newest first, after the keyset ($2, $3); of account $4 when given; to accounts of
-- holder $6 only when given (a call acting for a holder).
SELECT *
FROM inbound_transfers AS i
WHERE tenant_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, inbound_id) < ($2, $3::text))
  AND ($4::text IS NULL OR account_id = $4)
  AND ($6::text IS NULL OR EXISTS (
      SELECT 1 FROM accounts AS a
      WHERE a.tenant_id = $1 AND a.account_id = i.account_id AND a.holder_id = $6))
ORDER BY created_at DESC, inbound_id DESC
LIMIT $5;

-- name: find_account_id_by_external_id
SELECT account_id FROM accounts WHERE tenant_id = $1 AND external_id = $2;

-- name: rail_ledger_items
-- What reconciliation compares with a rail's report: every payout of rail $2 (those
-- PENDING or CANCELED never reached it: rails/reconcile.py expects them absent) and
-- every inbound transfer.
SELECT 'PAYOUT' AS kind, payout_id AS reference, amount_minor, currency_code, state
FROM payouts
WHERE tenant_id = $1 AND rail = $2
UNION ALL
SELECT 'INBOUND', rail_reference, amount_minor, currency_code, state
FROM inbound_transfers
WHERE tenant_id = $1 AND rail = $2;

-- name: find_payouts_to_submit
-- The payout worker's, across tenants: PENDING payouts past their submission time (a
-- function run as the ledger's owner, migration 0008).
SELECT tenant_id, payout_id FROM payouts_to_submit($1);

-- name: find_payouts_in_flight
-- The payout worker's, across tenants: a page of PROCESSING payouts, oldest first, after
-- ($3, $4) when given, and a page of payouts POSTED within $2 seconds (a rail may still
-- return them), newest first, older than ($5, $6) when given (migrations 0012, 0014).
SELECT tenant_id, payout_id, state, at
FROM payouts_in_flight($1, make_interval(secs => $2), $3, $4, $5, $6);
