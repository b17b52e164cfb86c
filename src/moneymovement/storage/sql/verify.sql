-- The ledger's invariants, each as a query that returns the rows breaking it (at most
-- $1), run by `moneymovement verify` in one READ ONLY DEFERRABLE serializable snapshot.
-- The database aggregates; only violations travel.

-- name: verify_reader_sees_every_tenant
-- The ledger's tables that row-level security would filter for this reader: verify must
-- run as their owner (the role that ran the migrations) or a superuser, never as the
-- service's login, which would see no row and find nothing wrong.
SELECT c.relname AS table_name, current_user AS reader,
       pg_get_userbyid(c.relowner) AS run_verify_as
FROM pg_class AS c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relname IN ('accounts', 'transfers', 'entries', 'request_outcomes', 'events',
                    'event_horizons', 'scheduled_funds', 'balance_monitors',
                    'account_policy_changes')
  AND NOT pg_has_role(current_user, c.relowner, 'USAGE')
  AND NOT (SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles AS r
           WHERE r.rolname = current_user)
ORDER BY c.relname
LIMIT $1;

-- name: verify_debits_equal_credits
-- Invariant 1: per currency and entry kind, the debits equal the credits.
SELECT t.currency_code, e.kind,
       sum(e.amount_minor) FILTER (WHERE e.direction = 'DEBIT') AS debits_minor,
       sum(e.amount_minor) FILTER (WHERE e.direction = 'CREDIT') AS credits_minor
FROM entries AS e
JOIN transfers AS t USING (tenant_id, transfer_id)
GROUP BY t.currency_code, e.kind
HAVING sum(e.amount_minor) FILTER (WHERE e.direction = 'DEBIT')
       IS DISTINCT FROM sum(e.amount_minor) FILTER (WHERE e.direction = 'CREDIT')
LIMIT $1;

-- name: verify_transfers_balanced
-- Invariant 1: each transfer writes, per kind, one debit and one credit of the same
-- amount, on its own two accounts.
SELECT e.tenant_id, e.transfer_id, e.kind,
       count(*) FILTER (WHERE e.direction = 'DEBIT') AS debits,
       count(*) FILTER (WHERE e.direction = 'CREDIT') AS credits
FROM entries AS e
JOIN transfers AS t USING (tenant_id, transfer_id)
GROUP BY e.tenant_id, e.transfer_id, e.kind, t.debit_account_id, t.credit_account_id
HAVING count(*) FILTER (WHERE e.direction = 'DEBIT' AND e.account_id = t.debit_account_id)
           <> count(*) FILTER (WHERE e.direction = 'CREDIT' AND e.account_id = t.credit_account_id)
    OR count(*) FILTER (WHERE e.direction = 'DEBIT')
           <> count(*) FILTER (WHERE e.direction = 'CREDIT')
    OR count(*) <> count(*) FILTER (WHERE e.account_id IN (t.debit_account_id, t.credit_account_id))
    OR sum(e.amount_minor) FILTER (WHERE e.direction = 'DEBIT')
           <> sum(e.amount_minor) FILTER (WHERE e.direction = 'CREDIT')
LIMIT $1;

-- name: verify_running_balances
-- Each entry's running balances are the previous entry's plus its own amount, starting
-- from zero, in account version order.
SELECT tenant_id, account_id, account_version
FROM (
    SELECT e.*,
           lag(posted_debits_minor, 1, 0::bigint) OVER w AS prev_pd,
           lag(posted_credits_minor, 1, 0::bigint) OVER w AS prev_pc,
           lag(pending_debits_minor, 1, 0::bigint) OVER w AS prev_qd,
           lag(pending_credits_minor, 1, 0::bigint) OVER w AS prev_qc
    FROM entries AS e
    WINDOW w AS (PARTITION BY tenant_id, account_id ORDER BY account_version)
) AS s
WHERE (posted_debits_minor, posted_credits_minor, pending_debits_minor, pending_credits_minor)
   <> (prev_pd + CASE WHEN kind IN ('POSTED', 'CAPTURED') AND direction = 'DEBIT'
                      THEN amount_minor ELSE 0 END,
       prev_pc + CASE WHEN kind IN ('POSTED', 'CAPTURED') AND direction = 'CREDIT'
                      THEN amount_minor ELSE 0 END,
       prev_qd + CASE WHEN direction = 'DEBIT' THEN
                     CASE kind WHEN 'PENDING' THEN amount_minor
                               WHEN 'PENDING_RELEASED' THEN -amount_minor
                               WHEN 'CAPTURED' THEN -amount_minor ELSE 0 END
                 ELSE 0 END,
       prev_qc + CASE WHEN direction = 'CREDIT' THEN
                     CASE kind WHEN 'PENDING' THEN amount_minor
                               WHEN 'PENDING_RELEASED' THEN -amount_minor
                               WHEN 'CAPTURED' THEN -amount_minor ELSE 0 END
                 ELSE 0 END)
