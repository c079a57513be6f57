"""`AppMetrics`: each app's `/metrics` lists its own servers; counting a server's calls is installed once."""

from __future__ import annotations

from shared.http.metrics import AppMetrics, CallCounter
from shared.server import SuiteServer


def test_two_apps_in_one_process_list_only_their_own_servers():
    first, second = AppMetrics([SuiteServer("metrics-a")]), AppMetrics([SuiteServer("metrics-b")])
    body_a, body_b = first.render()[0].decode(), second.render()[0].decode()
    assert 'mcp_suite_server_ready{server="metrics-a"} 0.0' in body_a and "metrics-b" not in body_a
    assert 'mcp_suite_server_ready{server="metrics-b"} 0.0' in body_b and "metrics-a" not in body_b
    assert "# TYPE mcp_suite_tool_calls_total counter" in body_a  # the process's counters in both


def test_calls_are_counted_once_however_many_apps_install_and_unknown_tools_are_one_label():
    server = SuiteServer("metrics-c")
    app = AppMetrics([server])
    app.install()
    AppMetrics([server]).install()
    assert sum(isinstance(o, CallCounter) for o in server.call_observers) == 1
    for observer in server.call_observers:
        observer({"server": "metrics-c", "tool": "no-such-tool", "outcome": "ok", "latency_ms": 3}, 0.001)
    body = app.render()[0].decode()
    assert 'mcp_suite_tool_calls_total{error_class="",outcome="ok",server="metrics-c",tool="_unknown"} 1.0' in body
