"""Build glue of the server distribution, `moneymovement`: everything else is in pyproject.toml.

The server and the client are two distributions sharing the import package `moneymovement`:
the client one (clients/python) ships `moneymovement/client.py`, the generated
`moneymovement/v1/` and `py.typed`, and the server one depends on it and ships the rest,
`moneymovement/__init__.py` included. No file belongs to both, so both install into one
site-packages, and the client alone is a namespace package. pyproject.toml leaves out
`moneymovement.v1`; setuptools cannot leave out one module of a package declaratively,
hence this file, which leaves out client.py.
"""

from __future__ import annotations

from setuptools import setup
from setuptools.command.build_py import build_py

# Shipped by moneymovement-client (clients/python), not by this distribution.
CLIENT_MODULES = {("moneymovement", "client")}


class BuildPy(build_py):
    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        modules: list[tuple[str, str, str]] = super().find_package_modules(package, package_dir)
        return [module for module in modules if (module[0], module[1]) not in CLIENT_MODULES]


setup(cmdclass={"build_py": BuildPy})
