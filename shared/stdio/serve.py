"""Serve one MCP session over stdio: say what is happening in a terminal, and stop cleanly on Ctrl-C.

`serve_stdio` is what `SuiteServer.run` and `mcp-suite serve NAME` call; the session itself is
`shared.stdio.guard.run_stdio`. It needs only a server's name and its `MCPServer` (`StdioServable`),
so this transport imports nothing of the core and the core may use it. Why not simply run the
session on the main thread (`asyncio.run`, as `MCPServer.run` does): stdin is read in a worker
thread that no cancellation can interrupt, and that thread is not a daemon. After Ctrl-C the event
loop cancels everything, then waits for a line on stdin that never comes: the process hangs. Here
the loop runs in a daemon thread (so its stdin worker is a daemon too: threads inherit the flag);
the main thread waits for it, and on SIGINT or SIGTERM cancels the session, gives the lifespan a
grace period to close the pool and the audit log, then runs the `atexit` handlers (the embedded
database is stopped by the last process using it) and exits without waiting for stdin.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from typing import Any, NoReturn, Protocol

from mcp.server.mcpserver import MCPServer

from shared.stdio.guard import run_stdio

GRACE_S = 5.0
INTERRUPTED = 130  # the shell's conventions: 128 + the signal's number
TERMINATED = 143


class _Stop(Exception):
    """SIGTERM, raised in the main thread so it takes the same path as Ctrl-C."""


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise _Stop


class StdioServable(Protocol):
    """What `serve_stdio` needs of a server (a `SuiteServer` is one)."""

    name: str  # for the line shown in a terminal
    transport: str  # set to "stdio": the audit records say how a call arrived
    mcp: MCPServer


def waiting_line(name: str) -> str:
    return (f"mcp-suite: the {name} server is waiting for an MCP client on stdin/stdout "
            "(an MCP client such as Claude Desktop starts this command itself); press Ctrl-C to quit")


def serve_stdio(server: StdioServable, *, grace_s: float = GRACE_S) -> int:
    """Serve one MCP session over stdin/stdout; 0 when the client hangs up, 130 on Ctrl-C."""
    terminal = sys.stdin.isatty()  # asked now: while serving, the SDK points fd 0 at /dev/null
    server.transport = "stdio"
    loop = asyncio.new_event_loop()
    session: list[asyncio.Task[None]] = []  # filled by the loop's thread
    failure: list[BaseException] = []
    started, finished = threading.Event(), threading.Event()

    def run() -> None:
        try:
            asyncio.set_event_loop(loop)
            session.append(loop.create_task(run_stdio(server.mcp)))
            started.set()
            loop.run_until_complete(session[0])
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
            failure.append(exc)
        finally:
            finished.set()

    # Waits use Events, not Thread.join: an interrupted join can mark a live thread as stopped (3.11).
    worker = threading.Thread(target=run, name="mcp-stdio", daemon=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        worker.start()
        while not (started.wait(0.5) or finished.is_set()):
            pass
        if terminal and not finished.is_set():  # said once the session runs: a Ctrl-C then finds it
            print(waiting_line(server.name), file=sys.stderr, flush=True)
        while not finished.wait(0.5):
            pass
    except (KeyboardInterrupt, _Stop) as exc:
        code = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else TERMINATED
        _watchdog(code, 2 * grace_s + 5)  # whatever hangs below, the process ends
        _shut_down(loop, session, started, finished, grace_s)
        if terminal:
            print("stopped", file=sys.stderr, flush=True)
        # The session's resources are closed (or the grace is spent). Exit now: the interpreter's own
        # teardown would wait on worker threads, and one may be blocked on stdin for good.
        _exit_now(code)
    finally:
        signal.signal(signal.SIGTERM, previous)
    loop.close()
    if failure:
        raise failure[0]
    return 0


def _shut_down(loop: asyncio.AbstractEventLoop, session: list[asyncio.Task[None]], started: threading.Event,
               finished: threading.Event, grace_s: float) -> None:
    """Cancel the session and wait a little for its lifespan; a second Ctrl-C stops waiting."""
    try:
        started.wait(grace_s)
        if session:
            loop.call_soon_threadsafe(session[0].cancel)
        finished.wait(grace_s)  # the lifespan closes the pool and the audit log; stdin's reader never ends
    except (KeyboardInterrupt, _Stop):
        pass


def _watchdog(code: int, seconds: float) -> None:
    """A daemon timer that ends the process after `seconds`, even if a close or an exit handler hangs."""
    import os

    timer = threading.Timer(seconds, os._exit, (code,))
    timer.daemon = True
    timer.start()


def _exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown, which would trip over the loop still blocked on stdin
    (its finaliser prints "Exception ignored in BaseEventLoop.__del__"). The exit handlers still run:
    `atexit._run_exitfuncs` is CPython's own call for that, and the embedded database needs them."""
    import atexit
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)
