"""The core's layering: imports only point down, so the core can be read (and reused) on its own.

    mcp_suite (command line, benchmarks, registry) → servers → shared.http (hosting)
    → shared root core (server, pipeline, tool, policy, server_spec)
    → shared.db, shared.resilience, shared.audit, shared.auth, shared.stdio (one concern each)
    → foundations (errors, config, keys, identity, cursors, jsonrpc_guard, paths, shared.fs)

`shared.stdio` is the stdio transport, not hosting above the core: like the SDK's own
`MCPServer.run`, `SuiteServer.run` serves over it, and it needs nothing of the core but the
server's name and its `MCPServer`, so it sits with the concern packages and imports none of the
core above them. `shared.http` is the hosting: it builds apps from many servers, and no module of
the core imports it.

Every `import` counts, wherever it is (inside a function too). Within one layer, imports run one
way: the modules of `shared/` form no cycle. An `if TYPE_CHECKING:` import only names a type for
annotations and never runs; it must still point down a layer or stay within one, but it may point
back within its layer (the pipeline names the server it belongs to), so it is left out of the
cycle check.

The SDK's private attributes (`mcp._lowlevel_server`, `._tool_manager`) are used in one named
adapter only, `shared.stdio.guard.lowlevel_server`, whose docstring says why.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "shared"

FOUNDATIONS = {"shared", "shared.errors", "shared.config", "shared.keys", "shared.identity", "shared.cursors",
               "shared.jsonrpc_guard", "shared.paths", "shared.fs"}
CONCERNS = {"shared.db", "shared.resilience", "shared.audit", "shared.auth", "shared.stdio"}
CORE = {"shared.server", "shared.pipeline", "shared.tool", "shared.policy", "shared.server_spec"}
HOSTING = {"shared.http"}
LAYERS = [FOUNDATIONS, CONCERNS, CORE, HOSTING]  # lowest first

SDK_PACKAGES = ("mcp", "mcp_types")
# The one place allowed to touch an SDK private attribute: (file, function) → the names it may use.
SDK_ADAPTERS = {("shared/stdio/guard.py", "lowlevel_server"): {"_lowlevel_server"}}
ALWAYS_PRIVATE = {"_lowlevel_server", "_tool_manager", "_mcp_server", "_session_manager"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def shared_modules() -> dict[str, Path]:
    return {module_name(path): path for path in SHARED.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """The ids of every node under an `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`) block."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in {
                getattr(node.test, "id", None), getattr(node.test, "attr", None)}:
            for statement in node.body:
                inside |= {id(child) for child in ast.walk(statement)}
    return inside


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, known: set[str]) -> list[str]:
    """The modules an import statement loads: `from pkg import mod` names `pkg.mod` when that is a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]


def imports_in(source: str, importer: str, *, is_package: bool = False,
               known: set[str] | frozenset[str] = frozenset()) -> Iterator[Edge]:
    """Every import in a module's source, at any depth (functions, methods, `try`, `if TYPE_CHECKING`)."""
    tree = ast.parse(source)
    type_only = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _targets(node, importer, is_package, known):
                yield Edge(importer, target, node.lineno, id(node) in type_only)


def imports_of(path: Path, known: set[str] | frozenset[str] = frozenset()) -> Iterator[Edge]:
    return imports_in(path.read_text(encoding="utf-8"), module_name(path),
                      is_package=path.name == "__init__.py", known=known)


def imported_modules(path: Path) -> set[str]:
    return {edge.target for edge in imports_of(path)}


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the most specific entry naming `module` or a package above it."""
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        prefix = ".".join(parts[:size])
        for index, layer in enumerate(LAYERS):
            if prefix in layer:
                return index
    return None


def shared_graph(*, include_type_only: bool) -> dict[str, set[str]]:
    modules = shared_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for edge in imports_of(path, set(modules)):
            if edge.target in modules and edge.target != name and (include_type_only or not edge.type_only):
                graph[name].add(edge.target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


# --- the rules ---------------------------------------------------------------------------------------


def test_the_core_never_imports_the_servers_or_the_command_line():
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path)
                                            if m.split(".")[0] in ("servers", "mcp_suite"))
        for path in SHARED.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_servers_never_import_the_command_line():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.startswith("mcp_suite"))
                 for p in (ROOT / "servers").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_module_of_shared_has_a_layer():
    """A new module is placed in LAYERS (and so in the rules below) before it can be imported."""
    assert sorted(name for name in shared_modules() if layer_of(name) is None) == []


def test_imports_within_shared_only_point_down_or_sideways():
    """No module imports one of a higher layer: not in a function, not even for a type annotation."""
    modules = shared_modules()
    upward = [f"{edge.source}:{edge.line} imports {edge.target}"
              for name, path in sorted(modules.items())
              for edge in imports_of(path, set(modules))
              if edge.target in modules and (layer_of(edge.target) or 0) > (layer_of(name) or 0)]
    assert upward == []


def test_the_core_never_imports_hosting():
    """The core's root modules and everything below them never import `shared.http`."""
    below_hosting = [p for name, p in shared_modules().items() if layer_of(name) != LAYERS.index(HOSTING)]
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p)
                                                  if m.split(".")[:2] == ["shared", "http"])
                 for p in below_hosting}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_stdio_transport_needs_nothing_of_the_core_above_it():
    """`shared.stdio` imports foundations and the SDK only, so `SuiteServer.run` may use it."""
    modules = shared_modules()
    offenders = [f"{edge.source}:{edge.line} imports {edge.target}"
                 for name, path in modules.items() if name.startswith("shared.stdio")
                 for edge in imports_of(path, set(modules))
                 if edge.target in modules and not edge.target.startswith("shared.stdio")
                 and layer_of(edge.target) != LAYERS.index(FOUNDATIONS)]
    assert offenders == []


