"""The `moneymovement` command: serve, migrate, tenants, tokens, verify, events tail."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import shutil
import signal
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import grpc
import structlog
from google.protobuf.json_format import MessageToDict

from moneymovement.app import SetupError, check_database, database_problem, database_url, serve
from moneymovement.bootstrap import build_rail
from moneymovement.client import (
    EVENT_TYPES,
    CursorExpired,
    InvalidRequest,
    MoneyMovementClient,
    MoneyMovementError,
    tls_credentials,
)
from moneymovement.config import ConfigError, Settings, load_settings
from moneymovement.devdb import EmbeddedPostgresError
from moneymovement.domain import ids
from moneymovement.observability.logging import configure_logging
from moneymovement.rails.reconcile import render
from moneymovement.rails.settlement import read_settlement_csv
from moneymovement.service.payouts import reconcile_rail
from moneymovement.service.tenants import TenantDirectory, UnknownHolder, UnknownTenant
from moneymovement.service.unit_of_work import Caller, UnitOfWork
from moneymovement.storage.migrate import migrate
from moneymovement.storage.session import Database
from moneymovement.storage.verify import Report, verify_ledger
from moneymovement.workers import Supervisor, listen_problem

log = structlog.get_logger("moneymovement")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moneymovement",
        description="A gRPC money-movement service. Configuration: environment variables "
        "(see README). Without DATABASE_URL, an embedded PostgreSQL under MM_DATA_DIR is used.",
    )
    parser.add_argument("--version", action="version", version=f"moneymovement {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve the gRPC API")
    serve_cmd.add_argument(
        "--dev",
        action="store_true",
        help="create a development tenant once and print its token and a grpcurl example",
    )
    serve_cmd.add_argument(
        "--workers",
        type=_at_least_one,
        metavar="N",
        help="server processes sharing the port, to use N cores (default: MM_WORKERS, or 1)",
    )
    # Internal: how the supervisor of `--workers N` starts its workers.
    serve_cmd.add_argument("--worker", type=int, metavar="INDEX", help=argparse.SUPPRESS)
    commands.add_parser("migrate", help="apply the schema migrations")
    tenants = commands.add_parser("tenants", help="manage tenants").add_subparsers(
        dest="action", required=True
    )
    create = tenants.add_parser("create", help="create a tenant (if new) and print a new token")
    create.add_argument("name")
    tenants.add_parser("list", help="list tenants")
    tokens = commands.add_parser(
        "tokens", help="manage bearer tokens (rotate: create a new one, then revoke the old)"
    ).add_subparsers(dest="action", required=True)
    token_create = tokens.add_parser("create", help="print a new token for an existing tenant")
    token_create.add_argument("tenant", help="the tenant's id or name")
    token_create.add_argument(
        "--holder",
        metavar="HOLDER_ID",
        help="scope the token to this holder of the tenant: it acts for that holder only",
    )
    token_list = tokens.add_parser(
        "list", help="list tokens: id, tenant, created, revoked (never the token)"
    )
    token_list.add_argument("tenant", nargs="?", help="only this tenant's (id or name)")
    token_revoke = tokens.add_parser(
        "revoke", help="revoke a token; every running server refuses it from the next call"
    )
    token_revoke.add_argument("token_id")
    commands.add_parser(
        "verify", help="check the ledger's invariants; exit 0 when clean, 1 otherwise"
    )
    reconcile = commands.add_parser(
        "reconcile",
        help="compare a rail's settlement report with the ledger; exit 1 on any break",
        description="Matches a rail's settlement report against the tenant's payouts (those "
        "handed to the rail) and inbound transfers: matched, missing on either side, amount "
        "or state mismatch, duplicates. Prints a report; changes nothing (docs/payouts.md).",
    )
    reconcile.add_argument("--tenant", required=True, metavar="TENANT_ID")
    reconcile.add_argument(
        "--report",
        metavar="FILE.csv",
        help="the report (header kind,tenant_id,reference,amount_minor,currency_code,state); "
        "without it, the configured rail's own report (MM_RAIL, MM_RAIL_DIR)",
    )
    events = commands.add_parser(
        "events", help="a tenant's events, from a running server"
    ).add_subparsers(dest="action", required=True)
    tail = events.add_parser(
        "tail",
        help="follow the events as they commit, one JSON object per line; reconnects by itself",
        description="Prints each event of the tenant as one line of proto3 JSON (field "
        "names as in the protos, int64 as strings), flushed at once. When the server stops, "
        "restarts or the connection is lost, it reconnects and resumes after the last "
        "cursor it received: no event is missed or printed twice. Ctrl-C stops it (exit 0). "
        "To continue later, pass the `cursor` of the last line printed as --after.",
    )
    _add_server_options(tail)
    start = tail.add_mutually_exclusive_group()
    start.add_argument(
        "--after", metavar="CURSOR", help="continue right after this cursor (an event's cursor)"
    )
    start.add_argument(
        "--from",
        dest="start",
        choices=["now", "oldest"],
        help="without --after: from now (the default) or from the oldest event kept",
    )
    tail.add_argument(
        "--type",
        dest="types",
        action="append",
        type=_event_type,
        metavar="TYPE",
        help="only events of this type (repeatable): " + ", ".join(EVENT_TYPES),
    )
    tail.add_argument("--account", metavar="ACCOUNT_ID", help="only events touching this account")
    tail.add_argument(
        "--holder", metavar="HOLDER_ID", help="only events touching an account of this holder"
    )
    return parser


def _add_server_options(command: argparse.ArgumentParser) -> None:
    """Where the server is and which tenant calls it: for the commands that use the API."""
    command.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the server (default: MM_LISTEN_ADDRESS, 127.0.0.1:50051 unless set)",
    )
    token = command.add_mutually_exclusive_group()
    token.add_argument(
        "--token", help="the tenant's bearer token (others may see it in ps: --token-file)"
    )
    token.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="a file holding the token (default: MM_DATA_DIR/dev-token, which `make run` writes)",
    )
    command.add_argument("--ca-file", type=Path, metavar="PEM", help="TLS: the CA to trust")
    command.add_argument(
        "--cert-file", type=Path, metavar="PEM", help="mutual TLS: the client certificate"
    )
    command.add_argument(
        "--key-file", type=Path, metavar="PEM", help="mutual TLS: the client certificate's key"
    )


def _event_type(text: str) -> str:
    name = text.upper().removeprefix("EVENT_TYPE_")
    if name not in EVENT_TYPES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an event type ({', '.join(EVENT_TYPES)})"
        )
    return name


def version() -> str:
    """The installed distribution's version; from a checkout that was never installed,
    pyproject.toml's, said so."""
    try:
        return importlib.metadata.version("moneymovement")
    except importlib.metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        with pyproject.open("rb") as file:
            project = tomllib.load(file).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        project = {}
    if project.get("name") == "moneymovement" and isinstance(project.get("version"), str):
        return f"{project['version']} (source checkout, not installed)"
    return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns the exit code.

    Exit codes: 0 done; 1 the work could not be done (a mistake in the set-up, told in
    one line with what to do, or, for verify, a ledger that breaks an invariant); 2 the
    command line itself is wrong; 130 interrupted (Ctrl-C) before serving. Anything else
    is a bug and keeps its traceback.
    """
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        return _fail(str(error))
    configure_logging(settings.log_level, settings.log_format)
    try:
        return _run(args, settings)
    except KeyboardInterrupt:  # Ctrl-C while starting, before our own handlers
        return 130
    except (SetupError, EmbeddedPostgresError) as error:
        return _fail(str(error))


def _fail(message: str) -> int:
    print(f"moneymovement: {message}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "events":  # a client of a running server: no database here
        return _events_tail(args, settings)
    # The embedded server starts here, in the main thread: its parent-death signal is
    # tied to the thread that started it.
    with database_url(settings, owner=f"moneymovement {args.command}") as (dsn, embedded):
        if args.command == "migrate":
            applied = asyncio.run(migrate(dsn))
            print("applied: " + (", ".join(applied) or "nothing (up to date)"))
        elif args.command == "tenants":
            asyncio.run(_tenants(settings, dsn, args, embedded=embedded))
        elif args.command == "tokens":
            return asyncio.run(_tokens(dsn, args, embedded=embedded))
        elif args.command == "verify":
            if embedded:  # ours to migrate, as for tenants and tokens: an empty one is clean
                asyncio.run(migrate(dsn))
            report = asyncio.run(_verify(dsn))
            print(format_report(report))
            return 0 if report.ok else 1
        elif args.command == "reconcile":
            return asyncio.run(_reconcile(dsn, args, settings))
    return 0


async def _reconcile(dsn: str, args: argparse.Namespace, settings: Settings) -> int:
    """`reconcile`: the report, then exit 1 on any break (0: clean)."""
    if not ids.is_id(args.tenant, ids.TENANT):
        return _fail(f"--tenant {args.tenant!r} is not a tenant id (ten_...)")
    rail = build_rail(settings.rail)
    try:
        lines = (
            read_settlement_csv(Path(args.report))
            if args.report
            else await rail.settlement_report()
        )
    except (OSError, ValueError) as error:
        return _fail(f"cannot read the report: {error}")
    database = await Database.connect(dsn, max_size=2)
    try:
        result = await reconcile_rail(UnitOfWork(database), Caller(args.tenant), rail.name, lines)
    finally:
        await database.close()
    print(render(result), end="")
    return 0 if result.clean else 1


def _at_least_one(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """`serve`: one server in this process, or a supervisor of `--workers N` servers."""
    if args.worker is not None:  # started by a supervisor, on a port shared on purpose
        structlog.contextvars.bind_contextvars(worker=args.worker)
        shared = dataclasses.replace(settings, reuse_port=True)
        return _serve_here(shared, dev=args.dev, worker=True)
    settings = dataclasses.replace(settings, workers=args.workers or settings.workers)
    address = settings.listen_address
    if settings.workers > 1 and address.rpartition(":")[2] == "0":
        print(f"moneymovement: --workers needs a fixed port, not {address}", file=sys.stderr)
        return 2
    # Checked before anything starts, PostgreSQL included: fails fast and in one line.
    problem = listen_problem(address)
    if problem is not None:
        return _cannot_listen(address, problem)
    if settings.database_url:
        _check_database(settings.database_url)
    if settings.workers == 1:
        return _serve_here(settings, dev=args.dev)
    owner = f"moneymovement serve --workers {settings.workers} on {address}"
    with database_url(settings, owner=owner, exclusive=True) as (dsn, embedded):
        if embedded:  # once, here, before any worker serves; the workers never migrate
            log.info("migrations_applied", applied=asyncio.run(migrate(dsn)))
        return Supervisor(settings, dsn, dev=args.dev and embedded).run()


def _serve_here(settings: Settings, *, dev: bool, worker: bool = False) -> int:
    # The embedded server starts here, in the main thread: its parent-death signal is
    # tied to the thread that started it. A worker is handed its supervisor's DSN, and
    # worker 0 is asked (--dev) to create the development tenant of the embedded server.
    owner = f"moneymovement serve on {settings.listen_address}"
    with database_url(settings, owner=owner, exclusive=not worker) as (dsn, embedded):
        token_file = settings.data_dir / "dev-token" if dev and (embedded or worker) else None
        try:
            asyncio.run(serve(settings, dsn, embedded=embedded, dev_token_file=token_file))
        except OSError:
            # The port was free when checked but taken before grpc bound it: our one line
            # still says so (after grpc's own log line). A worker's siblings hold the port,
            # so a probe would tell a worker nothing.
            problem = None if worker else listen_problem(settings.listen_address)
            if problem is None:
                raise
            return _cannot_listen(settings.listen_address, problem)
    return 0


def _check_database(dsn: str) -> None:
    """Before serving on DATABASE_URL: a wrong setting (malformed URL, password, database
    name) stops here, in one line (SetupError); a database that does not answer yet is
    logged, and the server starts anyway, NOT_SERVING until it answers."""
    error = asyncio.run(check_database(dsn))
    if error is None:
        return
    problem = database_problem(error, dsn, configured=True)
    if problem is None:
        raise error
    if not problem.transient:
        raise SetupError(problem.message)
    log.warning(
        "database_unavailable_at_start",
        problem=problem.message,
        then="serving anyway; health is NOT_SERVING until the database answers",
    )


def _cannot_listen(address: str, problem: str) -> int:
    hint = {
        "address already in use": "another process listens there (`ss -ltnp` names it): "
        "stop it, or set MM_LISTEN_ADDRESS to another port",
        "cannot assign requested address": "that address is not one of this machine's: "
        "set MM_LISTEN_ADDRESS to one of its addresses, or 0.0.0.0:PORT for all of them",
        "permission denied": "ports below 1024 need privileges: set MM_LISTEN_ADDRESS to a "
        "port above 1023",
    }.get(problem, "set MM_LISTEN_ADDRESS to HOST:PORT on this machine, e.g. 127.0.0.1:50051")
    return _fail(f"cannot listen on {address}: {problem}; {hint}")


async def _verify(dsn: str) -> Report:
    """verify_ledger, showing its progress on stderr (see VerifyProgress)."""
    progress = VerifyProgress(sys.stderr)
    ticking = asyncio.create_task(progress.tick_forever())
    try:
        return await verify_ledger(dsn, on_progress=progress.step)
    finally:
        ticking.cancel()
        progress.finish()


class VerifyProgress:
    """Which check verify runs, how far along it is, and for how long, on `stream`.

    On a terminal: one line redrawn in place (a carriage return) a few times a second, and
    erased at the end, so the report alone stays. Elsewhere (a pipe, a log): a plain line
    when a check begins and every PLAIN_EVERY_S seconds while it lasts, but only once the
    run has taken QUIET_S: a quick verify prints its report and nothing else.
    """

    QUIET_S = 2.0
    PLAIN_EVERY_S = 10.0
    REFRESH_S = 0.25

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._clock = clock
        self._started = clock()
        self._done, self._steps, self._what = 0, 1, "connecting"
        self._printed: tuple[int, float] | None = None  # (step, when) of the last plain line
        self._drawn = False

    def step(self, done: int, steps: int, what: str) -> None:
        """verify_ledger's callback: a step begins."""
        self._done, self._steps, self._what = done, steps, what
        self.tick()

    def tick(self) -> None:
        """Redraws the live line, or prints a plain one when one is due."""
        now = self._clock()
        elapsed = now - self._started
        if self._tty:
            width = shutil.get_terminal_size().columns
            self._stream.write("\r\x1b[K" + self.render(elapsed, max_width=width - 1))
            self._stream.flush()
            self._drawn = True
            return
        if elapsed < self.QUIET_S:
            return
        last = self._printed
        if last is None or last[0] != self._done or now - last[1] >= self.PLAIN_EVERY_S:
            print(self.render(elapsed), file=self._stream, flush=True)
            self._printed = (self._done, now)

    def render(self, elapsed: float, *, max_width: int | None = None) -> str:
        """`verify [####------] 4/13 running balances follow from each entry, 0:42`; in
        `max_width` characters, the check's words shortened first."""
        bar_width = 20
        filled = round(bar_width * self._done / self._steps)
        bar = "#" * filled + "-" * (bar_width - filled)
        minutes, seconds = divmod(int(elapsed), 60)
        head = f"verify [{bar}] {self._done + 1}/{self._steps} "
        tail = f", {minutes}:{seconds:02d}"
        what = self._what
        if max_width is not None and len(head) + len(what) + len(tail) > max_width:
            room = max(max_width - len(head) - len(tail) - 1, 0)
            what = what[:room].rstrip() + "…"
        return head + what + tail

    async def tick_forever(self) -> None:
        """Ticks until cancelled: a long check still shows time passing."""
        while True:
            await asyncio.sleep(self.REFRESH_S if self._tty else 1.0)
            self.tick()

    def finish(self) -> None:
        """Erases the live line, so the report starts on a clean one."""
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


