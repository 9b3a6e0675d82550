"""Derivative works on anvil: parents named at registration, ancestors flattened, every payment
to a derivative sending each ancestor its share, to the wei, in ETH and in JAM."""

from __future__ import annotations

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from node.chain.deploy import JAM
from tests.chain.conftest import (
    Chain,
    attest,
    consent,
    register_work,
    registration,
    revert_reason,
)

BPS = 10_000


def _solo(chain: Chain, name: str, parents: tuple[int, ...] = (), bps: int = 0, nonce: int = 1):  # type: ignore[no-untyped-def]
    """A work by a fresh artist alone (registered from a funded devnet account who consents by
    signing); returns (work id, artist account)."""
    artist = Account.create()
    registrant = chain.accounts[1]
    reg = registration(
        Web3.keccak(text=name),
        [registrant, artist.address],
        [5000, 5000],
        nonce=nonce,
        parents=parents,
        derivative_bps=bps,
    )
    return register_work(chain, registrant, reg, {artist.address: artist}), artist


def test_a_payment_to_a_grandchild_reaches_all_three_splits_to_the_wei(chain: Chain) -> None:
    works, token = chain.c["WorkRegistry"], chain.c["JamToken"]
    song, _ = _solo(chain, "song", bps=1000, nonce=1)  # takes 10 % of its derivatives
    remix, _ = _solo(chain, "remix", parents=(song,), bps=500, nonce=2)  # takes 5 %
    cover, artist = _solo(chain, "remix of the remix", parents=(remix,), bps=0, nonce=3)
    parents, ancestors, shares, own = works.functions.lineage(cover).call()
    assert (parents, ancestors, shares, own) == ([remix], [remix, song], [500, 1000], 0)
    fee_bps = works.functions.protocolFeeBps().call()
    paid = 10**18 + 7  # an odd amount: rounding must lose nothing
    receipt = chain.send(works.functions.pay(cover), chain.accounts[4], value=paid)
    net = paid - paid * fee_bps // BPS
    to_remix, to_song = net * 500 // BPS, net * 1000 // BPS
    total = {w: works.functions.work(w).call()[5] for w in (song, remix, cover)}
    assert total == {song: to_song, remix: to_remix, cover: net - to_remix - to_song}
    assert sum(total.values()) + works.functions.pendingFees().call()[0] == paid
    forwarded = works.events.RoyaltyForwarded().process_receipt(receipt, errors=DISCARD)
    assert [(e["args"]["ancestorId"], e["args"]["amount"]) for e in forwarded] == [
        (remix, to_remix),
        (song, to_song),
    ]
    # Each split then divides its own total as usual: the cover's artist has half of its rest.
    assert works.functions.owedEth(cover, artist.address).call() == total[cover] // 2
    # A payment to the remix sends the song its share too, and the cover nothing.
    chain.send(works.functions.pay(remix), chain.accounts[4], value=10**18)
    net = 10**18 - 10**18 * fee_bps // BPS
    assert works.functions.work(song).call()[5] == to_song + net * 1000 // BPS
    assert works.functions.work(cover).call()[5] == total[cover]
    # JAM follows the same stack.
    payer = chain.accounts[5]
    chain.send(token.functions.approve(works.address, 1000 * JAM), payer)
    chain.send(works.functions.payToken(cover, 1000 * JAM), payer)
    net = 1000 * JAM - 1000 * JAM * fee_bps // BPS
    assert works.functions.work(song).call()[6] == net * 1000 // BPS
    assert works.functions.work(remix).call()[6] == net * 500 // BPS
    assert works.functions.work(cover).call()[6] == net - net * 1500 // BPS


def test_two_parents_sharing_an_ancestor_count_it_once(chain: Chain) -> None:
    works = chain.c["WorkRegistry"]
    root, _ = _solo(chain, "root", bps=1000, nonce=1)
    left, _ = _solo(chain, "left", parents=(root,), bps=500, nonce=2)
    right, _ = _solo(chain, "right", parents=(root,), bps=700, nonce=3)
    mashup, _ = _solo(chain, "mashup", parents=(left, right), nonce=4)
    _, ancestors, shares, _ = works.functions.lineage(mashup).call()
    assert sorted(zip(ancestors, shares, strict=True)) == [(root, 1000), (left, 500), (right, 700)]


