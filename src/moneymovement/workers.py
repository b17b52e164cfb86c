"""`serve --workers N`: N server processes on one port, and the process that supervises them.

One Python process serves on about one core (the interpreter lock), so on a machine with
more cores `serve --workers N` runs N servers that share the listening port, as uvicorn's
and gunicorn's `--workers` do:

* Each worker is a fresh `python -m moneymovement serve --worker I`, never a fork of this
  process: forking a process in which gRPC has started its threads can deadlock the child.
* The workers listen with SO_REUSEPORT, and the kernel spreads new *connections* (not calls)
  among them. A client holding one connection talks to one worker, so clients that want the
  load spread open several connections (or there are many clients).
* Before any worker starts, this process checks that nobody listens on the port (a probe
  socket without SO_REUSEPORT): a port already served, by us or anyone else, is refused.
* Worker I serves Prometheus metrics on MM_METRICS_ADDRESS's port + I, so each is scraped
  on its own port.
* SIGTERM or SIGINT here is passed on as SIGTERM to every worker, and each drains as a lone
  server does (health NOT_SERVING, RPCs in flight get MM_SHUTDOWN_GRACE_S, the pool closes).
  A worker that exits on its own is a failure: the others are stopped and this process
  exits 1, for its supervisor (systemd, Kubernetes) to restart the whole set.
* The workers get a parent-death signal: they drain and exit even when this process is
  killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

import structlog

from moneymovement.config import Settings

__all__ = ["Supervisor", "listen_problem", "worker_metrics_address"]

log = structlog.get_logger("moneymovement.workers")

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.1
# How long stopping workers may take beyond their own drain (MM_SHUTDOWN_GRACE_S): closing
# the pool and flushing telemetry. Past it a worker is killed.
_STOP_MARGIN_S = 15.0


def listen_problem(address: str) -> str | None:
    """Why nothing could listen on `address` now, or None when it looks free.

    A plain socket is bound to each address `address` resolves to and closed again. It sets
    SO_REUSEADDR as grpc does, so connections of an earlier server still in TIME_WAIT do not
    count, and no SO_REUSEPORT, so a listener that has it counts too.

    Args:
        address: `host:port` as in MM_LISTEN_ADDRESS; other forms (`unix:...`) are left to
            grpc to judge.

    Returns:
        The reason in words (e.g. "address already in use"), or None.
    """
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit() or "/" in host:
        return None
    try:
        candidates = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        return _reason(error)
    errors = [_bind_error(family, sockaddr) for family, *_, sockaddr in candidates]
    failed = [error for error in errors if error is not None]
    in_use = [error for error in failed if error.errno == errno.EADDRINUSE]
    if in_use:
        return _reason(in_use[0])
    # grpc serves when at least one resolved address binds (say, localhost without IPv6).
    return _reason(failed[0]) if failed and len(failed) == len(errors) else None


def _bind_error(family: int, sockaddr: Any) -> OSError | None:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
    except OSError as error:
        return error
    return None


def _reason(error: OSError) -> str:
    text = error.strerror or str(error)
    return text[:1].lower() + text[1:]


def worker_metrics_address(address: str, index: int) -> str:
    """The metrics address of worker `index`: MM_METRICS_ADDRESS's port + `index`.

    Empty stays empty (no metrics), and port 0 stays 0 (each worker picks a free port).
    """
    host, _, port = address.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return address
    return f"{host}:{int(port) + index}"


class Supervisor:
    """Starts the workers, passes SIGTERM and SIGINT on to them, and waits for them.

    Call `run()` from the main thread, which must outlive the workers: the kernel sends the
    parent-death signal when the thread that started a child exits.

    Args:
        settings: This process's settings; `settings.workers` is how many to start.
        dsn: The database every worker uses (handed over as DATABASE_URL, so the embedded
            PostgreSQL this process started is shared, not started again).
        dev: Whether worker 0 creates the development tenant and prints its banner.
    """

    def __init__(self, settings: Settings, dsn: str, *, dev: bool) -> None:
        self._settings = settings
        self._dsn = dsn
        self._dev = dev
        self._workers: list[subprocess.Popen[bytes]] = []
        self._stop_signal: int | None = None

    def run(self) -> int:
        """Serves until a signal (exit code 0 when every worker drained cleanly) or until a
        worker exits on its own (1)."""
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {signum: signal.signal(signum, self._request_stop) for signum in handled}
        try:
            for index in range(self._settings.workers):
                self._workers.append(self._spawn(index))
            return self._supervise()
        finally:
            self._stop_all()  # a no-op after a clean stop; otherwise leaves no worker behind
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _request_stop(self, signum: int, _: FrameType | None) -> None:
        # Only noted here: the loop below acts on it, outside the signal handler.
        self._stop_signal = signum

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "moneymovement", "serve", "--worker", str(index)]
        if self._dev and index == 0:
            argv.append("--dev")
        worker = subprocess.Popen(
            argv,
            env=self._worker_env(index),
            stdin=subprocess.DEVNULL,
            # Ctrl-C in a terminal reaches only this process, which stops the workers in
            # order, instead of every worker at once, some still starting up.
            process_group=0,
            preexec_fn=_death_signal_setter(os.getpid()),
        )
        log.info("worker_started", worker=index, pid=worker.pid)
        return worker

    def _worker_env(self, index: int) -> Mapping[str, str]:
        # This process's environment passed on, so a worker reads the same settings.
        return {
            **os.environ,
            "DATABASE_URL": self._dsn,
            "MM_WORKERS": str(self._settings.workers),
            "MM_METRICS_ADDRESS": worker_metrics_address(self._settings.metrics_address, index),
        }

    def _supervise(self) -> int:
        while self._stop_signal is None:
            for index, worker in enumerate(self._workers):
                code = worker.poll()
                if code is not None:
                    log.error("worker_exited", worker=index, pid=worker.pid, exit_code=code)
                    self._stop_all()
                    return 1
            time.sleep(_POLL_S)
        log.info("shutdown_requested", signal=signal.Signals(self._stop_signal).name)
        return 0 if self._stop_all() else 1

    def _stop_all(self) -> bool:
        """SIGTERM to every running worker, then waits; True when each exited cleanly."""
        for worker in self._workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._settings.shutdown_grace_s + _STOP_MARGIN_S
        clean = True
        for index, worker in enumerate(self._workers):
            try:
                code = worker.wait(timeout=max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                log.error("worker_killed", worker=index, pid=worker.pid)
                worker.kill()
                code = worker.wait()
            # Killed by our SIGTERM before it could handle it (still starting): stopped, too.
            clean = clean and code in (0, -signal.SIGTERM)
        return clean


def _death_signal_setter(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: the worker gets SIGTERM (and so drains) when this process dies."""
    # Looked up here, so the forked child only makes a foreign call before exec.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int

    def set_death_signal() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            os._exit(127)
        # The parent may have died between fork and prctl: then no signal would ever come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return set_death_signal
