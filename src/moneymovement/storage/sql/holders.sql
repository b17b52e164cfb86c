-- name: get_holder
-- A one-statement read (sessions.sql, "One round trip per read").
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT * FROM holders
    WHERE tenant_id = $1 AND holder_id = $2 AND declared.tenant IS NOT NULL
    OFFSET 0
) AS r;

-- name: list_holders
-- Newest first; the page cursor is the (created_at, holder_id) of the last row returned.
-- Filters: state $2, external id $3, metadata pairs $4 that must all be present (NULL or
-- empty: all), holder $8 (a call acting for a holder). A one-statement read, as get_holder.
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT * FROM holders
    WHERE tenant_id = $1 AND declared.tenant IS NOT NULL
      AND ($2::text IS NULL OR state = $2)
      AND ($3::text IS NULL OR external_id = $3)
      AND metadata @> $4::jsonb
      AND ($8::text IS NULL OR holder_id = $8)
      AND ($5::timestamptz IS NULL OR (created_at, holder_id) < ($5, $6::text))
    ORDER BY created_at DESC, holder_id DESC
    LIMIT $7
    OFFSET 0
) AS r;

-- name: holder_balances
-- The holder ($2) and the sums of its accounts per currency, in one statement: one
-- snapshot for the holder and every account, so the sums are those of one moment however
-- much money moves meanwhile. Each account's amounts are signed by its own normal balance
-- as its Balance is (available = posted - pending outbound - pending availability -
-- reserved); summed as numeric, which cannot overflow. No row at all: no such holder;
-- one row with a NULL currency: a holder without accounts.
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT h.holder_id, now() AS as_of, s.*
    FROM holders AS h
    LEFT JOIN LATERAL (
        SELECT a.currency_code,
               count(*) AS account_count,
               sum(p.posted) AS posted_minor,
               sum(p.inbound) AS pending_inbound_minor,
               sum(p.outbound) AS pending_outbound_minor,
               sum(p.posted - p.outbound - a.pending_availability_minor - a.reserved_minor)
                   AS available_minor,
               sum(a.pending_availability_minor) AS pending_availability_minor,
               sum(a.reserved_minor) AS reserved_minor
        FROM accounts AS a
        CROSS JOIN LATERAL (
            SELECT CASE a.normal_balance
                       WHEN 'CREDIT' THEN a.posted_credits_minor::numeric - a.posted_debits_minor
                       ELSE a.posted_debits_minor::numeric - a.posted_credits_minor END AS posted,
                   CASE a.normal_balance WHEN 'CREDIT' THEN a.pending_credits_minor
                                         ELSE a.pending_debits_minor END AS inbound,
                   CASE a.normal_balance WHEN 'CREDIT' THEN a.pending_debits_minor
                                         ELSE a.pending_credits_minor END AS outbound
        ) AS p
        WHERE a.tenant_id = h.tenant_id AND a.holder_ref = h.holder_id
        GROUP BY a.currency_code
    ) AS s ON true
    WHERE h.tenant_id = $1 AND h.holder_id = $2 AND declared.tenant IS NOT NULL
    ORDER BY s.currency_code
    OFFSET 0
) AS r;