def format_report(report: Report) -> str:
    """The verification report as lines of text."""
    counts = ", ".join(f"{value} {name}" for name, value in report.counts.items())
    lines = [f"verified {counts} in {report.duration_s:.2f} s"]
    for check in report.checks:
        status = "ok" if check.ok else f"VIOLATED ({len(check.violations)} shown)"
        lines.append(f"  {status:<22} {check.description}")
        lines += [f"      {violation}" for violation in check.violations]
    lines.append("ledger OK" if report.ok else "LEDGER VIOLATIONS FOUND")
    return "\n".join(lines)


async def _tenants(
    settings: Settings, dsn: str, args: argparse.Namespace, *, embedded: bool
) -> None:
    if embedded:  # the development database is ours to migrate; DATABASE_URL's is not
        await migrate(dsn)
    database = await Database.connect(dsn, max_size=2)
    try:
        directory = TenantDirectory(database)
        if args.action == "create":
            issued = await directory.create_tenant(args.name)
            print(
                f"tenant_id: {issued.tenant_id}\ntoken_id: {issued.token_id}\ntoken: {issued.token}"
            )
        else:
            for tenant in await directory.list_tenants():
                print(
                    f"{tenant['tenant_id']}  {tenant['name']}  "
                    f"active_tokens={tenant['active_tokens']}"
                )
    finally:
        await database.close()


