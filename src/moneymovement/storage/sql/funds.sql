-- Reads of funds accessibility (docs/funds-availability.md); writes are write_batch's.

-- name: list_scheduled_funds
-- An account's scheduled parts by time, then id; unended only unless $3; after the
-- keyset ($4, $5). Run inside a read transaction of the tenant.
SELECT *
FROM scheduled_funds
WHERE tenant_id = $1 AND account_id = $2
  AND ($3 OR ended_at IS NULL)
  AND ($4::timestamptz IS NULL OR (available_at, funds_id) > ($4, $5::text))
ORDER BY available_at, funds_id
LIMIT $6;

-- name: list_balance_monitors
-- An account's live monitors, oldest first (at most 20). Inside a read transaction.
SELECT *
FROM balance_monitors
WHERE tenant_id = $1 AND account_id = $2 AND NOT deleted
ORDER BY created_at, monitor_id;

-- name: get_balance_monitor
-- One monitor by id, deleted or not. Inside a read transaction.
SELECT * FROM balance_monitors WHERE tenant_id = $1 AND monitor_id = $2;

-- name: list_policy_changes
-- An account's funds policy changes, newest first, before version $3. Inside a read
-- transaction.
SELECT *
FROM account_policy_changes
WHERE tenant_id = $1 AND account_id = $2 AND ($3::bigint IS NULL OR version < $3)
ORDER BY version DESC
LIMIT $4;

-- name: find_accounts_with_due_funds
-- The sweeper's: accounts with scheduled parts due now, across tenants (a function
-- run as the ledger's owner, migration 0007).
SELECT tenant_id, account_id FROM accounts_with_due_funds($1);
