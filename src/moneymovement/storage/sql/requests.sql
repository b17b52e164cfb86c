-- name: find_outcome
SELECT fingerprint, outcome FROM request_outcomes WHERE tenant_id = $1 AND request_id = $2;

-- name: save_outcome
INSERT INTO request_outcomes (tenant_id, request_id, fingerprint, outcome)
VALUES ($1, $2, $3, $4);
