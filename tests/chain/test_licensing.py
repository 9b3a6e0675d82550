"""Licences on anvil: fixed-price terms bought and verified, and exclusive licences sold by a
sealed-bid second-price auction, with the attacks known from ENS's 2017 registrar and the
auction literature: copied reveals, bidders who never reveal, bids read off deposits, and a
refund recipient that re-enters."""

from __future__ import annotations

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from node.chain.build import extra_artifact
from node.chain.licences import commitment, licence_view, new_salt, parse_territory, parse_usage
from tests.chain.conftest import Chain, register_work, registration, revert_reason

ETH = 10**18
DAY = 86400
FILM = parse_usage("film")
WW = parse_territory("WW")


def _work(
    chain: Chain, name: str = "score", parents: tuple[int, ...] = (), bps: int = 0
) -> tuple[int, str]:
    """A work registered by devnet account 1 with a fresh co-writer; returns (id, registrant)."""
    registrant, writer = chain.accounts[1], Account.create()
    nonce = chain.c["WorkRegistry"].functions.workCount().call() + 1
    reg = registration(
        Web3.keccak(text=name),
        [registrant, writer.address],
        [6000, 4000],
        nonce=nonce,
        parents=parents,
        derivative_bps=bps,
    )
    return register_work(chain, registrant, reg, {writer.address: writer}), registrant


