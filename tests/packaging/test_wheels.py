"""The two wheels as a user installs them, built from this checkout and run from clean venvs.

`uv build --all-packages` builds each sdist, then each wheel from its sdist (so the sdists are
complete). Each venv gets its wheels and, from the package index, their dependencies at the
lock's versions (uv's cache makes that quick). The server wheel, with the client wheel it
depends on, serves on its own embedded PostgreSQL; the client wheel alone, with none of the
server's modules or dependencies, creates an account on a server started as the e2e tests
start one.

Everything lives under .data/: as root the embedded PostgreSQL runs as `nobody`, which must
traverse the path to the venv holding its binaries (pytest's temporary directory is 0700).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from packaging.requirements import Requirement
from packaging.version import Version

from moneymovement.service.tenants import TenantDirectory
from moneymovement.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from tests.conftest import PROJECT_ROOT
from tests.e2e.conftest import start_api, stop_api

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# Variables that would let a child import the checkout or use another database.
UNSET = ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL")


@dataclass
class Built:
    dist: Path
    server: Path
    client: Path
    constraints: Path


def _uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed here (the Makefile installs it into .venv)")
    return found


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    return {**env, "UV_PYTHON_DOWNLOADS": "never", **extra}


def _run(*args: str | Path, cwd: Path, timeout_s: float = 240) -> str:
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _venv(path: Path, built: Built, *requirements: str | Path) -> Path:
    """A new venv holding `requirements` and their dependencies; returns its python."""
    _run(sys.executable, "-m", "venv", "--without-pip", path, cwd=path.parent)
    python = path / "bin" / "python"
    _run(_uv(), "pip", "install", "--python", python, "--constraints", built.constraints,
         *requirements, cwd=path.parent)  # fmt: skip
    return python


def _members(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if ".dist-info/" not in name}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def work_dir() -> Iterator[Path]:
    path = PROJECT_ROOT / ".data" / f"packaging-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def built(work_dir: Path) -> Built:
    dist = work_dir / "dist"
    _run(_uv(), "build", "--all-packages", "--quiet", "--out-dir", dist, cwd=PROJECT_ROOT)
    constraints = work_dir / "constraints.txt"
    _run(_uv(), "export", "--frozen", "--quiet", "--no-emit-workspace", "--no-hashes",
         "--all-extras", "--all-groups", "-o", constraints, cwd=PROJECT_ROOT)  # fmt: skip
    (server,) = dist.glob("moneymovement-*.whl")
    (client,) = dist.glob("moneymovement_client-*.whl")
    assert {p.name for p in dist.glob("*.tar.gz")} == {
        server.name.split("-py3")[0] + ".tar.gz",
        client.name.split("-py3")[0] + ".tar.gz",
    }
    return Built(dist, server, client, constraints)


def test_the_wheels_share_no_file_and_split_server_from_client(built: Built) -> None:
    server, client = _members(built.server), _members(built.client)
    assert not server & client, "installed together, one would overwrite the other"
    assert "moneymovement/__init__.py" in server
    assert {"moneymovement/storage/sql/transfers.sql", "moneymovement/cli.py"} <= server
    assert not any(name.startswith("moneymovement/v1/") for name in server)
    assert {"moneymovement/client.py", "moneymovement/py.typed"} <= client
    assert "moneymovement/__init__.py" not in client  # a namespace package when alone
    protos = sorted(p.stem for p in (PROJECT_ROOT / "protos/moneymovement/v1").glob("*.proto"))
    for stem in protos:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            assert f"moneymovement/v1/{stem}{suffix}" in client


def test_the_generated_code_accepts_the_protobuf_the_client_allows(built: Built) -> None:
    """Generated protobuf code refuses a runtime older than its protoc, or of another major."""
    with zipfile.ZipFile(built.client) as archive:
        header = archive.read("moneymovement/v1/account_pb2.py").decode()
    found = re.search(r"^# Protobuf Python Version: (\S+)$", header, re.M)
    assert found is not None
    generated = Version(found[1])
    with zipfile.ZipFile(built.client) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    prefix = "Requires-Dist: "
    requires = [Requirement(line.removeprefix(prefix)) for line in lines if line.startswith(prefix)]
    (protobuf,) = [r for r in requires if r.name == "protobuf"]
    floor = min(Version(s.version) for s in protobuf.specifier if s.operator == ">=")
    assert floor >= generated
    assert Version(f"{generated.major + 1}") not in protobuf.specifier


def _serve(venv: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`moneymovement serve --dev` from the venv, outside the checkout."""
    with log.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [venv / "bin" / "moneymovement", "serve", "--dev"],
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _said(log: Path) -> str:
    return log.read_text(errors="replace")