LIMIT $1;

-- name: verify_account_balances
-- Invariant 2: an account's stored totals and version are those of its newest entry
-- (zero without entries).
SELECT a.tenant_id, a.account_id
FROM accounts AS a
LEFT JOIN LATERAL (
    SELECT * FROM entries AS e
    WHERE e.tenant_id = a.tenant_id AND e.account_id = a.account_id
    ORDER BY e.account_version DESC
    LIMIT 1
) AS last ON true
WHERE (a.posted_debits_minor, a.posted_credits_minor, a.pending_debits_minor,
       a.pending_credits_minor)
   <> (coalesce(last.posted_debits_minor, 0), coalesce(last.posted_credits_minor, 0),
       coalesce(last.pending_debits_minor, 0), coalesce(last.pending_credits_minor, 0))
   OR last.account_version > a.version
LIMIT $1;

-- name: verify_pending_totals
-- Pending totals equal what the open holds still hold (their amounts less what was
-- captured of them).
SELECT a.tenant_id, a.account_id, a.pending_debits_minor, a.pending_credits_minor,
       coalesce(out.held, 0) AS held_out_minor, coalesce(inc.held, 0) AS held_in_minor
FROM accounts AS a
LEFT JOIN (
    SELECT tenant_id, debit_account_id AS account_id,
           sum(amount_minor - posted_amount_minor) AS held
    FROM transfers WHERE state = 'PENDING' GROUP BY 1, 2
) AS out USING (tenant_id, account_id)
LEFT JOIN (
    SELECT tenant_id, credit_account_id AS account_id,
           sum(amount_minor - posted_amount_minor) AS held
    FROM transfers WHERE state = 'PENDING' GROUP BY 1, 2
) AS inc USING (tenant_id, account_id)
WHERE (a.pending_debits_minor, a.pending_credits_minor)
   <> (coalesce(out.held, 0), coalesce(inc.held, 0))
LIMIT $1;

