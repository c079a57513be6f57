"""No client can hold a connection open by sending slowly: header and body read deadlines, a connection cap.

What uvicorn 0.55 (h11) offers, and what it lacks:
- `timeout_keep_alive` closes an idle connection only after a *complete* response, and the timer is
  cancelled by the first byte of the next request. A connection that sends half a header block, or
  headers and then half a body, is held forever (slowloris).
- `limit_concurrency` answers 503 to a *request* once too many connections exist, but still accepts
  every connection: idle or half-sent connections are never refused or closed.
- h11 bounds the size of a header block (`h11_max_incomplete_event_size`), not the time it takes.

`guarded_h11(limits)` is uvicorn's h11 protocol with the missing parts: a connection beyond
`max_connections` is answered 503 and closed at once; the request line and headers must arrive
within `header_timeout_s` of the connection opening (or of the previous response completing);
the body within `body_timeout_s` of the headers. A deadline that passes closes the connection
(a 408 first when no response has started): the application sees `http.disconnect`. A request
whose body is complete (or a GET) is no longer timed, so long responses such as SSE streams are
not affected.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 22\r\n"
         b"connection: close\r\nretry-after: 1\r\n\r\ntoo many connections\r\n")
_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 17\r\n"
            b"connection: close\r\n\r\nrequest too slow\r\n")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 1000


def guarded_h11(limits: ConnectionLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol class with these limits (pass it as `uvicorn.Config(http=...)`)."""

    class GuardedH11Protocol(H11Protocol):
        __doc__ = __doc__
        _deadline: asyncio.TimerHandle | None = None
        _phase = ""

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                transport.write(_BUSY)
                transport.close()
                return
            self._arm("headers", limits.header_timeout_s)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._disarm()  # a new request starts its header deadline now
                self._follow()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _follow(self) -> None:
            """Move the deadline along with the request: headers → body → done (untimed)."""
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                if self._phase != "body":
                    self._arm("body", limits.body_timeout_s)
            elif state is h11.IDLE:
                if self._phase != "headers":
                    self._arm("headers", limits.header_timeout_s)
            else:
                self._disarm()

        def _arm(self, phase: str, seconds: float) -> None:
            self._disarm()
            self._phase = phase
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._phase = ""

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            self.logger.info("closing a connection whose request %s did not arrive in time", self._phase)
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(_TIMEOUT)
            self.transport.close()

    return GuardedH11Protocol
