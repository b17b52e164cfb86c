"""The chaos run's status line (bench/progress.py draws it): redrawn in place on a
terminal; elsewhere (a log, CI, pytest's capture) a plain line every 10 s and when a
phase begins.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench.progress import Status, bar, clock

# The faults' names on the status line (the harness's names are the summary's).
_SHORT = {"server kills": "kills", "database restarts": "db crashes", "rolling restarts": "rolling"}


class OutcomeCounter:
    """Operations the clients finished so far, and how many were acknowledged: their
    JSON lines (client-*.jsonl), read as they grow, each byte once."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._offsets: dict[Path, int] = {}
        self.done = 0
        self.acked = 0

    def update(self) -> None:
        for path in sorted(self._directory.glob("client-*.jsonl")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as file:
                file.seek(offset)
                chunk = file.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written waits
            self._offsets[path] = offset + len(complete)
            self.done += complete.count(b"\n")
            self.acked += complete.count(b'"outcome": "ack"')


class ChaosProgress:
    """What the chaos run's status line says: the phase, and while the clients run their
    time against the run's, operations done and acknowledged, faults so far against the
    schedule's, and where the event watcher is."""

    def __init__(self, duration_s: float, planned: dict[str, int], work: Path) -> None:
        self.duration_s = duration_s
        self.planned = planned  # fault name ("server kills", ...) -> scheduled count
        self.faults: dict[str, int] = {}  # the harness's Counter, once the clients run
        self.outcomes = OutcomeCounter(work)
        self.watcher_position: Callable[[], int] | None = None
        self.started = time.monotonic()
        self.clients_started: float | None = None
        self.phase = "starting PostgreSQL and the server"
        self.status = Status(self.render)

    def begin(self, phase: str) -> None:
        self.phase = phase
        self.status.show()

    def clients_running(self, faults: dict[str, int]) -> None:
        self.faults, self.clients_started = faults, time.monotonic()
        self.begin("clients")

    def render(self) -> str:
        now = time.monotonic()
        watcher = ""
        if self.watcher_position is not None:
            watcher = f" · watcher at event {self.watcher_position():,}"
        if self.phase != "clients" or self.clients_started is None:
            return f"chaos {clock(now - self.started)}: {self.phase}{watcher}"
        self.outcomes.update()
        running_s = now - self.clients_started
        faults = ", ".join(
            f"{_SHORT.get(name, name)} {self.faults.get(name, 0)}/{planned}"
            for name, planned in self.planned.items()
            if planned
        )
        return (
            f"chaos {clock(running_s)}/{clock(self.duration_s)} "
            f"{bar(running_s / self.duration_s, 10)} ops {self.outcomes.done:,} "
            f"({self.outcomes.acked:,} acked) · {faults}{watcher}"
        )
