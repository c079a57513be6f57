"""Structured logs: one JSON object per line on stderr, carrying the request id of the call in flight.

Why not a library: twenty lines, and no new dependency for it. Never stdout: it may carry a protocol.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from shared.config import HttpSettings, load
from shared.identity import active_call

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Why not a library: twenty lines, and no new dependency for it."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        call = active_call()  # None outside a tool call (e.g. the request log's own line)
        if call is not None:
            entry.update(request_id=call.request_id, server=call.server, tool=call.tool)
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info and record.levelno >= logging.ERROR:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_json_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)  # never stdout: it may carry a protocol
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or load(HttpSettings).log_level).upper())
    for noisy in ("mcp", "uvicorn.error", "httpx"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
