"""One settings loader: every variable declared once, checked at load, and documented."""

from __future__ import annotations

import argparse
import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcp_suite.configuration import declared, render, sections
from servers.search.settings import SearchSettings
from shared.config import (
    AuthSettings,
    HttpSettings,
    KeySettings,
    Settings,
    SettingsError,
    integer,
    load,
    setting,
    variables,
)
from shared.http.layers import HttpConfig

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


VARIABLE = re.compile(r"^(MCP_SUITE_[A-Z0-9_]+|DATABASE_URL)$")


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
            and isinstance(node.value, ast.Name) and node.value.id == "os")


def environment_reads(tree: ast.AST) -> list[int]:
    """Lines that touch `os.environ`/`os.getenv` other than to write a child's or a library's variables.

    Allowed: `{**os.environ, ...}` (a child process's environment), `os.environ[...] = ...`, and
    `os.environ.setdefault("NOT_A_SUITE_VARIABLE", ...)`. An alias (`env = os.environ`) is a read.
    """
    parents = _parents(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os" and \
                any(alias.name in ("environ", "getenv") for alias in node.names):
            found.append(node.lineno)
            continue
        if not _is_environ(node):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Dict) and any(key is None and value is node
                                                for key, value in zip(parent.keys, parent.values, strict=True)):
            continue
        if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store):
            continue
        if isinstance(parent, ast.Attribute) and parent.attr == "setdefault":
            call = parents.get(parent)
            if isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Constant) \
                    and not VARIABLE.match(str(call.args[0].value)):
                continue
        found.append(node.lineno)
    return found


def variable_lookups(tree: ast.Module) -> list[int]:
    """Lines that look a suite variable up in some mapping: `x.get("MCP_SUITE_…")`, `x["…"]`, `"…" in x`.

    The name may be a literal or a module constant holding one (`ROOTS_ENV = "MCP_SUITE_SEARCH_ROOTS"`),
    so a copy of the environment (`env = {**os.environ}; env.get(...)`) is caught too.
    """
    constants = {target.id for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                 and VARIABLE.match(node.value.value) for target in node.targets if isinstance(target, ast.Name)}

    def names_a_variable(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str) and bool(VARIABLE.match(node.value))
        return isinstance(node, ast.Name) and node.id in constants

    def looks_up(node: ast.AST) -> bool:
        if isinstance(node, ast.Call):
            return (isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "pop", "getenv")
                    and bool(node.args) and names_a_variable(node.args[0]))
        if isinstance(node, ast.Subscript):
            return isinstance(node.ctx, ast.Load) and names_a_variable(node.slice)
        if isinstance(node, ast.Compare):
            return names_a_variable(node.left) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
        return False

    return [node.lineno for node in ast.walk(tree) if looks_up(node)]


