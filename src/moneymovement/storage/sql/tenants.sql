-- name: insert_tenant
INSERT INTO tenants (tenant_id, name) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING
RETURNING tenant_id;

-- name: find_tenant_by_name
SELECT tenant_id FROM tenants WHERE name = $1;

-- name: list_tenants
SELECT t.tenant_id, t.name, t.created_at,
       (SELECT count(*) FROM api_tokens AS k
        WHERE k.tenant_id = t.tenant_id AND k.revoked_at IS NULL) AS active_tokens
FROM tenants AS t
ORDER BY t.created_at, t.tenant_id;

-- name: insert_token
INSERT INTO api_tokens (token_id, tenant_id, token_sha256) VALUES ($1, $2, $3);

-- name: find_tenant_by_token
SELECT tenant_id FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL;
