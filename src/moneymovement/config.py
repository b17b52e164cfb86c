"""Settings: the only module that reads the environment.

| variable               | default            | meaning                                          |
|------------------------|--------------------|--------------------------------------------------|
| DATABASE_URL           | (unset)            | PostgreSQL DSN; unset: the embedded PostgreSQL   |
| MM_LISTEN_ADDRESS      | 127.0.0.1:50051    | host:port to serve gRPC on (port 0: any free)    |
| MM_WORKERS             | 1                  | server processes sharing the port (`serve`'s     |
|                        |                    | --workers overrides it)                          |
| MM_DATA_DIR            | ./.data            | where the embedded PostgreSQL keeps its data     |
| MM_DB_POOL_MAX         | 20                 | most connections at once (at least 2 per writer) |
| MM_TX_MAX_ATTEMPTS     | 12                 | tries of a transaction that keeps conflicting    |
| MM_WRITE_BATCH_MAX     | 256                | commands (batch items) in one write transaction  |
| MM_WRITE_WRITERS       | 1                  | write transactions at once in one process        |
| MM_MAX_DEADLINE_S      | 30                 | longest an RPC may work (also the default)       |
| MM_SHUTDOWN_GRACE_S    | 10                 | how long SIGTERM waits for RPCs in flight        |
| MM_AUTH_CACHE_TTL_S    | 2                  | longest a token lookup is cached (revocation     |
|                        |                    | drops it at once; 0: no cache)                   |
| MM_HOLD_SWEEP_S        | 1                  | how often expired holds and scheduled funds      |
|                        |                    | that are due are released                        |
| MM_EVENT_RETENTION_S   | 2592000 (30 days)  | how long events are kept (at least 60)           |
| MM_OUTCOME_RETENTION_S | 86400 (24 hours)   | how long a request id's outcome is kept, and     |
|                        |                    | replayed (at least 86400: the contract's promise)|
| MM_RETENTION_SWEEP_S   | 60                 | how often old events and outcomes are pruned     |
| MM_EVENT_HEARTBEAT_S   | 15                 | a quiet event stream's heartbeat interval        |
| MM_MAX_EVENT_STREAMS   | 1000               | event streams open at once on one replica        |
| MM_MAX_MESSAGE_BYTES   | 4194304            | largest request or response message              |
| MM_MAX_METADATA_BYTES  | 16384              | largest request metadata (headers)               |
| MM_MAX_CONCURRENT_RPCS | 256                | RPCs served at once; more: RESOURCE_EXHAUSTED    |
|                        |                    | (0: no limit)                                    |
| MM_TENANT_RATE_PER_S   | 2000               | each tenant's sustained calls per second, per    |
|                        |                    | replica (0: no limit)                            |
| MM_TENANT_BURST        | 4000               | calls a tenant may make at once above the rate   |
| MM_OPEN_HEALTH_AND_REFLECTION | true        | health and reflection served without a token     |
| MM_ADMIN_TOKEN_SHA256  | (empty: off)       | hex SHA-256 of the admin bearer token; set:      |
|                        |                    | AdminService on (docs/operations.md)             |
| MM_TLS_CERT_FILE       | (empty: plaintext) | PEM server certificate chain; with the key: TLS  |
| MM_TLS_KEY_FILE        | (empty)            | PEM private key of the server certificate        |
| MM_TLS_CLIENT_CA_FILE  | (empty)            | PEM CA bundle; set: client certificates required |
| MM_RAIL                | simulated          | the payout rail: simulated or file               |
| MM_RAIL_DIR            | <MM_DATA_DIR>/rail | the rail's files (the simulated bank's journal)  |
| MM_RAIL_SEED           | 0                  | the simulated rail's seed (latency, outcomes)    |
| MM_RAIL_LATENCY_S      | 0.5                | the simulated rail's typical time to settle      |
| MM_RAIL_FAILURE_RATE   | 0                  | share of simulated payouts that fail (0 to 1)    |
| MM_RAIL_RETURN_RATE    | 0                  | share of simulated payouts returned later        |
| MM_RAIL_RETURN_AFTER_S | 5                  | how long after posting a simulated return comes  |
| MM_RAIL_TIMEOUT_RATE   | 0                  | share of submissions whose answer is lost        |
| MM_RAIL_UNAVAILABLE_RATE | 0                | share of submissions refused (nothing received)  |
| MM_RAIL_DUPLICATE_RATE | 0                  | share of callbacks the simulated rail repeats    |
| MM_RAIL_REORDER        | false              | true: simulated callbacks out of order           |
| MM_PAYOUT_POLL_S       | 0.5                | how often the payout worker works the rail       |
| MM_PAYOUT_STANDARD_DELAY_S | 30             | how long a STANDARD payout waits (cancelable)    |
|                        |                    | before it goes to the rail; INSTANT: at once     |
| MM_LOG_LEVEL           | INFO               | DEBUG, INFO, WARNING, ERROR                      |
| MM_LOG_FORMAT          | auto               | json, console, or auto (console on a terminal)   |
| MM_METRICS_ADDRESS     | (empty: off)       | host:port serving /metrics for Prometheus         |
|                        |                    | (worker i of --workers N: port + i)              |
| OTEL_SDK_DISABLED      | false              | true: no spans, no metrics (the API's no-ops)    |
| OTEL_TRACES_EXPORTER   | none               | none, otlp, console (comma-separated)            |
| OTEL_METRICS_EXPORTER  | none               | none or otlp                                     |
| OTEL_EXPORTER_OTLP_PROTOCOL | http/protobuf | grpc or http/protobuf                            |

The OTLP exporters read the other standard OTEL_* variables themselves (endpoint,
headers, service name, resource attributes, sampler).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RailSettings:
    """The payout rail and its worker (docs/payouts.md)."""

    directory: Path
    kind: str = "simulated"
    seed: int = 0
    latency_s: float = 0.5
    failure_rate: float = 0.0
    return_rate: float = 0.0
    return_after_s: float = 5.0
    timeout_rate: float = 0.0
    unavailable_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder: bool = False
    poll_s: float = 0.5
    standard_delay_s: float = 30.0


@dataclass(frozen=True)
class Settings:
    """Everything configurable, read once at start-up."""

    database_url: str | None
    listen_address: str
    data_dir: Path
    pool_max_size: int
    tx_max_attempts: int
    write_batch_max_items: int
    write_writers: int
    max_deadline_s: float
    shutdown_grace_s: float
    auth_cache_ttl_s: float
    hold_sweep_interval_s: float
    event_retention_s: float
    outcome_retention_s: float
    retention_sweep_s: float
    event_heartbeat_s: float
    max_event_streams: int
    max_message_bytes: int
    max_metadata_bytes: int
    max_concurrent_rpcs: int
    tenant_rate_per_s: float
    tenant_burst: float
    open_health_and_reflection: bool
    # The SHA-256 digest of the admin token (AdminService), never the token; None: off.
    admin_token_sha256: bytes | None
    tls_cert_file: Path | None
    tls_key_file: Path | None
    tls_client_ca_file: Path | None
    log_level: str
    log_format: str
    metrics_address: str
    telemetry_enabled: bool
    service_name: str
    traces_exporters: tuple[str, ...]
    metrics_exporters: tuple[str, ...]
    otlp_protocol: str
    workers: int = 1
    rail: RailSettings = field(default_factory=lambda: RailSettings(Path(".data/rail").absolute()))
    # Not read from the environment: `serve` sets it for the workers of a multi-worker
    # serve only, so that a lone server never shares (and silently splits) a port.
    reuse_port: bool = False


class ConfigError(ValueError):
    """A variable has a value that cannot be used."""


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Reads the settings from `environ` (the process environment by default).

    Raises:
        ConfigError: naming the variable with an unusable value.
    """
    env = os.environ if environ is None else environ

    def number(name: str, default: float, *, minimum: float) -> float:
        raw = env.get(name, "")
        try:
            value = float(raw) if raw else default
        except ValueError as error:
            raise ConfigError(f"{name}={raw!r} is not a number") from error
        if not math.isfinite(value) or value < minimum:
            raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
        return value

    log_format = env.get("MM_LOG_FORMAT", "auto")
    if log_format not in ("auto", "json", "console"):
        raise ConfigError(f"MM_LOG_FORMAT={log_format!r} must be auto, json or console")
    log_level = env.get("MM_LOG_LEVEL", "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"MM_LOG_LEVEL={log_level!r} must be DEBUG, INFO, WARNING or ERROR")
    pool_max = int(number("MM_DB_POOL_MAX", 20, minimum=2))
    traces = _names(env.get("OTEL_TRACES_EXPORTER", "none"))
    if not set(traces) <= {"otlp", "console"}:
        raise ConfigError("OTEL_TRACES_EXPORTER must be none, otlp, console or a list of them")
    metric_exporters = _names(env.get("OTEL_METRICS_EXPORTER", "none"))
    if not set(metric_exporters) <= {"otlp"}:
        raise ConfigError("OTEL_METRICS_EXPORTER must be none or otlp")
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol not in ("grpc", "http/protobuf"):
        raise ConfigError("OTEL_EXPORTER_OTLP_PROTOCOL must be grpc or http/protobuf")
    open_probes = env.get("MM_OPEN_HEALTH_AND_REFLECTION", "true").strip().lower() or "true"
    if open_probes not in ("true", "false"):
        raise ConfigError("MM_OPEN_HEALTH_AND_REFLECTION must be true or false")
    tls_cert, tls_key, tls_ca = (
        _path(env, name)
        for name in ("MM_TLS_CERT_FILE", "MM_TLS_KEY_FILE", "MM_TLS_CLIENT_CA_FILE")
    )
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("MM_TLS_CERT_FILE and MM_TLS_KEY_FILE must be set together")
    if tls_ca is not None and tls_cert is None:
        raise ConfigError("MM_TLS_CLIENT_CA_FILE needs MM_TLS_CERT_FILE and MM_TLS_KEY_FILE")
    workers = env.get("MM_WORKERS", "").strip() or "1"
    # A count of processes: "2.5" or "2e0" is a mistake, not a number to round.
    if not (workers.isascii() and workers.isdigit()) or int(workers) < 1:
        raise ConfigError(f"MM_WORKERS={workers!r} must be a whole number, at least 1")
    # Each write transaction also reads its requests' outcomes on a second connection
    # while it holds its own: fewer than two per writer could wait for each other forever.
    writers_at_once = int(number("MM_WRITE_WRITERS", 1, minimum=1))
    if pool_max < 2 * writers_at_once:
        raise ConfigError(
            f"MM_DB_POOL_MAX={pool_max} is too small for MM_WRITE_WRITERS={writers_at_once}: "
            "each writer needs two connections at once"
        )
    data_dir = Path(env.get("MM_DATA_DIR", ".data")).absolute()
    rail_kind = env.get("MM_RAIL", "simulated").strip() or "simulated"
    if rail_kind not in ("simulated", "file"):
        raise ConfigError(f"MM_RAIL={rail_kind!r} must be simulated or file")
    reorder = env.get("MM_RAIL_REORDER", "false").strip().lower() or "false"
    if reorder not in ("true", "false"):
        raise ConfigError("MM_RAIL_REORDER must be true or false")

    def rate_of(name: str) -> float:
        value = number(name, 0, minimum=0)
        if value > 1:
            raise ConfigError(f"{name}={value} must be between 0 and 1")
        return value

    rail = RailSettings(
        directory=Path(env.get("MM_RAIL_DIR", "") or data_dir / "rail").absolute(),
        kind=rail_kind,
        seed=int(number("MM_RAIL_SEED", 0, minimum=0)),
        latency_s=number("MM_RAIL_LATENCY_S", 0.5, minimum=0),
        failure_rate=rate_of("MM_RAIL_FAILURE_RATE"),
        return_rate=rate_of("MM_RAIL_RETURN_RATE"),
        return_after_s=number("MM_RAIL_RETURN_AFTER_S", 5, minimum=0),
        timeout_rate=rate_of("MM_RAIL_TIMEOUT_RATE"),
        unavailable_rate=rate_of("MM_RAIL_UNAVAILABLE_RATE"),
        duplicate_rate=rate_of("MM_RAIL_DUPLICATE_RATE"),
        reorder=reorder == "true",
        poll_s=number("MM_PAYOUT_POLL_S", 0.5, minimum=0.01),
        standard_delay_s=number("MM_PAYOUT_STANDARD_DELAY_S", 30, minimum=0),
    )
    rate = number("MM_TENANT_RATE_PER_S", 2000, minimum=0)
    burst = number("MM_TENANT_BURST", 4000, minimum=1)
    return Settings(
        database_url=_database_url(env.get("DATABASE_URL", "").strip()),
        listen_address=_listen_address(env.get("MM_LISTEN_ADDRESS", "127.0.0.1:50051")),
        data_dir=data_dir,
        pool_max_size=pool_max,
        tx_max_attempts=int(number("MM_TX_MAX_ATTEMPTS", 12, minimum=1)),
        write_batch_max_items=int(number("MM_WRITE_BATCH_MAX", 256, minimum=1)),
        write_writers=writers_at_once,
        max_deadline_s=number("MM_MAX_DEADLINE_S", 30, minimum=0.1),
        shutdown_grace_s=number("MM_SHUTDOWN_GRACE_S", 10, minimum=0),
        auth_cache_ttl_s=number("MM_AUTH_CACHE_TTL_S", 2, minimum=0),
        hold_sweep_interval_s=number("MM_HOLD_SWEEP_S", 1, minimum=0.01),
        event_retention_s=number("MM_EVENT_RETENTION_S", 30 * 86400, minimum=60),
        outcome_retention_s=number("MM_OUTCOME_RETENTION_S", 86400, minimum=86400),
        retention_sweep_s=number("MM_RETENTION_SWEEP_S", 60, minimum=0.01),
        event_heartbeat_s=number("MM_EVENT_HEARTBEAT_S", 15, minimum=0.01),
        max_event_streams=int(number("MM_MAX_EVENT_STREAMS", 1000, minimum=1)),
        max_message_bytes=int(number("MM_MAX_MESSAGE_BYTES", 4 * 1024 * 1024, minimum=1024)),
        # Below ~1 KiB even a token and a traceparent would not fit.
        max_metadata_bytes=int(number("MM_MAX_METADATA_BYTES", 16 * 1024, minimum=1024)),
        max_concurrent_rpcs=int(number("MM_MAX_CONCURRENT_RPCS", 256, minimum=0)),
        tenant_rate_per_s=rate,
        tenant_burst=burst,
        open_health_and_reflection=open_probes == "true",
        admin_token_sha256=_admin_digest(env.get("MM_ADMIN_TOKEN_SHA256", "")),
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
        tls_client_ca_file=tls_ca,
        log_level=log_level,
        log_format=log_format,
        metrics_address=env.get("MM_METRICS_ADDRESS", ""),
        telemetry_enabled=env.get("OTEL_SDK_DISABLED", "").strip().lower() != "true",
        service_name=env.get("OTEL_SERVICE_NAME") or "moneymovement",
        traces_exporters=traces,
        metrics_exporters=metric_exporters,
        otlp_protocol=protocol,
        workers=int(workers),
        rail=rail,
    )


def _database_url(value: str) -> str | None:
    """DATABASE_URL, checked for the mistakes asyncpg would only meet at the first connect
    (and report with a traceback): not a postgresql:// URL, a port that is not a number.
    The message never repeats the URL: it may hold a password."""
    if not value:
        return None
    scheme, separator, rest = value.partition("://")
    if not separator or scheme not in ("postgresql", "postgres"):
        got = f"its scheme is {scheme!r}" if separator else "it does not start with postgresql://"
        raise ConfigError(
            f"DATABASE_URL is not a PostgreSQL URL ({got}): use "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    hosts = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    for spec in filter(None, hosts.split(",")):
        if spec.startswith("["):
            _, closed, after = spec.partition("]")
            port = after.removeprefix(":")
            if not closed or (after and not after.startswith(":")):
                raise ConfigError(
                    "DATABASE_URL has an unclosed or misplaced IPv6 bracket: use [ADDRESS]:PORT"
                )
        else:
            port = spec.partition(":")[2]
        if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise ConfigError(
                f"DATABASE_URL's port {port!r} is not a number from 1 to 65535: use "
                "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
            )
    return value


def _listen_address(value: str) -> str:
    """MM_LISTEN_ADDRESS: `host:port` (IPv6 in brackets), or grpc's `unix:PATH`."""
    if value.startswith(("unix:", "unix-abstract:")):
        return value
    host, separator, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if (
        separator
        and port.isascii()
        and port.isdigit()
        and int(port) <= 65535
        and (bracketed or ":" not in host)
        and not any(c.isspace() or c in "/[]" for c in (host[1:-1] if bracketed else host))
    ):
        return value
    raise ConfigError(
        f"MM_LISTEN_ADDRESS={value!r} is not HOST:PORT: use e.g. 127.0.0.1:50051, "
        "0.0.0.0:50051 (every interface, as in a container) or [::1]:50051; port 0 takes "
        "any free port"
    )


def _admin_digest(value: str) -> bytes | None:
    """MM_ADMIN_TOKEN_SHA256: 64 hex digits, the SHA-256 of the admin token; empty: off.

    Only the digest is configured, so the token itself is in no environment, manifest
    or process listing of the server; whoever holds it is the admin. The message never
    repeats the value (a token pasted by mistake must not reach the logs).
    """
    text = value.strip().lower()
    if not text:
        return None
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ConfigError(
            f"MM_ADMIN_TOKEN_SHA256 must be 64 hex digits, the SHA-256 of the admin token "
            f'(got {len(text)} characters): e.g. printf %s "$TOKEN" | sha256sum'
        )
    digest = bytes.fromhex(text)
    if digest == _EMPTY_SHA256:
        raise ConfigError("MM_ADMIN_TOKEN_SHA256 is the SHA-256 of the empty string")
    return digest


# hashlib.sha256(b"").digest(): what `printf %s "$UNSET" | sha256sum` gives.
_EMPTY_SHA256 = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def _path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "").strip()
    return Path(value).absolute() if value else None


def _names(value: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in value.split(",") if n.strip())
    return tuple(n for n in names if n != "none")
