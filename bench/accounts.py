"""The bench's numbered accounts: account n's id is a function of n (bench/bench.sql seeds
them so), which lets pgbench scripts and the load generator name the same accounts from a
random integer."""

from __future__ import annotations

_LETTERS = str.maketrans("0123456789", "abcdefghij")


def account_id(number: int) -> str:
    """The id of account `number`: `acct_` and 26 digits spelled as letters a-j."""
    return "acct_" + str(number).zfill(26).translate(_LETTERS)


def account_id_sql(number_var: str) -> str:
    """The same id as a SQL expression of pgbench variable `:number_var`."""
    return f"'acct_' || translate(lpad(:{number_var}, 26, '0'), '0123456789', 'abcdefghij')"