def test_the_code_reads_settings_only_through_the_loader():
    """Only `shared/config.py` reads the environment; everything else calls `load(...)` (or `given`)."""
    readers = []
    for folder in ("shared", "servers", "mcp_suite"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "shared" / "config.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            readers += [f"{path.relative_to(ROOT)}:{line}" for line in environment_reads(tree) + variable_lookups(tree)]
    assert sorted(readers) == []


@pytest.mark.parametrize("source", [
    'import os\nx = os.environ.get("MCP_SUITE_POOL_MAX")',
    'import os\nenv = os.environ\nx = env.get("MCP_SUITE_POOL_MAX")',
    'import os\nenv = {**os.environ}\nx = env.get("MCP_SUITE_POOL_MAX")',
    'import os\nx = os.environ["DATABASE_URL"]',
    'import os\nx = os.getenv("MCP_SUITE_HOME")',
    'from os import environ\nx = environ.get("MCP_SUITE_HOME")',
    'NAME = "MCP_SUITE_SEARCH_ROOTS"\ndef f(env):\n    return env.get(NAME)',
    'def f(env):\n    return "MCP_SUITE_HOME" in env',
    'import os\nos.environ.setdefault("MCP_SUITE_HOME", "/x")',
])
def test_the_reader_scan_catches_each_way_of_reading(source):
    tree = ast.parse(source)
    assert environment_reads(tree) + variable_lookups(tree), source


@pytest.mark.parametrize("source", [
    'import os\nenv = {**os.environ, "MCP_SUITE_HOME": "/x"}',  # a child process's environment
    'import os\nos.environ["MCP_SUITE_HOME"] = "/x"',
    'import os\nos.environ.setdefault("HF_HUB_OFFLINE", "1")',
    'raise ValueError("MCP_SUITE_JWT_AUDIENCE must be set")',
])
def test_the_reader_scan_allows_writes_and_messages(source):
    tree = ast.parse(source)
    assert environment_reads(tree) + variable_lookups(tree) == [], source


def test_every_server_need_is_declared_by_its_own_sections():
    """`servers`, `claude-config` and `doctor` read a need through the server's `ServerSpec.settings`."""
    from mcp_suite.registry import specs
    from shared.config import variables

    for name, spec in specs().items():
        declared_here = {meta.env for section in spec.settings for _field, meta, _default in variables(section)}
        assert {need.variable for need in spec.needs} <= declared_here, name


def test_server_sections_come_from_the_registry():
    from mcp_suite.configuration import sections

    assert SearchSettings in sections() and SearchSettings in sections(["search"])
    assert SearchSettings not in sections(["profiles"])


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


@pytest.mark.parametrize(("variable", "value"), [
    ("MCP_SUITE_AUDIT_KEY", "s3cr3t-too-short"),
    ("DATABASE_URL", "mysql://admin:s3cr3t@db/x"),
    ("MCP_SUITE_APP_DATABASE_URL", "s3cr3t"),
])
def test_a_secret_that_fails_is_not_echoed(variable, value):
    section = next(s for s in sections() if variable in {meta.env for _f, meta, _d in variables(s)})
    with pytest.raises(SettingsError) as caught:
        load(section, {variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}=(hidden): ") and "s3cr3t" not in message


def test_hidden_is_the_loaders_rule_for_any_secret_field():
    @dataclass(frozen=True)
    class Section:
        code: int = setting("MCP_SUITE_TEST_CODE", 0, "a secret number", parse=integer(), secret=True)

    with pytest.raises(SettingsError) as caught:
        load(Section, {"MCP_SUITE_TEST_CODE": "s3cr3t"})
    assert "s3cr3t" not in str(caught.value) and "(hidden)" in str(caught.value)


def test_a_plain_value_is_echoed_and_a_good_secret_is_kept():
    with pytest.raises(SettingsError) as caught:
        load(AuthSettings, {"MCP_SUITE_TOKEN_CACHE_S": "soon"})
    assert "'soon'" in str(caught.value) and "hidden" not in str(caught.value)
    assert load(KeySettings, {"MCP_SUITE_AUDIT_KEY": "k" * 40}).key == "k" * 40


def test_http_config_is_the_loaders_reading_plus_the_flags():
    args = argparse.Namespace(host="127.0.0.1", port=9000, transport="http", name="all", allow_anonymous=False)
    for environ, message in [({"MCP_SUITE_RATE_LIMIT_STORE": "redis"}, "MCP_SUITE_RATE_LIMIT_STORE='redis'"),
                             ({"MCP_SUITE_MAX_BODY_BYTES": "10"}, "must be at least 1024"),
                             ({"MCP_SUITE_ANONYMOUS_SCOPES": "read everything"}, "is not a scope")]:
        with pytest.raises(SettingsError, match=re.escape(message)):
            HttpConfig.from_args(args, environ)
    config = HttpConfig.from_args(args, {"MCP_SUITE_JSON_RESPONSE": "on", "MCP_SUITE_RATE_LIMIT_STORE": "Postgres"})
    assert config.json_response is load(HttpSettings, {"MCP_SUITE_JSON_RESPONSE": "on"}).json_response is True
    assert config.rate_store == "postgres" and config.public_url == "http://127.0.0.1:9000"
    assert config.allowed_hosts and config.allowed_origins  # loopback defaults
    everything = {meta.env: "" for _f, meta, _d in variables(HttpSettings)}
    default = HttpConfig.from_args(args, everything)
    for name, _meta, value in variables(HttpSettings):  # every HTTP setting reaches HttpConfig unchanged
        if hasattr(default, name) and name not in ("public_url", "allowed_hosts", "allowed_origins"):
            assert getattr(default, name) == value, name


def test_values_are_typed():
    settings = load(Settings, {"MCP_SUITE_SCOPES": "a:read, b:write", "MCP_SUITE_POOL_MAX": "3"})
    assert settings.scopes == frozenset({"a:read", "b:write"}) and settings.pool_max_size == 3
    http = load(HttpSettings, {"MCP_SUITE_ALLOWED_HOSTS": "a.example:* b.example", "MCP_SUITE_JSON_RESPONSE": "yes"})
    assert http.allowed_hosts == ("a.example:*", "b.example") and http.json_response is True
    assert load(SearchSettings, {"MCP_SUITE_SEARCH_ROOTS": "/a:/b"}).roots == ("/a", "/b")
