-- The event outbox (docs/events.md): every state change writes its event in the same
-- statement and transaction as the change (storage/sql/ledger.sql, write_batch), and
-- EventService reads them back in one order per tenant.
--
-- Positions come from one sequence per tenant, in the schema event_positions, so a
-- tenant's cursors say nothing about how busy the others are. write_batch draws them
-- while it holds the tenant's event lock (an advisory lock, kept to the commit), so a
-- tenant's positions become visible in the order they were drawn: no reader can ever see
-- position n+1 committed while n is still to come. That is what lets a consumer resume
-- after its last cursor and miss nothing.

CREATE SCHEMA event_positions;

CREATE TABLE events (
    tenant_id    text NOT NULL REFERENCES tenants (tenant_id),
    position     bigint NOT NULL CHECK (position > 0),
    type         text NOT NULL CHECK (type IN (
                     'ACCOUNT_CREATED', 'ACCOUNT_UPDATED', 'ACCOUNT_FROZEN',
                     'ACCOUNT_UNFROZEN', 'ACCOUNT_CLOSED', 'TRANSFER_CREATED',
                     'TRANSFER_POSTED', 'TRANSFER_VOIDED', 'TRANSFER_EXPIRED',
                     'TRANSFER_REVERSED', 'BATCH_COMMITTED')),
    occurred_at  timestamptz NOT NULL,
    request_id   text NOT NULL,
    trace_id     text,
    -- What the filters test, beside the payload: the accounts the change touched, their
    -- holders, and the transfers it carries.
    account_ids  text[] NOT NULL,
    holder_ids   text[] NOT NULL,
    transfer_ids text[] NOT NULL,
    -- The resources right after the change: {"transfers": [...], "accounts": [...]}, each
    -- as its table's columns (storage/rows.py, event documents).
    payload      jsonb NOT NULL,
    PRIMARY KEY (tenant_id, position)
);

-- How far each tenant's events were pruned: cursors before pruned_through have expired,
-- and changes made before pruned_until may have no event any more (verify skips them).
-- Updated in the same transaction as the deletion, so a reader sees both or neither.
CREATE TABLE event_horizons (
    tenant_id      text PRIMARY KEY REFERENCES tenants (tenant_id),
    pruned_through bigint NOT NULL,
    pruned_until   timestamptz NOT NULL
);

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
ALTER TABLE event_horizons ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_horizons FORCE ROW LEVEL SECURITY;

-- The tenant's position sequence, made with the tenant (by the trigger below, whoever
-- inserts it) and usable by the service's role.
CREATE FUNCTION create_event_positions(p_tenant_id text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    role_name text := (SELECT name FROM service_role);
BEGIN
    EXECUTE format('CREATE SEQUENCE IF NOT EXISTS event_positions.%I AS bigint', p_tenant_id);
    EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE event_positions.%I TO %I',
                   p_tenant_id, role_name);
END
$$;
REVOKE ALL ON FUNCTION create_event_positions(text) FROM PUBLIC;

CREATE FUNCTION tenant_event_positions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM create_event_positions(NEW.tenant_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER tenant_event_positions AFTER INSERT ON tenants
FOR EACH ROW EXECUTE FUNCTION tenant_event_positions();

SELECT create_event_positions(tenant_id) FROM tenants;

-- Retention, in small steps, for the sweeper of every replica (service/retention.py):
-- each call deletes at most p_step of the oldest events of one tenant, only a prefix in
-- position order (a cursor is a position: a hole would lose events for a resumed
-- consumer), and moves the tenant's horizon in the same transaction. SECURITY DEFINER:
-- it works across tenants, as the sweeper's expired_holds does.
CREATE FUNCTION prune_events(p_older_than timestamptz, p_step integer)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    victim record;
    pruned integer := 0;
    through bigint;
    until timestamptz;
BEGIN
    SELECT e.tenant_id INTO victim FROM events AS e
    WHERE e.occurred_at < p_older_than ORDER BY e.occurred_at LIMIT 1;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    -- The longest prefix, among the tenant's oldest p_step events, that is old enough.
    SELECT max(p.position) INTO through FROM (
        SELECT o.position,
               bool_and(o.occurred_at < p_older_than) OVER (ORDER BY o.position) AS all_old
        FROM (SELECT e.position, e.occurred_at FROM events AS e
              WHERE e.tenant_id = victim.tenant_id
              ORDER BY e.position LIMIT p_step) AS o
    ) AS p WHERE p.all_old;
    IF through IS NULL THEN
        RETURN 0;
    END IF;
    WITH deleted AS (
        DELETE FROM events AS e WHERE e.tenant_id = victim.tenant_id AND e.position <= through
        RETURNING e.occurred_at
    )
    SELECT count(*), max(d.occurred_at) INTO pruned, until FROM deleted AS d;
    INSERT INTO event_horizons AS h (tenant_id, pruned_through, pruned_until)
    VALUES (victim.tenant_id, through, until)
    ON CONFLICT (tenant_id) DO UPDATE
    SET pruned_through = greatest(h.pruned_through, through),
        pruned_until = greatest(h.pruned_until, until);
    RETURN pruned;
END
$$;
REVOKE ALL ON FUNCTION prune_events(timestamptz, integer) FROM PUBLIC;

-- Request outcomes, kept for their retention (at least 24 hours: the contract promises
-- a repeated request id that long), pruned the same way. The index came back for it.
CREATE INDEX request_outcomes_by_age ON request_outcomes (created_at);

CREATE FUNCTION prune_request_outcomes(p_older_than timestamptz, p_step integer)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    pruned integer;
BEGIN
    DELETE FROM request_outcomes AS o
    WHERE (o.tenant_id, o.request_id) IN (
        SELECT x.tenant_id, x.request_id FROM request_outcomes AS x
        WHERE x.created_at < p_older_than ORDER BY x.created_at LIMIT p_step);
    GET DIAGNOSTICS pruned = ROW_COUNT;
    RETURN pruned;
END
$$;
REVOKE ALL ON FUNCTION prune_request_outcomes(timestamptz, integer) FROM PUBLIC;

DO $$
DECLARE
    role_name text := (SELECT name FROM service_role);
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA event_positions TO %I', role_name);
    EXECUTE format('GRANT SELECT, INSERT ON events TO %I', role_name);
    EXECUTE format('GRANT SELECT ON event_horizons TO %I', role_name);
    EXECUTE format('GRANT EXECUTE ON FUNCTION prune_events(timestamptz, integer) TO %I',
                   role_name);
    EXECUTE format('GRANT EXECUTE ON FUNCTION prune_request_outcomes(timestamptz, integer) '
                   'TO %I', role_name);
    EXECUTE format('CREATE POLICY tenant_isolation ON events TO %I '
                   'USING (tenant_id = current_setting(''moneymovement.tenant_id'', true)) '
                   'WITH CHECK (tenant_id = current_setting(''moneymovement.tenant_id'', true))',
                   role_name);
    EXECUTE format('CREATE POLICY tenant_isolation ON event_horizons TO %I '
                   'USING (tenant_id = current_setting(''moneymovement.tenant_id'', true))',
                   role_name);
    -- The owner (migrations, verify, the SECURITY DEFINER functions above) sees all.
    EXECUTE format('CREATE POLICY ledger_owner ON events TO %I USING (true)', current_user);
    EXECUTE format('CREATE POLICY ledger_owner ON event_horizons TO %I USING (true)',
                   current_user);
END
$$;
