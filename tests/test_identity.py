"""Sign-in challenges and invites (EIP-191)."""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from node.errors import AuthError, InputError
from node.identity import ChallengeBook, check_invite, invite_message, make_invite, parse_address


def sign(account, text: str) -> str:  # type: ignore[no-untyped-def]
    return "0x" + account.sign_message(encode_defunct(text=text)).signature.hex().removeprefix("0x")


def test_challenge_is_single_use_and_bound_to_the_address() -> None:
    alice, mallory = Account.create(), Account.create()
    book = ChallengeBook("node")
    issued = book.issue(alice.address)
    assert book.consume(alice.address, issued.nonce, sign(alice, issued.message)) == alice.address
    with pytest.raises(AuthError, match="already used"):
        book.consume(alice.address, issued.nonce, sign(alice, issued.message))
    issued = book.issue(alice.address)
    with pytest.raises(AuthError, match="not made by this address"):
        book.consume(alice.address, issued.nonce, sign(mallory, issued.message))


def test_challenge_expires() -> None:
    alice = Account.create()
    book = ChallengeBook("node", ttl_s=10)
    issued = book.issue(alice.address, now=1000.0)
    with pytest.raises(AuthError, match="expired"):
        book.consume(alice.address, issued.nonce, sign(alice, issued.message), now=1011.0)


@pytest.mark.parametrize("signature", [None, "", "0x12", "0x" + "zz" * 65, 5])
def test_malformed_signatures(signature: object) -> None:
    alice = Account.create()
    book = ChallengeBook("node")
    issued = book.issue(alice.address)
    with pytest.raises(AuthError):
        book.consume(alice.address, issued.nonce, signature)


@pytest.mark.parametrize("address", [None, "", "0x123", "1" * 42, "0x" + "g" * 40, 7])
def test_bad_addresses(address: object) -> None:
    with pytest.raises(InputError):
        parse_address(address)


def test_invites() -> None:
    owner, guest, other = Account.create(), Account.create(), Account.create()
    expires = int(time.time()) + 60
    token = make_invite(
        "s1", guest.address, expires, sign(owner, invite_message("s1", guest.address, expires))
    )
    check_invite(token, "s1", owner.address, guest.address)
    with pytest.raises(AuthError, match="different address"):
        check_invite(token, "s1", owner.address, other.address)
    with pytest.raises(AuthError, match="different session"):
        check_invite(token, "s2", owner.address, guest.address)
    forged = make_invite("s1", "*", expires, sign(other, invite_message("s1", "*", expires)))
    with pytest.raises(AuthError, match="not signed by the session owner"):
        check_invite(forged, "s1", owner.address, guest.address)
    with pytest.raises(AuthError, match="malformed"):
        check_invite("!!!", "s1", owner.address, guest.address)
    with pytest.raises(AuthError, match="invite from its owner"):
        check_invite(None, "s1", owner.address, guest.address)
