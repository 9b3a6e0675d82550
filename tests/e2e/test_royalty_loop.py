"""The royalty loop end to end, with real components: a `jamnet node` process on its embedded
anvil devnet, two `jamnet jam` musicians (real aiortc), the `jamnet` CLI for every signature,
listeners on three loopback addresses (two of them attacking the caps), Spark `local[2]` for
the roll-up, a SIGKILL during settlement, withdrawals to the wei."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import soundfile
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from node.chain.build import build
from node.keys import load_or_create_key
from node.listens import KEYS_PER_ADDRESS
from tests.conftest import tone
from tests.e2e.test_cli_jam import read_line_matching

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
JAMNET = [sys.executable, "-m", "node.cli"]
NODE = [*JAMNET, "node"]


def start_node(data: Path) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "JAMNET_DATA_DIR": str(data),
        "JAMNET_CHAIN__DEVNET_PORT": "0",
        "JAMNET_CHAIN__SPARK_MASTER": "local[2]",
        "JAMNET_KEY_PASSWORD": "",
    }
    with (data.parent / "node.log").open("a") as log:  # kept for a failing run's diagnosis
        proc = subprocess.Popen(
            [*NODE, "--port", "0", "--chain", "devnet", "--no-ai", "--no-p2p"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
    return proc, read_line_matching(proc, r"open (http\S+)", timeout_s=120).rstrip("/")


def cli(*args: str, timeout: float = 180) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "JAMNET_KEY_PASSWORD": ""},
        check=False,
    )
    assert done.returncode == 0, f"jamnet {' '.join(args)}: {done.stderr}"
    return done.stdout


def request(
    url: str, method: str, path: str, body: Any = None, source: str = "127.0.0.1"
) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60, source_address=(source, 0))
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read() or b"null")
    finally:
        connection.close()


def get(url: str, path: str) -> Any:
    status, body = request(url, "GET", path)
    assert status == 200, body
    return body


def wait(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


def sign_receipt(account: Any, play: dict[str, Any], played_ms: int) -> dict[str, Any]:
    typed = play["typed_data"]
    message = dict(typed["message"], playedMs=played_ms)
    signed = account.sign_message(encode_typed_data(full_message={**typed, "message": message}))
    return {"played_ms": played_ms, "signature": "0x" + bytes(signed.signature).hex()}


def jam_and_record(url: str, tmp: Path, keys: dict[str, Path]) -> str:
    """Two `jamnet jam` processes play tones; the owner records 3 s from a third terminal."""
    wavs = {}
    for name, hz, level in (("owner", 440, 0.3), ("guest", 660, 0.15)):
        wavs[name] = tmp / f"{name}-in.wav"
        soundfile.write(str(wavs[name]), tone(hz, 10, level), 48000)

    def player(name: str, session: str, *extra: str) -> subprocess.Popen[str]:
        args = [session, "--node", url, "--name", name, "--input", str(wavs[name]), "--loop"]
        args += ["--output", str(tmp / f"{name}-out.wav"), "--keyfile", str(keys[name])]
        return subprocess.Popen(
            [*JAMNET, "jam", *args, "--duration", "90", "--quiet", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "JAMNET_KEY_PASSWORD": ""},
        )

    owner = player("owner", "royalty take", "--create")
    guest = None
    try:
        session = read_line_matching(owner, r"created session (\w+)", timeout_s=60)
        guest = player("guest", session)
        wait(
            lambda: (
                len(get(url, f"/api/sessions/{session}")["participants"]) == 2
                and all(
                    p["connected"] for p in get(url, f"/api/sessions/{session}")["participants"]
                )
            ),
            60,
            "both musicians connected",
        )
        time.sleep(1.0)
        owner_key = ["--node", url, "--keyfile", str(keys["owner"])]
        started = cli("recordings", "start", session, *owner_key)
        take = started.split()[-1]
        time.sleep(3.0)
        assert "sealed" in cli("recordings", "stop", session, *owner_key)
        return take
    finally:
        for proc in (owner, guest):
            if proc is not None:
                proc.terminate()
                proc.communicate(timeout=30)


def test_a_take_becomes_a_paid_work(tmp_path: Path) -> None:
    data = tmp_path / "data"
    keys = {name: tmp_path / f"{name}.json" for name in ("owner", "guest", "sponsor", "fan")}
    accounts = {name: load_or_create_key(path, "") for name, path in keys.items()}
    owner, guest = accounts["owner"], accounts["guest"]
    cold = Account.create().address
    proc, url = start_node(data)
    try:
        node = ["--node", url]
        for name in ("owner", "guest", "sponsor"):
            cli("token", "faucet", *node, "--keyfile", str(keys[name]))

        # 1. Two musicians jam; the owner records and stops.
        take = jam_and_record(url, tmp_path, keys)

        # 2. The split proposed from the contribution record; the owner sets 70/30; both
        #    consent with the CLI; the node registers the work through its outbox.
        draft = get(url, f"/api/recordings/{take}/work")
        assert {e["address"] for e in draft["split"]} == {owner.address, guest.address}
        assert sum(e["bps"] for e in draft["split"]) == 10_000
        split = [f"{owner.address}:7000", f"{guest.address}:3000"]
        # Only the session's owner may set it.
        refused = subprocess.run(
            [*JAMNET, "works", "split", take, *split, *node, "--keyfile", str(keys["guest"])],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode != 0 and "owner" in refused.stderr
        cli("works", "split", take, *split, *node, "--keyfile", str(keys["owner"]))
        cli("works", "consent", take, *node, "--keyfile", str(keys["guest"]))
        stopped_at = time.monotonic()
        assert "waiting" not in cli(
            "works", "consent", take, *node, "--keyfile", str(keys["owner"])
        )
        registered = wait(
            lambda: (d := get(url, f"/api/recordings/{take}/work"))["state"] == "registered" and d,
            60,
            "registration",
        )
        take_to_registered_s = time.monotonic() - stopped_at
        work = int(registered["work_id"])
        shown = cli("works", "show", str(work), *node, "--keyfile", str(keys["owner"]))
        assert "70 %" in shown and "30 %" in shown
        # The content URI resolves, through NodeRegistry, to this node's range-request stream.
        resolved = get(url, f"/api/content/resolve?uri={registered['uri']}")
        assert resolved["url"].endswith(f"/api/content/{registered['content_hash']}")
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request(
            "GET", f"/api/content/{registered['content_hash']}", headers={"Range": "bytes=0-11"}
        )
        ranged = connection.getresponse()
        assert ranged.status == 206 and ranged.read()[:4] == b"RIFF"
        connection.close()

        # 3. A sponsor funds the pool. Three listeners: an honest one (the CLI, 127.0.0.2),
        #    one key faking 1,000 plays (127.0.0.3), 50 keys from one address (127.0.0.4).
        cli("royalties", "fund", "0.5", *node, "--keyfile", str(keys["sponsor"]))
        cli("royalties", "fund", "900", "--jam", *node, "--keyfile", str(keys["sponsor"]))
        faker = Account.create()
        farm = [Account.create() for _ in range(50)]
        fakes: list[dict[str, Any]] = []
        farmed: list[tuple[Any, dict[str, Any]]] = []
        for _ in range(1000):
            status, play = request(
                url, "POST", f"/api/works/{work}/plays", {"listener": faker.address}, "127.0.0.3"
            )
            if status == 201:
                fakes.append(play)
        assert 0 < len(fakes) < 1000, "play starts from one address are rate-limited"
        for key in farm:
            status, play = request(
                url, "POST", f"/api/works/{work}/plays", {"listener": key.address}, "127.0.0.4"
            )
            if status == 201:
                farmed.append((key, play))
        with ThreadPoolExecutor(1) as pool:
            honest = pool.submit(
                cli, "works", "listen", str(work), "--seconds", "31", "--source", "127.0.0.2",
                *node, "--keyfile", str(keys["fan"]),
            )  # fmt: skip
            # Too early: a receipt before 30 s of playback does not count.
            early = request(
                url,
                "POST",
                f"/api/plays/{fakes[0]['play_id']}/receipt",
                sign_receipt(faker, fakes[0], 30_000),
                "127.0.0.3",
            )
            assert early[0] == 409 and "30 s" in early[1]["error"]
            time.sleep(31.5)
            counted_fake = sum(
                request(
                    url,
                    "POST",
                    f"/api/plays/{p['play_id']}/receipt",
                    sign_receipt(faker, p, 31_000),
                    "127.0.0.3",
                )[0]
                == 201
                for p in fakes
            )
            counted_farm = sum(
                request(
                    url,
                    "POST",
                    f"/api/plays/{p['play_id']}/receipt",
                    sign_receipt(k, p, 31_000),
                    "127.0.0.4",
                )[0]
                == 201
                for k, p in farmed
            )
            assert "counted in period 1" in honest.result()
        assert counted_fake == 1, "one key, one play at a time"
        assert counted_farm == KEYS_PER_ADDRESS, (
            "a farm of keys behind one address counts as one household"
        )
        plays = 1 + counted_fake + counted_farm
        assert f"plays {plays}" in cli("works", "list", *node)

        # 4. The period closes; the node is killed with SIGKILL while it settles (during the
        #    Spark roll-up), restarted, and settles once.
        node_key = ["--keyfile", str(data / "chain" / "node-key.json")]
        cli("royalties", "close", *node, *node_key)
        wait(lambda: get(url, "/api/royalties")["periods"][1]["state"] == "closed", 5, "closing")
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        proc, url = start_node(data)
        node = ["--node", url]
        settled = wait(
            lambda: (p := get(url, "/api/royalties")["periods"][1])["state"] == "settled" and p,
            240,
            "settlement after the restart",
        )
        rollup = settled["rollup"]
        assert rollup["receipts"] == plays and rollup["plays"] == {str(work): plays}
        # What funded the pool, less the node operators' 10 % (to NodeRewards).
        pool_eth, pool_jam = 5 * 10**17 * 9 // 10, 900 * 10**18 * 9 // 10
        assert int(rollup["paid"]["eth"]) + int(rollup["dust"]["eth"]) == pool_eth
        assert int(rollup["paid"]["token"]) + int(rollup["dust"]["token"]) == pool_jam

        # 5. Both withdraw, the guest to another address; every wei is accounted for.
        info = get(url, "/api/chain")
        w3 = Web3(Web3.HTTPProvider(info["rpc_url"]))
        artifacts = build()
        works = w3.eth.contract(
            address=info["addresses"]["WorkRegistry"], abi=artifacts["WorkRegistry"].abi
        )
        royalty_pool = w3.eth.contract(
            address=info["addresses"]["RoyaltyPool"], abi=artifacts["RoyaltyPool"].abi
        )
        period = royalty_pool.functions.period(1).call()
        assert period[1:5] == [pool_eth, pool_jam, pool_eth, pool_jam], "claimed exactly once"
        assert royalty_pool.functions.isClaimed(1, work).call()
        detail = works.functions.work(work).call()
        fee_eth, fee_jam = pool_eth - detail[5], pool_jam - detail[6]
        assert fee_eth == pool_eth * 250 // 10_000 and fee_jam == pool_jam * 250 // 10_000
        before = w3.eth.get_balance(cold)
        cli("works", "withdraw", str(work), *node, "--keyfile", str(keys["owner"]))
        cli("works", "withdraw", str(work), "--jam", *node, "--keyfile", str(keys["owner"]))
        cli("works", "withdraw", str(work), "--to", cold, *node, "--keyfile", str(keys["guest"]))
        earned = cli("works", "earnings", *node, "--keyfile", str(keys["guest"]))
        assert f"work {work} (30 %)" in earned and "period 1 (settled)" in earned
        owner_eth = detail[5] * 7000 // 10_000
        guest_eth = detail[5] * 3000 // 10_000
        assert w3.eth.get_balance(cold) - before == guest_eth
        left = (
            works.functions.owedEth(work, owner.address).call()
            + works.functions.owedEth(work, guest.address).call()
        )
        assert left == 0
        dust_in_split = detail[5] - owner_eth - guest_eth
        assert owner_eth + guest_eth + dust_in_split + fee_eth == pool_eth, "every wei"
        assert dust_in_split <= 2
        status = cli("royalties", "status", *node)
        assert "period 1: settled" in status
        print(json.dumps({"take_to_registered_s": round(take_to_registered_s, 2)}))
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=30)
