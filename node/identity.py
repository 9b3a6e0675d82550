"""Identity: participants are Ethereum addresses proven by EIP-191 signatures.

The node issues single-use, expiring challenges; clients sign them with their own key (the
node never sees keys). Private sessions take invites: a message the session owner signs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address

from node.errors import AuthError, InputError

ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
SIGNATURE_RE = re.compile(r"^0x[0-9a-fA-F]{130}$")
MAX_OUTSTANDING = 10_000


def parse_address(value: object, what: str = "address") -> str:
    """Validate a 0x-prefixed 20-byte hex address; returns its checksummed form."""
    if not isinstance(value, str) or not ADDRESS_RE.match(value):
        raise InputError(f"{what} must be a 0x-prefixed 40-hex-digit Ethereum address")
    return to_checksum_address(value)


def recover_signer(message: str, signature: object) -> str:
    """Address that signed ``message`` with EIP-191 personal_sign."""
    if not isinstance(signature, str) or not SIGNATURE_RE.match(signature):
        raise AuthError("signature must be 0x followed by 130 hex digits (65 bytes)")
    try:
        signer: str = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception as exc:  # eth-account raises several types for malformed signatures
        raise AuthError(f"signature does not verify: {exc}") from None
    return signer


@dataclass(frozen=True)
class Challenge:
    """A sign-in challenge for one address."""

    address: str
    nonce: str
    message: str
    expires_at: float


def challenge_message(node_name: str, address: str, nonce: str, expires_at: float) -> str:
    """The exact text a client signs to prove ``address``."""
    return (
        "jamnet sign-in\n"
        f"node: {node_name}\n"
        f"address: {address}\n"
        f"nonce: {nonce}\n"
        f"expires: {int(expires_at)}"
    )


class ChallengeBook:
    """Outstanding challenges: issued once, consumed once, dropped when expired."""

    def __init__(self, node_name: str, ttl_s: float = 120.0) -> None:
        self.node_name = node_name
        self.ttl_s = ttl_s
        self._open: OrderedDict[str, Challenge] = OrderedDict()

    def issue(self, address: str, now: float | None = None) -> Challenge:
        """A fresh challenge for ``address`` (already validated)."""
        now = time.time() if now is None else now
        self._expire(now)
        while len(self._open) >= MAX_OUTSTANDING:
            self._open.popitem(last=False)
        nonce = secrets.token_hex(16)
        expires = now + self.ttl_s
        challenge = Challenge(
            address, nonce, challenge_message(self.node_name, address, nonce, expires), expires
        )
        self._open[nonce] = challenge
        return challenge

    def consume(
        self, address: str, nonce: object, signature: object, now: float | None = None
    ) -> str:
        """Verify a signed challenge and use it up; returns the proven address."""
        now = time.time() if now is None else now
        if not isinstance(nonce, str):
            raise AuthError("nonce is missing: ask POST /api/challenges for one")
        challenge = self._open.pop(nonce, None)  # single use, even when the signature fails
        if challenge is None:
            raise AuthError("unknown or already used challenge: request a new one")
        if challenge.expires_at < now:
            raise AuthError("challenge expired: request a new one")
        if challenge.address != address:
            raise AuthError("challenge was issued for a different address")
        if recover_signer(challenge.message, signature) != address:
            raise AuthError("signature was not made by this address")
        return address

    def _expire(self, now: float) -> None:
        for nonce in [n for n, c in self._open.items() if c.expires_at < now]:
            del self._open[nonce]


def invite_message(session_id: str, invitee: str, expires_at: int) -> str:
    """The text a session owner signs to invite ``invitee`` ("*" invites anyone with the link)."""
    return f"jamnet invite\nsession: {session_id}\ninvitee: {invitee}\nexpires: {expires_at}"


def make_invite(session_id: str, invitee: str, expires_at: int, signature: str) -> str:
    """Pack a signed invite into a URL-safe token."""
    body = json.dumps({"s": session_id, "i": invitee, "e": expires_at, "sig": signature})
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def check_invite(
    token: object, session_id: str, owner: str, address: str, now: float | None = None
) -> None:
    """Accept an invite token only if the owner signed it for this session and address."""
    now = time.time() if now is None else now
    if not isinstance(token, str) or not 0 < len(token) <= 2048:
        raise AuthError("this session is private: an invite from its owner is required")
    try:
        padded = token + "=" * (-len(token) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
        sid, invitee, expires, signature = body["s"], body["i"], int(body["e"]), body["sig"]
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
        raise AuthError("invite token is malformed") from None
    if not isinstance(sid, str) or not isinstance(invitee, str) or not isinstance(signature, str):
        raise AuthError("invite token is malformed")
    if sid != session_id:
        raise AuthError("invite is for a different session")
    if expires < now:
        raise AuthError("invite expired: ask the owner for a new one")
    if invitee != "*" and invitee.lower() != address.lower():
        raise AuthError("invite is for a different address")
    if recover_signer(invite_message(sid, invitee, expires), signature) != owner:
        raise AuthError("invite was not signed by the session owner")
