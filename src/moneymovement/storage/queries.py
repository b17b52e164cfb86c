"""Named SQL queries, read once from `sql/*.sql`.

A file holds queries separated by `-- name: <query_name>` lines; parameters are `$n`.
No SQL is built from strings anywhere else.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """Splits a file's text into {name: sql}."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name} defined twice")
        queries[name] = body.strip()
    return queries


@cache
def all_queries() -> dict[str, str]:
    """Every named query of the package."""
    queries: dict[str, str] = {}
    folder = resources.files("moneymovement.storage").joinpath("sql")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            for name, sql in parse(entry.read_text(encoding="utf-8")).items():
                if name in queries:
                    raise ValueError(f"query {name} defined twice")
                queries[name] = sql
    return queries


def query(name: str) -> str:
    """The SQL of one named query."""
    return all_queries()[name]
