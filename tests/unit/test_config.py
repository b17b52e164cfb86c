"""Settings from the environment: defaults, parsing, and refusals that name the variable."""

import hashlib
from pathlib import Path

import pytest

from moneymovement.config import ConfigError, load_settings


def test_defaults() -> None:
    settings = load_settings({})

    assert settings.database_url is None
    assert settings.listen_address == "127.0.0.1:50051"
    assert settings.data_dir == Path(".data").absolute()
    assert settings.pool_max_size == 20
    assert settings.hold_sweep_interval_s == 1
    assert settings.tx_max_attempts == 12
    assert settings.max_deadline_s == 30
    assert settings.shutdown_grace_s == 10
    assert settings.auth_cache_ttl_s == 2
    assert settings.max_message_bytes == 4 * 1024 * 1024
    assert (settings.log_level, settings.log_format) == ("INFO", "auto")


def test_every_variable_is_read() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://mm@db:5432/mm",
            "MM_LISTEN_ADDRESS": "0.0.0.0:0",
            "MM_DATA_DIR": "/var/lib/mm",
            "MM_HOLD_SWEEP_S": "0.5",
            "MM_DB_POOL_MAX": "64",
            "MM_TX_MAX_ATTEMPTS": "3",
            "MM_MAX_DEADLINE_S": "2.5",
            "MM_SHUTDOWN_GRACE_S": "0",
            "MM_AUTH_CACHE_TTL_S": "0.25",
            "MM_MAX_MESSAGE_BYTES": "1048576",
            "MM_LOG_LEVEL": "debug",
            "MM_LOG_FORMAT": "json",
        }
    )

    assert settings.database_url == "postgresql://mm@db:5432/mm"
    assert settings.listen_address == "0.0.0.0:0"
    assert settings.data_dir == Path("/var/lib/mm")
    assert settings.pool_max_size == 64
    assert settings.hold_sweep_interval_s == 0.5
    assert settings.tx_max_attempts == 3
    assert settings.max_deadline_s == 2.5
    assert settings.shutdown_grace_s == 0
    assert settings.auth_cache_ttl_s == 0.25
    assert settings.max_message_bytes == 1_048_576
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")


def test_empty_values_mean_the_default() -> None:
    settings = load_settings({"DATABASE_URL": "", "MM_DB_POOL_MAX": "", "MM_MAX_DEADLINE_S": ""})

    assert settings.database_url is None
    assert settings.pool_max_size == 20
    assert settings.max_deadline_s == 30


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MM_DB_POOL_MAX", "two"),
        ("MM_HOLD_SWEEP_S", "0"),
        ("MM_DB_POOL_MAX", "0"),
        ("MM_DB_POOL_MAX", "1"),
        ("MM_DB_POOL_MAX", "nan"),
        ("MM_DB_POOL_MAX", "inf"),
        ("MM_TX_MAX_ATTEMPTS", "0"),
        ("MM_TX_MAX_ATTEMPTS", "1e"),
        ("MM_MAX_DEADLINE_S", "0.05"),
        ("MM_MAX_DEADLINE_S", "30s"),
        ("MM_MAX_DEADLINE_S", "nan"),
        ("MM_SHUTDOWN_GRACE_S", "-1"),
        ("MM_AUTH_CACHE_TTL_S", "soon"),
        ("MM_MAX_MESSAGE_BYTES", "1023"),
    ],
)
def test_bad_number_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


@pytest.mark.parametrize("value", ["xml", "text"])
def test_unknown_log_format(value: str) -> None:
    with pytest.raises(ConfigError, match="MM_LOG_FORMAT"):
        load_settings({"MM_LOG_FORMAT": value})


def test_unknown_log_level() -> None:
    with pytest.raises(ConfigError, match="MM_LOG_LEVEL"):
        load_settings({"MM_LOG_LEVEL": "verbose"})


