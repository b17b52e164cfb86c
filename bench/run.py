"""make bench / make bench-full / make profile: the service against the machine's limits.

    python -m bench.run [--plan bench|bench-full|profile] [--server-env KEY=VALUE ...]

One run, one database: start a fresh embedded PostgreSQL (or use DATABASE_URL), migrate,
seed a tenant with 10,000 numbered accounts (UNLIMITED overdraft) and a history of posted
transfers among them (bench/database.py says why), start the real server as its own
process, then measure each workload at each concurrency with client processes
(bench/loadgen.py), the RPC floor (health checks) and, next to the transfer workloads,
the database's limits with pgbench (bench/limits.py: one transfer in one round trip, 100
transfers in one statement, and the service's own SQL with and without its event).
Uniform transfers run again with WatchEvents streams open on the tenant (1, then 100), to
measure event delivery and the streams' cost (bench/watchers.py). Then a second server,
`serve --workers N`, under the plan's workers points. Writes
bench/results/latest.{json,md,png} (and a timestamped copy under bench/results/runs/),
with the figures of the committed baseline (git HEAD's latest.json) beside this run's,
prints the table, and ends with `verify` on the database it used: the exit status is 1
unless the ledger is clean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import grpc

from bench import baseline, chart, limits, report
from bench.database import (
    HOT_ACCOUNT,
    BenchTenant,
    bench_database,
    prepare,
)
from bench.loadgen import ClientPool, LoadSpec
from bench.pgbench import ScriptInputs
from bench.plan import PLANS, WORKLOADS, Plan, Step, schedule
from bench.points import Point, failed_point, measure_limit, measure_service
from bench.probe import probe
from bench.profile import profile_server
from bench.progress import Status, bar, clock
from bench.server import Server, running_server, wait_ready
from bench.watchers import measure_watched
from moneymovement.client import wait_until_serving
from moneymovement.storage.verify import verify_ledger

RESULTS = Path(__file__).resolve().parent / "results"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--plan", choices=sorted(PLANS), default="bench")
    parser.add_argument("--concurrency", type=int, nargs="*", help="override the plan's")
    parser.add_argument("--workloads", nargs="*", choices=WORKLOADS, help="only these")
    parser.add_argument("--warmup", type=float, help="seconds, override the plan's")
    parser.add_argument("--measure", type=float, help="seconds, override the plan's")
    parser.add_argument("--no-db-limit", action="store_true", help="skip pgbench")
    parser.add_argument(
        "--limits", nargs="*", choices=sorted(limits.LIMITS), help="only these pgbench limits"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="processes of the second server (serve --workers N, N >= 2; 0 or 1: no "
        "second server, the first is the one-worker case); default: the plan's",
    )
    parser.add_argument(
        "--watchers",
        type=int,
        nargs="*",
        help="WatchEvents streams of the event delivery points, e.g. 1 100 (none: no such "
        "points); default: the plan's",
    )
    parser.add_argument("--server-env", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args()


def _plan(args: argparse.Namespace) -> Plan:
    plan = PLANS[args.plan]
    changes: dict[str, Any] = {}
    if args.concurrency:
        changes["concurrencies"] = tuple(args.concurrency)
    if args.warmup is not None:
        changes["warmup_s"] = args.warmup
        changes["limit_warmup_s"] = args.warmup
    if args.measure is not None:
        changes["measure_s"] = args.measure
        changes["limit_measure_s"] = args.measure
    if args.workers is not None:
        changes["workers"] = args.workers
    if args.watchers is not None:
        changes["watcher_streams"] = tuple(n for n in args.watchers if n > 0)
    if args.concurrency:  # the workers and watcher points only at the concurrencies asked
        wanted = plan.workers_concurrencies
        changes["workers_concurrencies"] = tuple(c for c in wanted if c in args.concurrency)
        watched = plan.watcher_concurrencies
        changes["watcher_concurrencies"] = tuple(c for c in watched if c in args.concurrency)
    if args.workloads is not None:
        kept = ("rpc_floor", *args.workloads)
        changes["workers_workloads"] = tuple(w for w in plan.workers_workloads if w in kept)
    return dataclasses.replace(plan, **changes)


def _label(point: Point) -> str:
    if point.source == "pgbench":
        return f"pgbench  {point.workload:<13} {point.limit:<11}"
    workers = f"x{point.workers} workers" if point.workers > 1 else ""
    if point.watchers:
        workers = f"+{point.watchers} watcher{'s' if point.watchers > 1 else ''}"
    return f"{point.source:<8} {point.workload:<13} {workers:<11}"


def _line(point: Point) -> str:
    """The point's line of the run's output."""
    what = f"{_label(point)} {point.mode:<6} "
    what += f"{point.rate_per_s:>6.0f}/s" if point.rate_per_s else f"{point.concurrency:>4} clients"
    if point.error:
        return f"{what}  FAILED: {point.error.splitlines()[0][:300]}"
    lat = point.latency_ms
    delivery = ""
    since = (point.delivery or {}).get("since_transaction_ms")
    after = (point.delivery or {}).get("after_answer_ms")
    if since and after:
        delivery = (
            f"  events p50/p99 {after['p50']:.1f}/{after['p99']:.1f} ms after the answer, "
            f"{since['p50']:.1f}/{since['p99']:.1f} ms since the transaction, "
            f"missing {point.delivery['missing'] if point.delivery else 0}"
        )
    return (
        f"{what}  {point.per_s or 0:>9,.0f} {point.unit}/s  p50 {lat['p50']:7.1f}  "
        f"p99 {lat['p99']:7.1f} ms  rejections {sum(point.rejections.values())}{delivery}"
    )


class _Progress:
    """The run's status line: the phase (seeding, verify), or point i of N with its
    name and the time left. The time left is the schedule's expected durations, scaled
    by how long the points done so far took against theirs."""

    def __init__(self, plan: Plan, steps: list[Step]) -> None:
        self.plan, self.steps = plan, steps
        self.status = Status(self.render)
        self.started = time.monotonic()
        self.phase = "starting"
        self.index = -1  # the running step's, while points run
        self.step_started = self.started
        self.done_expected_s = 0.0
        self.done_actual_s = 0.0

    def __enter__(self) -> _Progress:
        self.status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.status.__exit__(*exc)

    def begin_phase(self, phase: str) -> None:
        self._finish_step()
        self.phase, self.index = phase, -1
        self.status.show()

    def begin(self, step: Step) -> None:
        self._finish_step()
        self.index = self.steps.index(step, max(0, self.index))
        self.step_started = time.monotonic()

    def _finish_step(self) -> None:
        if self.index >= 0:
            self.done_expected_s += self.steps[self.index].expected_s(self.plan)
            self.done_actual_s += time.monotonic() - self.step_started

    def render(self) -> str:
        now = time.monotonic()
        elapsed = clock(now - self.started)
        if self.index < 0:
            return f"bench {elapsed}: {self.phase}"
        step, total = self.steps[self.index], len(self.steps)
        scale = self.done_actual_s / self.done_expected_s if self.done_expected_s else 1.0
        this_s = now - self.step_started
        later_s = sum(s.expected_s(self.plan) for s in self.steps[self.index + 1 :])
        left_s = max(0.0, step.expected_s(self.plan) * scale - this_s) + later_s * scale
        # The figures first: a narrow terminal cuts the line's end.
        return (
            f"bench {self.index + 1}/{total} {bar(self.index / total, 10)} {elapsed}, "
            f"~{clock(left_s)} left · {step.label()} {clock(this_s)}"
        )


@dataclasses.dataclass(frozen=True)
class _Context:
    """What every point of a run needs."""

    plan: Plan
    dsn: str
    pg_pid: int | None
    inputs: ScriptInputs
    limits: tuple[str, ...]  # the pgbench limits to measure
    points: list[Point]
    token: str  # the bench tenant's, for the watchers
    progress: _Progress

    def keep(self, point: Point) -> Point:
        print(_line(point), flush=True)
        self.points.append(point)
        return point

    def measure_limit(self, step: Step) -> None:
        """A database limit (pgbench), right after the service point of its load."""
        warmup = self.plan.limit_warmup_s
        measure = self.plan.limit_measure_s
        self.keep(
            measure_limit(
                self.dsn,
                self.inputs,
                step.limit,
                step.workload,
                step.concurrency,
                self.plan.warmup_s if warmup is None else warmup,
                self.plan.measure_s if measure is None else measure,
                self.pg_pid,
            )
        )

    def measure_watched(self, step: Step, server: Server, clients: ClientPool) -> None:
        """Event delivery: the load again with WatchEvents streams open (right after the
        point without them)."""
        plan = self.plan
        spec = LoadSpec(step.workload, step.concurrency, 0, plan.warmup_s, plan.measure_s)
        self.keep(measure_watched(server, clients, spec, self.pg_pid, self.token, step.watchers))


def _measure_all(context: _Context, steps: list[Step], server: Server, clients: ClientPool) -> None:
    """The schedule's points against the first server (bench/plan.py says the order)."""
    plan = context.plan
    best: dict[str, float] = {}  # each workload's best closed-loop calls/s
    for step in steps:
        context.progress.begin(step)
        if step.limit:
            context.measure_limit(step)
        elif step.watchers:
            context.measure_watched(step, server, clients)
        elif step.fraction:
            rate = round(best.get(step.workload, 0.0) * step.fraction)
            if rate > 0:
                spec = LoadSpec(step.workload, 0, rate, plan.warmup_s, plan.measure_s)
                context.keep(measure_service(server, clients, spec, context.pg_pid))
        else:
            spec = LoadSpec(step.workload, step.concurrency, 0, plan.warmup_s, plan.measure_s)
            point = context.keep(measure_service(server, clients, spec, context.pg_pid))
            best[step.workload] = max(best.get(step.workload, 0.0), point.rpcs_per_s or 0.0)