-- name: verify_holds_end_once
-- Invariant 5: a hold is released at most once (exactly once when ended): what it held
-- (its PENDING entries: the hold, its increments, an over-capture's excess) is released
-- (PENDING_RELEASED) or captured (CAPTURED), all of it once it ended and none of it
-- twice; what it posted is its captures, never past its amount plus its over-capture
-- tolerance; and each capture and increment in its steps has its one entry pair (a hold
-- that ended before holds kept steps captured in a POSTED pair). Immediate transfers
-- hold nothing.
SELECT t.tenant_id, t.transfer_id, t.state
FROM transfers AS t
LEFT JOIN LATERAL (
    SELECT coalesce(sum(amount_minor) FILTER (WHERE kind = 'PENDING'), 0) AS held,
           coalesce(sum(amount_minor) FILTER (WHERE kind IN ('PENDING_RELEASED', 'CAPTURED')),
                    0) AS ended,
           coalesce(sum(amount_minor) FILTER (WHERE kind IN ('POSTED', 'CAPTURED')), 0)
               AS posted,
           count(*) FILTER (WHERE kind = 'PENDING') AS holds,
           count(*) FILTER (WHERE kind = 'PENDING_RELEASED') AS releases,
           -- A capture is a CAPTURED pair; a hold captured before 0010 captured in a
           -- POSTED pair, and its row gains its steps when changed again (a reversal).
           count(*) FILTER (WHERE kind IN ('CAPTURED', 'POSTED')) AS captures
    FROM entries AS e
    WHERE e.tenant_id = t.tenant_id AND e.transfer_id = t.transfer_id
      AND e.direction = 'DEBIT'
) AS e ON true
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE s ->> 'kind' IN ('CAPTURED', 'POSTED')) AS captures,
           count(*) FILTER (WHERE s ->> 'kind' = 'INCREMENTED') AS increments
    FROM jsonb_array_elements(coalesce(t.hold_steps, '[]')) AS s
) AS steps
WHERE CASE
        -- Immediate: no expiry, and not one of a payout's holds (which never expire).
        WHEN t.expires_at IS NULL
             AND NOT coalesce(t.owner_id LIKE 'po\_%' AND t.reversal_of_id IS NULL, false)
            THEN e.held <> 0 OR e.ended <> 0
        WHEN t.state = 'PENDING' THEN e.held <> t.amount_minor OR e.releases <> 0
                                      OR e.ended <> t.posted_amount_minor
        ELSE e.held <> greatest(t.amount_minor, t.posted_amount_minor) OR e.ended <> e.held
             OR e.releases > 1
      END
   OR e.posted <> t.posted_amount_minor
   OR t.posted_amount_minor::numeric
      > t.amount_minor + floor(t.amount_minor::numeric * t.over_capture_bps / 10000)
   OR (t.hold_steps IS NOT NULL
       AND (e.captures <> steps.captures
            OR e.holds <> 1 + steps.increments
                          + (t.posted_amount_minor > t.amount_minor)::int))
LIMIT $1;

-- name: verify_reversals_within_original
-- Reversals never exceed what was posted, and the recorded total is their sum.
SELECT t.tenant_id, t.transfer_id, t.posted_amount_minor, t.reversed_amount_minor,
       coalesce(r.total, 0) AS reversals_minor
FROM transfers AS t
LEFT JOIN (
    SELECT tenant_id, reversal_of_id AS transfer_id, sum(amount_minor) AS total
    FROM transfers WHERE reversal_of_id IS NOT NULL GROUP BY 1, 2
) AS r USING (tenant_id, transfer_id)
WHERE t.reversed_amount_minor <> coalesce(r.total, 0)
   OR coalesce(r.total, 0) > t.posted_amount_minor
LIMIT $1;

-- name: verify_overdraft_policy
-- Invariant 3: no available balance below the account's overdraft floor; what is posted
-- but not available yet (pending availability, the rolling reserve) is not available.
SELECT tenant_id, account_id, overdraft_mode, overdraft_limit_minor
FROM accounts
WHERE overdraft_mode <> 'UNLIMITED'
  AND CASE normal_balance
        WHEN 'CREDIT' THEN posted_credits_minor::numeric - posted_debits_minor
                           - pending_debits_minor
        ELSE posted_debits_minor::numeric - posted_credits_minor - pending_credits_minor
      END - pending_availability_minor - reserved_minor < -overdraft_limit_minor
LIMIT $1;

-- Funds accessibility (docs/funds-availability.md, migration 0007): the parts of posted
-- credits that are not available yet, scheduled_funds. An account's two totals of them
-- change without entries (a release writes none), so the entries' running values of
-- them are not held against the account.

-- name: verify_pending_availability
-- An account's pending availability is the sum of its unended AVAILABILITY parts, and
-- its reserve the sum of its unended RESERVE parts.
SELECT a.tenant_id, a.account_id, a.pending_availability_minor, a.reserved_minor,
       coalesce(f.pending, 0) AS scheduled_availability_minor,
       coalesce(f.reserved, 0) AS scheduled_reserve_minor
FROM accounts AS a
LEFT JOIN (
    SELECT tenant_id, account_id,
           sum(amount_minor) FILTER (WHERE kind = 'AVAILABILITY') AS pending,
           sum(amount_minor) FILTER (WHERE kind = 'RESERVE') AS reserved
    FROM scheduled_funds WHERE ended_at IS NULL GROUP BY 1, 2
) AS f USING (tenant_id, account_id)
WHERE (a.pending_availability_minor, a.reserved_minor)
   <> (coalesce(f.pending, 0), coalesce(f.reserved, 0))
