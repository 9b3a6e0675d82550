"""The EIP-712 consent a contributor signs to a WorkRegistry split (off-chain side).

The contract's ``consentDigest`` computes the same hash on-chain; the tests check the two
agree.
"""

from __future__ import annotations

from typing import Any

from eth_account.messages import SignableMessage, encode_typed_data
from web3 import Web3

DOMAIN_NAME = "jamnet WorkRegistry"
DOMAIN_VERSION = "1"


def consent_message(
    chain_id: int,
    registry: str,
    content_hash: bytes,
    uri: str,
    contributors: list[str],
    shares: list[int],
) -> SignableMessage:
    """The typed-data message for one split of one work on one registry."""
    typed: dict[str, Any] = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Consent": [
                {"name": "contentHash", "type": "bytes32"},
                {"name": "metadataHash", "type": "bytes32"},
                {"name": "contributors", "type": "address[]"},
                {"name": "shares", "type": "uint16[]"},
            ],
        },
        "primaryType": "Consent",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": registry,
        },
        "message": {
            "contentHash": content_hash,
            "metadataHash": Web3.keccak(text=uri),
            "contributors": contributors,
            "shares": shares,
        },
    }
    return encode_typed_data(full_message=typed)
