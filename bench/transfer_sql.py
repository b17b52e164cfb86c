"""The SQL the service runs for one immediate transfer, rebuilt as a pgbench script.

This module is the one place that says which of the service's named queries
(src/moneymovement/storage/sql/*.sql) one CreateTransfer runs, in which order, and with
which parameters. The SQL text itself is always read from the service, so a changed
statement is picked up by itself; a changed *sequence* (statements merged or split, a
`set_config` for row-level security, other parameters) must be mirrored in
`transfer_steps()` below (the one function to edit; a script that no longer matches the
service's queries fails its point with the reason, and the run goes on). Today the service
does (service/requests.py, service/transfers.py, storage/session.py):

    begin_write                        BEGIN SERIALIZABLE + set_config(tenant), one
                                       round trip (pipelined here: pgbench sends each
                                       statement separately)
    lock_accounts                      both accounts, FOR UPDATE, in id order
    write_postings                     one CTE statement: the new totals from the
                                       domain, and the request's outcome row
    commit

as the service's own role (migrations/0004), so row-level security applies as in the service
(pgbench.py sets it). A new request id is not looked up first (service/requests.py).

pgbench can only bind scalar variables, so each `$n` is replaced by a SQL expression of
pgbench variables: an array parameter becomes `ARRAY[...]`, an account id is spelled from
its number (the bench seeds ids that are a function of a number, bench/bench.sql). The
domain's arithmetic (new totals and versions) is done with pgbench's `\\set` from the
locked rows, which the lock query returns through `\\gset`; as `\\gset` takes one row, the
lock query is wrapped in an aggregate that pivots the two locked rows into one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bench.accounts import account_id as account_id  # re-exported: older importers
from bench.accounts import account_id_sql
from moneymovement.storage.queries import query

# Variables the script expects from pgbench -D: the tenant, the number of accounts, the
# hot account's number, and a real outcome row (fingerprint hex and JSON) to save.
DEFINES = ("tenant", "accounts", "hot", "fingerprint", "outcome")
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


def _locked_totals() -> Raw:
    """lock_accounts, pivoted to one row: dr_<total> of the debit, cr_<total> of the credit."""
    lock = bind(query("lock_accounts"), {1: ":tenant", 2: _array(DEBIT, CREDIT)})
    columns = ",\n       ".join(
        f"max({total}) FILTER (WHERE account_id = {account}) AS {role}_{total}"
        for role, account in (("dr", DEBIT), ("cr", CREDIT))
        for total in _TOTALS
    )
    return Raw(f"SELECT {columns}\nFROM ({lock}) AS locked \\gset", "lock_accounts")


def _new_totals() -> list[Raw]:
    """The domain's move() for an immediate transfer: debit's posted debits and credit's
    posted credits grow by the amount, each version by one."""
    return [
        Raw(r"\set dr_posted_debits_new :dr_posted_debits_minor + :amount"),
        Raw(r"\set dr_version_new :dr_version + 1"),
        Raw(r"\set cr_posted_credits_new :cr_posted_credits_minor + :amount"),
        Raw(r"\set cr_version_new :cr_version + 1"),
    ]


def _after() -> list[str]:
    """The four totals arrays, debit then credit, after the move (accounts and entries)."""
    return [
        _array(":dr_posted_debits_new", ":cr_posted_debits_minor"),
        _array(":dr_posted_credits_minor", ":cr_posted_credits_new"),
        _array(":dr_pending_debits_minor", ":cr_pending_debits_minor"),
        _array(":dr_pending_credits_minor", ":cr_pending_credits_minor"),
    ]


def transfer_steps(*, with_trace_id: bool) -> list[Statement | Raw]:
    """One immediate transfer of `:amount` from account `:d` to `:c`, as the service runs it.

    Args:
        with_trace_id: the service stores a trace id with each transfer (tracing on).
    """
    after = _after()
    write_postings = {
        1: ":tenant",
        2: _array(DEBIT, CREDIT),
        3: after[0],
        4: after[1],
        5: after[2],
        6: after[3],
        7: _array(":dr_version_new", ":cr_version_new"),
        8: _array(TRANSFER_ID),
        9: _array(":rid"),
        10: _array("0"),
        11: _array("NULL"),
        12: _array(DEBIT),
        13: _array(CREDIT),
        14: _array(_text("USD")),
        15: _array(":amount"),
        16: _array(_text("POSTED")),
        17: _array(":amount"),
        18: _array(_text("")),
        19: _array(EMPTY),
        20: _array("NULL"),
        21: _array("md5(:tid)" if with_trace_id else "NULL"),
        22: _array(DEBIT, CREDIT),
        23: _array(":dr_version_new", ":cr_version_new"),
        24: _array(TRANSFER_ID, TRANSFER_ID),
        25: _array(_text("DEBIT"), _text("CREDIT")),
        26: _array(_text("POSTED"), _text("POSTED")),
        27: _array(":amount", ":amount"),
        28: after[0],
        29: after[1],
        30: after[2],
        31: after[3],
        32: EMPTY,
        33: EMPTY,
        34: EMPTY,
        35: EMPTY,
        36: EMPTY,
        37: _array("NULL"),
        38: _array(":rid"),
        39: _array(r"decode(:fingerprint, 'hex')"),
        40: _array(":outcome"),
    }
    return [
        Raw(r"\startpipeline"),
        Statement("begin_write", {}),
        Raw(r"\endpipeline"),
        _locked_totals(),
        *_new_totals(),
        Statement("write_postings", write_postings),
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


def transfer_script(*, hot: bool, with_trace_id: bool) -> str:
    """The pgbench script of one transfer (uniform, or crediting the hot account)."""
    steps = transfer_steps(with_trace_id=with_trace_id)
    rendered = [s.render() + (";" if isinstance(s, Statement) else "") for s in steps]
    return "\n".join([*pick_transfer(hot), *rendered]) + "\n"


def sequence() -> str:
    """The service's queries the script runs, in order (the report names them)."""
    steps = transfer_steps(with_trace_id=False)
    return " → ".join(step.name for step in steps if step.name)
