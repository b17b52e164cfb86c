"""The operator's telemetry switches, read from the environment once at start-up.

| variable                        | default | meaning                                        |
|---------------------------------|---------|------------------------------------------------|
| OTEL_SEMCONV_STABILITY_OPT_IN   | (empty) | comma list; `rpc/dup`: RPC spans and metrics   |
|                                 |         | also carry the previous names; `database/dup`: |
|                                 |         | database spans also carry the previous names   |
| MM_TRACE_BACKGROUND             | false   | true: work no request asked for (hold sweeper, |
|                                 |         | retention, readiness ping, listeners) may start|
|                                 |         | traces of its own                              |
| MM_TRACE_QUERY_TEXT             | false   | true: database spans carry the statement text  |

Read here rather than in config.py because only the telemetry set-up uses them, and the
test set-up (which never loads Settings) needs them too. docs/observability.md says why
the defaults are what they are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

_TRUE = ("1", "true", "yes", "on")


@dataclass
class Switches:
    """What telemetry to emit beyond the default. Mutable so that a test can flip one."""

    rpc_previous_names: bool = False  # OTEL_SEMCONV_STABILITY_OPT_IN has rpc/dup
    database_previous_names: bool = False  # ... has database/dup
    trace_background: bool = False  # MM_TRACE_BACKGROUND
    query_text: bool = False  # MM_TRACE_QUERY_TEXT


def read_switches(environ: Mapping[str, str] | None = None) -> Switches:
    """The switches in `environ` (the process environment by default).

    OTEL_SEMCONV_STABILITY_OPT_IN follows OpenTelemetry's migration rule: a comma list of
    categories, `<category>/dup` meaning both the new and the previous names. `rpc` and
    `database` alone are accepted and change nothing: the new names are the default here.
    """
    env = os.environ if environ is None else environ
    opt_in = {v.strip().lower() for v in env.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
    return Switches(
        rpc_previous_names="rpc/dup" in opt_in,
        database_previous_names="database/dup" in opt_in,
        trace_background=env.get("MM_TRACE_BACKGROUND", "").strip().lower() in _TRUE,
        query_text=env.get("MM_TRACE_QUERY_TEXT", "").strip().lower() in _TRUE,
    )


switches = read_switches()
