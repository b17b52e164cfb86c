"""The real server under test, as its own process, and what it says about itself.

`python -m moneymovement serve` runs with product defaults (plus any --server-env), on a
free port, with Prometheus metrics on another. It gets a parent-death signal, so it never
outlives the bench, even after a SIGKILL; and it is stopped in `finally` otherwise.

With `workers` > 1 it is `serve --workers N`: N processes share the gRPC port, worker i
serves its metrics on the metrics port + i, and the process started here is their parent.
Its CPU and memory are then those of the whole process tree, and its metrics the sum of
every worker's.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LE_LABEL = re.compile(r'\ble="([^"]*)"')
_PORT_ATTEMPTS = 50


@dataclass(frozen=True)
class Server:
    """A running server: its gRPC target, metrics URL(s) and pid (the parent's, with
    workers); `workers` processes serve it."""

    target: str
    metrics_url: str
    pid: int
    log_path: Path
    workers: int = 1
    metrics_urls: tuple[str, ...] = ()  # one per worker; () means (metrics_url,)
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)

    @property
    def all_metrics_urls(self) -> tuple[str, ...]:
        """Every worker's metrics URL."""
        return self.metrics_urls or (self.metrics_url,)


@dataclass(frozen=True)
class Metrics:
    """One scrape of every worker: counters and gauges by name (summed over labels and
    workers), and each histogram's cumulative bucket counts by upper bound."""

    totals: dict[str, float]
    buckets: dict[str, dict[float, float]]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _free_ports(count: int) -> int:
    """The first of `count` consecutive TCP ports nobody listens on right now."""
    for _ in range(_PORT_ATTEMPTS):
        first = free_port()
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


@contextmanager
def running_server(
    dsn: str, overrides: Mapping[str, str], log_path: Path, *, workers: int = 1
) -> Iterator[Server]:
    """Starts the server on `dsn` (`serve --workers N` when `workers` > 1); stops it
    (SIGTERM, then SIGKILL) on the way out. It may have exited at once: `wait_ready`."""
    port, metrics_port = free_port(), _free_ports(workers)
    # The flag alone says how many workers (MM_WORKERS from the caller's environment would
    # start more than the bench scrapes); --server-env may still set it.
    inherited = {k: v for k, v in os.environ.items() if k != "MM_WORKERS"}
    env = {
        **inherited,
        "DATABASE_URL": dsn,
        "MM_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "MM_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        "MM_LOG_FORMAT": "json",
        **overrides,
    }
    argv = [sys.executable, "-m", "moneymovement", "serve"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:  # this run's log only
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    urls = tuple(f"http://127.0.0.1:{metrics_port + i}/metrics" for i in range(workers))
    try:
        yield Server(f"127.0.0.1:{port}", urls[0], process.pid, log_path, workers, urls, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(server: Server, timeout_s: float = 60.0) -> None:
    """Waits until every worker's metrics answer (a worker is up once they do).

    Raises:
        RuntimeError: the server exited (the end of its log is in the message), or some
            worker's metrics did not answer within `timeout_s`.
    """
    deadline = time.time() + timeout_s
    waiting = list(server.all_metrics_urls)
    while waiting:
        if server.process is not None and server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"the server exited with {server.process.returncode}: {tail}")
        try:
            scrape(waiting[0])
            waiting.pop(0)
            continue
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"no metrics at {waiting[0]} within {timeout_s:.0f} s")
        time.sleep(0.2)


def scrape(metrics_url: str) -> dict[str, float]:
    """Every Prometheus series summed over its labels, by metric name."""
    with urllib.request.urlopen(metrics_url, timeout=5) as reply:  # noqa: S310 - our own URL
        text = reply.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if match and not line.startswith("#"):
            totals[match[1]] = totals.get(match[1], 0.0) + float(match[3])
    return totals


def scrape_metrics(urls: Iterable[str]) -> Metrics:
    """Every worker's metrics, summed: see Metrics."""
    totals: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    for url in urls:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - our own URL
            text = reply.read().decode()
        for line in text.splitlines():
            match = _METRIC_LINE.match(line)
            if not match or line.startswith("#"):
                continue
            name, value = match[1], float(match[3])
            totals[name] = totals.get(name, 0.0) + value
            bound = _LE_LABEL.search(match[2] or "")
            if name.endswith("_bucket") and bound:
                family = buckets.setdefault(name.removesuffix("_bucket"), {})
                le = float(bound[1])  # "+Inf" parses as inf
                family[le] = family.get(le, 0.0) + value
    return Metrics(totals, buckets)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def children_cpu_seconds(parent_pid: int) -> float:
    """CPU of every live child of `parent_pid` (PostgreSQL's backends and workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == parent_pid:
            total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return total


def postgres_cpu_seconds(postmaster_pid: int) -> float:
    """CPU of PostgreSQL as a whole: the postmaster's own, its live children's, and that
    of the children it has reaped (cutime + cstime): backends of short-lived connections
    (pgbench's) included, which `children_cpu_seconds` loses when they exit."""
    fields = Path(f"/proc/{postmaster_pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = sum(int(fields[i]) for i in (11, 12, 13, 14)) / _CLOCK_TICKS
    return own + children_cpu_seconds(postmaster_pid)


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None  # exited meanwhile


def process_tree(pid: int) -> list[int]:
    """`pid` and every live descendant of it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants (a server's workers), in seconds."""
    total = 0.0
    for member in process_tree(pid):
        if fields := _stat_fields(member):
            total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return total


def tree_peak_rss_mb(pid: int) -> float:
    """The sum of VmHWM over `pid` and its live descendants, in MiB."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += peak_rss_mb(member)
        except OSError:
            continue  # exited meanwhile
    return total
