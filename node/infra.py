"""`jamnet infra build|up|down|status`: the node image and the Swarm stack, for operators.

The Docker engine is driven through the docker SDK for Python: images are built with it,
the swarm is initialised when needed, secrets are created from the operator's files, and
the stack's services and their tasks' health are read back. ``docker stack deploy`` itself
is a client-side feature of the docker CLI (it turns the stack file into services): `up`
runs it. Every failure says what to do; no engine reachable is the common one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import node
from node.errors import JamnetError

ROOT = Path(__file__).resolve().parent.parent
SWARM = ROOT / "infra" / "swarm"
WHEELS = SWARM / "wheels"
STACK = "jamnet"
TRAINING_ONLY = {"pyspark", "pandas", "pyarrow", "music21"}


class InfraError(JamnetError):
    """The engine is unreachable, or a build or deploy step failed."""


def engine() -> Any:
    """A docker SDK client for the engine of this environment (DOCKER_HOST or the socket)."""
    try:
        import docker
    except ImportError:  # pragma: no cover - a dependency of jamnet
        raise InfraError("the docker SDK is missing: run `make install`") from None
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        raise InfraError(
            f"no Docker engine reachable at {where} ({type(exc).__name__}): start one "
            "(`systemctl start docker`, or `dockerd &`) or point DOCKER_HOST at it"
        ) from None
    return client


def runtime_requirements(training: bool = False) -> list[str]:
    """The pinned dependencies the node image needs (plus the training ones if asked)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps: list[str] = project["dependencies"]
    return [d for d in deps if training or d.split("==")[0] not in TRAINING_ONLY]


def fill_wheelhouse(training: bool) -> None:
    """Every wheel the image build installs, in infra/swarm/wheels (kept between builds)."""
    WHEELS.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(WHEELS),
        "--find-links", str(WHEELS), "-c", str(ROOT / "requirements.lock"),
        *runtime_requirements(training),
    ]  # fmt: skip
    print(f"wheels → {WHEELS.relative_to(ROOT)} (pip wheel; fast when already there)")
    done = subprocess.run(command, check=False)  # noqa: S603 - our own interpreter and lock
    if done.returncode != 0:
        raise InfraError("pip could not fetch or build the wheels (see its output above)")


def build(tag: str, trainer: bool, base: str | None, wheels: bool = True) -> list[str]:
    """Build the node image (and the trainer image); returns the tags built."""
    if not (ROOT / "contracts" / "build").is_dir():
        raise InfraError("contracts/build is missing: run `make install` first")
    for needed in ("@openzeppelin/contracts", "@foundry-rs/anvil-linux-amd64"):
        if not (ROOT / "node_modules" / needed).is_dir():
            raise InfraError(f"node_modules/{needed} is missing: run `make install` first")
    client = engine()
    if wheels:
        fill_wheelhouse(training=trainer)
    targets = [("node", tag)]
    if trainer:
        targets.append(("trainer", tag.replace("/node:", "/trainer:")))
    for target, name in targets:
        print(f"building {name} (target {target})")
        started = time.monotonic()
        args = {"BASE": base} if base else {}
        stream = client.api.build(
            path=str(ROOT), dockerfile="infra/swarm/Dockerfile", tag=name, target=target,
            buildargs=args, rm=True, forcerm=True, decode=True,
        )  # fmt: skip
        for chunk in stream:
            if "error" in chunk:
                raise InfraError(f"image build failed: {chunk['error'].strip()}")
            line = str(chunk.get("stream", "")).rstrip()
            if line.startswith("Step "):
                print(f"  {line}")
        print(f"built {name} in {time.monotonic() - started:.0f} s")
    return [name for _, name in targets]


def _secret(client: Any, name: str, path: Path) -> None:
    if client.secrets.list(filters={"name": name}):
        return
    if not path.is_file():
        raise InfraError(
            f"secret {name}: {path} does not exist (make it, or pass its path; see "
            "docs/operators.md, 'Keys and secrets')"
        )
    client.secrets.create(name=name, data=path.read_bytes())
    print(f"secret {name} created from {path}")


