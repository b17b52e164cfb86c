-- name: list_entries_oldest_first
-- An account's statement; the page cursor is the account version of the last entry.
SELECT * FROM entries
WHERE tenant_id = $1 AND account_id = $2
  AND ($3::timestamptz IS NULL OR created_at >= $3)
  AND ($4::timestamptz IS NULL OR created_at < $4)
  AND ($5::bigint IS NULL OR account_version > $5)
ORDER BY account_version
LIMIT $6;

-- name: list_entries_newest_first
SELECT * FROM entries
WHERE tenant_id = $1 AND account_id = $2
  AND ($3::timestamptz IS NULL OR created_at >= $3)
  AND ($4::timestamptz IS NULL OR created_at < $4)
  AND ($5::bigint IS NULL OR account_version < $5)
ORDER BY account_version DESC
LIMIT $6;
