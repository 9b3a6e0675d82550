// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {IWorkPayments} from "./Interfaces.sol";

/// @title Licences for jamnet works, sold at a fixed price or by sealed-bid auction
/// @notice A work's lead contributor (the largest share in its split; the first listed among
/// equals) offers licence terms: a usage (online video, advert, film, game, broadcast, other), a term in
/// days, a territory (ISO 3166 alpha-2, or "WW" for worldwide) and a price in ETH. Anyone buys
/// them: the price goes straight into the work's split in WorkRegistry (and up to its
/// ancestors, if it is a derivative) and a licence record is issued that anyone can verify.
///
/// An exclusive licence for a usage is sold by a sealed-bid second-price (Vickrey) auction
/// with commit and reveal:
/// - a bidder commits `keccak256(abi.encode(auctionId, bidder, value, salt))` (32 bytes) with
///   a deposit of at least the reserve; the deposit may exceed the bid, so it need not leak
///   the bid; one commitment per bidder;
/// - in the reveal window the bidder (only that address: the commitment names it, so a copied
///   reveal is worthless to anyone else) reveals value and salt. A bid above its deposit counts
///   as the deposit; a bid below the reserve is void and refunded;
/// - the highest revealed bid wins and pays the second-highest revealed bid, or the reserve
///   when it is alone. Ties go to the bid committed first (the earlier commitment), so racing
///   to reveal gains nothing;
/// - deposits never revealed are forfeited to the work's contributors (paid into its split
///   at settlement), so a bidder who commits to move the price and then hides pays for it;
/// - every refund (losers' deposits, the winner's deposit above the price) is a pull payment.
/// While an auction for a usage is open, or its exclusive licence runs, nobody can buy
/// fixed-price licences of that usage for the work; an auction cannot open while fixed-price
/// licences of that usage run. Exclusivity is per usage, in every territory.
contract Licensing is ReentrancyGuard {
    /// @notice Usages: 0 online video, 1 advert, 2 film, 3 game, 4 broadcast, 5 other.
    uint8 public constant USAGE_COUNT = 6;
    /// @notice Longest licence term, in days (10 years).
    uint32 public constant MAX_TERM_DAYS = 3650;
    /// @notice Longest commit or reveal window.
    uint64 public constant MAX_WINDOW_S = 30 days;
    /// @notice Shortest reveal window: bidders must have time to reveal.
    uint64 public constant MIN_REVEAL_S = 1 hours;

    struct Terms {
        uint256 workId;
        uint256 price;
        uint32 termDays;
        uint8 usage;
        bytes2 territory;
        bool active;
    }

    struct Licence {
        uint256 workId;
        address licensee;
        uint8 usage;
        bytes2 territory;
        bool exclusive;
        uint64 start;
        uint64 end;
        uint256 price;
        uint256 source;
    }

    struct Auction {
        uint256 workId;
        address seller;
        uint8 usage;
        bytes2 territory;
        uint32 termDays;
        uint64 commitEnd;
        uint64 revealEnd;
        bool settled;
        uint32 bids;
        uint32 revealed;
        uint32 leaderSeq;
        address leader;
        uint256 reserve;
        uint256 highest;
        uint256 second;
        uint256 deposits;
        uint256 revealedDeposits;
    }

    struct Bid {
        bytes32 commitment;
        uint256 deposit;
        uint32 seq;
        bool revealed;
    }

    IWorkPayments private immutable _works;
    Terms[] private _terms;
    Licence[] private _licences;
    Auction[] private _auctions;
    mapping(uint256 auctionId => mapping(address bidder => Bid)) private _bids;
    mapping(address account => uint256) private _refunds;
    mapping(uint256 workId => mapping(uint8 usage => uint256 until)) private _exclusiveUntil;
    mapping(uint256 workId => mapping(uint8 usage => uint256 until)) private _sharedUntil;
    mapping(uint256 workId => mapping(uint8 usage => uint256 auctionIdPlusOne)) private _openAuction;
    uint256 private _heldDeposits;

    /// @notice A work's lead contributor offered licence terms.
    event TermsOffered(uint256 indexed termsId, uint256 indexed workId, uint8 usage, bytes2 territory, uint32 termDays, uint256 price);
    /// @notice Terms were withdrawn from sale, or offered again.
    event TermsActive(uint256 indexed termsId, bool active);
    /// @notice A licence was issued (`source` is the terms id, or the auction id if exclusive).
    event LicenceIssued(
        uint256 indexed licenceId, uint256 indexed workId, address indexed licensee, bool exclusive, uint256 source, uint256 price, uint64 end
    );
    /// @notice An exclusive-licence auction opened.
    event AuctionCreated(
        uint256 indexed auctionId, uint256 indexed workId, uint8 usage, uint256 reserve, uint64 commitEnd, uint64 revealEnd
    );
    /// @notice A sealed bid was committed with a deposit.
    event BidCommitted(uint256 indexed auctionId, address indexed bidder, uint256 deposit);
    /// @notice A bid was revealed (`valid` is false below the reserve).
    event BidRevealed(uint256 indexed auctionId, address indexed bidder, uint256 value, bool valid);
    /// @notice An auction settled: the winner (or zero), the price paid and the deposits forfeited.
    event AuctionSettled(uint256 indexed auctionId, address indexed winner, uint256 price, uint256 forfeited);
    /// @notice `amount` became refundable to `account`.
    event RefundCredited(address indexed account, uint256 indexed auctionId, uint256 amount);
    /// @notice `account` withdrew its refunds.
    event RefundWithdrawn(address indexed account, uint256 amount, address to);

    /// @notice Only the work's lead contributor may do this.
    error LicensingUnauthorized(address caller);
    /// @notice A usage, term, territory, price, reserve or window is out of range.
    error LicensingBadTerms();
    /// @notice No such terms, licence or auction.
    error LicensingUnknown(uint256 id);
    /// @notice The terms are not on sale.
    error LicensingInactive(uint256 termsId);
    /// @notice The ETH sent is not the price.
    error LicensingWrongPayment(uint256 sent, uint256 price);
    /// @notice An exclusive licence of this usage runs, or its auction is open, until `until`.
    error LicensingExclusive(uint256 workId, uint8 usage, uint256 until);
    /// @notice Fixed-price licences of this usage run until `until`: no exclusive auction before.
    error LicensingShared(uint256 workId, uint8 usage, uint256 until);
    /// @notice Not in the commit window, the reveal window, or not yet ended.
    error LicensingWrongPhase(uint256 auctionId);
    /// @notice A deposit below the reserve, an empty commitment, or a second commitment.
    error LicensingBadCommit(uint256 auctionId);
    /// @notice No commitment from the caller matches this value and salt, or it was revealed.
    error LicensingBadReveal(uint256 auctionId, address bidder);
    /// @notice The auction is already settled.
    error LicensingSettled(uint256 auctionId);
    /// @notice Nothing to refund.
    error LicensingNothingOwed(address account);
    /// @notice A required address is zero.
    error LicensingZeroAddress();

    /// @param works WorkRegistry: who registered a work, and where its payments go
    constructor(IWorkPayments works) {
        if (address(works) == address(0)) revert LicensingZeroAddress();
        _works = works;
    }

    // ------------------------------------------------------------------ fixed price

    /// @notice Offer licence terms for a work (its lead contributor only).
    function offer(uint256 workId, uint8 usage, uint32 termDays, bytes2 territory, uint256 price)
        external
        returns (uint256 termsId)
    {
        if (_works.leadOf(workId) != msg.sender) revert LicensingUnauthorized(msg.sender);
        if (usage >= USAGE_COUNT || termDays == 0 || termDays > MAX_TERM_DAYS || price == 0 || !_territory(territory)) {
            revert LicensingBadTerms();
        }
        termsId = _terms.length;
        _terms.push(Terms(workId, price, termDays, usage, territory, true));
        emit TermsOffered(termsId, workId, usage, territory, termDays, price);
    }

    /// @notice Withdraw terms from sale, or put them back (the work's lead contributor only).
    /// Licences already sold are unaffected.
    function setActive(uint256 termsId, bool active) external {
        Terms storage t = _termsOf(termsId);
        if (_works.leadOf(t.workId) != msg.sender) revert LicensingUnauthorized(msg.sender);
        t.active = active;
        emit TermsActive(termsId, active);
    }

    /// @notice Buy a licence on `termsId` for `licensee` (the caller or anyone it names),
    /// paying exactly the price: it goes into the work's split at once.
    function buy(uint256 termsId, address licensee) external payable nonReentrant returns (uint256 licenceId) {
        Terms storage t = _termsOf(termsId);
        if (!t.active) revert LicensingInactive(termsId);
        if (licensee == address(0)) revert LicensingZeroAddress();
        if (msg.value != t.price) revert LicensingWrongPayment(msg.value, t.price);
        uint256 workId = t.workId;
        uint8 usage = t.usage;
        uint256 blocked = _blockedUntil(workId, usage);
        if (blocked > block.timestamp) revert LicensingExclusive(workId, usage, blocked);
        uint64 end = uint64(block.timestamp + uint256(t.termDays) * 1 days);
        if (end > _sharedUntil[workId][usage]) _sharedUntil[workId][usage] = end;
        licenceId = _issue(Licence(workId, licensee, usage, t.territory, false, uint64(block.timestamp), end, t.price, termsId));
        _works.pay{value: msg.value}(workId);
    }

    // ------------------------------------------------------------------ exclusive auctions

    /// @notice Open a sealed-bid auction for an exclusive licence of `usage` (the work's
    /// lead contributor only): commits until `commitEnd`, reveals until `revealEnd`.
    function createAuction(
        uint256 workId,
        uint8 usage,
        uint32 termDays,
        bytes2 territory,
        uint256 reserve,
        uint64 commitEnd,
        uint64 revealEnd
    ) external returns (uint256 auctionId) {
        if (_works.leadOf(workId) != msg.sender) revert LicensingUnauthorized(msg.sender);
        if (
            usage >= USAGE_COUNT || termDays == 0 || termDays > MAX_TERM_DAYS || reserve == 0 || !_territory(territory)
                || commitEnd <= block.timestamp || commitEnd > block.timestamp + MAX_WINDOW_S
                || revealEnd < commitEnd + MIN_REVEAL_S || revealEnd > commitEnd + MAX_WINDOW_S
        ) revert LicensingBadTerms();
        uint256 blocked = _blockedUntil(workId, usage);
        if (blocked > block.timestamp) revert LicensingExclusive(workId, usage, blocked);
        if (_sharedUntil[workId][usage] > block.timestamp) {
            revert LicensingShared(workId, usage, _sharedUntil[workId][usage]);
        }
        auctionId = _auctions.length;
        Auction storage a = _auctions.push();
        a.workId = workId;
        a.seller = msg.sender;
        a.usage = usage;
        a.territory = territory;
        a.termDays = termDays;
        a.reserve = reserve;
        a.commitEnd = commitEnd;
        a.revealEnd = revealEnd;
        _openAuction[workId][usage] = auctionId + 1;
        emit AuctionCreated(auctionId, workId, usage, reserve, commitEnd, revealEnd);
    }

    /// @notice Commit a sealed bid: `commitment` is `bidCommitment(auctionId, msg.sender,
    /// value, salt)`; the ETH sent is the deposit (at least the reserve, and at least the bid).
    function commit(uint256 auctionId, bytes32 commitment) external payable {
        Auction storage a = _auctionOf(auctionId);
        if (block.timestamp >= a.commitEnd) revert LicensingWrongPhase(auctionId);
        Bid storage b = _bids[auctionId][msg.sender];
        if (commitment == bytes32(0) || msg.value < a.reserve || b.commitment != bytes32(0)) {
            revert LicensingBadCommit(auctionId);
        }
        b.commitment = commitment;
        b.deposit = msg.value;
        b.seq = a.bids;
        a.bids += 1;
        a.deposits += msg.value;
        _heldDeposits += msg.value;
        emit BidCommitted(auctionId, msg.sender, msg.value);
    }

    /// @notice Reveal the caller's bid. Outbid deposits become refundable at once.
    function reveal(uint256 auctionId, uint256 value, bytes32 salt) external {
        Auction storage a = _auctionOf(auctionId);
        if (block.timestamp < a.commitEnd || block.timestamp >= a.revealEnd) revert LicensingWrongPhase(auctionId);
        Bid storage b = _bids[auctionId][msg.sender];
        if (b.revealed || b.commitment == bytes32(0) || b.commitment != bidCommitment(auctionId, msg.sender, value, salt)) {
            revert LicensingBadReveal(auctionId, msg.sender);
        }
        b.revealed = true;
        a.revealed += 1;
        a.revealedDeposits += b.deposit;
        uint256 bid = value > b.deposit ? b.deposit : value;
        bool valid = bid >= a.reserve;
        emit BidRevealed(auctionId, msg.sender, bid, valid);
        if (!valid) {
            _credit(msg.sender, auctionId, b.deposit);
            return;
        }
        bool leads = a.leader == address(0) || bid > a.highest || (bid == a.highest && b.seq < a.leaderSeq);
        if (!leads) {
            if (bid > a.second) a.second = bid;
            _credit(msg.sender, auctionId, b.deposit);
            return;
        }
        if (a.leader != address(0)) {
            a.second = a.highest;
            _credit(a.leader, auctionId, _bids[auctionId][a.leader].deposit);
        }
        a.leader = msg.sender;
        a.leaderSeq = b.seq;
        a.highest = bid;
    }

    /// @notice After the reveal window anyone settles: the winner pays the second price (the
    /// reserve when alone) and gets the exclusive licence; its deposit above the price becomes
    /// refundable; unrevealed deposits go to the work's contributors with the price.
    function settle(uint256 auctionId) external nonReentrant returns (uint256 licenceId) {
        Auction storage a = _auctionOf(auctionId);
        if (block.timestamp < a.revealEnd) revert LicensingWrongPhase(auctionId);
        if (a.settled) revert LicensingSettled(auctionId);
        a.settled = true;
        uint256 workId = a.workId;
        _openAuction[workId][a.usage] = 0;
        uint256 forfeited = a.deposits - a.revealedDeposits;
        uint256 price = 0;
        address winner = a.leader;
        licenceId = type(uint256).max;
        if (winner != address(0)) {
            price = a.second > a.reserve ? a.second : a.reserve;
            _credit(winner, auctionId, _bids[auctionId][winner].deposit - price);
            uint64 end = uint64(block.timestamp + uint256(a.termDays) * 1 days);
            _exclusiveUntil[workId][a.usage] = end;
            licenceId = _issue(Licence(workId, winner, a.usage, a.territory, true, uint64(block.timestamp), end, price, auctionId));
        }
        _heldDeposits -= price + forfeited;
        emit AuctionSettled(auctionId, winner, price, forfeited);
        if (price + forfeited > 0) _works.pay{value: price + forfeited}(workId);
    }

    /// @notice Withdraw every refund owed to the caller, to `to`.
    function withdrawRefunds(address payable to) external nonReentrant {
        if (to == address(0)) revert LicensingZeroAddress();
        uint256 amount = _refunds[msg.sender];
        if (amount == 0) revert LicensingNothingOwed(msg.sender);
        _refunds[msg.sender] = 0;
        _heldDeposits -= amount;
        emit RefundWithdrawn(msg.sender, amount, to);
        Address.sendValue(to, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice The commitment a bidder makes: all of auction id, bidder, value and salt.
    function bidCommitment(uint256 auctionId, address bidder, uint256 value, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(auctionId, bidder, value, salt));
    }

    /// @notice A licence record and whether it is in force now.
    function verify(uint256 licenceId) external view returns (Licence memory licence, bool valid) {
        if (licenceId >= _licences.length) revert LicensingUnknown(licenceId);
        licence = _licences[licenceId];
        valid = block.timestamp >= licence.start && block.timestamp < licence.end;
    }

    /// @notice Licence terms.
    function terms(uint256 termsId) external view returns (Terms memory) {
        return _termsOf(termsId);
    }

    /// @notice An auction's state.
    function auction(uint256 auctionId) external view returns (Auction memory) {
        return _auctionOf(auctionId);
    }

    /// @notice A bidder's commitment, deposit, order and whether it was revealed.
    function bidOf(uint256 auctionId, address bidder) external view returns (Bid memory) {
        return _bids[auctionId][bidder];
    }

    /// @notice ETH refundable to `account`.
    function refundOf(address account) external view returns (uint256) {
        return _refunds[account];
    }

    /// @notice Deposits this contract holds: in open auctions and refunds not withdrawn.
    function heldDeposits() external view returns (uint256) {
        return _heldDeposits;
    }

    /// @notice Until when fixed-price licences of `usage` cannot be bought for `workId`
    /// (an exclusive licence running, or an auction open: its reveal end).
    function exclusiveUntil(uint256 workId, uint8 usage) external view returns (uint256) {
        return _blockedUntil(workId, usage);
    }

    /// @notice How many terms, licences and auctions exist.
    function counts() external view returns (uint256 termsCount, uint256 licenceCount, uint256 auctionCount) {
        return (_terms.length, _licences.length, _auctions.length);
    }

    /// @notice WorkRegistry.
    function workRegistry() external view returns (address) {
        return address(_works);
    }

    // ------------------------------------------------------------------ internals

    function _blockedUntil(uint256 workId, uint8 usage) private view returns (uint256 until) {
        until = _exclusiveUntil[workId][usage];
        uint256 open = _openAuction[workId][usage];
        if (open != 0) {
            uint256 revealEnd = _auctions[open - 1].revealEnd;
            if (revealEnd > until) until = revealEnd;
            // An auction past its reveal window but not settled still blocks until settled.
            if (until <= block.timestamp) until = type(uint64).max;
        }
    }

    function _credit(address account, uint256 auctionId, uint256 amount) private {
        if (amount == 0) return;
        _refunds[account] += amount;
        emit RefundCredited(account, auctionId, amount);
    }

    function _issue(Licence memory licence) private returns (uint256 licenceId) {
        licenceId = _licences.length;
        _licences.push(licence);
        emit LicenceIssued(licenceId, licence.workId, licence.licensee, licence.exclusive, licence.source, licence.price, licence.end);
    }

    function _territory(bytes2 code) private pure returns (bool) {
        return uint8(code[0]) >= 0x41 && uint8(code[0]) <= 0x5a && uint8(code[1]) >= 0x41 && uint8(code[1]) <= 0x5a;
    }

    function _termsOf(uint256 termsId) private view returns (Terms storage) {
        if (termsId >= _terms.length) revert LicensingUnknown(termsId);
        return _terms[termsId];
    }

    function _auctionOf(uint256 auctionId) private view returns (Auction storage) {
        if (auctionId >= _auctions.length) revert LicensingUnknown(auctionId);
        return _auctions[auctionId];
    }
}