def up(stack: str, keyfile: Path, password_file: Path, bootstrap: str) -> None:
    """Initialise the swarm if needed, create the secrets, deploy the stack."""
    client = engine()
    info = client.info()
    if info.get("Swarm", {}).get("LocalNodeState") != "active":
        print("this engine is not in a swarm: initialising one (docker swarm init)")
        try:
            client.swarm.init(advertise_addr=os.environ.get("JAMNET_SWARM_ADDR", "127.0.0.1"))
        except Exception as exc:
            raise InfraError(f"swarm init failed: {exc}") from None
    _secret(client, "jamnet_node_key", keyfile)
    _secret(client, "jamnet_key_password", password_file)
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise InfraError("`docker stack deploy` needs the docker CLI on PATH")
    env = {**os.environ, "JAMNET_BOOTSTRAP": bootstrap, "JAMNET_IMAGE": _image_tag()}
    done = subprocess.run(  # noqa: S603 - the docker CLI with our stack file
        [docker_cli, "stack", "deploy", "--prune", "-c", str(SWARM / "stack.yml"), stack],
        env=env, cwd=SWARM, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise InfraError("docker stack deploy failed (see its output above)")
    print(f"stack {stack} deployed; `jamnet infra status` shows its services")


def down(stack: str) -> None:
    """Remove the stack's services (volumes and secrets stay)."""
    client = engine()
    services = _services(client, stack)
    for service in services:
        service.remove()
        print(f"removed {service.name}")
    if not services:
        print(f"no services of stack {stack!r} are running")


def _services(client: Any, stack: str) -> list[Any]:
    label = f"com.docker.stack.namespace={stack}"
    return list(client.services.list(filters={"label": label}))


def status(stack: str) -> dict[str, Any]:
    """The swarm, and each service's running/desired tasks and their health."""
    client = engine()
    info = client.info()
    report: dict[str, Any] = {
        "engine": info.get("ServerVersion"),
        "swarm": info.get("Swarm", {}).get("LocalNodeState"),
        "services": [],
    }
    for service in _services(client, stack):
        tasks = service.tasks()
        running = [t for t in tasks if t["Status"]["State"] == "running"]
        mode = service.attrs["Spec"]["Mode"]
        desired = mode["Replicated"]["Replicas"] if "Replicated" in mode else "global"
        health = []
        for task in running:
            container = task["Status"].get("ContainerStatus", {}).get("ContainerID")
            if container:
                try:
                    state = client.containers.get(container).attrs["State"]
                    health.append(state.get("Health", {}).get("Status", "no healthcheck"))
                except Exception:
                    health.append("on another machine")
        report["services"].append(
            {
                "name": service.name,
                "running": len(running),
                "desired": desired,
                "health": health,
                "last_error": None if running else _last_error(tasks),
            }
        )
    return report


def _last_error(tasks: list[dict[str, Any]]) -> str | None:
    """The newest task's error (why the service is not running)."""
    for task in sorted(tasks, key=lambda t: str(t.get("UpdatedAt", "")), reverse=True):
        error = task["Status"].get("Err")
        if error:
            return str(error)
    return None


def _image_tag() -> str:
    return f"jamnet/node:{node.__version__}"


def main(argv: list[str]) -> int:
    """Entry point of `jamnet infra`."""
    parser = argparse.ArgumentParser(prog="jamnet infra", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="build the node image (and --trainer) with the docker SDK")
    b.add_argument("--tag", default=_image_tag())
    b.add_argument("--trainer", action="store_true", help="also the Spark/training image")
    b.add_argument("--base", help="base image (default python:3.11-slim-bookworm)")
    b.add_argument("--no-wheels", action="store_true", help="use infra/swarm/wheels as it is")
    u = sub.add_parser("up", help="swarm init if needed, secrets, stack deploy")
    u.add_argument("--stack", default=STACK)
    u.add_argument("--keyfile", type=Path, default=SWARM / "secrets" / "node-key.json")
    u.add_argument("--password-file", type=Path, default=SWARM / "secrets" / "key-password")
    u.add_argument("--bootstrap", default="", help="multiaddrs of nodes to join (comma-separated)")
    d = sub.add_parser("down", help="remove the stack's services")
    d.add_argument("--stack", default=STACK)
    s = sub.add_parser("status", help="the stack's services, tasks and health")
    s.add_argument("--stack", default=STACK)
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            build(args.tag, args.trainer, args.base, wheels=not args.no_wheels)
        elif args.action == "up":
            up(args.stack, args.keyfile, args.password_file, args.bootstrap)
        elif args.action == "down":
            down(args.stack)
        else:
            report = status(args.stack)
            print(f"engine {report['engine']}, swarm {report['swarm']}")
            for svc in report["services"]:
                health = ", ".join(svc["health"]) or "-"
                error = f"; last error: {svc['last_error']}" if svc["last_error"] else ""
                print(f"  {svc['name']}: {svc['running']}/{svc['desired']} running, "
                      f"health: {health}{error}")  # fmt: skip
            if not report["services"]:
                print(f"  no services of stack {args.stack!r}: `jamnet infra up` deploys it")
    except InfraError as exc:
        print(f"jamnet infra {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0
