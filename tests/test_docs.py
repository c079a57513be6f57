"""Doc checks: the README's example is the tested example file, and the `make` targets it names exist
and do what it says (checked with `make --dry-run`, since really running `make test` from inside the
test suite would recurse; the targets themselves are run by CI and by `make test`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_doc_check_readme_example_is_the_tested_file():
    example = (ROOT / "examples" / "clock_server.py").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert example in blocks


def dry_run(target: str) -> str:
    """The commands `make TARGET` would run (all prerequisites considered out of date)."""
    done = subprocess.run(["make", "--dry-run", "--always-make", target], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"make {target}: {done.stderr}"
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_doc_check_readme_make_targets_do_what_the_readme_says():
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", README))
    assert {"run", "test", "setup", "test-slow"} <= named
    for target in named:
        dry_run(target)  # every target the README names exists
    setup = dry_run("setup")
    assert "pip install" in setup and '-e ".[test]"' in setup  # installs the package and its test extras
    run = dry_run("run").splitlines()
    # "migrations, demo data, serve profiles (stdio)", in that order, after installing
    steps = [next(i for i, line in enumerate(run) if needle in line)
             for needle in ("pip install", "mcp-suite migrate", "mcp-suite demo profiles", "mcp-suite serve profiles")]
    assert steps == sorted(steps)
    test = dry_run("test")
    assert "pip install" in test and re.search(r"pytest -q\s*$", test, flags=re.M)
    assert "-m slow" in dry_run("test-slow")


def test_doc_check_testing_map_names_real_tests():
    """docs/testing.md maps README claims to tests: every test it names must exist."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    current: Path | None = None
    named = 0
    for match in re.finditer(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`", text):
        path, name, same_file = match.groups()
        if path:
            current = ROOT / path
            assert current.exists(), path
        name = name or same_file
        if name:
            assert current is not None and re.search(rf"def {name}\b", current.read_text(encoding="utf-8")), name
            named += 1
    assert named > 40
