"""An append-only JSON-lines journal that several processes share safely.

Why this shape: the simulated rail must survive SIGKILL at any moment and be used by
several server processes and a test process playing the bank, all at once.

- Every append happens under an exclusive `flock` of a separate lock file and is fsynced
  before the writer answers, so an answer given is never forgotten.
- A writer reads what others appended, decides, and appends, all under that one lock
  (`transact`), so decisions such as "is this key new?" are never raced.
- A process killed in the middle of a write leaves an unterminated last line. Readers
  only consume whole lines, so nobody has read it, and the next writer cuts it off before
  appending: the writer that died never got an answer, so nothing depended on it.
- Readers keep their folded state and the file offset it covers, and read only the bytes
  appended since.

Each record gets a sequence number: its line index in the file, the same in every process.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

Record = Mapping[str, Any]
State = TypeVar("State")
Answer = TypeVar("Answer")

_CHUNK = 1 << 16


class Journal(Generic[State]):
    """The journal file `name` in `directory`, folded into a `State` by `fold`.

    `fold(state, sequence, record)` must be deterministic and do no I/O: every process
    folds the same records into the same state.
    """

    def __init__(
        self,
        directory: Path,
        name: str,
        new_state: Callable[[], State],
        fold: Callable[[State, int, Record], None],
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._path = directory / f"{name}.jsonl"
        self._lock_path = directory / f"{name}.lock"
        self._fold = fold
        self._state = new_state()
        self._offset = 0  # bytes of the file folded into _state, always at a line end
        self._sequence = 0  # records folded so far
        # Threads of one process (asyncio.to_thread) share _state; flock guards processes.
        self._thread_lock = threading.Lock()

    def read(self, view: Callable[[State], Answer]) -> Answer:
        """`view` of the state with everything appended so far, by any process.

        `view` runs under this object's lock and must not keep the state it is given.
        """
        with self._thread_lock:
            try:
                descriptor = os.open(self._path, os.O_RDONLY)
            except FileNotFoundError:
                return view(self._state)
            try:
                self._catch_up(descriptor)
            finally:
                os.close(descriptor)
            return view(self._state)

    def transact(self, decide: Callable[[State], tuple[Sequence[Record], Answer]]) -> Answer:
        """Under the exclusive lock: catch up, let `decide` choose records from the current
        state, append and fsync them, fold them in, and answer what `decide` answered.

        An exception from `decide` appends nothing.
        """
        with self._thread_lock, self._exclusive():
            created = not self._path.exists()
            descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                if created:
                    _fsync_directory(self._directory)  # the file's name is durable too
                _cut_unterminated_tail(descriptor)
                self._catch_up(descriptor)
                records, answer = decide(self._state)
                if records:
                    _write_all(descriptor, b"".join(_encode(record) for record in records))
                    os.fsync(descriptor)
                    self._catch_up(descriptor)
                return answer
            finally:
                os.close(descriptor)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        # A separate lock file: its lock lives with this open file description, so two
        # Journal objects of one process exclude each other as two processes do.
        descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def _catch_up(self, descriptor: int) -> None:
        size = os.fstat(descriptor).st_size
        if size < self._offset:
            raise RuntimeError(f"{self._path} shrank below what was already read")
        pending = b""
        position = self._offset
        while position < size:
            chunk = os.pread(descriptor, min(_CHUNK, size - position), position)
            if not chunk:
                break
            position += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._apply(line)
        # `pending` is an unterminated line: a write in progress or a dead writer's; skip it.

    def _apply(self, line: bytes) -> None:
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            self._fold(self._state, self._sequence, record)
        except ValueError as error:  # JSONDecodeError included
            raise ValueError(f"{self._path}: record {self._sequence + 1}: {error}") from error
        self._sequence += 1
        self._offset += len(line) + 1


def _encode(record: Record) -> bytes:
    return json.dumps(record, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def _cut_unterminated_tail(descriptor: int) -> None:
    """Drop a last line without its newline: a writer died in the middle of it."""
    end = os.fstat(descriptor).st_size
    if end == 0 or os.pread(descriptor, 1, end - 1) == b"\n":
        return
    position = end
    while position > 0:
        start = max(0, position - _CHUNK)
        newline = os.pread(descriptor, position - start, start).rfind(b"\n")
        if newline >= 0:
            os.ftruncate(descriptor, start + newline + 1)
            return
        position = start
    os.ftruncate(descriptor, 0)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