def _now(chain: Chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def _auction(chain: Chain, work: int, seller: str, reserve: int = ETH) -> int:
    licensing = chain.c["Licensing"]
    now = _now(chain)
    receipt = chain.send(
        licensing.functions.createAuction(work, FILM, 365, WW, reserve, now + 3600, now + 7200),
        seller,
    )
    events = licensing.events.AuctionCreated().process_receipt(receipt, errors=DISCARD)
    return int(events[0]["args"]["auctionId"])


def _commit(chain: Chain, auction: int, bidder: str, value: int, deposit: int) -> bytes:
    licensing = chain.c["Licensing"]
    salt = new_salt()
    sealed = commitment(auction, bidder, value, salt)
    assert licensing.functions.bidCommitment(auction, bidder, value, salt).call() == sealed
    chain.send(licensing.functions.commit(auction, sealed), bidder, value=deposit)
    return salt


def _balance_change(chain: Chain, account: str, call) -> int:  # type: ignore[no-untyped-def]
    before = chain.w3.eth.get_balance(account)
    receipt = chain.send(call, account)
    return (
        chain.w3.eth.get_balance(account)
        - before
        + receipt["gasUsed"] * receipt["effectiveGasPrice"]
    )


def test_a_fixed_price_licence_is_bought_pays_the_split_and_verifies(chain: Chain) -> None:
    licensing, works = chain.c["Licensing"], chain.c["WorkRegistry"]
    song, _ = _work(chain, "song", bps=1000)
    remix, registrant = _work(chain, "remix", parents=(song,))
    advert = parse_usage("advert")
    assert "LicensingUnauthorized" in revert_reason(
        licensing.functions.offer(remix, advert, 30, parse_territory("de"), ETH), chain.accounts[2]
    )
    for bad in (
        (remix, 6, 30, WW, ETH),
        (remix, advert, 0, WW, ETH),
        (remix, advert, 30, b"d1", ETH),
        (remix, advert, 30, WW, 0),
    ):
        assert "LicensingBadTerms" in revert_reason(licensing.functions.offer(*bad), registrant)
    receipt = chain.send(
        licensing.functions.offer(remix, advert, 30, parse_territory("de"), ETH // 2), registrant
    )
    terms = licensing.events.TermsOffered().process_receipt(receipt, errors=DISCARD)[0]["args"][
        "termsId"
    ]
    filmmaker, agency = chain.accounts[3], chain.accounts[4]
    assert "LicensingWrongPayment" in revert_reason(
        licensing.functions.buy(terms, agency), filmmaker
    )
    receipt = chain.send(licensing.functions.buy(terms, agency), filmmaker, value=ETH // 2)
    licence = licensing.events.LicenceIssued().process_receipt(receipt, errors=DISCARD)[0]["args"][
        "licenceId"
    ]
    record, valid = licensing.functions.verify(licence).call()
    view = licence_view(record, valid, licence, now=_now(chain))
    assert view["licensee"] == agency and view["usage"] == "advert" and view["territory"] == "DE"
    assert (
        view["valid"]
        and not view["exclusive"]
        and view["terms"] == terms
        and view["priceWei"] == ETH // 2
    )
    assert view["end"] - view["start"] == 30 * DAY
    # The price went into the remix's split at once, and up to the song (10 %).
    fee = ETH // 2 * works.functions.protocolFeeBps().call() // 10_000
    net = ETH // 2 - fee
    assert works.functions.work(song).call()[5] == net // 10
    assert works.functions.work(remix).call()[5] == net - net // 10
    assert chain.w3.eth.get_balance(licensing.address) == 0
    # Terms taken off sale cannot be bought; a licence expires with its term.
    chain.send(licensing.functions.setActive(terms, False), registrant)
    assert "LicensingInactive" in revert_reason(licensing.functions.buy(terms, agency), filmmaker)
    chain.advance(31 * DAY)
    assert licensing.functions.verify(licence).call()[1] is False
    assert "LicensingUnknown" in revert_reason(licensing.functions.verify(99), filmmaker)


def test_an_exclusive_auction_with_three_bidders(chain: Chain) -> None:
    """A bids 3 (depositing 5 to hide it), B bids 2, C commits 4 and never reveals; D tries to
    reveal after the window. A wins at B's price; A gets 3 back, B 2; C's 4 go to the work."""
    licensing, works = chain.c["Licensing"], chain.c["WorkRegistry"]
    work, seller = _work(chain)
    auction = _auction(chain, work, seller)
    a, b, c, d = chain.accounts[3:7]
    salt_a = _commit(chain, auction, a, 3 * ETH, 5 * ETH)
    salt_b = _commit(chain, auction, b, 2 * ETH, 2 * ETH)
    _commit(chain, auction, c, 4 * ETH, 4 * ETH)
    salt_d = _commit(chain, auction, d, 6 * ETH, 6 * ETH)
    assert "LicensingBadCommit" in revert_reason(
        licensing.functions.commit(auction, b"\1" * 32), b
    )  # one commitment per bidder
    assert "LicensingBadCommit" in revert_reason(
        licensing.functions.commit(auction, b"\2" * 32), chain.accounts[7]
    )  # no deposit below the reserve
    assert "LicensingWrongPhase" in revert_reason(
        licensing.functions.reveal(auction, 3 * ETH, salt_a), a
    )  # not before the commit window closes
    chain.advance(3600)
    assert "LicensingWrongPhase" in revert_reason(
        licensing.functions.commit(auction, b"\3" * 32), chain.accounts[7]
    )
    chain.send(licensing.functions.reveal(auction, 3 * ETH, salt_a), a)
    chain.send(licensing.functions.reveal(auction, 2 * ETH, salt_b), b)
    assert "LicensingBadReveal" in revert_reason(
        licensing.functions.reveal(auction, 2 * ETH, salt_b), b
    )
    assert "LicensingWrongPhase" in revert_reason(licensing.functions.settle(auction), a)
    chain.advance(3600)
    assert "LicensingWrongPhase" in revert_reason(
        licensing.functions.reveal(auction, 6 * ETH, salt_d), d
    )
    before = works.functions.work(work).call()[5]
    receipt = chain.send(licensing.functions.settle(auction), chain.accounts[8])
    settled = licensing.events.AuctionSettled().process_receipt(receipt, errors=DISCARD)[0]["args"]
    assert (settled["winner"], settled["price"], settled["forfeited"]) == (a, 2 * ETH, 10 * ETH)
    paid = 12 * ETH  # the price and C's and D's forfeited deposits
    fee = paid * works.functions.protocolFeeBps().call() // 10_000
    assert works.functions.work(work).call()[5] - before == paid - fee
    assert licensing.functions.refundOf(a).call() == 3 * ETH
    assert licensing.functions.refundOf(b).call() == 2 * ETH
    assert licensing.functions.refundOf(c).call() == licensing.functions.refundOf(d).call() == 0
    assert _balance_change(chain, a, licensing.functions.withdrawRefunds(a)) == 3 * ETH
    assert _balance_change(chain, b, licensing.functions.withdrawRefunds(b)) == 2 * ETH
    assert "LicensingNothingOwed" in revert_reason(licensing.functions.withdrawRefunds(a), a)
    assert (
        chain.w3.eth.get_balance(licensing.address)
        == licensing.functions.heldDeposits().call()
        == 0
    )
    assert "LicensingSettled" in revert_reason(licensing.functions.settle(auction), a)
    licence = licensing.events.LicenceIssued().process_receipt(receipt, errors=DISCARD)[0]["args"][
        "licenceId"
    ]
    record, valid = licensing.functions.verify(licence).call()
    view = licence_view(record, valid, licence)
    assert (
        view["exclusive"] and view["valid"] and view["licensee"] == a and view["auction"] == auction
    )
    # While the exclusive licence runs, film licences cannot be sold at a fixed price.
    terms = licensing.functions.counts().call()[0]
    chain.send(licensing.functions.offer(work, FILM, 30, WW, ETH), seller)
    assert "LicensingExclusive" in revert_reason(licensing.functions.buy(terms, b), b, value=ETH)


def test_a_copied_reveal_or_commitment_is_worthless(chain: Chain) -> None:
    """Reveal front-running: an attacker who sees A's reveal (value and salt) in the mempool, or
    copies A's commitment, cannot reveal it as its own."""
    licensing = chain.c["Licensing"]
    work, seller = _work(chain)
    auction = _auction(chain, work, seller)
    honest, attacker = chain.accounts[3], chain.accounts[4]
    salt = _commit(chain, auction, honest, 2 * ETH, 2 * ETH)
    copied = licensing.functions.bidOf(auction, honest).call()[0]
    chain.send(licensing.functions.commit(auction, copied), attacker, value=2 * ETH)
    chain.advance(3600)
    assert "LicensingBadReveal" in revert_reason(
        licensing.functions.reveal(auction, 2 * ETH, salt), attacker
    )
    chain.send(licensing.functions.reveal(auction, 2 * ETH, salt), honest)
    # And a commitment for another auction does not reveal in this one.
    assert commitment(auction + 1, honest, 2 * ETH, salt) != copied


def test_ties_go_to_the_earlier_commitment_and_a_lone_bid_pays_the_reserve(chain: Chain) -> None:
    licensing = chain.c["Licensing"]
    work, seller = _work(chain, "tie")
    first, second, low = chain.accounts[3], chain.accounts[4], chain.accounts[5]
    auction = _auction(chain, work, seller, reserve=ETH)
    salt_first = _commit(chain, auction, first, 2 * ETH, 2 * ETH)
    salt_second = _commit(chain, auction, second, 2 * ETH, 3 * ETH)
    salt_low = _commit(chain, auction, low, ETH // 2, ETH)  # bids under the reserve
    chain.advance(3600)
    for who, value, salt in (
        (second, 2 * ETH, salt_second),
        (first, 2 * ETH, salt_first),
        (low, ETH // 2, salt_low),
    ):
        chain.send(licensing.functions.reveal(auction, value, salt), who)
    chain.advance(3600)
    chain.send(licensing.functions.settle(auction), seller)
    state = licensing.functions.auction(auction).call()
    assert state[11] == first  # the leader: revealed second, but committed first
    assert licensing.functions.refundOf(second).call() == 3 * ETH
    assert licensing.functions.refundOf(low).call() == ETH  # void bid, refunded in full
    assert licensing.functions.refundOf(first).call() == 0  # paid the tie price, 2
    # A lone bidder pays the reserve, whatever it bid.
    other, _ = _work(chain, "lone")
    auction = _auction(chain, other, seller, reserve=ETH)
    salt = _commit(chain, auction, first, 5 * ETH, 5 * ETH)
    chain.advance(3600)
    chain.send(licensing.functions.reveal(auction, 5 * ETH, salt), first)
    chain.advance(3600)
    receipt = chain.send(licensing.functions.settle(auction), seller)
    settled = licensing.events.AuctionSettled().process_receipt(receipt, errors=DISCARD)[0]["args"]
    assert settled["price"] == ETH and licensing.functions.refundOf(first).call() == 4 * ETH


def test_a_bid_above_its_deposit_counts_as_the_deposit(chain: Chain) -> None:
    """The deposit bounds the bid (it must: the winner pays from it), so a bidder cannot
    promise more than it put down."""
    licensing = chain.c["Licensing"]
    work, seller = _work(chain, "cap")
    auction = _auction(chain, work, seller)
    big, honest = chain.accounts[3], chain.accounts[4]
    salt_big = _commit(chain, auction, big, 100 * ETH, 2 * ETH)
    salt_honest = _commit(chain, auction, honest, 3 * ETH, 3 * ETH)
    chain.advance(3600)
    chain.send(licensing.functions.reveal(auction, 100 * ETH, salt_big), big)
    chain.send(licensing.functions.reveal(auction, 3 * ETH, salt_honest), honest)
    chain.advance(3600)
    receipt = chain.send(licensing.functions.settle(auction), seller)
    settled = licensing.events.AuctionSettled().process_receipt(receipt, errors=DISCARD)[0]["args"]
    assert (settled["winner"], settled["price"]) == (honest, 2 * ETH)


def test_auctions_and_fixed_price_licences_of_a_usage_exclude_each_other(chain: Chain) -> None:
    licensing = chain.c["Licensing"]
    work, seller = _work(chain, "both")
    chain.send(licensing.functions.offer(work, FILM, 30, WW, ETH), seller)
    chain.send(licensing.functions.buy(0, chain.accounts[3]), chain.accounts[3], value=ETH)
    now = _now(chain)
    assert "LicensingShared" in revert_reason(
        licensing.functions.createAuction(work, FILM, 365, WW, ETH, now + 3600, now + 7200), seller
    )
    game = parse_usage("game")
    chain.send(
        licensing.functions.createAuction(work, game, 365, WW, ETH, now + 3600, now + 7200), seller
    )
    chain.send(licensing.functions.offer(work, game, 30, WW, ETH), seller)
    assert "LicensingExclusive" in revert_reason(
        licensing.functions.buy(1, chain.accounts[4]), chain.accounts[4], value=ETH
    )
    # Windows are bounded: a reveal window under an hour is refused.
    assert "LicensingBadTerms" in revert_reason(
        licensing.functions.createAuction(
            work, parse_usage("other"), 365, WW, ETH, now + 3600, now + 3700
        ),
        seller,
    )


def test_a_reentrant_refund_recipient_is_refunded_once(chain: Chain) -> None:
    licensing = chain.c["Licensing"]
    work, seller = _work(chain, "reentry")
    artifact = extra_artifact("ReentrantBidder")
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = chain.send(factory.constructor(licensing.address), chain.accounts[3])
    attacker = chain.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
    auction = _auction(chain, work, seller)
    salt = b"\7" * 32
    chain.send(attacker.functions.bid(auction, 2 * ETH, salt), chain.accounts[3], value=2 * ETH)
    honest_salt = _commit(chain, auction, chain.accounts[4], 5 * ETH, 5 * ETH)
    chain.advance(3600)
    chain.send(attacker.functions.reveal(auction, 2 * ETH, salt), chain.accounts[3])
    chain.send(licensing.functions.reveal(auction, 5 * ETH, honest_salt), chain.accounts[4])
    chain.advance(3600)
    chain.send(licensing.functions.settle(auction), seller)
    chain.send(attacker.functions.attack(), chain.accounts[3])
    assert chain.w3.eth.get_balance(attacker.address) == 2 * ETH
    assert attacker.functions.reentryAttempts().call() == 1
    assert attacker.functions.reentrySuccesses().call() == 0
    assert licensing.functions.refundOf(chain.accounts[4]).call() == 3 * ETH
    assert (
        chain.w3.eth.get_balance(licensing.address)
        == 3 * ETH
        == licensing.functions.heldDeposits().call()
    )
