"""Contribution records: level shares, file hashes, EIP-712 signatures and their checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_hash.auto import keccak
from hypothesis import given
from hypothesis import strategies as st

from node import records
from node.errors import InputError


@given(st.lists(st.floats(0, 1e9, allow_nan=False), min_size=1, max_size=40))
def test_level_shares_add_up_to_exactly_ten_thousand(energies: list[float]) -> None:
    shares = records.level_shares(energies)
    assert len(shares) == len(energies) and all(s >= 0 for s in shares)
    if sum(energies) > 0:
        assert sum(shares) == records.BPS
        total = sum(energies)
        for share, energy in zip(shares, energies, strict=True):
            assert abs(share - energy * records.BPS / total) < 1.0  # off by a remainder only
    else:
        assert shares == [0] * len(energies)


def test_file_hash_is_keccak_of_the_bytes_read_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "mix.wav"
    data = bytes(range(256)) * 9000  # over two 1 MiB chunks
    path.write_bytes(data)
    assert records.file_hash(path) == "0x" + keccak(data).hex()
    assert records.file_hash(tmp_path / "missing.wav") == records.ZERO_HASH


def _recording(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "mix.wav").write_bytes(b"mix")
    (tmp_path / "stem-a.wav").write_bytes(b"a")
    (tmp_path / "stem-b.wav").write_bytes(b"b")
    a, b = Account.create().address, Account.create().address
    return {
        "id": "20261201T120000-abc123",
        "session_id": "s1",
        "started_at": 1_800_000_000.5,
        "stopped_at": 1_800_000_060.2,
        "contributions": [
            {"address": b, "active_s": 12.5, "rms": 0.1, "frames": 3000, "stem": "stem-b.wav"},
            {"address": a, "active_s": 50.0, "rms": 0.3, "frames": 3000, "stem": "stem-a.wav"},
        ],
    }


def test_a_sealed_record_verifies_and_any_change_is_caught(tmp_path: Path) -> None:
    row = _recording(tmp_path)
    record = records.build(row, tmp_path)
    assert record["mixHash"] == "0x" + keccak(b"mix").hex()
    assert [c["account"] for c in record["contributors"]] == sorted(
        (c["address"] for c in row["contributions"]), key=str.lower
    )
    by_account = {c["account"]: c for c in record["contributors"]}
    louder = next(c for c in row["contributions"] if c["rms"] == 0.3)
    assert by_account[louder["address"]]["levelShareBps"] == 9000  # 0.09 of 0.10 energy
    assert by_account[louder["address"]]["activeMs"] == 50_000
    node = Account.create()
    sealed = records.sign(record, node)
    assert records.verify(sealed) == node.address

    changed = {**record, "stoppedAt": record["stoppedAt"] + 1}
    with pytest.raises(InputError, match="signed by"):
        records.verify({**sealed, "record": changed})
    with pytest.raises(InputError, match="signed by"):
        records.verify({**sealed, "signer": Account.create().address})


@pytest.mark.parametrize(
    "sealed",
    [
        None,
        [],
        {"record": "x", "signer": "0x0", "signature": "0x00"},
        {"record": {}, "signer": "0x0", "signature": "0x00"},
        {"record": {"recordingId": "r"}, "signature": 5},
    ],
)
def test_malformed_records_are_input_errors(sealed: Any) -> None:
    with pytest.raises(InputError):
        records.verify(sealed)


def test_a_record_with_bad_fields_or_signature_is_an_input_error(tmp_path: Path) -> None:
    record = records.build(_recording(tmp_path), tmp_path)
    sealed = records.sign(record, Account.create())
    bad_share = {**record, "contributors": [{**record["contributors"][0], "levelShareBps": -1}]}
    for broken in (
        {**sealed, "signature": "0x1234"},
        {**sealed, "signature": "not hex"},
        {**sealed, "record": {**record, "mixHash": "0x12"}},
        {**sealed, "record": bad_share},
    ):
        with pytest.raises(InputError):
            records.verify(broken)
