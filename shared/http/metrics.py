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

import functools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.errors import ToolFailure

if TYPE_CHECKING:
    from shared.server import SuiteServer

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

# The process's counters (prometheus_client's usual module-level metrics); each app's registry lists them.
TOOL_CALLS = Counter(
    "mcp_suite_tool_calls", "Tool calls by outcome, as recorded in the audit log.",
    ["server", "tool", "outcome", "error_class"], registry=None,
)
TOOL_SECONDS = Histogram(
    "mcp_suite_tool_call_duration_seconds", "Tool call latency inside the server (policy stack + tool).",
    ["server", "tool"], buckets=LATENCY_BUCKETS, registry=None,
)
AUDIT_SECONDS = Histogram(
    "mcp_suite_audit_write_duration_seconds", "Time to durably commit a call's audit record.",
    ["server"], buckets=LATENCY_BUCKETS, registry=None,
)
HTTP_REQUESTS = Counter(
    "mcp_suite_http_requests", "HTTP requests by mounted server (or `ops`) and status code.",
    ["server", "status"], registry=None,
)
HTTP_REFUSALS = Counter(
    "mcp_suite_http_refusals",
    "Requests refused by the HTTP layer before any tool ran, by reason "
    "(unauthenticated, insufficient_scope, bad_host, bad_origin, too_large, auth_unavailable).",
    ["server", "reason"], registry=None,
)
COUNTERS = (TOOL_CALLS, TOOL_SECONDS, AUDIT_SECONDS, HTTP_REQUESTS, HTTP_REFUSALS)  # exposition order


class CallCounter:
    """A `server.call_observers` hook of one server: counts each finished tool call.

    It knows its server, so a tool the server does not declare is labelled `_unknown` without a
    lookup table (which also keeps the labels, and `_child`'s cache, bounded).
    """

    def __init__(self, server: SuiteServer) -> None:
        self.server = server

    def __call__(self, record: dict[str, Any], audit_seconds: float | None) -> None:
        server = str(record.get("server", ""))
        tool = str(record.get("tool", ""))
        tool = tool if server == self.server.name and tool in self.server.policies else "_unknown"
        outcome = str(record.get("outcome", "error"))
        _child(TOOL_CALLS, server, tool, outcome, record.get("error_class") or "").inc()
        latency_ms = record.get("latency_ms")
        if isinstance(latency_ms, int | float):
            _child(TOOL_SECONDS, server, tool).observe(latency_ms / 1000)
        if audit_seconds is not None:
            _child(AUDIT_SECONDS, server).observe(audit_seconds)


@functools.lru_cache(maxsize=4096)
def _child(metric: Any, *labels: str) -> Any:
    """A labelled child of one of the counters above, looked up once (`.labels()` takes a lock and
    checks its arguments on every call). The label values are bounded: servers, tools, statuses."""
    return metric.labels(*labels)


def refusal(server: str, reason: str) -> None:
    _child(HTTP_REFUSALS, server, reason).inc()


def http_request(server: str, status: int) -> None:
    _child(HTTP_REQUESTS, server, str(status)).inc()


class ServerStateCollector(Collector):
    """Breakers, pools, rate limiters and readiness of the served servers, read at scrape time."""

    def __init__(self, servers: dict[str, SuiteServer]) -> None:
        self.servers = servers

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
        for name, server in sorted(self.servers.items()):
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


class AppMetrics:
    """The `/metrics` of one application, created where the app is built and handed to what needs it.

    It holds the servers that app serves (for the scrape-time collector) and its own registry: the
    process's counters followed by that collector, so two apps in one process (tests) never share
    a list of servers.
    """

    def __init__(self, servers: Iterable[SuiteServer]) -> None:
        self.servers = {server.name: server for server in servers}
        self.registry = CollectorRegistry(auto_describe=True)
        for metric in COUNTERS:
            self.registry.register(metric)
        self.registry.register(ServerStateCollector(self.servers))

    def install(self) -> None:
        """Start counting the tool calls of these servers (idempotent: one counter per server)."""
        for server in self.servers.values():
            if not any(isinstance(observer, CallCounter) for observer in server.call_observers):
                server.call_observers.append(CallCounter(server))

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
