"""Listen receipts: signatures, the 30 s rule, the caps, the append-only log (time injected,
so nothing depends on speed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from node.errors import AuthError, InputError, RateLimitError, SessionError
from node.listens import KEYS_PER_ADDRESS, PER_KEY_PER_MONTH, ListenBook
from node.works import parse_split, proposed_split
from spark_jobs.royalties import allocate

CONTENT = "0x" + "ab" * 32


def signed(account: Any, play: dict[str, Any], played_ms: int = 31_000) -> str:
    typed = play["typed_data"]
    message = dict(typed["message"], playedMs=played_ms)
    return (
        "0x"
        + bytes(
            account.sign_message(
                encode_typed_data(full_message={**typed, "message": message})
            ).signature
        ).hex()
    )


def listen(
    book: ListenBook, account: Any, address: str, at: float, period: int = 1
) -> dict[str, Any]:
    play = book.start(7, CONTENT, account.address, address, at)
    return book.receipt(play["play_id"], 31_000, signed(account, play), address, period, at + 31)


def test_a_receipt_counts_after_30_s_signed_by_the_players_key(tmp_path: Path) -> None:
    book = ListenBook(tmp_path / "l.sqlite3", 31337)
    fan, thief = Account.create(), Account.create()
    play = book.start(7, CONTENT, fan.address, "10.0.0.1", 1000.0)
    with pytest.raises(SessionError, match="30 s"):
        book.receipt(play["play_id"], 31_000, signed(fan, play), "10.0.0.1", 1, 1020.0)
    with pytest.raises(SessionError, match="30 s"):
        book.receipt(play["play_id"], 12_000, signed(fan, play, 12_000), "10.0.0.1", 1, 1040.0)
    with pytest.raises(AuthError, match="not signed by the key"):
        book.receipt(play["play_id"], 31_000, signed(thief, play), "10.0.0.1", 1, 1040.0)
    # Signed for another played time than the one sent: the signature does not match.
    with pytest.raises(AuthError):
        book.receipt(play["play_id"], 40_000, signed(fan, play), "10.0.0.1", 1, 1040.0)
    counted = book.receipt(play["play_id"], 31_000, signed(fan, play), "10.0.0.1", 1, 1040.0)
    assert counted["counted"] and book.counts(1) == {7: 1}
    book.close()
    # Append-only, and kept across a restart.
    db = sqlite3.connect(tmp_path / "l.sqlite3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM listens")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE listens SET work_id = 8")
    db.close()
    assert ListenBook(tmp_path / "l.sqlite3", 31337).counts() == {7: 1}


def test_one_key_one_play_at_a_time_and_a_30_day_cap(tmp_path: Path) -> None:
    book = ListenBook(tmp_path / "l.sqlite3", 31337)
    faker = Account.create()
    plays = [book.start(7, CONTENT, faker.address, "10.0.0.2", 1000.0 + i) for i in range(20)]
    results = []
    for play in plays:
        try:
            book.receipt(play["play_id"], 31_000, signed(faker, play), "10.0.0.2", 1, 1100.0)
            results.append(True)
        except RateLimitError:
            results.append(False)
    assert results.count(True) == 1, "overlapping plays of one key count once"
    # Sequential plays from many addresses: the cap per key per period holds.
    t = 10_000.0
    for i in range(PER_KEY_PER_MONTH - 1):
        listen(book, faker, f"10.1.{i // 100}.{i % 100}", t)
        t += 32
    with pytest.raises(RateLimitError, match=str(PER_KEY_PER_MONTH)):
        listen(book, faker, "10.9.9.9", t)
    listen(book, faker, "10.9.9.9", 10_000.0 + 30 * 24 * 3600 + 1)  # 30 days on: allowed again


def test_an_address_counts_a_few_keys_and_120_plays_an_hour(tmp_path: Path) -> None:
    book = ListenBook(tmp_path / "l.sqlite3", 31337)
    farm = [Account.create() for _ in range(8)]
    for key in farm[:KEYS_PER_ADDRESS]:
        listen(book, key, "10.0.0.3", 1000.0)
    for key in farm[KEYS_PER_ADDRESS:]:
        with pytest.raises(RateLimitError, match="keys"):
            listen(book, key, "10.0.0.3", 1000.0)
    t = 5000.0
    household = farm[:KEYS_PER_ADDRESS]
    for _ in range(120 // KEYS_PER_ADDRESS):
        for key in household:
            listen(book, key, "10.0.0.4", t)
        t += 31
    with pytest.raises(RateLimitError, match="120"):
        listen(book, household[0], "10.0.0.4", t)
    listen(book, household[0], "10.0.0.4", t + 3600)  # an hour later


def test_play_starts_from_one_address_are_rate_limited(tmp_path: Path) -> None:
    book = ListenBook(tmp_path / "l.sqlite3", 31337)
    key = Account.create().address
    for i in range(30):
        book.start(7, CONTENT, key, "10.0.0.5", 100.0 + i / 100)
    with pytest.raises(RateLimitError):
        book.start(7, CONTENT, key, "10.0.0.5", 101.0)
    book.start(7, CONTENT, key, "10.0.0.5", 170.0)  # a minute later


def test_pro_rata_shares_add_up_with_the_dust_stated() -> None:
    shares, dust = allocate({1: 3, 2: 3, 3: 1}, 10**18 + 1)
    assert sum(shares.values()) + dust == 10**18 + 1 and 0 <= dust < 3
    assert shares[1] == shares[2] == 3 * shares[3] + (shares[1] - 3 * shares[3])
    assert allocate({}, 5) == ({}, 5)
    assert allocate({4: 2}, 0) == ({4: 0}, 0)


def test_the_proposed_split_is_the_records_level_shares() -> None:
    record = {
        "contributors": [
            {"account": "0x" + "11" * 20, "levelShareBps": 6500},
            {"account": "0x" + "22" * 20, "levelShareBps": 3500},
            {"account": "0x" + "33" * 20, "levelShareBps": 0},
        ]
    }
    assert proposed_split(record) == (["0x" + "11" * 20, "0x" + "22" * 20], [6500, 3500])
    a, b = Account.create().address, Account.create().address
    assert parse_split([{"address": a, "bps": 10_000}], {a, b}) == ([a], [10_000])
    for bad in (
        [{"address": a, "bps": 5000}],
        [{"address": a, "bps": 5000}, {"address": a, "bps": 5000}],
        [{"address": Account.create().address, "bps": 10_000}],
        [{"address": a, "bps": 10**30}],
        [{"address": a, "bps": True}],
        "everything to me",
    ):
        with pytest.raises(InputError):
            parse_split(bad, {a, b})
