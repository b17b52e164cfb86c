-- A synthetic, consistent ledger for measurements: $1 accounts and $2 posted transfers
-- of one tenant, written set-wise. Entries carry running balances computed with window
-- sums, and each account's totals and version are its newest entry's, so `verify` holds.
-- Parameters: $1 account count, $2 transfer count, $3 tenant id.

-- name: seed_tenant
INSERT INTO tenants (tenant_id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING;

-- name: seed_accounts
INSERT INTO accounts (tenant_id, account_id, currency_code, normal_balance, overdraft_mode,
                      state, name)
SELECT $2, 'acct_' || substr(translate(md5($2 || i), '0189', 'wxyz')
                             || translate(md5(i || $2), '0189', 'wxyz'), 1, 26),
       'USD', 'CREDIT', 'UNLIMITED', 'ACTIVE', 'seed ' || i
FROM generate_series(1, $1) AS i;

-- name: seed_transfers
WITH numbered AS (
    SELECT account_id, row_number() OVER (ORDER BY account_id) AS n
    FROM accounts WHERE tenant_id = $2
),
picks AS (
    SELECT g,
           1 + floor(random() * $3)::int AS d,
           1 + floor(random() * ($3 - 1))::int AS c,
           1 + floor(random() * 1000)::bigint AS amount
    FROM generate_series(1, $1) AS g
)
INSERT INTO transfers (tenant_id, transfer_id, request_id, debit_account_id,
                       credit_account_id, currency_code, amount_minor, state,
                       posted_amount_minor, created_at, updated_at)
SELECT $2,
       'tr_' || substr(translate(md5(random()::text), '0189', 'wxyz')
                       || translate(md5(random()::text), '0189', 'wxyz'), 1, 26),
       'seed-' || p.g, da.account_id, ca.account_id, 'USD', p.amount, 'POSTED', p.amount,
       now() - ($1 - p.g) * interval '1 millisecond',
       now() - ($1 - p.g) * interval '1 millisecond'
FROM picks AS p
JOIN numbered AS da ON da.n = p.d
-- the credit side skips the debit account: c in 1..n-1 maps past d
JOIN numbered AS ca ON ca.n = CASE WHEN p.c >= p.d THEN p.c + 1 ELSE p.c END;

-- name: seed_entries
INSERT INTO entries (tenant_id, account_id, account_version, transfer_id, direction, kind,
                     amount_minor, posted_debits_minor, posted_credits_minor,
                     pending_debits_minor, pending_credits_minor, created_at)
SELECT $1, account_id,
       1 + row_number() OVER w,
       transfer_id, direction, 'POSTED', amount_minor,
       sum(CASE WHEN direction = 'DEBIT' THEN amount_minor ELSE 0 END) OVER w,
       sum(CASE WHEN direction = 'CREDIT' THEN amount_minor ELSE 0 END) OVER w,
       0, 0, created_at
FROM (
    SELECT debit_account_id AS account_id, transfer_id, 'DEBIT' AS direction, amount_minor,
           created_at
    FROM transfers WHERE tenant_id = $1
    UNION ALL
    SELECT credit_account_id, transfer_id, 'CREDIT', amount_minor, created_at
    FROM transfers WHERE tenant_id = $1
) AS sides
WINDOW w AS (PARTITION BY account_id ORDER BY created_at, transfer_id
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

-- name: seed_account_totals
UPDATE accounts AS a
SET posted_debits_minor = e.posted_debits_minor,
    posted_credits_minor = e.posted_credits_minor,
    version = e.account_version
FROM (
    SELECT DISTINCT ON (account_id) account_id, account_version, posted_debits_minor,
           posted_credits_minor
    FROM entries WHERE tenant_id = $1
    ORDER BY account_id, account_version DESC
) AS e
WHERE a.tenant_id = $1 AND a.account_id = e.account_id;

-- name: seed_event_horizon
-- Seeded rows are written here, not through the service, so they have no events: the
-- tenant's stream is marked as kept only from now on (as retention would after pruning
-- them), and verify then does not look for their events.
INSERT INTO event_horizons (tenant_id, pruned_through, pruned_until)
VALUES ($1, 0, clock_timestamp())
ON CONFLICT (tenant_id) DO UPDATE SET pruned_until = excluded.pruned_until;
