-- name: list_entries_oldest_first
-- An account's statement; the page cursor is the account version of the last entry. The
-- trace id is the transfer's: an entry's trace is its transfer's, stored once.
SELECT e.*, (SELECT t.trace_id FROM transfers AS t
             WHERE t.tenant_id = e.tenant_id AND t.transfer_id = e.transfer_id) AS trace_id
FROM entries AS e
WHERE e.tenant_id = $1 AND e.account_id = $2
  AND ($3::timestamptz IS NULL OR created_at >= $3)
  AND ($4::timestamptz IS NULL OR created_at < $4)
  AND ($5::bigint IS NULL OR account_version > $5)
ORDER BY account_version
LIMIT $6;

-- name: list_entries_newest_first
SELECT e.*, (SELECT t.trace_id FROM transfers AS t
             WHERE t.tenant_id = e.tenant_id AND t.transfer_id = e.transfer_id) AS trace_id
FROM entries AS e
WHERE e.tenant_id = $1 AND e.account_id = $2
  AND ($3::timestamptz IS NULL OR created_at >= $3)
  AND ($4::timestamptz IS NULL OR created_at < $4)
  AND ($5::bigint IS NULL OR account_version < $5)
ORDER BY account_version DESC
LIMIT $6;
