"""The SQL the service runs for one immediate transfer, rebuilt as a pgbench script.

This module is the one place that says which of the service's named queries
(src/moneymovement/storage/sql/*.sql) one CreateTransfer runs, in which order, and with
which parameters. The SQL text itself is always read from the service, so a changed
statement is picked up by itself; a changed *sequence* (statements merged or split, a
`set_config` for row-level security, other parameters) must be mirrored in
`transfer_steps()` below (the one function to edit; a script that no longer matches the
service's queries fails its point with the reason, and the run goes on). Today the service
runs the write pipeline's transaction for a batch of one (service/pipeline.py `_attempt`,
storage/ledger.py, storage/sql/ledger.sql and sessions.sql):

    find_outcomes                      the request id's recorded outcome: a one-statement
                                       read in autocommit that declares the tenant itself,
                                       BEFORE the transaction
    begin_write                        BEGIN SERIALIZABLE + SET LOCAL plan_cache_mode +
                                       set_config(tenant), one round trip (pipelined here:
                                       pgbench sends each statement separately)
    lock_batch                         both accounts (ids sorted), FOR UPDATE, no
                                       transfers, no external ids; returns now()
    write_batch                        one CTE statement, each parameter an array of its
                                       table's row type: the two changed accounts (new
                                       totals, version + 1), the new transfer, its two
                                       entries (running balances), the outcome row, and
                                       its TRANSFER_CREATED event (the outbox: the
                                       tenant's event lock, a position from the tenant's
                                       sequence, the row, pg_notify)
    commit

as the service's own role (migrations/0004), so row-level security applies as in the service
(pgbench.py sets it).

pgbench can only bind scalar variables, so each `$n` is replaced by a SQL expression of
pgbench variables: an array parameter becomes `ARRAY[...]`, a row-typed one
`ARRAY[ROW(...)::table, ...]` in the table's column order (storage/rows.py), an account id
is spelled from its number (the bench seeds ids that are a function of a number,
bench/bench.sql). The domain's arithmetic (new totals and versions) is done with pgbench's
`\\set` from the locked rows, which the lock query returns through `\\gset`; as `\\gset`
takes scalar columns of one row, the lock query is wrapped in a query that spreads the two
locked accounts' columns over one row (lo_<column>, hi_<column>, in id order).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bench.accounts import account_id as account_id  # re-exported: older importers
from bench.accounts import account_id_sql
from moneymovement.storage.queries import query
from moneymovement.storage.rows import (
    ACCOUNT_COLUMNS,
    ENTRY_COLUMNS,
    EVENT_COLUMNS,
    OUTCOME_COLUMNS,
    TRANSFER_COLUMNS,
)

# Variables the script expects from pgbench -D: the tenant, the number of accounts, the
# hot account's number, a real outcome row (fingerprint hex and JSON) to save, and a real
# event's payload (JSON) to log.
DEFINES = ("tenant", "accounts", "hot", "fingerprint", "outcome", "event_payload")
MAX_TRIES = 12  # as the service's MM_TX_MAX_ATTEMPTS default

_PARAM = re.compile(r"\$(\d+)\b")
_TOTALS = (
    "posted_debits_minor",
    "posted_credits_minor",
    "pending_debits_minor",
    "pending_credits_minor",
    "version",
)


def _array(*items: str) -> str:
    return "ARRAY[" + ", ".join(items) + "]"


def _text(value: str) -> str:
    return "'" + value + "'"


EMPTY = "'{}'"
DEBIT = account_id_sql("d")
CREDIT = account_id_sql("c")
TRANSFER_ID = "'tr_' || :tid"
LOW = account_id_sql("lo")
HIGH = account_id_sql("hi")
_SIDES = ("lo", "hi")


@dataclass(frozen=True)
class Statement:
    """One named query of the service, each `$n` replaced by a pgbench expression."""

    name: str
    params: Mapping[int, str]

    def render(self) -> str:
        return bind(query(self.name), self.params)


@dataclass(frozen=True)
class Raw:
    """A line of pgbench script as it is (BEGIN, COMMIT, \\set arithmetic); `name` is the
    service's query it stands for, if any."""

    text: str
    name: str = ""

    def render(self) -> str:
        return self.text


def bind(sql: str, params: Mapping[int, str]) -> str:
    """`sql` without comments, its `$n` replaced by `(params[n])`."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    text = "\n".join(lines).strip().rstrip(";")
    missing = {int(n) for n in _PARAM.findall(text)} - set(params)
    if missing:
        raise ValueError(f"no pgbench value for parameters {sorted(missing)}")
    return _PARAM.sub(lambda match: f"({params[int(match.group(1))]})", text)


def _new(column: str) -> str:
    """The variable of a total (or the version) after the move: posted_debits_new, ..."""
    return column.removesuffix("_minor") + "_new"


def _sorted_ids() -> list[Raw]:
    """`:lo` and `:hi`, the two accounts' numbers in id order (an id's order is its
    number's, bench/accounts.py): the service locks and writes accounts sorted by id."""
    return [Raw(r"\set lo least(:d, :c)"), Raw(r"\set hi greatest(:d, :c)")]


