"""The real server under test, as its own process, and what it says about itself.

`python -m moneymovement serve` runs with product defaults (plus any --server-env), on a
free port, with Prometheus metrics on another. It gets a parent-death signal, so it never
outlives the bench, even after a SIGKILL; and it is stopped in `finally` otherwise.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


@dataclass(frozen=True)
class Server:
    """A running server: its gRPC target, metrics URL and pid."""

    target: str
    metrics_url: str
    pid: int
    log_path: Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


@contextmanager
def running_server(dsn: str, overrides: Mapping[str, str], log_path: Path) -> Iterator[Server]:
    """Starts the server on `dsn`; stops it (SIGTERM, then SIGKILL) on the way out."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "MM_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "MM_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        "MM_LOG_FORMAT": "json",
        **overrides,
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:  # this run's log only
        process = subprocess.Popen(
            [sys.executable, "-m", "moneymovement", "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    try:
        yield Server(
            f"127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", process.pid, log_path
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
