"""`compose.yaml`: shaped as the deployment docs promise, and consistent with the code it runs.

`docker compose` is usually absent where the suite is tested, so besides `docker compose config`
(run only where the plugin exists) the file is checked here with PyYAML (a declared test dependency):
the shape of each service, the suite's command parsed by the real `mcp-suite` argument parser, the
published and probed ports against that command, and every environment variable against the
variables the code actually reads.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from mcp_suite.cli import build_parser
from tests.interop.harness import REPO

SPEC = yaml.safe_load((REPO / "compose.yaml").read_text())
TOP_LEVEL = {"name", "services", "volumes", "networks", "configs", "secrets"}
SERVICE_KEYS = {"image", "build", "command", "entrypoint", "environment", "env_file", "ports", "volumes",
                "depends_on", "healthcheck", "restart", "read_only", "tmpfs", "security_opt", "stop_grace_period",
                "shm_size", "user", "networks", "expose", "deploy", "labels", "logging", "cap_drop", "ulimits"}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


def _compose_available() -> bool:
    docker = shutil.which("docker")
    return docker is not None and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0


def variables_the_code_reads() -> set[str]:
    """`MCP_SUITE_*` names appearing as string literals in the suite's code (os.environ / env.get keys)."""
    names: set[str] = set()
    for path in [*(REPO / "shared").rglob("*.py"), *(REPO / "servers").rglob("*.py")]:
        names |= set(re.findall(r"[\"'](MCP_SUITE_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    return names


def dockerfile_lines() -> list[str]:
    return SPEC["services"]["suite"]["build"]["dockerfile_inline"].splitlines()


def suite_args():
    suite = SPEC["services"]["suite"]
    entrypoint = next(line for line in dockerfile_lines() if line.startswith("ENTRYPOINT"))
    assert entrypoint == 'ENTRYPOINT ["mcp-suite"]', entrypoint  # so `command` is mcp-suite's arguments
    return build_parser().parse_args(suite["command"])


@pytest.mark.skipif(not _compose_available(), reason="the docker compose plugin is not installed")
def test_docker_compose_config_accepts_the_file():
    done = subprocess.run(["docker", "compose", "config", "-q"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


SUITE_IMAGE = SPEC["services"]["suite"]["image"]
DEPENDENCY_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def suite_services() -> dict[str, dict]:
    """Services that run the suite's image (built by `suite`): their `command` is mcp-suite's arguments."""
    return {name: svc for name, svc in SPEC["services"].items() if svc.get("image") == SUITE_IMAGE or "build" in svc}


def with_defaults(text: str) -> str:
    """`${VAR:-default}` → default (what `docker compose config` shows with nothing set)."""
    return INTERPOLATION.sub(lambda m: m.group(0).split(":-", 1)[1][:-1] if ":-" in m.group(0) else "x", text)


def test_compose_schema():
    assert set(SPEC) <= TOP_LEVEL, set(SPEC) - TOP_LEVEL
    assert {"db", "suite"} <= set(SPEC["services"])
    for name, service in SPEC["services"].items():
        assert set(service) <= SERVICE_KEYS, (name, set(service) - SERVICE_KEYS)
        assert "image" in service or "build" in service
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SPEC["services"] and rule["condition"] in DEPENDENCY_CONDITIONS, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith((".", "/")) or source in SPEC["volumes"], volume
        health = service.get("healthcheck")
        if health:
            assert health["test"][0] in ("CMD", "CMD-SHELL") and health["retries"] >= 1
    text = (REPO / "compose.yaml").read_text()
    stripped = INTERPOLATION.sub("", text)
    assert "${" not in stripped and not re.search(r"\$[A-Za-z_]", stripped), "malformed ${...} interpolation"


def test_compose_shape():
    db, suite = SPEC["services"]["db"], SPEC["services"]["suite"]
    assert db["image"].startswith("pgvector/pgvector:") and "healthcheck" in db
    assert any(v.startswith("pgdata:") for v in db["volumes"]) and "pgdata" in SPEC["volumes"]
    assert "ports" not in db, "the database stays inside the compose network"
    assert "healthcheck" in suite and "MCP_SUITE_API_TOKENS" in suite["environment"]
    # the suite starts only after a healthy database (directly, or through what it depends on)
    seen, todo = set(), ["suite"]
    while todo:
        for dependency, rule in SPEC["services"][todo.pop()].get("depends_on", {}).items():
            if dependency == "db":
                assert rule["condition"] == "service_healthy"
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    assert "db" in seen


def test_every_command_is_a_valid_cli_invocation():
    parser = build_parser()
    for name, service in suite_services().items():
        args = parser.parse_args(service["command"])  # argparse exits (a test error) on anything invalid
        assert callable(args.handler), name
    args = suite_args()
    assert args.command == "serve" and args.name == "all" and args.transport == "http"
    assert args.allow_anonymous is False, "the compose deployment requires tokens"
    assert args.host == "0.0.0.0"  # inside the container; the host publishes loopback only (below)


def test_ports_match_the_command():
    args = suite_args()
    suite = SPEC["services"]["suite"]
    (published,) = suite["ports"]
    host_ip, _, container_port = with_defaults(published).rpartition(":")
    assert host_ip.split(":")[0] == "127.0.0.1", "published on loopback only"
    assert int(container_port) == args.port
    assert f"EXPOSE {args.port}" in dockerfile_lines()
    probe = " ".join(suite["healthcheck"]["test"])
    # /readyz is what tests/interop/harness.py polls to know a real `serve` is ready
    assert f"http://127.0.0.1:{args.port}/readyz" in probe


def test_environment_is_what_the_code_reads():
    read = variables_the_code_reads() | {"DATABASE_URL"}
    for name, service in suite_services().items():
        unknown = set(service.get("environment", {})) - read
        assert not unknown, f"{name} sets variables no code reads: {sorted(unknown)}"
    env_lines = [line for line in dockerfile_lines() if line.startswith("ENV ")]
    image_env = {item.split("=", 1)[0] for line in env_lines for item in shlex.split(line[4:])}
    suite_vars = {name for name in image_env if name.startswith("MCP_SUITE_")}
    assert suite_vars <= read, sorted(suite_vars - read)
    assert SPEC["services"]["suite"]["environment"]["MCP_SUITE_RATE_LIMIT_STORE"] in ("local", "postgres")


def test_database_urls_point_at_the_db_service():
    db_env = SPEC["services"]["db"]["environment"]
    migrators = [svc for svc in suite_services().values() if svc["command"] == ["migrate"]]
    for name, service in suite_services().items():
        url = service["environment"]["DATABASE_URL"]
        parts = urlsplit(with_defaults(url))
        assert (parts.hostname, parts.port, parts.path) == ("db", 5432, f"/{db_env['POSTGRES_DB']}"), name
        password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        if parts.username == db_env["POSTGRES_USER"]:
            assert password == db_env["POSTGRES_PASSWORD"], name
        else:  # a role the migrations create: a migrating service must be given the same password
            assert any(password in svc["environment"].values() for svc in migrators), name
