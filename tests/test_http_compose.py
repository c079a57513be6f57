"""`compose.yaml`: valid for Docker Compose, and shaped as the deployment docs promise."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.interop.harness import REPO


def _compose_available() -> bool:
    docker = shutil.which("docker")
    return docker is not None and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_available(), reason="the docker compose plugin is not installed")
def test_docker_compose_config_accepts_the_file():
    done = subprocess.run(["docker", "compose", "config", "-q"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_compose_shape():
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load((REPO / "compose.yaml").read_text())
    db, suite = spec["services"]["db"], spec["services"]["suite"]
    assert db["image"] == "pgvector/pgvector:pg17" and "healthcheck" in db
    assert any(v.startswith("pgdata:") for v in db["volumes"]) and "pgdata" in spec["volumes"]
    assert "ports" not in db, "the database stays inside the compose network"
    assert suite["depends_on"]["db"]["condition"] == "service_healthy" and "healthcheck" in suite
    assert all(p.startswith("127.0.0.1:") for p in suite["ports"]), "published on loopback only"
    assert "MCP_SUITE_API_TOKENS" in suite["environment"] and "--allow-anonymous" not in suite["command"]
    assert suite["command"][:2] == ["serve", "all"] and "http" in suite["command"]