async def _tokens(dsn: str, args: argparse.Namespace, *, embedded: bool) -> int:
    if embedded:
        await migrate(dsn)
    database = await Database.connect(dsn, max_size=2)
    try:
        directory = TenantDirectory(database, dsn=dsn)
        if args.action == "create":
            issued = await directory.create_token(args.tenant, holder_id=args.holder)
            scoped = f"holder_id: {issued.holder_id}\n" if issued.holder_id else ""
            print(
                f"tenant_id: {issued.tenant_id}\n{scoped}token_id: {issued.token_id}\n"
                f"token: {issued.token}"
            )
        elif args.action == "list":
            print(format_tokens(await directory.list_tokens(args.tenant)))
        else:
            revocation = await directory.revoke_token(args.token_id)
            if revocation.revoked_at is None:
                print(f"moneymovement: no token {args.token_id}", file=sys.stderr)
                return 1
            print(
                f"{args.token_id} revoked at {revocation.revoked_at.isoformat()}; "
                f"{revocation.confirmed} of {revocation.servers} running servers confirmed"
            )
            if revocation.confirmed < revocation.servers:
                print(
                    "moneymovement: a server did not confirm within 5 s; it stops caching "
                    "when its listener connection fails, and its cache entries expire "
                    "within MM_AUTH_CACHE_TTL_S",
                    file=sys.stderr,
                )
    except UnknownTenant as error:
        print(f"moneymovement: no tenant with id or name {error}", file=sys.stderr)
        return 1
    except UnknownHolder as error:
        print(f"moneymovement: the tenant has no holder {error}", file=sys.stderr)
        return 1
    finally:
        await database.close()
    return 0