def test_no_import_cycles_in_shared():
    """Run-time imports (module level and inside functions) form no cycle between modules of `shared/`."""
    assert find_cycles(shared_graph(include_type_only=False)) == []


def test_the_cycle_check_sees_imports_inside_functions():
    """The checker itself: a cycle closed by an import inside a function is found; a type-only one is not."""
    hidden = "import os\n\n\ndef later():\n    from shared.a import thing\n"
    typed = "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from shared.a import Thing\n"
    known = {"shared.a", "shared.b"}
    for source, closes in ((hidden, True), (typed, False)):
        back = {e.target for e in imports_in(source, "shared.b", known=known) if e.target in known and not e.type_only}
        expected = [["shared.a", "shared.b"]] if closes else []
        assert find_cycles({"shared.a": {"shared.b"}, "shared.b": back}) == expected


# --- the SDK's private attributes --------------------------------------------------------------------


def _private_names_defined(files: Iterator[Path]) -> set[str]:
    """`_name`s a code base defines: `self._x`/`cls._x` attributes and private methods or class fields."""
    names: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in ("self", "cls")):
                names.add(node.attr)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def _sdk_root() -> Path:
    import mcp

    return Path(mcp.__file__).resolve().parent.parent


def sdk_private_names(ours: set[str]) -> set[str]:
    """Private names the SDK defines and our code does not (our own `_pending` is ours to use)."""
    root = _sdk_root()
    sdk = _private_names_defined(p for package in SDK_PACKAGES for p in (root / package).rglob("*.py"))
    return (sdk - ours) | ALWAYS_PRIVATE


def _enclosing_functions(tree: ast.AST) -> dict[int, str]:
    """Node id → name of the innermost function around it (`ast.walk` visits outer ones first)."""
    owner: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            owner.update((id(child), node.name) for child in ast.walk(node) if child is not node)
    return owner


def private_sdk_uses(source: str, rel: str, private: set[str]) -> list[str]:
    """`x._name` for SDK private names, except `self`/`cls` and the named adapter's own names."""
    tree = ast.parse(source)
    owner = _enclosing_functions(tree)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and node.attr not in SDK_ADAPTERS.get((rel, owner.get(id(node), "")), set())):
            found.append(f"{rel}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_private_sdk_attributes_outside_the_one_adapter():
    ours = [p for d in ("shared", "servers", "mcp_suite", "examples", "tests") for p in (ROOT / d).rglob("*.py")]
    private = sdk_private_names(_private_names_defined(iter(ours)))
    assert {"_lowlevel_server", "_tool_manager"} <= private
    uses = [use for path in ours
            for use in private_sdk_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), private)]
    assert uses == []


def test_the_private_attribute_check_catches_a_use():
    """The checker itself: the adapter may reach `_lowlevel_server`; the same line anywhere else is reported."""
    line = "def {name}(mcp):\n    return mcp._lowlevel_server\n"
    assert private_sdk_uses(line.format(name="lowlevel_server"), "shared/stdio/guard.py", ALWAYS_PRIVATE) == []
    assert private_sdk_uses(line.format(name="run_stdio"), "shared/stdio/guard.py", ALWAYS_PRIVATE) == [
        "shared/stdio/guard.py:2 mcp._lowlevel_server"]
    assert private_sdk_uses("app.mcp._tool_manager.list()\n", "servers/x/tools.py", ALWAYS_PRIVATE) == [
        "servers/x/tools.py:1 app.mcp._tool_manager"]
