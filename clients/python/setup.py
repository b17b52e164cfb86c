"""Build glue of moneymovement-client: its files live elsewhere in the repository.

The client (`src/moneymovement/client.py`) and the contract (`protos/`) are the server's
files too, so they are not copied into this directory. A build from the checkout reads
them from the repository root; an sdist carries copies of them at its own root (see
`sdist` below), so that a wheel builds from the sdist alone. `build_py` then writes the
wheel's tree: client.py, py.typed, and `moneymovement/v1/` generated from the protos by
grpcio-tools and mypy-protobuf (both build requirements, see pyproject.toml). Nothing
generated is ever committed.

The wheel has no `moneymovement/__init__.py`: the server distribution owns that file,
so that both install into one site-packages without sharing a file. Alone, `moneymovement`
is a namespace package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]
CLIENT = Path("src/moneymovement/client.py")
PROTOS = Path("protos/moneymovement/v1")


def _sources() -> Path:
    """Where client.py and protos/ are: this directory in an sdist, else the repository."""
    return HERE if (HERE / PROTOS).is_dir() else REPOSITORY


def _plugin(name: str) -> str:
    """A protoc plugin installed beside the build's Python (its build environment)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: mypy-protobuf must be a build requirement")
    return found


class BuildPy(build_py):
    """Writes moneymovement/{client.py, py.typed, v1/} into the build tree."""

    def run(self) -> None:
        if self.editable_mode:
            # An editable install (uv's workspace in a checkout) needs only the metadata:
            # the checkout's src/ holds client.py, and `make proto` generates v1/ there.
            return
        sources = _sources()
        protos = sorted((sources / PROTOS).glob("*.proto"))
        if not protos:
            raise RuntimeError(f"no .proto files under {sources / PROTOS}")
        package = Path(self.build_lib) / "moneymovement"
        generated = package / "v1"
        shutil.rmtree(generated, ignore_errors=True)
        generated.mkdir(parents=True)
        shutil.copyfile(sources / CLIENT, package / "client.py")
        (package / "py.typed").write_text("")
        (generated / "__init__.py").write_text(
            '"""Generated from protos/moneymovement/v1 when this package was built."""\n'
        )
        subprocess.run(
            [
                sys.executable, "-m", "grpc_tools.protoc",
                f"-I{sources / 'protos'}",
                f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
                f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
                f"--python_out={self.build_lib}", f"--grpc_python_out={self.build_lib}",
                f"--mypy_out={self.build_lib}", f"--mypy_grpc_out={self.build_lib}",
                *map(str, protos),
            ],
            check=True,
        )  # fmt: skip

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        root = Path(self.build_lib) / "moneymovement"
        return [str(path) for path in sorted(root.rglob("*")) if path.is_file()]


class Sdist(sdist):
    """Adds copies of client.py and the protos, which live outside this directory."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        sources = _sources()
        target = Path(base_dir)
        (target / CLIENT).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources / CLIENT, target / CLIENT)
        (target / PROTOS).mkdir(parents=True, exist_ok=True)
        for proto in sorted((sources / PROTOS).glob("*.proto")):
            shutil.copyfile(proto, target / PROTOS / proto.name)


class ClientDistribution(Distribution):
    """Declares no package (their files are written by BuildPy), yet has pure modules,
    so that setuptools runs build_py and installs its output into the wheel."""

    def has_pure_modules(self) -> bool:
        return True


setup(
    distclass=ClientDistribution,
    cmdclass={"build_py": BuildPy, "sdist": Sdist},
    packages=[],
)
