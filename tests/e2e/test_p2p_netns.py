"""Three node processes in three network namespaces find each other and survive a failure.

Each node lives in its own namespace with one veth into a fourth namespace, where our
user-space switch (tests/e2e/impair_switch.py: this kernel has no tc netem) forwards frames
between them with 15 ± 5 ms of delay and 1% loss on every IPv4 frame, so every hop between
two nodes is impaired (10.x.0.1-3/24; no address exists outside the namespaces). The test
creates and removes all four. What it checks: discovery through a bootstrap peer (B) and by
mDNS alone (C); a session created by a CLI client on B listed on A and C; a CLI client on A
joining it through A (a bridged session), the two hearing each other's tones; a partition
(C's link down) noticed and healed; B killed with SIGKILL dropped by A and C for its silence; and
B restarted (same identity) seen again.
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

import pytest
import soundfile

from tests.conftest import band_rms, tone
from tests.e2e.test_cli_jam import read_line_matching

pytestmark = pytest.mark.slow
SUBNET = 77 + os.getpid() % 100  # parallel runs on one machine get different subnets
SWITCH = Path(__file__).with_name("impair_switch.py")
IMPAIRMENT = ["--delay-ms", "15", "--jitter-ms", "5", "--loss", "0.01"]


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
        addresses = {}
        ports = []
        for i, (node, ns) in enumerate(names.items(), start=1):
            inside, outside = f"v{tag}{node}", f"s{tag}{node}"
            ip("link", "add", inside, "type", "veth", "peer", "name", outside)
            ip("link", "set", inside, "netns", ns)
            ip("link", "set", outside, "netns", switch)
            ip("-n", switch, "link", "set", outside, "up")
            address = f"10.{SUBNET}.0.{i}"
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
            ip("-n", ns, "link", "set", inside, "up")
            ip("-n", ns, "link", "set", "lo", "up")
            # Frames pass through user space: no segmentation or checksum offloads.
            no_offloads(ns, inside)
            no_offloads(switch, outside)
            addresses[node] = address
            ports.append(outside)
        relay = subprocess.Popen(
            ["ip", "netns", "exec", switch, sys.executable, str(SWITCH), *ports, *IMPAIRMENT],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            read_line_matching(relay, r"(switch ready)", timeout_s=30)
            yield {**{f"{n}_ns": ns for n, ns in names.items()}, **addresses, "tag": str(tag)}
        finally:
            relay.terminate()
            out, _ = relay.communicate(timeout=15)
            print(out)
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def no_offloads(ns: str, device: str) -> None:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "ethtool", "-K", device, "tx", "off", "rx", "off",
         "tso", "off", "gso", "off", "gro", "off"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(
            f"ethtool -K {device} failed: {done.stderr.strip()} "
            "(ethtool comes with `make install-test`)"
        )


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
        c = start_node(ns_c, ip_c, tmp_path / "c")  # no bootstrap peer: mDNS finds the others
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
        soundfile.write(str(wav), tone(660, 2.0), 48000)
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
            str(tmp_path / "b-out.wav"),
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

        # A musician in A's namespace joins that session through A: A bridges it from B.
        wav_a = tmp_path / "a.wav"
        soundfile.write(str(wav_a), tone(440, 2.0), 48000)
        guest = in_ns(
            ns_a, sys.executable, "-m", "node.cli", "jam", session_id, "--node", url["a"],
            "--input", str(wav_a), "--loop", "--output", str(tmp_path / "a-out.wav"),
            "--keyfile", str(tmp_path / "guest.json"), "--duration", "60",
            env={**os.environ, "JAMNET_KEY_PASSWORD": "test"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        procs.append(guest)

        def bridged() -> bool:
            shown = get(ns_b, url["b"] + f"/api/sessions/{session_id}")
            return shown is not None and len(shown["participants"]) == 2

        until(bridged)
        time.sleep(6)  # both play into each other's ears for a while
        stop(guest)
        stop(client)  # SIGTERM: both leave cleanly and write what they heard
        assert guest.returncode == 0 and client.returncode == 0
        heard_by_a, _ = soundfile.read(str(tmp_path / "a-out.wav"), dtype="float32")
        heard_by_b, _ = soundfile.read(str(tmp_path / "b-out.wav"), dtype="float32")
        tail_a, tail_b = (
            heard_by_a[-3 * 48000 :].mean(axis=1),
            heard_by_b[-3 * 48000 :].mean(axis=1),
        )
        assert band_rms(tail_a, 660) > 0.005, "A must hear B's tone across the bridge"
        assert band_rms(tail_b, 440) > 0.005, "B must hear A's tone across the bridge"
        assert band_rms(tail_a, 440) < 0.2 * band_rms(tail_a, 660), "A must not hear itself"

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

        # B dies without a word: A and C drop it (and its session).
        stop(client)
        b.send_signal(signal.SIGKILL)
        b.communicate(timeout=15)

        def b_gone() -> bool:
            for n, ns in (("a", ns_a), ("c", ns_c)):
                view = get(ns, url[n] + "/api/network")
                if view is None or any(p["peer_id"] == b_id for p in view["peers"]):
                    return False
            return True

        until(b_gone, timeout_s=60)
        # Each node dropped B for its silence (at least the peer TTL of it; how soon is a
        # speed figure: bench/p2p.py's peer_loss_silence_s, about 2 s on a quiet machine).
        for n, ns in (("a", ns_a), ("c", ns_c)):
            departed = get(ns, url[n] + "/api/network")["departed"]
            silences = [d["silent_s"] for d in departed if d["peer_id"] == b_id]
            assert silences and 1.0 < max(silences) < 30.0, silences
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
