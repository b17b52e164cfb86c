-- name: insert_tenant
INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING
RETURNING tenant_id;

-- name: find_tenant_by_name
SELECT tenant_id FROM tenants WHERE name = $1;

-- name: find_tenant_by_id
SELECT tenant_id FROM tenants WHERE tenant_id = $1;

-- name: list_tenants
SELECT t.tenant_id, t.name, t.created_at,
       (SELECT count(*) FROM api_tokens AS k
        WHERE k.tenant_id = t.tenant_id AND k.revoked_at IS NULL) AS active_tokens
FROM tenants AS t
ORDER BY t.created_at, t.tenant_id;

-- name: insert_token
-- $4: the holder the token is scoped to (NULL: the platform's token); the foreign key
-- refuses a holder the tenant does not have.
INSERT INTO api_tokens (token_id, tenant_id, token_sha256, holder_id) VALUES ($1, $2, $3, $4)
RETURNING created_at;

-- name: find_live_token
-- By the digest's unique index; the caller then compares the stored digest in constant time.
SELECT token_id, tenant_id, token_sha256, holder_id FROM api_tokens
WHERE token_sha256 = $1 AND revoked_at IS NULL;

-- name: list_tokens
-- The tokens of one tenant ($1), or of all when NULL; never the digest.
SELECT k.token_id, k.tenant_id, t.name AS tenant_name, k.created_at, k.revoked_at, k.holder_id
FROM api_tokens AS k
JOIN tenants AS t ON t.tenant_id = k.tenant_id
WHERE $1::text IS NULL OR k.tenant_id = $1
ORDER BY k.created_at, k.token_id;

-- name: revoke_token
-- The trigger of migration 0002 notifies every server, which drops the token from its
-- cache. An already revoked token keeps its first revocation time.
UPDATE api_tokens SET revoked_at = now()
WHERE token_id = $1 AND revoked_at IS NULL
RETURNING revoked_at;

-- name: find_token_revocation
SELECT revoked_at FROM api_tokens WHERE token_id = $1;

-- name: confirm_token_change
-- A server tells revokers it has dropped token $1 from its cache.
SELECT pg_notify('mm_token_dropped', $1);

-- name: count_token_listeners
-- The servers (their listener connections) that must confirm a revocation.
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'moneymovement-token-changes';

-- name: tenant_by_name
-- A tenant with its number of live tokens (AdminService's CreateTenant answer).
SELECT t.tenant_id, t.name, t.created_at,
       (SELECT count(*) FROM api_tokens AS k
        WHERE k.tenant_id = t.tenant_id AND k.revoked_at IS NULL) AS active_tokens
FROM tenants AS t
WHERE t.name = $1;

-- name: tenants_page
-- Up to $3 tenants after the (created_at, tenant_id) cursor ($1, $2; NULL: from the
-- first), oldest first: AdminService's ListTenants.
SELECT t.tenant_id, t.name, t.created_at,
       (SELECT count(*) FROM api_tokens AS k
        WHERE k.tenant_id = t.tenant_id AND k.revoked_at IS NULL) AS active_tokens
FROM tenants AS t
WHERE $1::timestamptz IS NULL OR (t.created_at, t.tenant_id) > ($1, $2::text)
ORDER BY t.created_at, t.tenant_id
LIMIT $3;

-- name: tokens_page
-- Up to $4 tokens of tenant $1 after the (created_at, token_id) cursor ($2, $3; NULL:
-- from the first), oldest first; never the digest: AdminService's ListTokens.
SELECT token_id, tenant_id, created_at, revoked_at, holder_id
FROM api_tokens
WHERE tenant_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, token_id) > ($2, $3::text))
ORDER BY created_at, token_id
LIMIT $4;
