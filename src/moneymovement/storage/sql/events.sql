-- The event stream's reads (docs/events.md). One-statement reads (sessions.sql): the
-- tenant is declared inside the statement, and everything comes from one snapshot.

-- name: read_events
-- Up to $3 events of the tenant after position $2 that match the filters (types $4,
-- account $5, holder $6; NULL matches all), in position order; with, from the same
-- snapshot, the horizon (events through it were pruned: older cursors have expired)
-- and the head (the newest position; every event up to it is visible here, since
-- positions become visible in order).
SELECT (SELECT coalesce(max(h.pruned_through), 0) FROM event_horizons AS h
        WHERE h.tenant_id = $1 AND declared.tenant IS NOT NULL) AS horizon,
       (SELECT coalesce(max(e.position), 0) FROM events AS e
        WHERE e.tenant_id = $1 AND declared.tenant IS NOT NULL) AS head,
       ARRAY(SELECT e FROM events AS e
             WHERE e.tenant_id = $1 AND e.position > $2
               AND ($4::text[] IS NULL OR e.type = ANY($4::text[]))
               AND ($5::text IS NULL OR $5::text = ANY(e.account_ids))
               AND ($6::text IS NULL OR $6::text = ANY(e.holder_ids))
               AND declared.tenant IS NOT NULL
             ORDER BY e.position
             LIMIT $3) AS events
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared;

-- name: prune_events
-- One step of retention (migration 0006 says how): the number of events deleted.
SELECT prune_events($1, $2);

-- name: prune_request_outcomes
SELECT prune_request_outcomes($1, $2);
