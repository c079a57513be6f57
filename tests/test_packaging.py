"""What `pip install .` installs: the migrations ship inside the package (no path outside it to point
at), and the container image copies every package the build includes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "servers", "mcp_suite", "migrations")


def test_the_wheel_carries_the_migrations_and_every_package(tmp_path: Path):
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout others work in
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("mcp_suite-*.whl")
    files = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("**/migrations/*.sql") if ".venv" not in p.parts}
    assert {"migrations/0001_core.sql", "servers/profiles/migrations/0002_user_profiles.sql"} <= shipped <= files
    assert {"migrations/__init__.py", "servers/search/migrations/__init__.py"} <= files
    for module in ("mcp_suite/cli.py", "mcp_suite/registry.py", "shared/server_spec.py", "shared/db/migrate.py",
                   "servers/profiles/cli.py", "servers/search/cli.py", "servers/search/lab/bench.py"):
        assert module in files, module
    entry_points = next(f for f in files if f.endswith(".dist-info/entry_points.txt"))
    registered = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mcp-suite = mcp_suite.cli:main" in registered
    assert "[mcp_suite.migrations]" in registered and "profiles = servers.profiles.migrations" in registered


def test_the_image_copies_every_package_and_needs_no_migrations_path():
    spec = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    dockerfile = spec["services"]["suite"]["build"]["dockerfile_inline"].splitlines()
    copied = {line.split()[1] for line in dockerfile if line.startswith("COPY ")}
    assert set(PACKAGES) <= copied
    assert not any("MCP_SUITE_MIGRATIONS" in line for line in dockerfile)
