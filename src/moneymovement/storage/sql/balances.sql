-- name: get_balances
-- A one-statement read, as get_account: one snapshot for every account asked. The
-- availability schedule (unended scheduled parts summed by time and kind, soonest first)
-- is read only for accounts that have any.
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT a.account_id, a.currency_code, a.normal_balance, a.posted_debits_minor,
           a.posted_credits_minor, a.pending_debits_minor, a.pending_credits_minor,
           a.pending_availability_minor, a.reserved_minor,
           coalesce((a.funds_policy #>> '{reserve,minimum_minor}')::bigint, 0)
               AS minimum_reserve_minor,
           CASE WHEN a.pending_availability_minor + a.reserved_minor > 0 THEN
               ARRAY(SELECT jsonb_build_array(f.available_at, f.kind, sum(f.amount_minor))
                     FROM scheduled_funds AS f
                     WHERE f.tenant_id = a.tenant_id AND f.account_id = a.account_id
                       AND f.ended_at IS NULL
                     GROUP BY f.available_at, f.kind
                     ORDER BY f.available_at, f.kind)
           ELSE '{}'::jsonb[] END AS schedule,
           a.reserve_debt_minor, a.version, now() AS as_of
    FROM accounts AS a
    WHERE a.tenant_id = $1 AND a.account_id = ANY($2::text[])
      AND declared.tenant IS NOT NULL
    OFFSET 0
) AS r;

-- name: get_balances_as_of
-- For each account asked ($2, any number: GetBalance asks one, BatchGetBalances up to
-- 100), the running balances of its newest entry written at or before $3 (zero before
-- any). The availability parts are those of the scheduled parts alive at $3 (created at
-- or before it, not ended by then; write_batch stamps both with the entries' time),
-- summed by time and kind as get_balances does, and the minimum reserve that of the
-- policy in force then. A one-statement read, as get_account: one snapshot for all.
SELECT r.*
FROM (SELECT set_config('moneymovement.tenant_id', $1, true) AS tenant) AS declared,
LATERAL (
    SELECT a.account_id, a.currency_code, a.normal_balance,
           coalesce(e.posted_debits_minor, 0) AS posted_debits_minor,
           coalesce(e.posted_credits_minor, 0) AS posted_credits_minor,
           coalesce(e.pending_debits_minor, 0) AS pending_debits_minor,
           coalesce(e.pending_credits_minor, 0) AS pending_credits_minor,
           s.pending_availability_minor, s.reserved_minor, s.schedule,
           coalesce((SELECT (c.after #>> '{reserve,minimum_minor}')::bigint
                     FROM account_policy_changes AS c
                     WHERE c.tenant_id = a.tenant_id AND c.account_id = a.account_id
                       AND c.changed_at <= $3
                     ORDER BY c.version DESC LIMIT 1), 0) AS minimum_reserve_minor,
           coalesce(e.account_version, 0) AS version,
           -- The negative-balance reserve's covers less its recoveries whose entries on
           -- the account were written by then (migration 0016's indexes find them).
           coalesce((SELECT sum(CASE t.reserve_movement WHEN 'COVER' THEN t.amount_minor
                                                        ELSE -t.amount_minor END)
                     FROM transfers AS t
                     WHERE t.tenant_id = a.tenant_id
                       AND ((t.reserve_movement = 'COVER' AND t.credit_account_id = a.account_id)
                            OR (t.reserve_movement = 'RECOVERY'
                                AND t.debit_account_id = a.account_id))
                       AND EXISTS (SELECT 1 FROM entries AS x
                                   WHERE x.tenant_id = t.tenant_id
                                     AND x.account_id = a.account_id
                                     AND x.transfer_id = t.transfer_id
                                     AND x.created_at <= $3)), 0)::bigint
               AS reserve_debt_minor,
           $3::timestamptz AS as_of
    FROM accounts AS a
    LEFT JOIN LATERAL (
        SELECT * FROM entries
        WHERE tenant_id = a.tenant_id AND account_id = a.account_id AND created_at <= $3
        ORDER BY account_version DESC
        LIMIT 1
    ) AS e ON true
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(g.amount) FILTER (WHERE g.kind = 'AVAILABILITY'), 0)::bigint
                   AS pending_availability_minor,
               coalesce(sum(g.amount) FILTER (WHERE g.kind = 'RESERVE'), 0)::bigint
                   AS reserved_minor,
               coalesce(array_agg(jsonb_build_array(g.at, g.kind, g.amount)
                                  ORDER BY g.at, g.kind), '{}') AS schedule
        FROM (
            SELECT f.available_at AS at, f.kind, sum(f.amount_minor) AS amount
            FROM scheduled_funds AS f
            WHERE f.tenant_id = a.tenant_id AND f.account_id = a.account_id
              AND f.created_at <= $3 AND (f.ended_at IS NULL OR f.ended_at > $3)
            GROUP BY f.available_at, f.kind
        ) AS g
    ) AS s
    WHERE a.tenant_id = $1 AND a.account_id = ANY($2::text[])
      AND declared.tenant IS NOT NULL
    OFFSET 0
) AS r;
