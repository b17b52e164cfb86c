"""A status line under a long command's output: make bench, make soak, seed_ledger.

On a terminal the line is redrawn in place a few times a second (a carriage return, no
newline), so it shows what runs now, how far along the run is and how long is left.
Anywhere else (a pipe, a log file, CI) it is printed as a plain line every
`plain_every_s` seconds, and when a phase begins, so a log still says where a run was.
The line goes to stderr, the command's results to stdout: `make bench > out.txt` keeps
the results file clean and still shows the line on the terminal. What the process
prints meanwhile stays above the line.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

PLAIN_EVERY_S = 10.0
_REFRESH_S = 0.5  # a terminal's redraw interval
_CLEAR = "\r\x1b[K"  # back to the line's start, erase it


def clock(seconds: float) -> str:
    """`m:ss` (or `h:mm:ss`) of a duration."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bar(fraction: float, width: int = 20) -> str:
    """`[#####---------------]` for a fraction in 0..1."""
    filled = round(min(1.0, max(0.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class Status:
    """The status line of one command; `render` returns its text (no newline).

    Use as a context manager: a thread redraws (terminal) or prints (otherwise) the line
    until the block ends. On a terminal, what the process prints meanwhile (stdout or
    stderr) is written above the line: each write first erases it, and it is drawn again
    once the text ends a line.
    """

    def __init__(
        self,
        render: Callable[[], str],
        *,
        stream: TextIO | None = None,
        plain_every_s: float = PLAIN_EVERY_S,
    ) -> None:
        self._render = render
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._plain_every_s = plain_every_s
        self._last_plain = time.monotonic()  # the first plain line after a full period
        self._drawn = False  # the line is on the terminal now
        self._partial = False  # the process wrote part of a line: no drawing until it ends
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)
        self._saved: list[tuple[str, TextIO]] = []

    def __enter__(self) -> Status:
        if self._tty:
            for name in ("stdout", "stderr"):
                stream = getattr(sys, name)
                if stream.isatty():
                    self._saved.append((name, stream))
                    setattr(sys, name, _KeptAbove(self, stream))
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
        with self._lock:
            self._erase()
            for name, stream in self._saved:
                if isinstance(getattr(sys, name), _KeptAbove):
                    setattr(sys, name, stream)
            self._saved.clear()

    def show(self) -> None:
        """A phase began: redraw now, or print a plain line now."""
        with self._lock:
            self._draw(force=True)

    def write_above(self, stream: TextIO, text: str) -> int:
        """Writes the process's own `text` to `stream`, above the status line."""
        with self._lock:
            self._erase()
            written = stream.write(text)
            stream.flush()
            self._partial = not text.endswith("\n")
            self._draw(force=True)
            return written

    def _run(self) -> None:
        while not self._stop.wait(_REFRESH_S):
            with self._lock:
                self._draw(force=False)

    def _erase(self) -> None:
        if self._drawn:
            self._write(_CLEAR)
            self._drawn = False

    def _draw(self, *, force: bool) -> None:
        if self._tty and self._partial:
            return
        try:
            text = self._render()
        except Exception as error:  # a status line never stops the command
            text = f"(status unavailable: {type(error).__name__}: {error})"
        if self._tty:
            width = shutil.get_terminal_size().columns - 1
            self._write(_CLEAR + text[:width])
            self._drawn = True
        elif force or time.monotonic() - self._last_plain >= self._plain_every_s:
            self._last_plain = time.monotonic()
            self._write(text + "\n")

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


class _KeptAbove:
    """sys.stdout or sys.stderr while a status line shows on the same terminal."""

    def __init__(self, status: Status, stream: TextIO) -> None:
        self._status, self._stream = status, stream

    def write(self, text: str) -> int:
        return self._status.write_above(self._stream, text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
