"""The event loop's exception handler (observability/logging.py): asyncpg's reset of a
connection a cancelled request left in a transaction is one warning line (the request's
method and id join it from the bound context vars, as every line's), not an error;
anything else still reaches the default handler."""

from __future__ import annotations

from structlog.testing import capture_logs

from moneymovement.observability.logging import quiet_connection_resets


class _Loop:
    """Records what would have gone to the default handler."""

    def __init__(self) -> None:
        self.defaulted: list[dict[str, object]] = []

    def default_exception_handler(self, context: dict[str, object]) -> None:
        self.defaulted.append(context)


def test_a_reset_after_a_cancel_is_a_warning_with_the_requests_context() -> None:
    loop = _Loop()
    context = {"message": "Resetting connection with an active transaction <Connection>"}
    with capture_logs() as logs:
        quiet_connection_resets(loop, context)  # type: ignore[arg-type]
    assert loop.defaulted == []
    [line] = logs
    assert line["log_level"] == "warning"
    assert line["event"] == "connection_rolled_back_after_cancel"


def test_other_loop_errors_still_reach_the_default_handler() -> None:
    loop = _Loop()
    context: dict[str, object] = {"message": "Task exception was never retrieved"}
    with capture_logs() as logs:
        quiet_connection_resets(loop, context)  # type: ignore[arg-type]
    assert loop.defaulted == [context]
    assert logs == []
