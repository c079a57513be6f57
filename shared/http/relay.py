"""SSE with `--workers N`: a message POST that reaches the wrong worker is relayed to the owner.

An SSE session lives in the worker that holds its `GET /sse` stream, but the client's
`POST …/messages/?session_id=…` arrive on new connections, which the kernel may hand to any
worker. So each worker tells its clients a message path that names it: worker 1's SSE endpoint
event says `/messages/1/?session_id=…` (the SDK builds that URI from the `message_path` it is given,
and clients follow it). A worker that receives a POST for another worker's message path relays the
request, unread and unchanged (method, path, query, headers, body streamed as it arrives), to that
worker's private unix socket, and relays the answer back. With one worker nothing changes: the
message path stays `/messages/` and no relay is installed.

Every check runs exactly once, in the owner: `SessionRelay` sits outermost, before the request log,
the Host/Origin guard, authentication and the server gate, so the owner authenticates the request
(the SDK also binds a session to the credential that opened it), applies the guard, the body limit
and the scope check, audits a refusal and logs the request with its own request id, as for a
request that reached it directly. An unknown session on the owner gets the SDK's 404, a missing or
bad `session_id` its 400; a path naming no worker is not relayed (the local app answers 404). An
owner that is gone (its socket refuses) gives 503 `worker_unavailable`; one that does not answer
within `RELAY_TIMEOUT_S` gives 504 `worker_timeout`.

The owner sees the client's own address: the relay names it in `RELAYED_FOR`, which the owner
believes only on its private socket (any copy sent over TCP is removed), so its log line and audit
show the real caller, not the socket.

The hop is private: the parent creates the socket directory with mode 0700 (`private_directory`)
and each socket is made 0600, so no other local user can reach a worker past the TCP port. Workers
that serve no SSE (`--transport http`) have no message paths, so they open no socket at all. A
relayed response carries `X-Worker-Relay: <receiving worker>` beside the owner's `X-Worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h11
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

RELAY_TIMEOUT_S = 60.0  # the longest wait for the owner's next bytes
CONNECT_TIMEOUT_S = 5.0
# Headers about this one connection, never relayed (RFC 9110 §7.6.1); framing is set anew.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
                        b"upgrade", b"content-length"})


SOCKET_PATH_MAX = 107  # bytes in `sun_path` on Linux, less the terminating NUL
RELAYED_FOR = b"x-mcp-suite-relayed-for"  # the client's address, trusted only from a sibling's socket


@contextlib.contextmanager
def private_directory() -> Iterator[Path]:
    """A fresh 0700 directory for the workers' sockets (the parent's), removed when the set stops.

    Under the temporary directory, or `/tmp` when that path would make a socket path too long for
    a unix socket (a long `TMPDIR`)."""
    path = Path(tempfile.mkdtemp(prefix="mcp-suite-w-"))  # mkdtemp: mode 0700, owned by us
    if len(os.fsencode(path / "worker-9999.sock")) > SOCKET_PATH_MAX:
        path.rmdir()
        path = Path(tempfile.mkdtemp(prefix="mcp-suite-w-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class WorkerPeers:
    """Where this worker and its siblings listen privately, and the message path that names it."""

    directory: Path
    count: int
    index: int
    relays: bool = True  # False where no SSE is served: no message paths, so no socket and no relay

    def socket_path(self, index: int) -> Path:
        return self.directory / f"worker-{index}.sock"

    @property
    def message_path(self) -> str:
        return f"/messages/{self.index}/"

    def listen(self) -> socket.socket:
        """This worker's private unix socket (0600 in the 0700 directory); uvicorn listens on it."""
        path = self.socket_path(self.index)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            sock.bind(str(path))
            os.chmod(path, 0o600)
        except OSError:
            sock.close()
            raise
        return sock


def message_path_pattern(prefixes: list[str]) -> re.Pattern[str]:
    """Matches a worker-named message path under one of the mounted prefixes; group 1 is the worker."""
    alternatives = "|".join(re.escape(p) for p in prefixes)
    return re.compile(rf"^(?:{alternatives})/messages/(\d{{1,4}})(?:/|$)")