def test_edge_limits_and_tls_settings(tmp_path: Path) -> None:
    defaults = load_settings({})
    assert defaults.max_metadata_bytes == 16 * 1024
    assert defaults.max_concurrent_rpcs == 256
    assert (defaults.tenant_rate_per_s, defaults.tenant_burst) == (2000, 4000)
    assert defaults.open_health_and_reflection is True
    assert defaults.tls_cert_file is None

    settings = load_settings(
        {
            "MM_MAX_METADATA_BYTES": "4096",
            "MM_MAX_CONCURRENT_RPCS": "0",
            "MM_TENANT_RATE_PER_S": "0",
            "MM_TENANT_BURST": "10",
            "MM_OPEN_HEALTH_AND_REFLECTION": "False",
            "MM_TLS_CERT_FILE": str(tmp_path / "server.pem"),
            "MM_TLS_KEY_FILE": str(tmp_path / "server.key"),
            "MM_TLS_CLIENT_CA_FILE": str(tmp_path / "ca.pem"),
        }
    )
    assert settings.max_metadata_bytes == 4096
    assert (settings.max_concurrent_rpcs, settings.tenant_rate_per_s) == (0, 0)
    assert settings.tenant_burst == 10
    assert settings.open_health_and_reflection is False
    assert settings.tls_cert_file == tmp_path / "server.pem"
    assert settings.tls_client_ca_file == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"MM_TLS_CERT_FILE": "a.pem"}, "MM_TLS_KEY_FILE"),
        ({"MM_TLS_KEY_FILE": "a.key"}, "MM_TLS_CERT_FILE"),
        ({"MM_TLS_CLIENT_CA_FILE": "ca.pem"}, "MM_TLS_CLIENT_CA_FILE"),
        ({"MM_OPEN_HEALTH_AND_REFLECTION": "yes"}, "MM_OPEN_HEALTH_AND_REFLECTION"),
        ({"MM_MAX_CONCURRENT_RPCS": "-1"}, "MM_MAX_CONCURRENT_RPCS"),
        ({"MM_TENANT_BURST": "0"}, "MM_TENANT_BURST"),
        ({"MM_MAX_METADATA_BYTES": "100"}, "MM_MAX_METADATA_BYTES"),
    ],
)
def test_unusable_edge_settings_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env)


def test_workers_default_to_one_and_never_share_the_port_by_default() -> None:
    assert load_settings({}).workers == 1
    assert load_settings({"MM_WORKERS": ""}).workers == 1
    assert load_settings({"MM_WORKERS": " 4 "}).workers == 4
    # Only `serve` sets it, for its workers: no variable turns port sharing on.
    assert load_settings({"MM_WORKERS": "4"}).reuse_port is False


@pytest.mark.parametrize("value", ["0", "-1", "two", "2.5", "2e0", "²"])
def test_workers_must_be_a_whole_number_of_at_least_one(value: str) -> None:
    with pytest.raises(ConfigError, match="MM_WORKERS"):
        load_settings({"MM_WORKERS": value})


def test_the_rail_settings() -> None:
    default = load_settings({"MM_DATA_DIR": "/var/lib/mm"})
    assert default.rail.kind == "simulated"
    assert default.rail.directory == Path("/var/lib/mm/rail")
    assert (default.rail.poll_s, default.rail.standard_delay_s) == (0.5, 30)
    rail = load_settings(
        {
            "MM_RAIL": "file", "MM_RAIL_DIR": "/srv/bank", "MM_RAIL_SEED": "7",
            "MM_RAIL_LATENCY_S": "2", "MM_RAIL_FAILURE_RATE": "0.1",
            "MM_RAIL_RETURN_RATE": "0.2", "MM_RAIL_RETURN_AFTER_S": "9",
            "MM_RAIL_TIMEOUT_RATE": "0.3", "MM_RAIL_UNAVAILABLE_RATE": "0.4",
            "MM_RAIL_DUPLICATE_RATE": "1", "MM_RAIL_REORDER": "true",
            "MM_PAYOUT_POLL_S": "0.1", "MM_PAYOUT_STANDARD_DELAY_S": "0",
        }
    ).rail  # fmt: skip
    assert (rail.kind, rail.directory, rail.seed, rail.latency_s) == (
        "file",
        Path("/srv/bank"),
        7,
        2,
    )
    assert (rail.failure_rate, rail.return_rate, rail.return_after_s) == (0.1, 0.2, 9)
    assert (rail.timeout_rate, rail.unavailable_rate, rail.duplicate_rate) == (0.3, 0.4, 1)
    assert (rail.reorder, rail.poll_s, rail.standard_delay_s) == (True, 0.1, 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [("MM_RAIL", "swift"), ("MM_RAIL_FAILURE_RATE", "1.5"), ("MM_RAIL_REORDER", "maybe"),
     ("MM_PAYOUT_POLL_S", "0")],
)  # fmt: skip
def test_unusable_rail_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_the_admin_service_is_off_unless_given_the_digest_of_its_token() -> None:
    assert load_settings({}).admin_token_sha256 is None
    assert load_settings({"MM_ADMIN_TOKEN_SHA256": " "}).admin_token_sha256 is None
    digest = hashlib.sha256(b"the admin token").hexdigest()
    settings = load_settings({"MM_ADMIN_TOKEN_SHA256": f" {digest.upper()}\n"})
    assert settings.admin_token_sha256 == bytes.fromhex(digest)


@pytest.mark.parametrize(
    "value",
    [
        "mm_admin_Zq81xK",  # the token itself, not its digest
        "ab" * 31,  # too short
        "zz" * 32,  # not hex
        hashlib.sha256(b"").hexdigest(),  # the digest of an unset variable
    ],
)
def test_an_unusable_admin_digest_is_refused_without_repeating_it(value: str) -> None:
    with pytest.raises(ConfigError, match="MM_ADMIN_TOKEN_SHA256") as raised:
        load_settings({"MM_ADMIN_TOKEN_SHA256": value})
    assert value not in str(raised.value)
