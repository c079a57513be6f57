"""Policies as data: composing them, and the rules enforced when a tool is registered (at import time)."""

from __future__ import annotations

import pytest

from shared.policy import DEFAULT_TIMEOUT_S, NO_RETRY, RETRY, Policy, rate, redact, timeout
from shared.resilience.limits import Rate
from shared.server import SuiteServer
from shared.tool import ToolPolicy

READ = Policy(scopes={"x:read"}, read_only=True, rate="30/s", retry=RETRY)


def test_policies_compose_scopes_and_redactions_unite_later_values_win():
    merged = READ | Policy(scopes={"x:admin"}) | redact("email") | redact("bio") | timeout(5) | rate("2/s")
    assert merged.scopes == {"x:read", "x:admin"}
    assert merged.redact == {"email", "bio"}
    assert merged.read_only and merged.retry == RETRY
    assert merged.timeout == 5 and merged.rate == Rate(2, per=1.0)
    assert (merged | timeout(7)).timeout == 7
    assert (merged | Policy(retry=NO_RETRY)).retry == NO_RETRY  # "never", said explicitly, overrides


def test_retry_is_what_the_policy_says_never_implied():
    assert ToolPolicy.resolve("r", Policy(read_only=True)).retry is None  # read-only alone: one try
    assert ToolPolicy.resolve("r", READ).retry == RETRY
    assert ToolPolicy.resolve("r", READ | Policy(retry=NO_RETRY)).retry is None
    assert ToolPolicy.resolve("r", Policy()).timeout == DEFAULT_TIMEOUT_S  # the one default


def test_policy_rules_raise_at_registration():
    with pytest.raises(ValueError, match="only read-only or idempotent"):
        ToolPolicy.resolve("w", Policy(retry=RETRY))
    with pytest.raises(ValueError, match="cannot be destructive"):
        ToolPolicy.resolve("w", READ | Policy(destructive=True))
    with pytest.raises(ValueError, match="positive"):
        timeout(0)
    with pytest.raises(ValueError, match="invalid rate"):
        rate("fast")
    with pytest.raises(TypeError, match="not one string"):
        Policy(scopes="x:read")  # would otherwise be the scopes {"x", ":", "r", ...}


def test_a_redact_typo_raises_when_the_tool_is_registered():
    """Without the check, `redact("emial")` would silently store the email in the audit log."""
    app = SuiteServer("typo")
    with pytest.raises(ValueError, match=r"redact names \['emial'\] that are not parameters"):
        @app.tool(READ | redact("emial"))
        async def find(email: str) -> str:
            return email
    assert "find" not in app.policies

    @app.tool(READ | redact("email"))
    async def lookup(email: str) -> str:
        return email
    assert app.policies["lookup"].redact == {"email"}


def test_the_decorator_takes_one_policy_and_nothing_else():
    app = SuiteServer("mixed")
    with pytest.raises(TypeError, match="unexpected keyword argument 'read_only'"):
        app.tool(READ, read_only=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="takes a Policy"):
        app.tool({"scopes": {"x:read"}})  # type: ignore[arg-type]


def test_the_converted_servers_keep_their_policies():
    from servers.profiles.tools import app as profiles
    from servers.search.tools import app as search

    p = profiles.policies
    assert p["get_profile"].retry == RETRY and p["get_profile"].timeout == 5.0
    assert p["search_profiles"].redact == {"query"} and p["search_profiles"].rate == Rate(10, per=1.0)
    assert p["create_profile"].redact == {"display_name", "email", "bio", "preferences"}
    assert p["create_profile"].retry is None and p["delete_profile"].retry is None
    assert p["restore_profile"].scopes == {"profiles:write", "profiles:admin"} and p["restore_profile"].retry
    s = search.policies
    assert {n for n, pol in s.items() if pol.read_only} == {"hybrid_search", "search", "fetch", "get_document",
                                                             "index_stats"}
    assert s["delete_document"].destructive and s["delete_document"].retry == RETRY
    assert s["ingest"].redact == {"content"} and s["ingest"].timeout == 600.0
