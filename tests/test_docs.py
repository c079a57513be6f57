"""The README's example is the tested example file, so the docs cannot drift from working code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_example_is_the_tested_file():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / "examples" / "clock_server.py").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert example in blocks


def test_readme_names_the_make_targets():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in ("make run", "make test", "make setup"):
        assert target in readme
