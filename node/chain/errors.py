"""Readable contract errors: web3 8 hands custom errors over undecoded (selector + args).

Every ``error`` in the ABIs of the built contracts (ours and the OpenZeppelin ones they
inherit) is indexed by its 4-byte selector, so ``0xc242ee16…`` becomes
``GovernorInsufficientProposerVotes(proposer=0x…, votes=0, threshold=1000000000000000000000)``.
"""

from __future__ import annotations

import functools
from typing import Any

from eth_abi.abi import decode
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from node.chain.build import build


def _type(arg: dict[str, Any]) -> str:
    if arg["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in arg.get("components", []))
        return f"({inner}){arg['type'][5:]}"
    return str(arg["type"])


@functools.cache
def _errors() -> dict[bytes, tuple[str, list[str], list[str]]]:
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for artifact in build().values():
        for item in artifact.abi:
            if item.get("type") != "error":
                continue
            types = [_type(a) for a in item.get("inputs", [])]
            names = [a.get("name") or f"arg{i}" for i, a in enumerate(item.get("inputs", []))]
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            table[selector] = (item["name"], types, names)
    return table


def decode_error(data: str | bytes) -> str:
    """Revert data → ``Name(arg=value, …)``; unknown data is shown as hex."""
    raw = (
        bytes.fromhex(data[2:] if data.startswith("0x") else data)
        if isinstance(data, str)
        else data
    )
    if len(raw) < 4:
        return "reverted without a reason"
    known = _errors().get(raw[:4])
    if known is None:
        return f"reverted with unknown error 0x{raw.hex()}"
    name, types, names = known
    try:
        values = decode(types, raw[4:])
    except Exception:  # malformed arguments: still name the error
        return f"{name}(…)"
    shown = ", ".join(f"{n}={_show(v)}" for n, v in zip(names, values, strict=True))
    return f"{name}({shown})"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and is_address(value):
        return str(to_checksum_address(value))
    return str(value)