def _measure_workers(
    context: _Context,
    wanted: list[Step],
    tenant: BenchTenant,
    overrides: dict[str, str],
    log: Path,
) -> None:
    """The schedule's points against `serve --workers N` (N >= 2; the first server is
    the one-worker case). If that server or its clients do not come up (say the flag is
    unknown), each point records why."""
    plan = context.plan
    if not wanted:
        return
    context.progress.begin_phase(f"starting serve --workers {plan.workers}")
    server_cm = running_server(context.dsn, overrides, log, workers=plan.workers)
    with server_cm as server, contextlib.ExitStack() as stack:
        try:
            wait_ready(server)  # fails at once if the server exited
            asyncio.run(wait_until_serving(server.target, timeout_s=60))
            pool = ClientPool(server.target, tenant.token, tenant.accounts, HOT_ACCOUNT)
            clients = stack.enter_context(pool)
        except Exception as error:
            why = f"serve --workers {plan.workers} did not come up: {error}"
            for step in wanted:
                context.keep(failed_point(step.workload, step.concurrency, plan.workers, why))
            return
        for step in wanted:
            context.progress.begin(step)
            spec = LoadSpec(step.workload, step.concurrency, 0, plan.warmup_s, plan.measure_s)
            context.keep(measure_service(server, clients, spec, context.pg_pid))


