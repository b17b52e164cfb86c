"""The chaos run's status line: redrawn in place on a terminal; elsewhere (a log, CI,
pytest's capture) a plain line every PLAIN_EVERY_S seconds and when a phase begins.

The bench has the same helper (bench/progress.py); the tests do not import the bench,
so this is its minimal copy (no rewriting of what the process prints meanwhile: the
harness prints only before and after its status line).
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TextIO

PLAIN_EVERY_S = 10.0
_REFRESH_S = 0.5
_CLEAR = "\r\x1b[K"  # back to the line's start, erase it
# The faults' names on the status line (the harness's names are the summary's).
_SHORT = {"server kills": "kills", "database restarts": "db crashes", "rolling restarts": "rolling"}


def clock(seconds: float) -> str:
    """`m:ss` of a duration."""
    minutes, secs = divmod(max(0, round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def bar(fraction: float, width: int = 10) -> str:
    """`[###-------]` for a fraction in 0..1."""
    filled = round(min(1.0, max(0.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class Status:
    """A status line on stderr; `render` returns its text. A context manager: a thread
    draws it until the block ends."""

    def __init__(self, render: Callable[[], str], stream: TextIO | None = None) -> None:
        self._render = render
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._last_plain = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-status", daemon=True)

    def __enter__(self) -> Status:
        self.show()  # the first phase at once, on a terminal or not
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self._tty:
            self._write(_CLEAR)

    def show(self) -> None:
        """A phase began: draw the line now (a plain line when not on a terminal)."""
        with self._lock:
            self._draw(force=True)

    def _run(self) -> None:
        while not self._stop.wait(_REFRESH_S):
            with self._lock:
                self._draw(force=False)

    def _draw(self, *, force: bool) -> None:
        try:
            text = self._render()
        except Exception as error:  # the status line never stops the run
            text = f"(status unavailable: {type(error).__name__}: {error})"
        if self._tty:
            self._write(_CLEAR + text[: shutil.get_terminal_size().columns - 1])
        elif force or time.monotonic() - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            self._write(text + "\n")

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


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
            f"{bar(running_s / self.duration_s)} ops {self.outcomes.done:,} "
            f"({self.outcomes.acked:,} acked) · {faults}{watcher}"
        )
