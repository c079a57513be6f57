"""Every settings section in use, checked at once; and docs/configuration.md, generated from them.

The sections are the core's (`shared.config.CORE_SECTIONS`) and each registered server's
(`ServerSpec.settings`, read from the registry), so a server added through an entry point is
documented and checked like a shipped one. `python -m mcp_suite.configuration` prints the page;
`tests/test_configuration.py` fails when the page is stale or when the code names an `MCP_SUITE_*`
variable that no section declares, so the page is always the whole list.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from shared.config import CORE_SECTIONS, load, variables


def sections(servers: Iterable[str] | None = None) -> tuple[type, ...]:
    """The core's sections, then those of the named servers (default: every registered one)."""
    from mcp_suite.registry import spec, specs

    chosen = [spec(name) for name in servers] if servers is not None else list(specs().values())
    found: list[type] = list(CORE_SECTIONS)
    for one in chosen:
        found += [section for section in one.settings if section not in found]
    return tuple(found)


def check(servers: Iterable[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Load every section once, so a bad value stops a command at its start (`SettingsError`, one line)."""
    for section in sections(servers):
        load(section, environ)


def _shown(meta: Any, default: Any) -> str:
    if meta.shown_default is not None:
        return meta.shown_default
    if default is None or default == () or default == "":
        return "unset"
    if isinstance(default, bool):
        return "1" if default else "0"
    if isinstance(default, tuple | frozenset):
        return " ".join(sorted(default))
    return str(default)


def render() -> str:
    lines = [
        "# Configuration",
        "",
        "Every environment variable the suite reads. Generated from the settings sections in",
        "`shared/config.py` and each registered server's own (its `ServerSpec.settings`, e.g.",
        "`servers/search/settings.py`) by `python -m mcp_suite.configuration > docs/configuration.md`;",
        "a test fails when this page is stale. Every `mcp-suite` command checks them all at start: a bad",
        "value stops it with one line naming the variable (`mcp-suite: error: …`, exit status 2).",
        "Secrets are never printed.",
    ]
    for section in sections():
        doc = (section.__doc__ or "").strip().splitlines()[0]
        lines += ["", f"## {section.__name__} ({section.__module__})", "", doc, "",
                  "| variable | default | meaning |", "|---|---|---|"]
        for _name, meta, default in variables(section):
            secret = " (secret)" if meta.secret else ""
            lines.append(f"| `{meta.env}` | {_shown(meta, default)} | {meta.help}{secret} |")
    return "\n".join(lines) + "\n"


def declared() -> set[str]:
    return {meta.env for section in sections() for _name, meta, _default in variables(section)}


if __name__ == "__main__":
    sys.stdout.write(render())
