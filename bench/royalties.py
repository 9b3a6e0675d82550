"""Royalty loop figures: the Spark roll-up's throughput and the gas of settling and claiming.

    python bench/royalties.py [--receipts 1000000] [--master local[2]] [--runs 3]

- ``rollup_receipts_per_s``: synthetic receipts (10 000 works, 200 000 listener keys, some
  duplicates and other periods) through spark_jobs/royalties.py's counting on ``--master``,
  median of ``--runs`` (the JSON-lines file is written once, outside the timing);
- ``settle_gas`` at 10, 100 and 1 000 works (one Merkle root each, on a fresh anvil), and
  ``settle_gas_1000_over_10`` (the target is ≤ 1.1: settling is O(1) in works);
- ``claim_gas`` (median over the claims of the 1 000-work period; a claim's proof grows
  with log₂ of the works) and ``claim_gas_by_works``;
- ``take_to_registered_s``: a node on its devnet, two musicians (real aiortc clients) jam and
  the owner records 2 s; from the stop's reply to the work's registration on chain, both
  contributors consenting as soon as the draft is there (median of ``--runs`` takes; the
  seal, the draft, two consents, the outbox and the receipt).

Progress goes to stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account
from web3 import Web3

from bench.machine import StealMeter
from node.chain.consent import Registration, provenance_message
from node.chain.deploy import JAM, deploy
from node.chain.devnet import Devnet
from node.chain.merkle import Payout, PayoutTree
from spark_jobs.royalties import count_plays
from spark_jobs.spark import spark_session

Account.enable_unaudited_hdwallet_features()
MNEMONIC = "test test test test test test test test test test test junk"
ATTESTER = Account.from_mnemonic(MNEMONIC, account_path="m/44'/60'/0'/0/8")
SETTLER = Account.from_mnemonic(MNEMONIC, account_path="m/44'/60'/0'/0/7")


def write_receipts(path: Path, count: int) -> None:
    rng = random.Random(7)
    with path.open("w") as out:
        for i in range(count):
            play = i if rng.random() > 0.01 else max(0, i - 1)  # 1 % duplicates
            out.write(
                json.dumps(
                    {
                        "play_id": f"0x{play:064x}",
                        "period_id": 1 if rng.random() > 0.02 else 2,
                        "work_id": int(rng.paretovariate(1.2)) % 10_000,
                        "listener": f"0x{rng.randrange(200_000):040x}",
                        "address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.1",
                        "counted_at": 1.7e9 + i,
                    }
                )
                + "\n"
            )


def rollup(receipts: int, master: str, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "receipts.jsonl"
        print(f"[royalties] writing {receipts} receipts …", file=sys.stderr)
        write_receipts(path, receipts)
        times = []
        with spark_session("jamnet-royalties-bench", master) as spark:
            for run in range(runs):
                started = time.monotonic()
                plays, kept, read = count_plays(spark, str(path), 1)
                times.append(time.monotonic() - started)
                print(f"[royalties] roll-up {run + 1}: {times[-1]:.1f} s", file=sys.stderr)
    seconds = statistics.median(times)
    return {
        "rollup_receipts": receipts,
        "rollup_kept": kept,
        "rollup_works": len(plays),
        "rollup_s": [round(t, 2) for t in times],
        "rollup_receipts_per_s": round(read / seconds),
    }


def _send(w3: Web3, call: Any, sender: str, value: int = 0) -> dict[str, Any]:
    receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": sender, "value": value}))
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction failed: {receipt}")
    return dict(receipt)


def gas() -> dict[str, Any]:
    result: dict[str, Any] = {}
    with Devnet() as chain:
        w3 = Web3(Web3.HTTPProvider(chain.url))
        accounts = list(w3.eth.accounts)
        deployment = deploy(w3, accounts[0], accounts[1:], settler=SETTLER.address)
        c = deployment.contracts(w3)
        works, pool, token, nodes = (
            c["WorkRegistry"],
            c["RoyaltyPool"],
            c["JamToken"],
            c["NodeRegistry"],
        )
        _send(w3, token.functions.approve(nodes.address, 10_000 * JAM), ATTESTER.address)
        _send(w3, nodes.functions.stake(10_000 * JAM), ATTESTER.address)
        _send(w3, nodes.functions.register("12D3KooWBench", "http://a", "{}"), ATTESTER.address)
        artist = accounts[1]
        print("[royalties] registering 1000 works …", file=sys.stderr)
        chain_id = w3.eth.chain_id
        for i in range(1000):
            content = bytes(Web3.keccak(text=f"bench work {i}"))
            reg = Registration(content, "u", [artist], [10000], 2**40, i, ATTESTER.address)
            proof = ATTESTER.sign_message(
                provenance_message(chain_id, works.address, content, [artist])
            )
            _send(
                w3, works.functions.register(reg.as_tuple(), [b""], bytes(proof.signature)), artist
            )
        _send(w3, pool.functions.fund(), accounts[2], value=3 * 10**20)
        claims: dict[int, list[int]] = {}
        for period, count in enumerate((10, 100, 1000), start=1):
            payouts = [Payout(w, 10**15 + w, 0) for w in range(count)]
            tree = PayoutTree(period, payouts)
            total = sum(p.eth for p in payouts)
            receipt = _send(
                w3, pool.functions.settle(period, tree.root, total, 0, count), SETTLER.address
            )
            result[f"settle_gas_{count}"] = int(receipt["gasUsed"])
            sample = payouts if count <= 100 else payouts[:: count // 50]
            claims[count] = [
                int(
                    _send(
                        w3,
                        pool.functions.claim(period, p.work_id, p.eth, 0, tree.proof(p.work_id)),
                        accounts[3],
                    )["gasUsed"]
                )
                for p in sample
            ]
    result["settle_gas"] = {str(n): result.pop(f"settle_gas_{n}") for n in (10, 100, 1000)}
    result["settle_gas_1000_over_10"] = round(
        result["settle_gas"]["1000"] / result["settle_gas"]["10"], 4
    )
    result["claim_gas"] = int(statistics.median(claims[1000]))
    result["claim_gas_by_works"] = {str(n): int(statistics.median(v)) for n, v in claims.items()}
    return result


def take_to_registered(runs: int) -> dict[str, Any]:
    import asyncio

    import numpy as np
    from eth_account.messages import encode_typed_data

    from client.session import ArraySink, ArraySource, JamClient
    from node.app import Node
    from node.config import load_config

    def sign(account: Any, typed: dict[str, Any]) -> str:
        message = dict(typed["message"])
        message["deadline"], message["nonce"] = int(message["deadline"]), int(message["nonce"])
        signed = account.sign_message(encode_typed_data(full_message={**typed, "message": message}))
        return "0x" + bytes(signed.signature).hex()

    async def run() -> list[float]:
        times = []
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(
                None,
                {
                    "http": {"port": 0},
                    "data_dir": tmp,
                    "chain": {"mode": "devnet", "devnet_port": 0},
                    "ai": {"enabled": False},
                    "p2p": {"enabled": False},
                },
                environ={},
            )
            t = np.arange(48000 * 10) / 48000
            a_tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            b_tone = (0.2 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)
            async with Node(config) as node:
                owner, guest = Account.create(), Account.create()
                async with (
                    JamClient(node.url, owner, "a") as a,
                    JamClient(node.url, guest, "b") as b,
                ):
                    sid = (await a.create_session("bench take"))["id"]
                    await a.join(sid)
                    await b.join(sid)
                    await a.connect(ArraySource(a_tone, loop=True), ArraySink())
                    await b.connect(ArraySource(b_tone, loop=True), ArraySink())
                    await asyncio.sleep(2.0)
                    path = f"/api/sessions/{sid}/recording"
                    for take in range(runs):
                        rid = (await a.request("POST", path, {"action": "start"}, auth=True))[
                            "recording"
                        ]
                        await asyncio.sleep(2.0)
                        await a.request("POST", path, {"action": "stop"}, auth=True)
                        stopped = time.monotonic()
                        draft = await a.request("GET", f"/api/recordings/{rid}/work")
                        for key in (owner, guest):
                            await a.request(
                                "POST",
                                f"/api/recordings/{rid}/work/consents",
                                {
                                    "address": key.address,
                                    "signature": sign(key, draft["typed_data"]),
                                },
                            )
                        for _ in range(1200):  # a minute at most
                            work = await a.request("GET", f"/api/recordings/{rid}/work")
                            if work["state"] in {"registered", "failed"}:
                                break
                            await asyncio.sleep(0.05)
                        if work["state"] != "registered":
                            raise RuntimeError(f"take {rid}: {work['state']} {work['error']}")
                        times.append(time.monotonic() - stopped)
                        print(f"[royalties] take {take + 1}: {times[-1]:.2f} s", file=sys.stderr)
        return times

    times = asyncio.run(run())
    return {
        "take_to_registered_s": round(statistics.median(times), 3),
        "take_to_registered_runs_s": [round(x, 3) for x in times],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--receipts", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    steal = StealMeter()
    result = {"date": time.strftime("%Y-%m-%d"), "master": args.master}
    result.update(take_to_registered(args.runs))
    result.update(gas())
    result.update(rollup(args.receipts, args.master, args.runs))
    result["steal_percent"] = steal.percent()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