def _machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} x {model}, {memory_kb / 2**20:.0f} GiB, Linux "
        f"{platform.release()}, Python {platform.python_version()}, grpcio {grpc.__version__}"
    )


async def _postgres_version(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        version: str = await connection.fetchval("SHOW server_version")
        return version
    finally:
        await connection.close()


async def _verify(dsn: str) -> dict[str, Any]:
    result = await verify_ledger(dsn)
    counts = ", ".join(f"{n:,} {name}" for name, n in result.counts.items())
    lines = [f"{counts}; checked in {result.duration_s:.1f} s."]
    lines += [f"- violated: {c.name}: {c.violations[:3]}" for c in result.checks if not c.ok]
    return {
        "ok": result.ok,
        "verdict": "clean" if result.ok else "VIOLATIONS",
        "summary": "\n".join(lines),
        "counts": result.counts,
    }


def _write(results: Path, run: dict[str, Any], points: list[Point]) -> str:
    results.mkdir(parents=True, exist_ok=True)
    (results / "runs").mkdir(exist_ok=True)
    text = report.markdown(run, points)
    data = json.dumps(report.as_json(run, points), indent=2)
    stamp = run["started_at"].replace(":", "").replace("-", "")
    for path in (results / "latest.md", results / "runs" / f"{stamp}-{run['plan']}.md"):
        path.write_text(text)
    for path in (results / "latest.json", results / "runs" / f"{stamp}-{run['plan']}.json"):
        path.write_text(data + "\n")
    chart.draw(points, results / "latest.png", chart.title(run))
    return text


def _selected_limits(args: argparse.Namespace) -> tuple[str, ...]:
    if args.no_db_limit:
        return ()
    return tuple(args.limits if args.limits is not None else limits.LIMITS)


def _install_limits(dsn: str, selected: tuple[str, ...], notes: list[str]) -> bool:
    """Installs the limits' functions if a selected limit needs them; a failure is noted
    (its points then fail with pgbench's own message)."""
    if not set(selected) - set(limits.SERVICE_SQL):
        return False
    try:
        asyncio.run(limits.install(dsn))
    except Exception as error:
        notes.append(f"the limits' functions could not be installed: {error}")
        return False
    return True


def _schedule(args: argparse.Namespace, plan: Plan) -> list[Step]:
    """The run's points in order (none for the profile: it is one py-spy recording)."""
    if plan.name == "profile":
        return []
    return schedule(plan, tuple(args.workloads or WORKLOADS), _selected_limits(args))


def _measure(
    args: argparse.Namespace,
    plan: Plan,
    dsn: str,
    pg_pid: int | None,
    tenant: BenchTenant,
    notes: list[str],
    progress: _Progress,
) -> list[Point]:
    """Every point of the run, on the prepared database."""
    overrides = dict(item.split("=", 1) for item in args.server_env)
    selected = _selected_limits(args)
    installed = plan.name != "profile" and _install_limits(dsn, selected, notes)
    points: list[Point] = []
    first = [step for step in progress.steps if step.workers == 1]
    second = [step for step in progress.steps if step.workers > 1]
    try:
        progress.begin_phase("starting the server and probing it")
        with running_server(dsn, overrides, args.results / "server.log") as server:
            inputs = asyncio.run(probe(server, dsn, tenant))
            if inputs.note:
                notes.append(inputs.note)
            context = _Context(plan, dsn, pg_pid, inputs, selected, points, tenant.token, progress)
            progress.begin_phase("starting the client processes")
            pool = ClientPool(server.target, tenant.token, tenant.accounts, HOT_ACCOUNT)
            with pool as clients:
                if plan.name == "profile":
                    progress.begin_phase(
                        f"py-spy records the server, uniform, {plan.concurrencies[0]} "
                        f"clients, ~{clock(plan.warmup_s + plan.measure_s)}"
                    )
                    return [profile_server(server, clients, plan, pg_pid, args.results)]
                _measure_all(context, first, server, clients)
        _measure_workers(context, second, tenant, overrides, args.results / "server-workers.log")
    finally:
        if installed:
            asyncio.run(limits.uninstall(dsn))
    return points


def main() -> int:
    args = _parse_args()
    plan = _plan(args)
    started = time.time()
    notes: list[str] = []
    run: dict[str, Any] = {
        "plan": plan.name,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": _machine(),
        "server_env": " ".join(args.server_env),
        "accounts": plan.accounts,
        "history_transfers": plan.history_transfers,
        "warmup_s": plan.warmup_s,
        "measure_s": plan.measure_s,
        "limit_warmup_s": plan.limit_warmup_s,
        "limit_measure_s": plan.limit_measure_s,
        "workers": plan.workers,
        "watcher_streams": list(plan.watcher_streams),
        "watcher_concurrencies": list(plan.watcher_concurrencies),
        "notes": notes,
    }
    # Before this run overwrites latest.json: the committed baseline to compare with.
    previous = baseline.load(args.results)
    progress = _Progress(plan, _schedule(args, plan))
    with bench_database() as (dsn, pg_pid), progress:
        run["machine"] += f", PostgreSQL {asyncio.run(_postgres_version(dsn))}"
        progress.begin_phase(
            f"seeding 2 tenants x {plan.accounts:,} accounts, {plan.history_transfers:,} transfers"
        )
        tenant = asyncio.run(
            prepare(dsn, plan.accounts, plan.history_transfers, limits_tenant=True)
        )
        points = _measure(args, plan, dsn, pg_pid, tenant, notes, progress)
        progress.begin_phase("verify: the invariants of the ledger the run wrote")
        run["verify"] = asyncio.run(_verify(dsn))
    report.add_ratios(points)
    run["limits"] = {name: limits.describe(limit) for name, limit in limits.LIMITS.items()}
    if previous is not None:
        run["baseline"] = baseline.compare(previous, points)
    run["wall_s"] = time.time() - started
    if plan.name == "profile":
        print(f"verify: {run['verify']['verdict']}\n{run['verify']['summary']}")
    else:
        print("\n" + _write(args.results, run, points))
    return 0 if run["verify"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
