-- The payout worker asks about PROCESSING payouts a page at a time too, each page after
-- the last (oldest first) and the oldest again after the newest: more than a page of
-- payouts a rail never takes (they stay PROCESSING) no longer keeps newer ones from being
-- asked about. Rows say which kind they are and carry their page position.
DROP FUNCTION payouts_in_flight(integer, interval, timestamptz, text);

CREATE FUNCTION payouts_in_flight(
    max_rows integer, returns_within interval,
    processing_after timestamptz, after_id text,
    posted_before timestamptz, before_id text
)
RETURNS TABLE (tenant_id text, payout_id text, state text, at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    (SELECT p.tenant_id, p.payout_id, p.state, p.processing_at FROM payouts AS p
     WHERE p.state = 'PROCESSING'
       AND (processing_after IS NULL
            OR (p.processing_at, p.payout_id) > (processing_after, after_id))
     ORDER BY p.processing_at, p.payout_id
     LIMIT max_rows)
    UNION ALL
    (SELECT p.tenant_id, p.payout_id, p.state, p.settled_at FROM payouts AS p
     WHERE p.state = 'POSTED' AND p.settled_at > now() - returns_within
       AND (posted_before IS NULL OR (p.settled_at, p.payout_id) < (posted_before, before_id))
     ORDER BY p.settled_at DESC, p.payout_id DESC
     LIMIT max_rows)
$$;
REVOKE ALL ON FUNCTION payouts_in_flight(integer, interval, timestamptz, text, timestamptz, text)
    FROM PUBLIC;

DO $$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION payouts_in_flight(integer, interval, '
                   'timestamptz, text, timestamptz, text) TO %I', (SELECT name FROM service_role));
END
$$;
