"""`serve --workers N`: N processes answer on one port, each with its own socket (`SO_REUSEPORT`).

The parent binds the port first (a port in use is one clear line, as with one worker), then forks
the workers; each binds its own listening socket to the same address with `SO_REUSEPORT`, so the
kernel spreads new TCP connections across them evenly, and a connection stays with the process
that accepted it. Each worker runs its own event loop and lifespan (database pool, token cache,
rate limiter, metrics). The servers are stateless under streamable HTTP, so any worker can answer
any request; SSE is not (its POSTs arrive on a second connection that may reach another worker),
so each worker also listens on a private unix socket and relays such POSTs to the session's owner
(`shared.http.relay`).

Signals: the workers sit in their own process group, so a terminal's Ctrl-C reaches only the
parent, which forwards one SIGTERM to each worker (a graceful uvicorn shutdown) and waits for all
of them. If a worker dies, the parent stops the others and exits with that worker's status: a
process supervisor (systemd, compose's `restart:`) restarts the whole set. On Linux each worker also
asks the kernel for a SIGTERM when the parent dies, so no worker outlives a killed parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable

log = logging.getLogger("mcp_suite.http")

_PR_SET_PDEATHSIG = 1


def supported() -> bool:
    """Whether this platform can run several workers on one port (fork and a balancing SO_REUSEPORT)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT") and hasattr(os, "fork")


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to host:port (listening is left to uvicorn); `reuse_port` for the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def run(count: int, host: str, port: int, serve: Callable[[int, socket.socket], int]) -> int:
    """Fork `count` workers, each calling `serve(index, its_socket)`; return when all have exited.

    The caller has bound a `reuse_port` socket to host:port already (the port check, and it keeps
    the port reserved); it never listens, so no connection is queued on it.
    """
    children: dict[int, int] = {}
    for index in range(count):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.setpgid(0, 0)
                _die_with_parent()
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                code = serve(index, bind(host, port, reuse_port=True))
            except BaseException:  # noqa: BLE001 - a worker reports and exits, never returns into the parent
                log.exception("worker %d failed", index)
            finally:
                os._exit(code)
        children[pid] = index
    return _supervise(children)


def _supervise(children: dict[int, int]) -> int:
    stopping = False

    def stop(_signum: int = signal.SIGTERM, _frame: object = None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        while children:
            pid, wait_status = os.wait()
            index = children.pop(pid, None)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            if not stopping:
                log.error("worker %d exited (%d): stopping the others", index, code,
                          extra={"event": "worker_exited"})
                status = code or 1
                stop()
            elif code not in (0, -signal.SIGTERM):
                status = status or code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
