"""Derivatives end to end, with real components: a `jamnet node` on its embedded devnet, a
`jamnet jam` musician (real aiortc, Opus both ways) playing a folk tune from the bundled corpus
through the node's synthesizer, the `jamnet` CLI for every signature. The first take becomes
a work that takes 10 % of its derivatives; a second take that plays the same tune without
naming it is held back by the similarity check until the owner names it as a parent; then a
payment to the copy sends the original its share, to the wei."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import soundfile
from web3 import Web3

from node.ai.synth import render
from node.keys import load_or_create_key
from tests.e2e.test_cli_jam import read_line_matching
from tests.e2e.test_royalty_loop import JAMNET, cli, get, start_node, wait
from training.corpus import extract, list_units

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _tune_wav(path: Path) -> None:
    unit = list_units(["oneills"], 10)[4]
    pitches = [n.pitch for n in extract(unit).melody if n.pitch is not None][:32]
    beat = 12_000  # four notes a second at 48 kHz
    notes = [(i * beat, beat - 600, p) for i, p in enumerate(pitches)]
    soundfile.write(str(path), render(notes, "piano", len(pitches) * beat), 48000)


def _take(url: str, tmp: Path, keyfile: Path, wav: Path, name: str) -> str:
    """The owner jams alone, playing the tune in a loop; 10 s are recorded."""
    args = [name, "--create", "--node", url, "--name", "owner", "--input", str(wav), "--loop"]
    args += ["--output", str(tmp / f"{name}-out.wav"), "--keyfile", str(keyfile)]
    player = subprocess.Popen(
        [*JAMNET, "jam", *args, "--duration", "60", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        session = read_line_matching(player, r"created session (\w+)", timeout_s=60)
        wait(
            lambda: any(
                p["connected"] for p in get(url, f"/api/sessions/{session}")["participants"]
            ),
            60,
            "the musician connected",
        )
        key = ["--node", url, "--keyfile", str(keyfile)]
        take = cli("recordings", "start", session, *key).split()[-1]
        time.sleep(10.0)
        assert "sealed" in cli("recordings", "stop", session, *key)
        return take
    finally:
        player.terminate()
        player.communicate(timeout=30)


def test_a_copy_is_held_until_it_names_its_parent_and_then_pays_it(tmp_path: Path) -> None:
    keyfile = tmp_path / "owner.json"
    load_or_create_key(keyfile, "")
    wav = tmp_path / "tune.wav"
    _tune_wav(wav)
    proc, url = start_node(tmp_path / "data")
    try:
        key = ["--node", url, "--keyfile", str(keyfile)]
        cli("token", "faucet", *key)
        first = _take(url, tmp_path, keyfile, wav, "original")
        draft = get(url, f"/api/recordings/{first}/work")
        assert draft["similarity"] is None and draft["parents"] == []
        shown = cli("works", "parents", first, "--derivative-bps", "1000", *key)
        assert "takes 10 % of every payment to a derivative" in shown
        cli("works", "consent", first, *key)
        original = wait(
            lambda: (d := get(url, f"/api/recordings/{first}/work"))["state"] == "registered" and d,
            60,
            "the original registered",
        )["work_id"]

        second = _take(url, tmp_path, keyfile, wav, "copy")
        draft = get(url, f"/api/recordings/{second}/work")
        copied = draft["similarity"]
        assert copied is not None and copied["work"] == original and copied["gated"], draft
        assert copied["span_notes"] >= 24
        refused = subprocess.run(
            [*JAMNET, "works", "consent", second, *key],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode != 0 and f"registered work {original}" in refused.stderr
        shown = cli("works", "parents", second, str(original), *key)
        assert f"derived from work(s) {original}" in shown and "similar:" not in shown
        assert "as a derivative of work" in cli("works", "consent", second, *key)
        derived = wait(
            lambda: (
                (d := get(url, f"/api/recordings/{second}/work"))["state"] == "registered" and d
            ),
            60,
            "the copy registered as a derivative",
        )["work_id"]
        tree = cli("works", "tree", str(derived), *key)
        assert f"parents: {original}" in tree and "10 %" in tree

        # A payment to the copy sends the original 10 % of what is left after the fee.
        cli("works", "pay", str(derived), "0.01", *key)
        w3 = Web3(Web3.HTTPProvider(get(url, "/api/chain")["rpc_url"]))
        chain = get(url, "/api/chain")
        abi = [
            {"name": "work", "type": "function", "stateMutability": "view",
             "inputs": [{"name": "workId", "type": "uint256"}],
             "outputs": [{"type": "bytes32"}, {"type": "string"}, {"type": "address"},
                         {"type": "address[]"}, {"type": "uint16[]"}, {"type": "uint256"},
                         {"type": "uint256"}]},
        ]  # fmt: skip
        works = w3.eth.contract(address=chain["addresses"]["WorkRegistry"], abi=abi)
        net = 10**16 - 10**16 * 250 // 10_000  # less the 2.5 % fee
        assert works.functions.work(original).call()[5] == net // 10
        assert works.functions.work(derived).call()[5] == net - net // 10
        tree = cli("works", "tree", str(original), *key)
        assert f"derivatives of it: {derived}" in tree and "received from descendants" in tree
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
