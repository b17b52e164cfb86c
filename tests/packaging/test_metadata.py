"""What the two distributions declare, and the lock, agree with each other (no build here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
GRPC_FAMILY = {
    "grpcio",
    "grpcio-tools",
    "grpcio-status",
    "grpcio-health-checking",
    "grpcio-reflection",
}


def _toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)


SERVER = _toml(ROOT / "pyproject.toml")
CLIENT = _toml(ROOT / "clients/python/pyproject.toml")


def _requirements(project: dict[str, Any]) -> dict[str, Requirement]:
    parsed = (Requirement(text) for text in project["project"]["dependencies"])
    return {canonicalize_name(r.name): r for r in parsed}


def _floor(requirement: Requirement) -> Version:
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    assert len(floors) == 1, f"{requirement} needs one lower bound"
    return floors[0]


def _generator() -> Version:
    """The grpcio-tools that generates the stubs of the client wheel (a build requirement)."""
    pins = [Requirement(text) for text in CLIENT["build-system"]["requires"]]
    (tools,) = [r for r in pins if r.name == "grpcio-tools"]
    (spec,) = tools.specifier
    assert spec.operator == "==", "the stub generator is pinned exactly"
    return Version(spec.version)


def test_server_requires_its_client_at_the_same_version() -> None:
    version = SERVER["project"]["version"]
    assert CLIENT["project"]["version"] == version
    client = _requirements(SERVER)["moneymovement-client"]
    assert str(client.specifier) == f"=={version}"


def test_client_depends_on_grpc_and_protobuf_only() -> None:
    # googleapis-common-protos: the error details (google.rpc), small and pure Python.
    assert set(_requirements(CLIENT)) == {"grpcio", "protobuf", "googleapis-common-protos"}


def test_grpc_ranges_start_at_the_stub_generator() -> None:
    """Generated stubs refuse a grpcio older than the grpcio-tools that generated them."""
    generator = _generator()
    for project in (SERVER, CLIENT):
        for name, requirement in _requirements(project).items():
            if name in GRPC_FAMILY:
                assert _floor(requirement) == generator, requirement
    for group in SERVER["dependency-groups"].values():
        for requirement in (Requirement(text) for text in group if isinstance(text, str)):
            if requirement.name in GRPC_FAMILY:
                assert _floor(requirement) == generator, requirement


def test_both_distributions_accept_the_same_protobuf() -> None:
    server, client = _requirements(SERVER)["protobuf"], _requirements(CLIENT)["protobuf"]
    assert server.specifier == client.specifier


def test_the_lock_moves_grpc_and_its_companions_together() -> None:
    lock = _toml(ROOT / "uv.lock")
    versions = {p["name"]: p["version"] for p in lock["package"] if p["name"] in GRPC_FAMILY}
    assert set(versions) == GRPC_FAMILY
    # One release line (a patch release of one of them alone is common).
    assert len({Version(v).release[:2] for v in versions.values()}) == 1, versions
    assert Version(versions["grpcio"]) >= _generator()


def test_the_makefile_installs_the_uv_it_pins() -> None:
    version = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert version is not None
    pinned = re.search(r"^uv==(\S+) ", (ROOT / "requirements/uv.txt").read_text(), re.M)
    assert pinned is not None
    assert pinned[1] == version[1]
    required = Requirement(f"uv{SERVER['tool']['uv']['required-version']}")
    assert Version(version[1]) in required.specifier