def _locked_rows() -> Raw:
    """lock_batch, its locked accounts spread over one row for `\\gset`: the transaction's
    time as `db_now`, each column of the lower-id account as lo_<column> and of the
    higher-id one as hi_<column> (the order the service writes them back in)."""
    lock = bind(query("lock_batch"), {1: ":tenant", 2: _array(LOW, HIGH), 3: EMPTY, 4: EMPTY})
    columns = ",\n       ".join(
        ["l.db_now AS db_now"]
        + [f"{side}.{column} AS {side}_{column}" for side in _SIDES for column in ACCOUNT_COLUMNS]
    )
    sides = "\n".join(
        f"JOIN LATERAL unnest(l.accounts) AS {side} ON {side}.account_id = {account}"
        for side, account in zip(_SIDES, (LOW, HIGH), strict=True)
    )
    return Raw(f"SELECT {columns}\nFROM ({lock}) AS l\n{sides} \\gset", "lock_batch")


def _new_totals() -> list[Raw]:
    """The domain's move() for an immediate transfer: the debit's posted debits and the
    credit's posted credits grow by the amount, each version by one. Per side (lo, hi)
    for the changed accounts, then per role (dr, cr) for the entries' running balances."""
    lines = []
    for side in _SIDES:
        lines += [
            rf"\set {side}_debited CASE WHEN :{side} = :d THEN :amount ELSE 0 END",
            rf"\set {side}_posted_debits_new :{side}_posted_debits_minor + :{side}_debited",
            rf"\set {side}_posted_credits_new :{side}_posted_credits_minor + :amount"
            rf" - :{side}_debited",
            rf"\set {side}_pending_debits_new :{side}_pending_debits_minor",
            rf"\set {side}_pending_credits_new :{side}_pending_credits_minor",
            rf"\set {side}_version_new :{side}_version + 1",
        ]
    for role, number in (("dr", "d"), ("cr", "c")):
        lines += [
            rf"\set {role}_{new} CASE WHEN :{number} = :lo THEN :lo_{new} ELSE :hi_{new} END"
            for new in (_new(column) for column in _TOTALS)
        ]
    return [Raw(line) for line in lines]


def _row(table: str, columns: tuple[str, ...], values: Mapping[str, str]) -> str:
    """ROW(...)::table, the values in the table's column order (storage/rows.py)."""
    return f"ROW({', '.join(values[column] for column in columns)})::{table}"


def _changed_account(side: str) -> str:
    """The locked account `side` (lo or hi) after the move, as an `accounts` row: as
    locked, with its new totals and version."""
    values = {column: f":{side}_{column}" for column in ACCOUNT_COLUMNS}
    values.update({column: f":{side}_{_new(column)}" for column in _TOTALS})
    values["external_id"] = f"NULLIF(:{side}_external_id, '')"  # \gset stores NULL as ''
    return _row("accounts", ACCOUNT_COLUMNS, values)


def _new_transfer(*, with_trace_id: bool) -> str:
    """The new transfer, POSTED at once, stamped with the transaction's time."""
    values = {
        "tenant_id": ":tenant",
        "transfer_id": TRANSFER_ID,
        "request_id": ":rid",
        "batch_index": "0",
        "batch_id": "NULL",
        "debit_account_id": DEBIT,
        "credit_account_id": CREDIT,
        "currency_code": _text("USD"),
        "amount_minor": ":amount",
        "state": _text("POSTED"),
        "posted_amount_minor": ":amount",
        "reversed_amount_minor": "0",
        "reversal_of_id": "NULL",
        "description": _text(""),
        "metadata": EMPTY,
        "expires_at": "NULL",
        "finalized_at": "NULL",
        "finalized_request_id": "NULL",
        "trace_id": "md5(:tid)" if with_trace_id else "NULL",
        "created_at": ":db_now",
        "updated_at": ":db_now",
    }
    return _row("transfers", TRANSFER_COLUMNS, values)


def _entry(role: str, account: str, direction: str) -> str:
    """The entry of `role` (dr or cr) with its account's running balances and version."""
    values = {
        "tenant_id": ":tenant",
        "account_id": account,
        "account_version": f":{role}_version_new",
        "transfer_id": TRANSFER_ID,
        "direction": _text(direction),
        "kind": _text("POSTED"),
        "amount_minor": ":amount",
        **{column: f":{role}_{_new(column)}" for column in _TOTALS[:4]},
        "created_at": "NULL",  # stamped by write_batch
    }
    return _row("entries", ENTRY_COLUMNS, values)