LIMIT $1;

-- name: verify_funds_not_available_early
-- Available never includes funds before their time: no part was RELEASED (the sweeper's
-- end) before its available_at, and a part whose time is still to come is unended, or
-- was ended on purpose: RELEASED_EARLY (ReleaseFunds) or REVERSED (its credit's reversal).
SELECT tenant_id, funds_id, account_id, transfer_id, kind, available_at, ended_at, end_kind
FROM scheduled_funds
WHERE (end_kind = 'RELEASED' AND ended_at < available_at)
   OR (available_at > now() AND ended_at IS NOT NULL
       AND coalesce(end_kind, '') NOT IN ('RELEASED_EARLY', 'REVERSED'))
LIMIT $1;

-- name: verify_funds_end_once
-- A part ends once, for all or some of it (an end kind, amount and time together, the
-- amount at most the part's, not before the part was created); what it did not end lives
-- on in exactly one remainder: the row it names, which names it back, of the same
-- account, transfer, kind and time, for the rest. A part that is open or ended whole has
-- no remainder, and a remainder is its parent's. Each part belongs to a POSTED credit
-- that is not a reversal, to its credit account; a credit's original parts (not
-- remainders) never add up to more than it posted, and its unended parts never to more
-- than is left of it after its reversals (a reversal takes them back first).
WITH remainders AS (
    SELECT tenant_id, remainder_of_id AS funds_id, count(*) AS remainders
    FROM scheduled_funds WHERE remainder_of_id IS NOT NULL GROUP BY 1, 2
),
parts AS (
    SELECT f.tenant_id, f.funds_id, f.transfer_id,
           CASE
             WHEN (f.ended_at IS NULL) <> (f.end_kind IS NULL)
               OR (f.ended_at IS NULL) <> (f.ended_amount_minor IS NULL)
               OR f.ended_amount_minor NOT BETWEEN 1 AND f.amount_minor
               OR f.ended_at < f.created_at
               THEN 'ended inconsistently'
             WHEN f.ended_amount_minor < f.amount_minor
              AND (coalesce(c.remainders, 0) <> 1
                   OR r.funds_id IS NULL
                   OR r.remainder_of_id IS DISTINCT FROM f.funds_id
                   OR (r.account_id, r.transfer_id, r.kind, r.available_at)
                      IS DISTINCT FROM (f.account_id, f.transfer_id, f.kind, f.available_at)
                   OR r.amount_minor <> f.amount_minor - f.ended_amount_minor)
               THEN 'ended in part without its one remainder for the rest'
             WHEN NOT coalesce(f.ended_amount_minor < f.amount_minor, false)
              AND (f.remainder_id IS NOT NULL OR coalesce(c.remainders, 0) <> 0)
               THEN 'open or ended whole, with a remainder'
             WHEN f.remainder_of_id IS NOT NULL AND p.remainder_id IS DISTINCT FROM f.funds_id
               THEN 'a remainder its parent does not name'
             -- (A hold still open has posted its captures so far.)
             WHEN t.transfer_id IS NULL OR t.posted_amount_minor = 0
                  OR t.state NOT IN ('POSTED', 'PENDING') OR t.reversal_of_id IS NOT NULL
               THEN 'not of a posted credit'
             WHEN f.account_id <> t.credit_account_id
               THEN 'not on its credit''s account'
           END AS problem
    FROM scheduled_funds AS f
    LEFT JOIN remainders AS c USING (tenant_id, funds_id)
    LEFT JOIN scheduled_funds AS r
        ON r.tenant_id = f.tenant_id AND r.funds_id = f.remainder_id
    LEFT JOIN scheduled_funds AS p
        ON p.tenant_id = f.tenant_id AND p.funds_id = f.remainder_of_id
    LEFT JOIN transfers AS t
        ON t.tenant_id = f.tenant_id AND t.transfer_id = f.transfer_id
),
credits AS (
    SELECT f.tenant_id, NULL::text AS funds_id, f.transfer_id,
           CASE
             WHEN sum(f.amount_minor) FILTER (WHERE f.remainder_of_id IS NULL)
                  > t.posted_amount_minor
               THEN 'parts add up to more than the credit'
             WHEN coalesce(sum(f.amount_minor) FILTER (WHERE f.ended_at IS NULL), 0)
                  > t.posted_amount_minor - t.reversed_amount_minor
               THEN 'more unended than is left of the credit'
           END AS problem
    FROM scheduled_funds AS f
    JOIN transfers AS t USING (tenant_id, transfer_id)
    GROUP BY f.tenant_id, f.transfer_id, t.posted_amount_minor, t.reversed_amount_minor
)
SELECT tenant_id, funds_id, transfer_id, problem FROM parts WHERE problem IS NOT NULL
UNION ALL
SELECT tenant_id, funds_id, transfer_id, problem FROM credits WHERE problem IS NOT NULL
LIMIT $1;

-- The outbox (docs/events.md): every change has its event, and no event tells of a
-- change that is not there. Changes older than what retention keeps (before the tenant's
-- pruned_until) may have lost their events and are skipped.

-- name: verify_transfer_events
-- Each transfer has exactly one TRANSFER_CREATED event, each ended hold one event of its
-- end, each step that left a hold open (a partial capture, an increment, an extension)
-- one event of its kind, each reversal one TRANSFER_REVERSED of its original from the same request; and
-- each such event names a transfer that exists.
WITH told AS (
    SELECT e.tenant_id, e.type, t.transfer_id, e.request_id
    FROM events AS e, unnest(e.transfer_ids) AS t(transfer_id)
    WHERE e.type <> 'BATCH_COMMITTED'
),
due AS (
    SELECT t.tenant_id, 'TRANSFER_CREATED' AS type, t.transfer_id, t.request_id, t.created_at AS at
    FROM transfers AS t
    UNION ALL
    -- The step that ended a hold: its last step, or (ended before holds kept steps) its
    -- state.
    SELECT t.tenant_id, 'TRANSFER_' || coalesce(t.hold_steps -> -1 ->> 'kind', t.state),
           t.transfer_id, coalesce(t.finalized_request_id, ''), t.finalized_at
    FROM transfers AS t WHERE t.finalized_at IS NOT NULL
    UNION ALL
    -- The steps of a hold that left it open: partial captures, increments, extensions.
    SELECT t.tenant_id, 'TRANSFER_' || (s ->> 'kind'), t.transfer_id, s ->> 'request_id',
           (s ->> 'at')::timestamptz
    FROM transfers AS t, jsonb_array_elements(t.hold_steps) AS s
    WHERE t.hold_steps IS NOT NULL AND s ->> 'kind' IN ('CAPTURED', 'INCREMENTED', 'EXTENDED')
    UNION ALL
    SELECT r.tenant_id, 'TRANSFER_REVERSED', r.reversal_of_id, r.request_id, r.created_at
    FROM transfers AS r WHERE r.reversal_of_id IS NOT NULL
)
SELECT coalesce(d.tenant_id, x.tenant_id) AS tenant_id,
       coalesce(d.transfer_id, x.transfer_id) AS transfer_id,
       coalesce(d.type, x.type) AS type, d.due, coalesce(x.told, 0) AS told
FROM (
    SELECT due.tenant_id, due.type, due.transfer_id, due.request_id, count(*) AS due
    FROM due
    LEFT JOIN event_horizons AS h USING (tenant_id)
    WHERE h.pruned_until IS NULL OR due.at > h.pruned_until
    GROUP BY 1, 2, 3, 4
) AS d
FULL JOIN (
    SELECT tenant_id, type, transfer_id, request_id, count(*) AS told FROM told GROUP BY 1, 2, 3, 4
) AS x USING (tenant_id, type, transfer_id, request_id)
WHERE d.due IS DISTINCT FROM x.told
  AND NOT (d.due IS NULL AND EXISTS (  -- an event of a change that retention forgot
      SELECT 1 FROM transfers AS t JOIN event_horizons AS h USING (tenant_id)
      WHERE t.tenant_id = x.tenant_id AND t.transfer_id = x.transfer_id
        AND least(t.created_at, t.finalized_at) <= h.pruned_until))
LIMIT $1;

-- name: verify_payouts
-- Every payout's state matches its money (docs/payouts.md): its holds are its own, of
-- its amount and fee, from its account to the settlement and fee accounts; PENDING and
-- PROCESSING: both held; POSTED: both captured in full, nothing reversed; RETURNED:
-- captured and the amount reversed by its return transfer; FAILED and CANCELED: both
-- voided. Every inbound transfer: its credit POSTED to its account for its amount,
-- reversed in full by its return transfer exactly when RETURNED.
SELECT p.tenant_id, p.payout_id AS id, p.state, h.state AS money_state
FROM payouts AS p
JOIN transfers AS h ON h.tenant_id = p.tenant_id AND h.transfer_id = p.hold_transfer_id
LEFT JOIN transfers AS f ON f.tenant_id = p.tenant_id AND f.transfer_id = p.fee_transfer_id
LEFT JOIN transfers AS r ON r.tenant_id = p.tenant_id AND r.transfer_id = p.return_transfer_id
WHERE NOT (
    h.owner_id = p.payout_id AND h.debit_account_id = p.account_id
    AND h.credit_account_id = p.settlement_account_id AND h.amount_minor = p.amount_minor
    AND (p.fee_transfer_id IS NULL
         OR (f.owner_id = p.payout_id AND f.debit_account_id = p.account_id
             AND f.credit_account_id = p.fee_account_id AND f.amount_minor = p.fee_minor))
    AND CASE p.state
        WHEN 'PENDING' THEN h.state = 'PENDING' AND coalesce(f.state, 'PENDING') = 'PENDING'
        WHEN 'PROCESSING' THEN h.state = 'PENDING' AND coalesce(f.state, 'PENDING') = 'PENDING'
        WHEN 'POSTED' THEN h.state = 'POSTED' AND h.posted_amount_minor = p.amount_minor
                           AND h.reversed_amount_minor = 0
                           AND coalesce(f.state, 'POSTED') = 'POSTED'
        WHEN 'RETURNED' THEN h.state = 'POSTED' AND h.reversed_amount_minor = p.amount_minor
                             AND r.reversal_of_id = h.transfer_id
                             AND r.amount_minor = p.amount_minor AND r.owner_id = p.payout_id
                             AND coalesce(f.state, 'POSTED') = 'POSTED'
        ELSE h.state = 'VOIDED' AND coalesce(f.state, 'VOIDED') = 'VOIDED'
    END)
UNION ALL
SELECT i.tenant_id, i.inbound_id, i.state, t.state
FROM inbound_transfers AS i
JOIN transfers AS t ON t.tenant_id = i.tenant_id AND t.transfer_id = i.transfer_id
LEFT JOIN transfers AS r ON r.tenant_id = i.tenant_id AND r.transfer_id = i.return_transfer_id
WHERE NOT (
    t.owner_id = i.inbound_id AND t.state = 'POSTED' AND t.amount_minor = i.amount_minor
    AND t.credit_account_id = i.account_id AND t.debit_account_id = i.settlement_account_id
    AND CASE i.state
        WHEN 'RECEIVED' THEN t.reversed_amount_minor = 0
        ELSE t.reversed_amount_minor = i.amount_minor AND r.reversal_of_id = t.transfer_id
    END)
LIMIT $1;

-- name: verify_account_events
-- Each account has exactly one ACCOUNT_CREATED event, and the newest event that shows it
-- shows it as it is now: a change without its event would leave an older picture newest.
WITH shown AS (
    SELECT DISTINCT ON (e.tenant_id, a.doc->>'account_id')
           e.tenant_id, a.doc->>'account_id' AS account_id, a.doc
    FROM events AS e, jsonb_array_elements(e.payload->'accounts') AS a(doc)
    ORDER BY e.tenant_id, a.doc->>'account_id', e.position DESC
),
created AS (
    SELECT e.tenant_id, e.account_ids[1] AS account_id, count(*) AS events
    FROM events AS e WHERE e.type = 'ACCOUNT_CREATED' GROUP BY 1, 2
)
SELECT a.tenant_id, a.account_id, a.version, coalesce(c.events, 0) AS created_events,
       (s.doc->>'version')::bigint AS newest_event_version
FROM accounts AS a
LEFT JOIN shown AS s USING (tenant_id, account_id)
LEFT JOIN created AS c USING (tenant_id, account_id)
LEFT JOIN event_horizons AS h USING (tenant_id)
WHERE ((h.pruned_until IS NULL OR a.created_at > h.pruned_until)
       AND coalesce(c.events, 0) <> 1)
   OR ((h.pruned_until IS NULL OR a.updated_at > h.pruned_until)
       AND (s.doc IS NULL
            OR (s.doc->>'version')::bigint <> a.version
            OR s.doc->>'state' <> a.state
            OR s.doc->>'name' IS DISTINCT FROM a.name
            OR s.doc->'metadata' <> a.metadata
            OR s.doc->>'overdraft_mode' <> a.overdraft_mode
            OR (s.doc->>'overdraft_limit_minor')::bigint <> a.overdraft_limit_minor
            OR (s.doc->>'posted_debits_minor')::bigint <> a.posted_debits_minor
            OR (s.doc->>'posted_credits_minor')::bigint <> a.posted_credits_minor
            OR (s.doc->>'pending_debits_minor')::bigint <> a.pending_debits_minor
            OR (s.doc->>'pending_credits_minor')::bigint <> a.pending_credits_minor
            -- The negative-balance reserve (migration 0016; absent from older documents).
            OR coalesce((s.doc->>'reserve_debt_minor')::bigint, 0) <> a.reserve_debt_minor
            OR s.doc->>'negative_balance_reserve_account_id'
               IS DISTINCT FROM a.negative_balance_reserve_account_id))
LIMIT $1;

-- name: verify_reserve_debts
-- The negative-balance reserve (docs/platforms.md, migration 0016): an account's debt to
-- its reserve is the sum of the reserve's covers credited to it less the recoveries
-- debited from it (the column's CHECK keeps it >= 0); each such transfer is POSTED,
-- never reversed, and between two accounts of which the owing one is a holder's and the
-- other not.
SELECT a.tenant_id, a.account_id, a.reserve_debt_minor, coalesce(m.covered, 0) AS covered_minor,
       coalesce(m.recovered, 0) AS recovered_minor, NULL AS transfer_id
FROM accounts AS a
LEFT JOIN (
    SELECT tenant_id, account_id,
           sum(amount_minor) FILTER (WHERE reserve_movement = 'COVER') AS covered,
           sum(amount_minor) FILTER (WHERE reserve_movement = 'RECOVERY') AS recovered
    FROM (SELECT tenant_id, reserve_movement, amount_minor,
                 CASE reserve_movement WHEN 'COVER' THEN credit_account_id
                                       ELSE debit_account_id END AS account_id
          FROM transfers WHERE reserve_movement IS NOT NULL) AS t
    GROUP BY 1, 2
) AS m USING (tenant_id, account_id)
WHERE a.reserve_debt_minor <> coalesce(m.covered, 0) - coalesce(m.recovered, 0)
UNION ALL
SELECT t.tenant_id, NULL, NULL, NULL, NULL, t.transfer_id
FROM transfers AS t
JOIN accounts AS d ON d.tenant_id = t.tenant_id AND d.account_id = t.debit_account_id
JOIN accounts AS c ON c.tenant_id = t.tenant_id AND c.account_id = t.credit_account_id
WHERE t.reserve_movement IS NOT NULL
  AND (t.state <> 'POSTED' OR t.reversed_amount_minor <> 0
       OR CASE t.reserve_movement
            WHEN 'COVER' THEN c.holder_ref IS NULL OR d.holder_ref IS NOT NULL
            ELSE d.holder_ref IS NULL OR c.holder_ref IS NOT NULL
          END)
LIMIT $1;

-- name: verify_counts
SELECT (SELECT count(*) FROM accounts) AS accounts,
       (SELECT count(*) FROM transfers) AS transfers,
       (SELECT count(*) FROM entries) AS entries,
       (SELECT count(*) FROM events) AS events;
