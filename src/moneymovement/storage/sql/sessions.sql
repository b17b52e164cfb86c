-- name: set_service_role
-- Run once on every new connection of the service's pool: from then on row-level
-- security applies to everything the connection does (migrations/0003 and 0004: the
-- role is this database's own). set_config('role', ...) is SET ROLE, with a parameter.
-- Returns the role's name; no row means not migrated, and the pool refuses to go on.
SELECT set_config('role', name, false) FROM service_role;

-- name: begin_write
-- Begins a write transaction and declares its tenant, in one round trip. The tenant's
-- literal is put in by storage.session.begin_statement (checked against the id format):
-- set_config() as a parameter would need a second statement, and a round trip more on
-- every RPC. is_local = true: the declaration ends with the transaction.
-- Generic plans: the write statements are key lookups whose plan never depends on the
-- values, and re-planning write_postings (a five-part CTE) for every call cost more
-- PostgreSQL CPU than running it (pg_stat_statements, docs/performance.md). Only here:
-- the list queries of read transactions need custom plans (their optional filters
-- decide the index; generic plans made list_transfers ~100x slower).
BEGIN ISOLATION LEVEL SERIALIZABLE;
SET LOCAL plan_cache_mode = force_generic_plan;
SELECT set_config('moneymovement.tenant_id', :tenant, true);

-- name: begin_read
-- A consistent snapshot that takes no SSI predicate locks, so reads never make
-- concurrent writers fail; with its tenant declared, as begin_write. Only for reads of
-- several statements (a statement page and its account).
--
-- One round trip per read. A read of one statement needs no BEGIN: it runs alone in its
-- own implicit transaction (READ COMMITTED: one snapshot, no SSI locks), and declares
-- its tenant itself, as in get_account (accounts.sql):
--     SELECT r.* FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant)
--         AS declared, LATERAL (SELECT ... AND declared.tenant IS NOT NULL OFFSET 0) AS r
-- The inner query refers to `declared`, and OFFSET 0 keeps it from being merged into the
-- outer one, so it can only run as the inner side of a nested loop, after the one row
-- that sets the tenant: row-level security then sees it. The declaration ends with the
-- implicit transaction. Should a plan ever evaluate the policy first, it would see no
-- tenant and the read would find nothing: it fails closed, and every read test fails.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
SELECT set_config('moneymovement.tenant_id', :tenant, true);

-- name: commit
COMMIT;

-- name: rollback
ROLLBACK;