class SessionRelay:
    """Outermost with several workers: hands a message POST for a sibling's session to that sibling."""

    def __init__(self, app: ASGIApp, peers: WorkerPeers, prefixes: list[str]) -> None:
        self.app = app
        self.peers = peers
        self.pattern = message_path_pattern(prefixes)
        self.header = (b"x-worker-relay", str(peers.index).encode())

    def owner(self, scope: Scope) -> int | None:
        """The sibling this request belongs to, or None when it is this worker's (or nobody's)."""
        if scope["type"] != "http":
            return None
        match = self.pattern.match(scope["path"])
        if match is None:
            return None
        index = int(match.group(1))
        return index if index != self.peers.index and index < self.peers.count else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self.with_client(scope)
        target = self.owner(scope)
        if target is None:
            await self.app(scope, receive, send)
            return
        await self.relay(scope, receive, send, target)

    def with_client(self, scope: Scope) -> Scope:
        """A relayed request names its client in `RELAYED_FOR`: believed only on this worker's private
        socket (only siblings can connect), and removed from every request, so a client cannot claim
        another address through the TCP port."""
        named = [value for key, value in scope["headers"] if key == RELAYED_FOR]
        if not named:
            return scope
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != RELAYED_FOR]}
        server = scope.get("server")
        on_private_socket = (scope.get("client") is None and isinstance(server, tuple | list)
                             and server[0] == str(self.peers.socket_path(self.peers.index)))
        host, _, port = named[0].decode("latin-1").rpartition(":")
        if on_private_socket and len(named) == 1 and host and port.isdigit():
            scope["client"] = (host, int(port))
        return scope

    async def relay(self, scope: Scope, receive: Receive, send: Send, target: int) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.peers.socket_path(target))), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError):
            await self._error(scope, receive, send, 503, "worker_unavailable")
            return
        conn = h11.Connection(h11.CLIENT)
        pump: asyncio.Task[None] | None = None
        started = False
        try:
            writer.write(conn.send(h11.Request(method=scope["method"], target=_target(scope),
                                               headers=_request_headers(scope))))
            pump = asyncio.create_task(_pump_body(conn, receive, writer))
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await asyncio.wait_for(reader.read(65536), RELAY_TIMEOUT_S))
                elif isinstance(event, h11.Response):
                    headers = [(k, v) for k, v in event.headers if k not in HOP_BY_HOP]
                    await send({"type": "http.response.start", "status": event.status_code,
                                "headers": [*headers, self.header]})
                    started = True
                elif isinstance(event, h11.Data):
                    await send({"type": "http.response.body", "body": bytes(event.data), "more_body": True})
                elif isinstance(event, h11.EndOfMessage):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("the owning worker closed the connection")
        except (OSError, TimeoutError, h11.ProtocolError) as exc:
            if started:  # part of the answer is out: only dropping the connection tells the client
                raise ConnectionError(f"relay to worker {target} broke off") from exc
            timed_out = isinstance(exc, TimeoutError)
            await self._error(scope, receive, send, 504 if timed_out else 503,
                              "worker_timeout" if timed_out else "worker_unavailable")
        finally:
            if pump is not None:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
            writer.close()

    async def _error(self, scope: Scope, receive: Receive, send: Send, status: int, error: str) -> None:
        response = JSONResponse({"error": error, "error_description": "the worker holding this session "
                                 "is not answering; open a new SSE session"}, status_code=status)
        response.raw_headers.append(self.header)
        await response(scope, receive, send)


def _target(scope: Scope) -> bytes:
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string") or b""
    return path + (b"?" + query if query else b"")


def _request_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The client's headers, less the hop-by-hop ones; the body is re-framed as received."""
    headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
    length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    if length is not None:
        headers.append((b"content-length", length))
    elif any(k == b"transfer-encoding" for k, _ in scope["headers"]):
        headers.append((b"transfer-encoding", b"chunked"))
    if not any(k == b"host" for k, _ in headers):
        headers.append((b"host", b""))  # HTTP/1.1 needs one; the owner's Host guard judges it
    client = scope.get("client")
    if client:  # for the owner's request log and audit (any copy the client sent was removed on arrival)
        headers.append((RELAYED_FOR, f"{client[0]}:{client[1]}".encode("latin-1")))
    return [*headers, (b"connection", b"close")]


async def _pump_body(conn: h11.Connection, receive: Receive, writer: asyncio.StreamWriter) -> None:
    """Stream the client's body to the owner as it arrives; stops quietly if the owner answered first."""
    with contextlib.suppress(OSError, h11.ProtocolError):
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: cut the owner's request short
                writer.close()
                return
            if body := message.get("body", b""):
                writer.write(conn.send(h11.Data(data=body)))
                await writer.drain()
            if not message.get("more_body", False):
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                return
