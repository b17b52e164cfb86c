"""This run beside the committed baseline: the figures of bench/results/latest.json as git
HEAD has it (the file on disk when git cannot say), point by point.

Absolute figures move by 20-30 % from run to run on the shared machine, so the rows also
carry each run's ratio to its own RPC floor, and PostgreSQL's CPU per transfer (which
noise moves less than throughput).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.points import Point

_REPO = Path(__file__).resolve().parent.parent
_COMMITTED = "bench/results/latest.json"


def load(results: Path) -> dict[str, Any] | None:
    """The committed baseline run (as JSON), or None if there is none; its `source` says
    where it came from. Read it before this run writes its own latest.json."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        text = subprocess.run(
            ["git", "show", f"HEAD:{_COMMITTED}"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        source = f"{_COMMITTED} at git HEAD ({commit})"
    except (OSError, subprocess.CalledProcessError):
        path = results / "latest.json"
        if not path.is_file():
            return None
        text = path.read_text()
        source = f"{path} (not from git)"
    try:
        run: dict[str, Any] = json.loads(text)
    except ValueError:
        return None
    run["source"] = source
    return run


def _key(point: dict[str, Any], limit: str | None = None) -> tuple[Any, ...]:
    return (
        point["source"],
        point["workload"],
        point["concurrency"],
        point.get("workers", 1),
        point.get("limit", "") if limit is None else limit,
        point.get("watchers", 0),
    )


def _label(point: Point, compared_with: str) -> str:
    if point.source == "pgbench":
        text = f"pgbench {point.limit}"
    else:
        text = point.workload + (f", {point.workers} workers" if point.workers > 1 else "")
        if point.watchers:
            text += f", {point.watchers} watcher{'s' if point.watchers > 1 else ''}"
    if point.source == "pgbench" and point.workload == "hot":
        text += " (hot)"
    return text + (f" (old: {compared_with})" if compared_with else "")


def compare(previous: dict[str, Any], points: Sequence[Point]) -> dict[str, Any]:
    """The baseline's figures beside this run's, for every closed-loop point both have.

    A point the baseline could not have is set against its nearest: the service's SQL
    without its event against the baseline's service SQL when the baseline has no such
    variant (before the outbox the service's SQL had no event), and a point with watchers
    against the same point without.
    """
    old = {
        _key(p): p
        for p in previous.get("points", [])
        if not p.get("error") and not p.get("rate_per_s") and p.get("per_s")
    }
    rows = []
    for point in points:
        if point.error or point.rate_per_s or point.per_s is None:
            continue
        mine = {
            "source": point.source,
            "workload": point.workload,
            "concurrency": point.concurrency,
            "workers": point.workers,
            "limit": point.limit,
            "watchers": point.watchers,
        }
        compared_with = ""
        before = old.get(_key(mine))
        if before is None and point.limit == "service_sql_no_events":
            before = old.get(_key(mine, limit="service_sql"))
            compared_with = "service_sql, no event then"
        if before is None and point.watchers:
            before = old.get(_key({**mine, "watchers": 0}))
            compared_with = "no watcher"
        if before is None:
            continue
        rows.append(
            {
                "what": _label(point, compared_with),
                "source": point.source,
                "workload": point.workload,
                "limit": point.limit,
                "workers": point.workers,
                "watchers": point.watchers,
                "clients": point.concurrency,
                "unit": point.unit,
                "old_per_s": before.get("per_s"),
                "new_per_s": point.per_s,
                "new_over_old": point.per_s / before["per_s"] if before.get("per_s") else None,
                "old_vs_rpc_floor": before.get("vs_rpc_floor"),
                "new_vs_rpc_floor": point.vs_rpc_floor,
                "old_p99_ms": (before.get("latency_ms") or {}).get("p99"),
                "new_p99_ms": point.latency_ms.get("p99"),
                "old_server_cpu_ms": before.get("server_cpu_s_per_1k"),
                "new_server_cpu_ms": point.server_cpu_s_per_1k,
                "old_db_cpu_ms": before.get("db_cpu_s_per_1k"),
                "new_db_cpu_ms": point.db_cpu_s_per_1k,
            }
        )
    return {
        "source": previous.get("source", ""),
        "started_at": previous.get("started_at", ""),
        "plan": previous.get("plan", ""),
        "rows": rows,
    }
