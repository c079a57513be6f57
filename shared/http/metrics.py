"""`/metrics` in the Prometheus text format, built on the official `prometheus_client` library.

What is counted where:
- tool calls by server/tool/outcome/error_class and their latency: from each call's audit record,
  through `server.call_observers` (so metrics and audit can never disagree about an outcome);
- audit write latency: the time the durable commit of each call's record took;
- HTTP refusals (401, 403, 413, 421, ...) and requests by status: from the HTTP layer;
- breaker state, pool connections in use/idle, rate-limit rejections, readiness: read from the live
  server objects at scrape time by a custom collector, so there is nothing to keep in sync.

Label values are bounded: a tool name the server does not declare is reported as `_unknown`, and no
principal appears in any label (unbounded cardinality, and it would leak who uses what).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.errors import ToolFailure

if TYPE_CHECKING:
    from shared.server import SuiteServer

REGISTRY = CollectorRegistry(auto_describe=True)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

TOOL_CALLS = Counter(
    "mcp_suite_tool_calls", "Tool calls by outcome, as recorded in the audit log.",
    ["server", "tool", "outcome", "error_class"], registry=REGISTRY,
)
TOOL_SECONDS = Histogram(
    "mcp_suite_tool_call_duration_seconds", "Tool call latency inside the server (policy stack + tool).",
    ["server", "tool"], buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
AUDIT_SECONDS = Histogram(
    "mcp_suite_audit_write_duration_seconds", "Time to durably commit a call's audit record.",
    ["server"], buckets=LATENCY_BUCKETS, registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "mcp_suite_http_requests", "HTTP requests by mounted server (or `ops`) and status code.",
    ["server", "status"], registry=REGISTRY,
)
HTTP_REFUSALS = Counter(
    "mcp_suite_http_refusals",
    "Requests refused by the HTTP layer before any tool ran, by reason "
    "(unauthenticated, insufficient_scope, bad_host, bad_origin, too_large, auth_unavailable).",
    ["server", "reason"], registry=REGISTRY,
)

_servers: dict[str, SuiteServer] = {}
_children: dict[tuple[Any, ...], Any] = {}  # labelled children, cached: `.labels()` costs a lock and checks


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _tool_label(server: str, tool: str) -> str:
    known = _servers.get(server)
    return tool if known is not None and tool in known.policies else "_unknown"


def observe_call(record: dict[str, Any], audit_seconds: float | None) -> None:
    """A `server.call_observers` hook: one finished tool call."""
    server = str(record.get("server", ""))
    tool = _tool_label(server, str(record.get("tool", "")))
    _child(TOOL_CALLS, server, tool, str(record.get("outcome", "error")), record.get("error_class") or "").inc()
    latency_ms = record.get("latency_ms")
    if isinstance(latency_ms, int | float):
        _child(TOOL_SECONDS, server, tool).observe(latency_ms / 1000)
    if audit_seconds is not None:
        _child(AUDIT_SECONDS, server).observe(audit_seconds)


def refusal(server: str, reason: str) -> None:
    _child(HTTP_REFUSALS, server, reason).inc()


def http_request(server: str, status: int) -> None:
    _child(HTTP_REQUESTS, server, str(status)).inc()


class ServerStateCollector(Collector):
    """Breakers, pools, rate limiters and readiness of the served servers, read at scrape time."""

    def collect(self) -> Iterator[Metric]:
        breaker = GaugeMetricFamily("mcp_suite_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                                    labels=["server", "breaker"])
        pool = GaugeMetricFamily("mcp_suite_pool_connections", "Database pool connections by state.",
                                 labels=["server", "state"])
        rejections = CounterMetricFamily("mcp_suite_rate_limit_rejections",
                                         "Tool calls rejected by a rate limit.", labels=["server"])
        ready = GaugeMetricFamily("mcp_suite_server_ready", "1 when the server's start-up finished.", labels=["server"])
        audit = GaugeMetricFamily("mcp_suite_audit_healthy", "1 when the last audit write succeeded.",
                                  labels=["server"])
        for name, server in sorted(_servers.items()):
            db = server.db
            breaker.add_metric([name, db.breaker.name], BREAKER_STATES.get(db.breaker.state, 2))
            try:
                raw_pool = db.pool
            except ToolFailure:  # not connected yet
                raw_pool = None
            if raw_pool is not None:
                size, idle = raw_pool.get_size(), raw_pool.get_idle_size()
                pool.add_metric([name, "in_use"], size - idle)
                pool.add_metric([name, "idle"], idle)
            rejections.add_metric([name], getattr(server.limiter, "rejections", 0))
            ready.add_metric([name], 1 if server.ready.is_set() else 0)
            audit.add_metric([name], 1 if server.audit.healthy else 0)
        yield from (breaker, pool, rejections, ready, audit)


_collector = ServerStateCollector()
REGISTRY.register(_collector)


def install(servers: Iterable[SuiteServer]) -> None:
    """Start counting calls of these servers (idempotent)."""
    for server in servers:
        _servers[server.name] = server
        if observe_call not in server.call_observers:
            server.call_observers.append(observe_call)


def render() -> tuple[bytes, str]:
    """The exposition body and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
