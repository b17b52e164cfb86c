-- The payout worker asks the rail about recently POSTED payouts (a return's callback may
-- have been lost) a page at a time, each page older than the one before and the newest
-- again after the oldest, so every one is asked about however many there are. Before,
-- the newest 100 only were asked about, and an older payout whose return callback was
-- lost stayed POSTED in the ledger while the bank had returned it.
DROP FUNCTION payouts_in_flight(integer, interval);

-- PROCESSING payouts (the oldest first), then up to max_rows POSTED within
-- returns_within and, given a page's last (settled_at, payout_id), older than it.
CREATE FUNCTION payouts_in_flight(
    max_rows integer, returns_within interval, posted_before timestamptz, before_id text
)
RETURNS TABLE (tenant_id text, payout_id text, settled_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    (SELECT p.tenant_id, p.payout_id, NULL::timestamptz FROM payouts AS p
     WHERE p.state = 'PROCESSING'
     ORDER BY p.processing_at
     LIMIT max_rows)
    UNION ALL
    (SELECT p.tenant_id, p.payout_id, p.settled_at FROM payouts AS p
     WHERE p.state = 'POSTED' AND p.settled_at > now() - returns_within
       AND (posted_before IS NULL OR (p.settled_at, p.payout_id) < (posted_before, before_id))
     ORDER BY p.settled_at DESC, p.payout_id DESC
     LIMIT max_rows)
$$;
REVOKE ALL ON FUNCTION payouts_in_flight(integer, interval, timestamptz, text) FROM PUBLIC;

DO $$
BEGIN
    EXECUTE format('GRANT EXECUTE ON FUNCTION payouts_in_flight(integer, interval, '
                   'timestamptz, text) TO %I', (SELECT name FROM service_role));
END
$$;
