-- Two tidy-ups found by reading every query against the schema.
--
-- request_outcomes_by_age: no query reads request_outcomes by age, yet every mutation
-- inserted into it (on its newest, busiest page). It comes back with a retention job,
-- if one is ever written.
DROP INDEX request_outcomes_by_age;

-- A transfer's reversals as JSON, for the three queries that return transfers (get,
-- list, lock): one definition instead of three copies of the same subquery. SECURITY
-- INVOKER (the default): row-level security applies to it as to its caller; EXECUTE is
-- PUBLIC's by default, the service's role included.
CREATE FUNCTION transfer_reversals(p_tenant_id text, p_transfer_id text)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT COALESCE(jsonb_agg(jsonb_build_object(
               'id', r.transfer_id, 'amount_minor', r.amount_minor,
               'at', r.created_at, 'request_id', r.request_id)
           ORDER BY r.created_at, r.transfer_id), '[]'::jsonb)
    FROM transfers AS r
    WHERE r.tenant_id = p_tenant_id AND r.reversal_of_id = p_transfer_id
$$;