def format_tokens(tokens: list[dict[str, Any]]) -> str:
    """One line per token: id, tenant id and name, created, revoked (or "-"), and the
    holder it is scoped to (or "-": the platform's)."""
    lines = ["token_id  tenant_id  tenant_name  created_at  revoked_at  holder_id"]
    for token in tokens:
        revoked = token["revoked_at"].isoformat() if token["revoked_at"] else "-"
        lines.append(
            f"{token['token_id']}  {token['tenant_id']}  {token['tenant_name']}  "
            f"{token['created_at'].isoformat()}  {revoked}  {token.get('holder_id') or '-'}"
        )
    return "\n".join(lines)


def _server_address(args: argparse.Namespace, settings: Settings) -> str:
    if args.address:
        return str(args.address)
    host, _, port = settings.listen_address.rpartition(":")
    wildcard = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}  # noqa: S104
    return f"{wildcard.get(host, host)}:{port}"


def _token(args: argparse.Namespace, settings: Settings) -> str | None:
    if args.token:
        return str(args.token)
    path: Path = args.token_file or settings.data_dir / "dev-token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _events_tail(args: argparse.Namespace, settings: Settings) -> int:
    """`events tail`: follows the tenant's events, printing each as one JSON line."""
    token = _token(args, settings)
    if token is None:
        where = args.token_file or settings.data_dir / "dev-token"
        print(
            f"moneymovement: events tail needs a token: --token, or --token-file (no token "
            f"in {where})",
            file=sys.stderr,
        )
        return 2
    if (args.cert_file is None) != (args.key_file is None):
        print("moneymovement: --cert-file and --key-file go together", file=sys.stderr)
        return 2
    tls = args.ca_file or args.cert_file
    credentials = tls_credentials(args.ca_file, args.cert_file, args.key_file) if tls else None
    address = _server_address(args, settings)
    try:
        return asyncio.run(_tail(args, address, token, credentials))
    except KeyboardInterrupt:  # before the handlers below were in place
        return 0


