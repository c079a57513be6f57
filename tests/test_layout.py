"""The core's layering: imports only point down, so the core can be read (and reused) on its own.

    mcp_suite (command line, benchmarks, registry) → servers → shared.http / shared.stdio (hosting)
    → shared root (server, pipeline, tool policy) → shared.db, shared.resilience, shared.audit, shared.auth
    → shared root foundations (errors, config, keys, identity, paths)
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_core_never_imports_the_servers_or_the_command_line():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path)
                                            if m.split(".")[0] in ("servers", "mcp_suite"))
        for path in (ROOT / "shared").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_foundations_and_the_concern_packages_never_import_hosting():
    hosting = ("shared.http", "shared.stdio")
    lower = [p for p in (ROOT / "shared").rglob("*.py")
             if p.parent.name in ("db", "resilience", "audit", "auth")
             or p.name in ("errors.py", "config.py", "keys.py", "identity.py", "paths.py")]
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.startswith(hosting))
                 for p in lower}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_servers_never_import_the_command_line():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.startswith("mcp_suite"))
                 for p in (ROOT / "servers").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}