def _outcome() -> str:
    """The request's outcome row (a real one's fingerprint and JSON, from pgbench -D)."""
    values = {
        "tenant_id": ":tenant",
        "request_id": ":rid",
        "fingerprint": r"decode(:fingerprint, 'hex')",
        "outcome": ":outcome",
        "created_at": ":db_now",
    }
    return _row("request_outcomes", OUTCOME_COLUMNS, values)


def _event(*, with_trace_id: bool) -> str:
    """The transfer's TRANSFER_CREATED event as an `events` row: position and time are
    given by write_batch; the accounts in id order, as the service lists them; the
    payload a real event's (pgbench -D), so the row is the size of the service's."""
    values = {
        "tenant_id": ":tenant",
        "position": "NULL",
        "type": _text("TRANSFER_CREATED"),
        "occurred_at": "NULL",
        "request_id": ":rid",
        "trace_id": "md5(:tid)" if with_trace_id else "NULL",
        "account_ids": _array(LOW, HIGH),
        "holder_ids": EMPTY,
        "transfer_ids": _array(TRANSFER_ID),
        "payload": "(:event_payload)::jsonb",
    }
    return _row("events", EVENT_COLUMNS, values)


def transfer_steps(*, with_trace_id: bool, events: bool = True) -> list[Statement | Raw]:
    """One immediate transfer of `:amount` from account `:d` to `:c`, as the service runs it
    (service/pipeline.py, `_attempt`, for a batch of one):

        find_outcomes    the request id's recorded outcome, in autocommit, before BEGIN
        begin_write      BEGIN SERIALIZABLE, generic plans, the tenant (pipelined)
        lock_batch       both accounts (ids sorted), no transfers, no external ids
        write_batch      the two changed accounts, the new transfer, two entries, the
                         outcome and the transfer's event, each an array of its table's
                         row type
        commit

    Args:
        with_trace_id: the service stores a trace id with each transfer (tracing on).
        events: False: the same statement with no event (its events array empty), so
            without the outbox's work: the event lock, the position, the row, pg_notify.
    """
    write_batch = {
        1: "(:tenant)::text",  # typed: format() and || cannot type a bare parameter
        2: EMPTY,
        3: _array(_changed_account("lo"), _changed_account("hi")),
        4: _array(_new_transfer(with_trace_id=with_trace_id)),
        5: EMPTY,
        6: _array(_entry("dr", DEBIT, "DEBIT"), _entry("cr", CREDIT, "CREDIT")),
        7: _array(_outcome()),
        8: _array(_event(with_trace_id=with_trace_id)) if events else EMPTY,
    }
    return [
        Statement("find_outcomes", {1: ":tenant", 2: _array(":rid")}),
        Raw(r"\startpipeline"),
        Statement("begin_write", {}),
        Raw(r"\endpipeline"),
        *_sorted_ids(),
        _locked_rows(),
        *_new_totals(),
        Statement("write_batch", write_batch),
        Statement("commit", {}),
    ]


def pick_transfer(hot: bool) -> list[str]:
    """Random accounts (distinct), amount and ids; the hot case credits `:hot` every time."""
    if hot:
        pick = [
            r"\set c :hot",
            r"\set d random(1, :accounts - 1)",
            r"\set d :d + CASE WHEN :d >= :hot THEN 1 ELSE 0 END",
        ]
    else:
        pick = [
            r"\set d random(1, :accounts)",
            r"\set c random(1, :accounts - 1)",
            r"\set c :c + CASE WHEN :c >= :d THEN 1 ELSE 0 END",
        ]
    # Request and transfer ids are random, as the service's are: under SERIALIZABLE,
    # time-ordered ids make every insert meet on the index's newest page, where SSI's
    # page-sized predicate locks turn them into serialization failures.
    return [
        *pick,
        r"\set amount random(1, 1000)",
        r"\set rid random(1, 9000000000000000000)",
        r"\set tid random(1, 9000000000000000000)",
    ]


def transfer_script(*, hot: bool, with_trace_id: bool, events: bool = True) -> str:
    """The pgbench script of one transfer (uniform, or crediting the hot account); with
    `events` False, without its event (transfer_steps)."""
    steps = transfer_steps(with_trace_id=with_trace_id, events=events)
    rendered = [s.render() + (";" if isinstance(s, Statement) else "") for s in steps]
    return "\n".join([*pick_transfer(hot), *rendered]) + "\n"


def sequence() -> str:
    """The service's queries the script runs, in order (the report names them)."""
    steps = transfer_steps(with_trace_id=False)
    return " → ".join(step.name for step in steps if step.name)
