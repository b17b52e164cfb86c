-- What make bench seeds, next to the service's own tables (see bench/README in run.py).

-- name: seed_bench_accounts
-- $2 accounts of tenant $1, numbered 1..$2, UNLIMITED overdraft so that no transfer is ever
-- refused for funds. The id is a function of the number (digits spelled as letters a-j,
-- a valid `acct_` id), so pgbench can name the same accounts from a random integer
-- (bench/transfer_sql.py, account_id_sql) and the load generator from Python (accounts.py).
INSERT INTO accounts (tenant_id, account_id, currency_code, normal_balance, overdraft_mode,
                      state, name)
SELECT $1, 'acct_' || translate(lpad(i::text, 26, '0'), '0123456789', 'abcdefghij'),
       'USD', 'CREDIT', 'UNLIMITED', 'ACTIVE', 'bench ' || i
FROM generate_series(1, $2) AS i;

-- name: probe_outcome
-- The outcome row the service wrote for one real transfer: pgbench saves one of the same
-- size, so that its save_outcome writes what the service's does.
SELECT encode(o.fingerprint, 'hex') AS fingerprint_hex, o.outcome::text AS outcome,
       t.trace_id IS NOT NULL AS has_trace_id
FROM request_outcomes AS o
JOIN transfers AS t ON t.tenant_id = o.tenant_id AND t.request_id = o.request_id
WHERE o.tenant_id = $1 AND o.request_id = $2;

-- name: service_role
-- The role the service switches to in this database (migrations/0004); pgbench takes it
-- too, so that row-level security applies to it as to the service.
SELECT name FROM service_role;

-- name: probe_event
-- The payload of the event the service logged for that transfer: pgbench logs one of the
-- same size with each transfer of the service's own SQL.
SELECT e.payload::text AS payload
FROM events AS e
WHERE e.tenant_id = $1 AND e.request_id = $2 AND e.type = 'TRANSFER_CREATED';

-- name: seeded_before_events
-- The seeded ledger was written by the bench, not the service, so it has no events: its
-- tenant's event horizon says what retention would say of it, that changes made until
-- now may have no event (`verify` then checks the events of every later change), while
-- no cursor has expired ($2: until when; 'infinity' for a tenant whose changes never get
-- their events checked).
INSERT INTO event_horizons (tenant_id, pruned_through, pruned_until)
VALUES ($1, 0, coalesce($2::text::timestamptz, clock_timestamp()))
ON CONFLICT (tenant_id) DO UPDATE SET pruned_until = excluded.pruned_until;
