-- name: list_entries_oldest_first
-- An account's statement; the page cursor is the account version of the last entry.
-- Each line carries what its transfer says once for both its entries (trace id,
-- description, metadata) and the transfer's other account, the counterparty: joined
-- here by primary key in the same statement, not read per entry.
SELECT e.*, t.trace_id, t.description, t.metadata,
       CASE e.direction WHEN 'DEBIT' THEN t.credit_account_id
                        ELSE t.debit_account_id END AS counterparty_account_id
FROM entries AS e
JOIN transfers AS t ON t.tenant_id = e.tenant_id AND t.transfer_id = e.transfer_id
WHERE e.tenant_id = $1 AND e.account_id = $2
  AND ($3::timestamptz IS NULL OR e.created_at >= $3)
  AND ($4::timestamptz IS NULL OR e.created_at < $4)
  AND ($5::bigint IS NULL OR e.account_version > $5)
ORDER BY e.account_version
LIMIT $6;

-- name: list_entries_newest_first
SELECT e.*, t.trace_id, t.description, t.metadata,
       CASE e.direction WHEN 'DEBIT' THEN t.credit_account_id
                        ELSE t.debit_account_id END AS counterparty_account_id
FROM entries AS e
JOIN transfers AS t ON t.tenant_id = e.tenant_id AND t.transfer_id = e.transfer_id
WHERE e.tenant_id = $1 AND e.account_id = $2
  AND ($3::timestamptz IS NULL OR e.created_at >= $3)
  AND ($4::timestamptz IS NULL OR e.created_at < $4)
  AND ($5::bigint IS NULL OR e.account_version < $5)
ORDER BY e.account_version DESC
LIMIT $6;
