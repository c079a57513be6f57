"""One settings loader: every variable declared once, checked at load, and documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mcp_suite.configuration import declared, render
from servers.search.settings import SearchSettings
from shared.config import HttpSettings, Settings, SettingsError, load

ROOT = Path(__file__).resolve().parent.parent


def test_docs_configuration_md_is_generated_from_the_sections():
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/configuration.md is stale: python -m mcp_suite.configuration > it"


def _code_strings(path: Path) -> list[str]:
    """String constants in a module's code (docstrings, which may show examples, left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_every_variable_the_code_names_is_declared():
    named: set[str] = set()
    for folder in ("shared", "servers", "mcp_suite"):
        for path in (ROOT / folder).rglob("*.py"):
            for text in _code_strings(path):
                named |= set(re.findall(r"\b(MCP_SUITE_[A-Z0-9_]+|DATABASE_URL)\b", text))
    assert named - declared() == set()


def test_the_code_reads_settings_only_through_the_loader():
    readers = []
    for folder in ("shared", "servers"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"os\.environ(\.get)?\s*[\[(]\s*[\"'](MCP_SUITE_|DATABASE_URL)", line):
                    readers.append(f"{path.relative_to(ROOT)}:{number}")
    assert readers == []


@pytest.mark.parametrize(("section", "environ", "message"), [
    (Settings, {"MCP_SUITE_POOL_MAX": "lots"}, "MCP_SUITE_POOL_MAX='lots': must be a whole number"),
    (Settings, {"MCP_SUITE_POOL_MAX": "0"}, "must be at least 1"),
    (Settings, {"MCP_SUITE_POOL_MIN": "5", "MCP_SUITE_POOL_MAX": "2"}, "is above MCP_SUITE_POOL_MAX"),
    (Settings, {"MCP_SUITE_DB_COMMAND_TIMEOUT": "-1"}, "must be a number above 0"),
    (HttpSettings, {"MCP_SUITE_RATE_LIMIT_STORE": "redis"}, "must be one of local, postgres"),
    (HttpSettings, {"MCP_SUITE_JSON_RESPONSE": "maybe"}, "must be one of 1/0"),
    (HttpSettings, {"MCP_SUITE_METRICS_TOKEN": ""}, None),
    (SearchSettings, {"MCP_SUITE_SEARCH_WARMUP": "perhaps"}, "MCP_SUITE_SEARCH_WARMUP"),
])
def test_bad_values_are_one_clear_sentence(section, environ, message):
    if message is None:
        assert load(section, environ) == section()  # empty means unset
        return
    with pytest.raises(SettingsError, match=re.escape(message)):
        load(section, environ)


def test_secrets_are_not_echoed_in_errors():
    from shared.config import AuthSettings

    with pytest.raises(SettingsError) as caught:
        load(AuthSettings, {"MCP_SUITE_TOKEN_CACHE_S": "s3cr3t-value"})
    assert "s3cr3t" in str(caught.value)  # not a secret: shown
    from shared.config import KeySettings

    assert "hidden" not in str(caught.value)
    assert load(KeySettings, {"MCP_SUITE_AUDIT_KEY": "k" * 40}).key == "k" * 40


def test_values_are_typed():
    settings = load(Settings, {"MCP_SUITE_SCOPES": "a:read, b:write", "MCP_SUITE_POOL_MAX": "3"})
    assert settings.scopes == frozenset({"a:read", "b:write"}) and settings.pool_max_size == 3
    http = load(HttpSettings, {"MCP_SUITE_ALLOWED_HOSTS": "a.example:* b.example", "MCP_SUITE_JSON_RESPONSE": "yes"})
    assert http.allowed_hosts == ("a.example:*", "b.example") and http.json_response is True
    assert load(SearchSettings, {"MCP_SUITE_SEARCH_ROOTS": "/a:/b"}).roots == ("/a", "/b")