async def _wait_serving(process: subprocess.Popen[bytes], port: int, data: Path, log: Path) -> None:
    deadline = time.monotonic() + 60
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the server exited:\n{_said(log)}"
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if (
                    reply.status == health_pb2.HealthCheckResponse.SERVING
                    and (data / "dev-token").exists()
                ):
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"the server did not serve in time:\n{_said(log)}")


async def test_the_server_wheel_installs_in_a_clean_venv_and_serves(
    built: Built, work_dir: Path
) -> None:
    venv = work_dir / "server-venv"
    python = _venv(venv, built, f"{built.server}[embedded]", built.client)
    where = _run(python, "-c", "import moneymovement, moneymovement.client as c;"
                 "print(moneymovement.__file__); print(c.__file__)", cwd=work_dir)  # fmt: skip
    assert all(line.startswith(f"{venv}/lib/") for line in where.split()), where
    _run(venv / "bin" / "moneymovement", "serve", "--help", cwd=work_dir)
    version = _run(venv / "bin" / "moneymovement", "--version", cwd=work_dir).strip()
    assert version == f"moneymovement {built.server.name.split('-')[1]}"

    data, log, port = work_dir / "server-data", work_dir / "serve.log", _free_port()
    env = _env(
        MM_DATA_DIR=str(data),
        MM_LISTEN_ADDRESS=f"127.0.0.1:{port}",
        MM_LOG_FORMAT="json",
        MM_SHUTDOWN_GRACE_S="1",
    )
    process = _serve(venv, env, log)
    try:
        await _wait_serving(process, port, data, log)
        token = (data / "dev-token").read_text().strip()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            accounts = account_service_pb2_grpc.AccountServiceStub(channel)
            created = await accounts.CreateAccount(
                account_service_pb2.CreateAccountRequest(
                    request_id="packaging-server-wheel",
                    currency_code="USD",
                    normal_balance=account_pb2.NORMAL_BALANCE_CREDIT,
                ),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=10,
            )
        assert created.account.id
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0, _said(log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


CLIENT_SCRIPT = """
import asyncio, json, sys
from moneymovement.client import MoneyMovementClient

async def main():
    async with MoneyMovementClient(sys.argv[1], sys.argv[2]) as mm:
        account = await mm.create_account(
            currency_code="USD", normal_balance="CREDIT", name="from the client wheel"
        )
        print(json.dumps({"id": account.id, "name": account.name}))

asyncio.run(main())
"""

NOT_IN_THE_CLIENT = [
    "moneymovement.app", "moneymovement.domain", "asyncpg", "structlog", "opentelemetry",
    "grpc_status", "grpc_health",
]  # fmt: skip


async def test_the_client_wheel_alone_calls_a_server(
    built: Built, work_dir: Path, dsn: str
) -> None:
    python = _venv(work_dir / "client-venv", built, built.client)
    found = _run(python, "-c", "import importlib.util, sys;"
                 f"print([m for m in {NOT_IN_THE_CLIENT!r} if importlib.util.find_spec(m)])",
                 cwd=work_dir)  # fmt: skip
    assert found.strip() == "[]", f"the client venv holds server parts: {found}"

    api = await start_api(dsn)
    try:
        token = (await TenantDirectory(api.database).create_tenant("packaging")).token
        child = await asyncio.create_subprocess_exec(
            str(python), "-c", CLIENT_SCRIPT, f"127.0.0.1:{api.port}", token,
            cwd=work_dir, env=_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0, err.decode()
        created = json.loads(out)
        accounts = account_service_pb2_grpc.AccountServiceStub(api.channel)
        seen = await accounts.GetAccount(
            account_service_pb2.GetAccountRequest(account_id=created["id"]),
            metadata=(("authorization", f"Bearer {token}"),),
        )
        assert seen.account.name == "from the client wheel"
    finally:
        await stop_api(api)
