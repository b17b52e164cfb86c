"""Numbered, forward-only schema migrations from `migrations/NNNN_name.sql`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from moneymovement.storage.queries import query

# Any fixed number shared by every replica; spells "MMIG".
_MIGRATION_LOCK_KEY = 0x4D4D4947
_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    """One schema change."""

    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """The package's migrations in version order."""
    found = []
    for entry in resources.files("moneymovement.storage").joinpath("migrations").iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


async def migrate(dsn: str) -> list[str]:
    """Applies the missing migrations, each in its own transaction, under an advisory lock.

    Returns the names of the migrations applied now.
    """
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(query("lock_migrations"), _MIGRATION_LOCK_KEY)
        try:
            await connection.execute(query("create_migrations_table"))
            done = {row["version"] for row in await connection.fetch(query("applied_migrations"))}
            applied = []
            for migration in available_migrations():
                if migration.version in done:
                    continue
                async with connection.transaction():
                    await connection.execute(migration.sql)
                    await connection.execute(
                        query("record_migration"), migration.version, migration.name
                    )
                applied.append(f"{migration.version:04d}_{migration.name}")
            return applied
        finally:
            await connection.execute(query("unlock_migrations"), _MIGRATION_LOCK_KEY)
    finally:
        await connection.close()
