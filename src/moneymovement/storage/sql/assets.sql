-- name: list_assets
-- The tenant's assets by code, after $2 (the last code of the previous page; NULL for
-- the first). A one-statement read (sessions.sql, "One round trip per read"): assets are
-- never changed or deleted, so this read outside any write transaction stays true.
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT * FROM assets
    WHERE tenant_id = $1 AND declared.tenant IS NOT NULL
      AND ($2::text IS NULL OR code > $2)
    ORDER BY code
    LIMIT $3
    OFFSET 0
) AS r;
