"""Contribution records: what each musician put into a take, signed by the node that made it.

When a recording stops (or a take a crash interrupted is recovered), the node seals its
record: for every participant, their address, active seconds, share of the take's level and
the keccak-256 of their stem file, plus the keccak-256 of the mix. The node signs the record
with its chain key as EIP-712 typed data, so anyone holding the record can check, offline,
which node attested it and that nothing in it was changed (``verify``). The record is the
input that later decides a work's proposed split; the files' hashes tie it to the audio.

The level share is each contributor's part of the take's summed signal energy (RMS² × frames)
in basis points, rounded by largest remainder so the shares add up to exactly 10,000 (all 0
when nobody made a sound).

The typed data's domain carries no chain id or contract: a record is an attestation about
audio, valid whatever chain a work is later registered on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from Crypto.Hash import keccak
from eth_abi.exceptions import EncodingError
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.exceptions import ValidationError

from node.errors import InputError

DOMAIN = {"name": "jamnet ContributionRecord", "version": "1"}
TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
    ],
    "Contributor": [
        {"name": "account", "type": "address"},
        {"name": "activeMs", "type": "uint64"},
        {"name": "levelShareBps", "type": "uint16"},
        {"name": "stemHash", "type": "bytes32"},
    ],
    "ContributionRecord": [
        {"name": "recordingId", "type": "string"},
        {"name": "sessionId", "type": "string"},
        {"name": "startedAt", "type": "uint64"},
        {"name": "stoppedAt", "type": "uint64"},
        {"name": "mixHash", "type": "bytes32"},
        {"name": "contributors", "type": "Contributor[]"},
    ],
}
BPS = 10_000
_BAD = (KeyError, TypeError, ValueError, OverflowError, EncodingError, ValidationError)
"""What malformed fields or signatures raise from eth-account, eth-abi and eth-keys."""
CHUNK = 1 << 20
ZERO_HASH = "0x" + "00" * 32


def file_hash(path: Path) -> str:
    """keccak-256 of a file's bytes, read in 1 MiB chunks ("0x…"; zeros if it is missing)."""
    if not path.exists():
        return ZERO_HASH
    digest = keccak.new(digest_bits=256)
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return "0x" + digest.hexdigest()


def level_shares(energies: list[float]) -> list[int]:
    """Each energy's share of the sum in basis points, adding up to exactly 10,000 (largest
    remainder; ties to the earlier entry); all zeros when the sum is zero."""
    total = sum(max(0.0, e) for e in energies)
    if total <= 0.0:
        return [0] * len(energies)
    exact = [max(0.0, e) * BPS / total for e in energies]
    shares = [int(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: BPS - sum(shares)]:
        shares[i] += 1
    return shares


def build(recording: dict[str, Any], directory: Path) -> dict[str, Any]:
    """The unsigned record of a finished recording row (with its ``contributions``)."""
    rows = sorted(recording["contributions"], key=lambda r: r["address"].lower())
    shares = level_shares([float(r["rms"]) ** 2 * int(r["frames"]) for r in rows])
    return {
        "recordingId": recording["id"],
        "sessionId": recording["session_id"],
        "startedAt": int(recording["started_at"]),
        "stoppedAt": int(recording.get("stopped_at") or recording["started_at"]),
        "mixHash": file_hash(directory / "mix.wav"),
        "contributors": [
            {
                "account": row["address"],
                "activeMs": round(float(row["active_s"]) * 1000),
                "levelShareBps": share,
                "stemHash": file_hash(directory / row["stem"]),
            }
            for row, share in zip(rows, shares, strict=True)
        ],
    }


def message(record: dict[str, Any]) -> SignableMessage:
    """The EIP-712 message of a record (InputError if it is not a well-formed record)."""
    try:
        return encode_typed_data(
            full_message={
                "types": TYPES,
                "primaryType": "ContributionRecord",
                "domain": DOMAIN,
                "message": {k: record[k] for k in _fields()},
            }
        )
    except _BAD as exc:
        raise InputError(f"not a contribution record: {exc}") from None


def _fields() -> Iterable[str]:
    return (field["name"] for field in TYPES["ContributionRecord"])


def sign(record: dict[str, Any], account: LocalAccount) -> dict[str, Any]:
    """``{"record", "signer", "signature"}``: the record signed by ``account``."""
    signed = account.sign_message(message(record))
    return {
        "record": record,
        "signer": account.address,
        "signature": "0x" + bytes(signed.signature).hex(),
    }


def verify(sealed: dict[str, Any]) -> str:
    """The address that signed a sealed record; InputError if the signature does not match
    the record or the signer it names."""
    if not isinstance(sealed, dict) or not isinstance(sealed.get("record"), dict):
        raise InputError('a sealed record is {"record": {...}, "signer": ..., "signature": ...}')
    signature = sealed.get("signature")
    if not isinstance(signature, str):
        raise InputError("signature must be a 0x-hex string")
    try:
        signer: str = Account.recover_message(message(sealed["record"]), signature=signature)
    except _BAD as exc:
        raise InputError(f"bad signature: {exc}") from None
    named = sealed.get("signer")
    if not isinstance(named, str) or named.lower() != signer.lower():
        raise InputError(f"the record was signed by {signer}, not by {named}")
    return signer


def dumps(sealed: dict[str, Any]) -> str:
    """A sealed record as stored (compact, stable key order)."""
    return json.dumps(sealed, sort_keys=True, separators=(",", ":"))