def test_parents_and_shares_are_bounded(chain: Chain) -> None:
    works = chain.c["WorkRegistry"]
    registrant = chain.accounts[1]
    cap = works.functions.derivativeCapBps().call()
    assert cap == 2000
    a, _ = _solo(chain, "a", bps=cap, nonce=1)

    def refused(reg) -> str:  # type: ignore[no-untyped-def]
        return revert_reason(
            works.functions.register(
                reg.as_tuple(), [b""], attest(chain, reg.content_hash, reg.contributors)
            ),
            registrant,
        )

    base = registration(Web3.keccak(text="bad"), [registrant], [BPS], nonce=50)
    assert refused(base.__class__(**{**base.__dict__, "derivative_bps": cap + 1})).startswith(
        "WorkRegistryDerivativeShareTooHigh"
    )
    for parents in ((a, a), (a, 99), (a, a, a)):
        reg = base.__class__(**{**base.__dict__, "parents": parents})
        assert refused(reg).startswith("WorkRegistryBadParents"), parents
    # A chain deeper than 14 ancestors is refused: build one 15 long, each taking 1 %.
    previous = a
    for depth in range(14):
        previous, _ = _solo(chain, f"link {depth}", parents=(previous,), bps=100, nonce=2 + depth)
    _, ancestors, _, _ = works.functions.lineage(previous).call()
    assert len(ancestors) == 14
    reg = base.__class__(**{**base.__dict__, "parents": (previous,)})
    assert refused(reg) == "WorkRegistryTooManyAncestors(count=15, maxCount=14)"


def test_the_royalty_stack_stays_at_or_below_100_percent(chain: Chain) -> None:
    works = chain.c["WorkRegistry"]
    registrant = chain.accounts[1]
    with chain.governance() as timelock:
        chain.send(works.functions.setDerivativeCap(5000), timelock)
    assert "WorkRegistryUnauthorized" in revert_reason(
        works.functions.setDerivativeCap(100), registrant
    )
    top, _ = _solo(chain, "top", bps=5000, nonce=1)
    mid, _ = _solo(chain, "mid", parents=(top,), bps=5000, nonce=2)
    # top 50 % + mid 50 % = 100 %: allowed (the derivative keeps nothing of its own payments).
    low, _ = _solo(chain, "low", parents=(mid,), bps=100, nonce=3)
    _, _, shares, _ = works.functions.lineage(low).call()
    assert sum(shares) == BPS
    # Under it, low's 1 % would make 101 %.
    reg = registration(Web3.keccak(text="too much"), [registrant], [BPS], nonce=9, parents=(low,))
    assert (
        revert_reason(
            works.functions.register(
                reg.as_tuple(), [b""], attest(chain, reg.content_hash, reg.contributors)
            ),
            registrant,
        )
        == "WorkRegistryStackTooHigh(stackBps=10100)"
    )


def test_the_consent_covers_the_parents(chain: Chain) -> None:
    """A consent to a split without parents cannot register the work as a derivative (which
    would send part of its income elsewhere), nor the other way round."""
    works = chain.c["WorkRegistry"]
    song, _ = _solo(chain, "song", bps=1000, nonce=1)
    registrant = chain.accounts[1]
    artist = Account.create()
    plain = registration(Web3.keccak(text="x"), [registrant, artist.address], [5000, 5000], nonce=7)
    signature = consent(chain, artist, plain, registrant)
    derived = plain.__class__(**{**plain.__dict__, "parents": (song,)})
    assert revert_reason(
        works.functions.register(
            derived.as_tuple(),
            [b"", signature],
            attest(chain, plain.content_hash, plain.contributors),
        ),
        registrant,
    ).startswith("WorkRegistryNoConsent")
