"""The EIP-712 messages WorkRegistry checks (off-chain side): a contributor's consent and a
node's provenance attestation.

A consent binds the split (contributors and shares), the content hash, the metadata URI, the
registrant (who may submit it), a deadline, the registrant's nonce, the parent works this one
pays (a derivative's contributors agree to send their ancestors' shares up) and the share the
work takes from its own derivatives: a copied consent
submitted by anyone else, after the deadline, or a second time is refused. A provenance
attestation is a registered node's word that it recorded the content hash with exactly these
contributors. The contract's ``consentDigest`` and ``provenanceDigest`` compute the same
hashes on-chain; the tests check the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.messages import SignableMessage, encode_typed_data
from web3 import Web3

DOMAIN_NAME = "jamnet WorkRegistry"
DOMAIN_VERSION = "3"
DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
CONSENT_TYPE = [
    {"name": "contentHash", "type": "bytes32"},
    {"name": "metadataHash", "type": "bytes32"},
    {"name": "contributors", "type": "address[]"},
    {"name": "shares", "type": "uint16[]"},
    {"name": "registrant", "type": "address"},
    {"name": "deadline", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "parents", "type": "uint256[]"},
    {"name": "derivativeBps", "type": "uint16"},
]
PROVENANCE_TYPE = [
    {"name": "contentHash", "type": "bytes32"},
    {"name": "contributors", "type": "address[]"},
]


@dataclass(frozen=True)
class Registration:
    """One registration as WorkRegistry.register takes it (its ``Registration`` struct)."""

    content_hash: bytes
    uri: str
    contributors: list[str]
    shares: list[int]
    deadline: int
    nonce: int
    attester: str
    parents: tuple[int, ...] = ()
    """Registered works this one derives from (at most 2); each takes its stated share of
    every payment to this one."""
    derivative_bps: int = 0
    """The share this work takes from each of its own derivatives' payments."""

    def as_tuple(self) -> tuple[Any, ...]:
        """The struct for a web3 call."""
        return (
            self.content_hash,
            self.uri,
            self.contributors,
            self.shares,
            self.deadline,
            self.nonce,
            self.attester,
            list(self.parents),
            self.derivative_bps,
        )


def _domain(chain_id: int, registry: str) -> dict[str, Any]:
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": registry,
    }


def consent_typed_data(
    chain_id: int, registry: str, registration: Registration, registrant: str
) -> dict[str, Any]:
    """The consent as EIP-712 JSON (what a wallet's ``eth_signTypedData_v4`` takes; bytes as
    0x-hex, numbers as decimal strings)."""
    return {
        "types": {"EIP712Domain": DOMAIN_TYPE, "Consent": CONSENT_TYPE},
        "primaryType": "Consent",
        "domain": _domain(chain_id, registry),
        "message": {
            "contentHash": "0x" + registration.content_hash.hex(),
            "metadataHash": Web3.keccak(text=registration.uri).to_0x_hex(),
            "contributors": registration.contributors,
            "shares": registration.shares,
            "registrant": registrant,
            "deadline": str(registration.deadline),
            "nonce": str(registration.nonce),
            "parents": [str(parent) for parent in registration.parents],
            "derivativeBps": registration.derivative_bps,
        },
    }


def consent_message(
    chain_id: int, registry: str, registration: Registration, registrant: str
) -> SignableMessage:
    """What a contributor signs to let ``registrant`` register exactly ``registration``."""
    typed = consent_typed_data(chain_id, registry, registration, registrant)
    message = dict(typed["message"])
    message["deadline"], message["nonce"] = registration.deadline, registration.nonce
    message["parents"] = list(registration.parents)
    return encode_typed_data(full_message={**typed, "message": message})


def provenance_message(
    chain_id: int, registry: str, content_hash: bytes, contributors: list[str]
) -> SignableMessage:
    """What a registered node signs to attest it recorded ``content_hash`` with these
    contributors."""
    return encode_typed_data(
        full_message={
            "types": {"EIP712Domain": DOMAIN_TYPE, "Provenance": PROVENANCE_TYPE},
            "primaryType": "Provenance",
            "domain": _domain(chain_id, registry),
            "message": {"contentHash": content_hash, "contributors": contributors},
        }
    )
