"""Whole-database checks of the ledger's invariants, for tests to run after they act.

They read the tables directly with SQL, independently of the service's own code, so a
bug in the service cannot hide itself from them.
"""

from __future__ import annotations

import asyncpg

# Each query returns the rows that break one invariant; all must return nothing.
_VIOLATIONS = {
    "debits equal credits, per currency and kind": """
        SELECT t.currency_code, e.kind,
               sum(e.amount_minor) FILTER (WHERE e.direction = 'DEBIT') AS debits,
               sum(e.amount_minor) FILTER (WHERE e.direction = 'CREDIT') AS credits
        FROM entries e JOIN transfers t USING (tenant_id, transfer_id)
        GROUP BY t.currency_code, e.kind
        HAVING sum(e.amount_minor) FILTER (WHERE e.direction = 'DEBIT')
               IS DISTINCT FROM sum(e.amount_minor) FILTER (WHERE e.direction = 'CREDIT')
    """,
    "every transfer has one debit and one credit entry of its amount per kind": """
        SELECT t.transfer_id, e.kind, count(*) AS n
        FROM transfers t JOIN entries e USING (tenant_id, transfer_id)
        GROUP BY t.transfer_id, t.amount_minor, e.kind
        HAVING count(*) FILTER (WHERE e.direction = 'DEBIT') <> 1
            OR count(*) FILTER (WHERE e.direction = 'CREDIT') <> 1
            OR bool_or(e.amount_minor <> t.amount_minor AND e.kind = 'PENDING')
    """,
    "stored balances equal the sum of entries": """
        SELECT a.tenant_id, a.account_id
        FROM accounts a
        LEFT JOIN LATERAL (
            SELECT
              coalesce(sum(amount_minor)
                       FILTER (WHERE kind = 'POSTED' AND direction = 'DEBIT'), 0) AS pd,
              coalesce(sum(amount_minor)
                       FILTER (WHERE kind = 'POSTED' AND direction = 'CREDIT'), 0) AS pc,
              coalesce(sum(CASE kind WHEN 'PENDING' THEN amount_minor
                                     WHEN 'PENDING_RELEASED' THEN -amount_minor END)
                       FILTER (WHERE direction = 'DEBIT'), 0) AS qd,
              coalesce(sum(CASE kind WHEN 'PENDING' THEN amount_minor
                                     WHEN 'PENDING_RELEASED' THEN -amount_minor END)
                       FILTER (WHERE direction = 'CREDIT'), 0) AS qc
            FROM entries e WHERE e.tenant_id = a.tenant_id AND e.account_id = a.account_id
        ) s ON true
        WHERE (a.posted_debits_minor, a.posted_credits_minor, a.pending_debits_minor,
               a.pending_credits_minor) <> (s.pd, s.pc, s.qd, s.qc)
    """,
    "the newest entry's running balances equal the account's": """
        SELECT a.tenant_id, a.account_id
        FROM accounts a
        JOIN LATERAL (
            SELECT * FROM entries e
            WHERE e.tenant_id = a.tenant_id AND e.account_id = a.account_id
            ORDER BY e.account_version DESC LIMIT 1
        ) last ON true
        WHERE (a.posted_debits_minor, a.posted_credits_minor, a.pending_debits_minor,
               a.pending_credits_minor)
           <> (last.posted_debits_minor, last.posted_credits_minor, last.pending_debits_minor,
               last.pending_credits_minor)
           OR last.account_version > a.version
    """,
    "pending totals equal the open holds": """
        SELECT a.tenant_id, a.account_id
        FROM accounts a
        LEFT JOIN LATERAL (
            SELECT coalesce(sum(amount_minor) FILTER (WHERE debit_account_id = a.account_id), 0)
                       AS held_out,
                   coalesce(sum(amount_minor) FILTER (WHERE credit_account_id = a.account_id), 0)
                       AS held_in
            FROM transfers t
            WHERE t.tenant_id = a.tenant_id AND t.state = 'PENDING'
              AND a.account_id IN (t.debit_account_id, t.credit_account_id)
        ) h ON true
        WHERE (a.pending_debits_minor, a.pending_credits_minor) <> (h.held_out, h.held_in)
    """,
    "a transfer's posted and reversed amounts match its entries and reversals": """
        SELECT * FROM (
            SELECT t.transfer_id, t.posted_amount_minor, t.reversed_amount_minor,
                   coalesce((SELECT sum(amount_minor) FROM entries e
                             WHERE e.tenant_id = t.tenant_id AND e.transfer_id = t.transfer_id
                               AND e.kind = 'POSTED' AND e.direction = 'DEBIT'), 0) AS posted,
                   coalesce((SELECT sum(amount_minor) FROM transfers r
                             WHERE r.tenant_id = t.tenant_id
                               AND r.reversal_of_id = t.transfer_id), 0) AS reversed
            FROM transfers t
        ) x
        WHERE posted_amount_minor <> posted OR reversed_amount_minor <> reversed
           OR reversed_amount_minor > posted_amount_minor
    """,
    "a hold ends once: an ended hold has released exactly what it held": """
        SELECT t.transfer_id
        FROM transfers t
        JOIN entries e USING (tenant_id, transfer_id)
        WHERE t.expires_at IS NOT NULL
        GROUP BY t.transfer_id, t.state, t.amount_minor
        HAVING sum(e.amount_minor) FILTER (WHERE e.kind = 'PENDING_RELEASED'
                                             AND e.direction = 'DEBIT')
               IS DISTINCT FROM CASE WHEN t.state = 'PENDING' THEN NULL ELSE t.amount_minor END
    """,
    "entries and transfers never cross tenants or currencies": """
        SELECT e.transfer_id FROM entries e
        JOIN transfers t USING (tenant_id, transfer_id)
        JOIN accounts a ON a.tenant_id = e.tenant_id AND a.account_id = e.account_id
        WHERE a.currency_code <> t.currency_code
           OR e.account_id NOT IN (t.debit_account_id, t.credit_account_id)
    """,
}


async def ledger_violations(dsn: str) -> dict[str, list[dict[str, object]]]:
    """Every invariant that does not hold, with the offending rows (empty: all hold)."""
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            found = {}
            for name, sql in _VIOLATIONS.items():
                rows = await connection.fetch(sql)
                if rows:
                    found[name] = [dict(row) for row in rows]
            return found
    finally:
        await connection.close()


async def assert_ledger_consistent(dsn: str) -> None:
    """Fails with the broken invariants, if any."""
    violations = await ledger_violations(dsn)
    assert violations == {}, violations
