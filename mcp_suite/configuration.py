"""docs/configuration.md, generated from the settings sections: `python -m mcp_suite.configuration`.

`tests/test_configuration.py` fails when the page is stale or when the code names an `MCP_SUITE_*`
variable that no section declares, so the page is always the whole list.
"""

from __future__ import annotations

import sys
from typing import Any

from servers.search.settings import SearchSettings
from shared.config import CORE_SECTIONS, variables

SECTIONS: tuple[type, ...] = (*CORE_SECTIONS, SearchSettings)


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
        "`shared/config.py` and the servers' own (`servers/*/settings.py`) by",
        "`python -m mcp_suite.configuration > docs/configuration.md`; a test fails when this page is stale.",
        "Values are checked at start: a bad one stops the command with one line naming the variable.",
        "Secrets are never printed.",
    ]
    for section in SECTIONS:
        doc = (section.__doc__ or "").strip().splitlines()[0]
        lines += ["", f"## {section.__name__} ({section.__module__})", "", doc, "",
                  "| variable | default | meaning |", "|---|---|---|"]
        for _name, meta, default in variables(section):
            secret = " (secret)" if meta.secret else ""
            lines.append(f"| `{meta.env}` | {_shown(meta, default)} | {meta.help}{secret} |")
    return "\n".join(lines) + "\n"


def declared() -> set[str]:
    return {meta.env for section in SECTIONS for _name, meta, _default in variables(section)}


if __name__ == "__main__":
    sys.stdout.write(render())
