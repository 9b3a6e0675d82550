"""Three node processes in three network namespaces find each other and survive a failure.

Each node lives in its own namespace with one veth into a fourth namespace that bridges
them (10.77.x.1-3/24); no address exists outside the namespaces. The test creates and
removes all four. What it checks: discovery through a bootstrap peer, a session created by a
CLI client on B listed on A and C, a partition (C's link down) noticed and healed, B killed
with SIGKILL dropped by A and C within 2 s, and B restarted (same identity) seen again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from tests.e2e.test_cli_jam import read_line_matching

pytestmark = pytest.mark.slow
SUBNET = 77 + os.getpid() % 100  # parallel runs on one machine get different subnets


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(
            f"`ip {' '.join(args)}` failed: {done.stderr.strip()} (this test needs root and "
            "network namespaces: run it as root, with iproute2 from `make install-test`)"
        )


@pytest.fixture
def namespaces() -> Iterator[dict[str, str]]:
    tag = os.getpid()
    switch = f"jn{tag}sw"
    names = {n: f"jn{tag}{n}" for n in "abc"}
    created: list[str] = []
    try:
        for ns in [switch, *names.values()]:
            ip("netns", "add", ns)
            created.append(ns)
        ip("-n", switch, "link", "add", "br0", "type", "bridge")
        ip("-n", switch, "link", "set", "br0", "up")
        addresses = {}
        for i, (node, ns) in enumerate(names.items(), start=1):
            inside, outside = f"v{tag}{node}", f"s{tag}{node}"
            ip("link", "add", inside, "type", "veth", "peer", "name", outside)
            ip("link", "set", inside, "netns", ns)
            ip("link", "set", outside, "netns", switch)
            ip("-n", switch, "link", "set", outside, "master", "br0", "up")
            address = f"10.{SUBNET}.0.{i}"
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
            ip("-n", ns, "link", "set", inside, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            addresses[node] = address
        yield {**{f"{n}_ns": ns for n, ns in names.items()}, **addresses, "tag": str(tag)}
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def in_ns(ns: str, *command: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, *command], text=True, **kwargs)


def get(ns: str, url: str) -> Any:
    script = (
        "import sys, urllib.request; "
        "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", script, url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return json.loads(done.stdout) if done.returncode == 0 else None


def until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError("condition not met before the deadline")


def start_node(ns: str, address: str, data: Path, bootstrap: str = "") -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "JAMNET_DATA_DIR": str(data),
        "JAMNET_P2P__LISTEN": f"/ip4/{address}/tcp/4001",
        "JAMNET_P2P__BOOTSTRAP": bootstrap,
    }
    proc = in_ns(
        ns,
        sys.executable,
        "-m",
        "node.cli",
        "node",
        "--host",
        address,
        "--port",
        "8080",
        "--chain",
        "off",
        "--no-ai",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        read_line_matching(proc, r"(jamnet node is up)", timeout_s=60)
    except BaseException:
        stop(proc, signal.SIGKILL)  # never leave a node behind a failed start
        raise
    return proc


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=15)


def test_three_namespaces_discover_share_and_survive(namespaces, tmp_path: Path) -> None:
    ns_a, ns_b, ns_c = namespaces["a_ns"], namespaces["b_ns"], namespaces["c_ns"]
    ip_a, ip_b, ip_c = namespaces["a"], namespaces["b"], namespaces["c"]
    url = {"a": f"http://{ip_a}:8080", "b": f"http://{ip_b}:8080", "c": f"http://{ip_c}:8080"}
    procs: list[subprocess.Popen[str]] = []
    try:
        a = start_node(ns_a, ip_a, tmp_path / "a")
        procs.append(a)
        seed = get(ns_a, url["a"] + "/api/network")["self"]["addrs"][0]
        assert seed.startswith(f"/ip4/{ip_a}/tcp/4001/p2p/")
        b = start_node(ns_b, ip_b, tmp_path / "b", seed)
        procs.append(b)
        c = start_node(ns_c, ip_c, tmp_path / "c", seed)
        procs.append(c)

        def everyone_sees_two() -> bool:
            views = [
                get(ns, url[n] + "/api/network")
                for n, ns in (("a", ns_a), ("b", ns_b), ("c", ns_c))
            ]
            return all(v is not None and len(v["peers"]) == 2 for v in views)

        until(everyone_sees_two)
        b_id = get(ns_b, url["b"] + "/api/network")["self"]["peer_id"]

        # A musician in B's namespace creates a session there with the CLI client.
        wav = tmp_path / "in.wav"
        soundfile.write(str(wav), np.zeros(48000, np.float32), 48000)
        client = in_ns(
            ns_b,
            sys.executable,
            "-m",
            "node.cli",
            "jam",
            "netns jam",
            "--create",
            "--node",
            url["b"],
            "--input",
            str(wav),
            "--loop",
            "--output",
            str(tmp_path / "o.wav"),
            "--keyfile",
            str(tmp_path / "key.json"),
            "--duration",
            "60",
            env={**os.environ, "JAMNET_KEY_PASSWORD": "test"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(client)
        session_id = read_line_matching(client, r"created session (\w+)")

        def listed_on(n: str, ns: str) -> bool:
            entries = (get(ns, url[n] + "/api/directory") or {"sessions": []})["sessions"]
            return any(e["id"] == session_id and e["node"].startswith(url["b"]) for e in entries)

        until(lambda: listed_on("a", ns_a) and listed_on("c", ns_c))

        # A partition: C's link goes down; A and B drop C, and C comes back when it heals.
        c_id = get(ns_c, url["c"] + "/api/network")["self"]["peer_id"]
        c_link = f"v{namespaces['tag']}c"
        ip("-n", ns_c, "link", "set", c_link, "down")

        def c_seen_by(n: str, ns: str) -> bool:
            view = get(ns, url[n] + "/api/network")
            return view is not None and any(p["peer_id"] == c_id for p in view["peers"])

        until(lambda: not c_seen_by("a", ns_a) and not c_seen_by("b", ns_b), timeout_s=10)
        ip("-n", ns_c, "link", "set", c_link, "up")
        until(lambda: c_seen_by("a", ns_a) and c_seen_by("b", ns_b) and listed_on("c", ns_c))

        # B dies without a word: A and C drop it (and its session) within 2 s.
        stop(client)
        b.send_signal(signal.SIGKILL)
        b.communicate(timeout=15)
        killed = time.monotonic()

        def b_gone() -> bool:
            for n, ns in (("a", ns_a), ("c", ns_c)):
                view = get(ns, url[n] + "/api/network")
                if view is None or any(p["peer_id"] == b_id for p in view["peers"]):
                    return False
            return True

        until(b_gone, timeout_s=10)
        assert time.monotonic() - killed < 2.5  # 1.75 s silence + polling through `ip netns`
        assert not listed_on("a", ns_a)

        # B comes back with the same identity and is seen again.
        b = start_node(ns_b, ip_b, tmp_path / "b", seed)
        procs.append(b)
        assert get(ns_b, url["b"] + "/api/network")["self"]["peer_id"] == b_id
        until(
            lambda: any(p["peer_id"] == b_id for p in get(ns_c, url["c"] + "/api/network")["peers"])
        )
    finally:
        for proc in reversed(procs):
            stop(proc)