async def _tail(
    args: argparse.Namespace, address: str, token: str, credentials: grpc.ChannelCredentials | None
) -> int:
    stopping = asyncio.current_task()
    assert stopping is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a supervisor: a clean stop
        loop.add_signal_handler(signum, stopping.cancel)

    def reconnecting(error: MoneyMovementError | None, cursor: str, pause_s: float) -> None:
        why = "the stream ended"
        if error is not None:
            why = f"{' '.join(filter(None, (error.code.name, error.reason)))}: {error.message}"
        after = f" after cursor {cursor}" if cursor else ""
        print(
            f"moneymovement: events tail: {why}; reconnecting{after} in {pause_s:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    client = MoneyMovementClient(address, token, credentials=credentials)
    try:
        responses = client.watch_events(  # ended by client.close() below
            after_cursor=args.after or "",
            start="" if args.after else (args.start or "now"),
            types=args.types or (),
            account_id=args.account or "",
            holder_id=args.holder or "",
            on_reconnect=reconnecting,
        )
        async for response in responses:
            for event in response.events:
                line = json.dumps(
                    MessageToDict(event, preserving_proto_field_name=True), separators=(",", ":")
                )
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
    except asyncio.CancelledError:
        return 0
    except BrokenPipeError:  # the reader went away (| head): a normal end
        with contextlib.suppress(OSError):  # no second error when Python flushes at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CursorExpired as error:
        expired = error.metadata.get("cursor") or args.after
        print(
            f"moneymovement: events tail: cursor {expired} expired (its events were pruned); "
            f"the oldest cursor available is {error.oldest_cursor} (--after "
            f"{error.oldest_cursor}, or --from oldest)",
            file=sys.stderr,
        )
        return 1
    except InvalidRequest as error:
        fields = ", ".join(f"{name} {reason}" for name, reason in error.field_violations)
        print(f"moneymovement: events tail: {error} ({fields})", file=sys.stderr)
        return 1
    except MoneyMovementError as error:
        print(f"moneymovement: events tail: {error}", file=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await client.close()
    return 0
