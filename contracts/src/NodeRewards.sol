// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {INodeDirectory, IRewardsFunding} from "./Interfaces.sol";

/// @title Node operators' rewards, weighted by the quality they served
/// @notice Funds arrive in ETH or JAM (a governed share of the royalty pool's income and of
/// WorkRegistry's protocol fees, or anyone's) into the current period's pot; periods are
/// `periodSeconds` long from deployment. After a period ends, each registered node reports
/// what it served in it: musician-minutes, and what it measured for those minutes (concealed
/// frames, node-added latency, tick overruns). Its weight is
///
///     weight = minutes × quality,
///     quality = max(0, 10000 − concealPenalty × concealedBps
///                            − latencyPenalty × max(0, addedMs − latencyTargetMs)
///                            − overrunPenalty × overrunBps)            (basis points)
///
/// with the penalties and the target set by governance (Livepeer ranks orchestrators by a
/// latency score in the same spirit). Minutes served in sessions shared with other nodes over
/// a bridge count only when each of those nodes countersigned its part (an EIP-712 signature
/// over the period, the reporter, the minutes and the same quality figures): a node cannot
/// inflate what another node saw. Minutes in sessions no other node saw are the reporter's own
/// word. During the dispute window any registered node can dispute a report (a node that
/// shared a session with the reporter and finds its countersignature missing does); a disputed
/// report waits for governance, which upholds it or voids it. After the window each node
/// withdraws its share of the pot: pot × weight / total weight. A voided report's share moves
/// to the current period's pot, and so does the rounding dust of a period once every report
/// in it is withdrawn or voided.
contract NodeRewards is EIP712, ReentrancyGuard, IRewardsFunding {
    using SafeERC20 for IERC20;

    uint16 public constant TOTAL_BPS = 10_000;
    /// @notice Most countersignatures one report may carry.
    uint256 public constant MAX_COSIGNS = 32;
    /// @notice Most minutes one node may report for one period (a day's period of 10 000
    /// concurrent musicians is 14.4 M).
    uint64 public constant MAX_MINUTES = 1e9;
    bytes32 public constant SERVED_TYPEHASH = keccak256(
        "Served(uint256 period,address reporter,uint64 servedMinutes,uint16 concealedBps,uint16 addedMs,uint16 overrunBps)"
    );

    /// @notice What a node says it served in a period.
    struct Report {
        uint64 soloMinutes;
        uint64 sharedMinutes;
        uint16 concealedBps;
        uint16 addedMs;
        uint16 overrunBps;
    }

    /// @notice Another node's countersignature of the minutes it shared with the reporter.
    struct Cosign {
        address node;
        uint64 servedMinutes;
        bytes signature;
    }

    /// @notice The quality formula's parameters (governed).
    struct Formula {
        uint16 concealPenalty;
        uint16 latencyPenalty;
        uint16 latencyTargetMs;
        uint16 overrunPenalty;
    }

    struct Period {
        uint256 eth;
        uint256 token;
        uint256 totalWeight;
        uint256 paidEth;
        uint256 paidToken;
        /// @notice Weight of the entries claimed or voided so far.
        uint256 settledWeight;
    }

    struct Entry {
        uint256 weight;
        bool disputed;
        bool voided;
        bool claimed;
    }

    IERC20 private immutable _token;
    INodeDirectory private immutable _nodes;
    address private immutable _governance;
    uint64 private immutable _genesis;
    uint64 private immutable _periodSeconds;
    uint64 private _reportWindow;
    uint64 private _disputeWindow;
    Formula private _formula;
    mapping(uint256 periodId => Period) private _periods;
    mapping(uint256 periodId => mapping(address node => Entry)) private _entries;
    mapping(uint256 periodId => Formula) private _periodFormula;

    event Funded(uint256 indexed periodId, address indexed funder, address token, uint256 amount);
    event Reported(
        uint256 indexed periodId, address indexed node, uint64 soloMinutes, uint64 sharedMinutes, uint256 quality, uint256 weight
    );
    event Countersigned(uint256 indexed periodId, address indexed node, address indexed by, uint64 servedMinutes);
    event Disputed(uint256 indexed periodId, address indexed node, address indexed by, bytes32 reason);
    event Resolved(uint256 indexed periodId, address indexed node, bool upheld);
    event RewardClaimed(uint256 indexed periodId, address indexed node, uint256 eth, uint256 token, address to);
    event FormulaSet(uint16 concealPenalty, uint16 latencyPenalty, uint16 latencyTargetMs, uint16 overrunPenalty);
    event WindowsSet(uint64 reportWindow, uint64 disputeWindow);
    event DustRolled(uint256 indexed periodId, uint256 indexed toPeriod, uint256 eth, uint256 token);

    error NodeRewardsUnauthorized(address caller);
    error NodeRewardsNotRegistered(address node);
    error NodeRewardsWrongPhase(uint256 periodId);
    error NodeRewardsAlreadyReported(uint256 periodId, address node);
    error NodeRewardsBadReport();
    error NodeRewardsBadCosign(address node);
    error NodeRewardsNotReported(uint256 periodId, address node);
    error NodeRewardsDisputed(uint256 periodId, address node);
    error NodeRewardsNothingOwed(uint256 periodId, address node);
    error NodeRewardsZero();
    error NodeRewardsZeroAddress();

    /// @param token the JAM token
    /// @param nodes NodeRegistry: who may report, countersign and dispute
    /// @param governance the timelock: sets the formula and windows, resolves disputes
    /// @param periodSeconds length of a period
    constructor(IERC20 token, INodeDirectory nodes, address governance, uint64 periodSeconds)
        EIP712("jamnet NodeRewards", "1")
    {
        if (address(token) == address(0) || address(nodes) == address(0) || governance == address(0)) {
            revert NodeRewardsZeroAddress();
        }
        if (periodSeconds == 0) revert NodeRewardsBadReport();
        _token = token;
        _nodes = nodes;
        _governance = governance;
        _genesis = uint64(block.timestamp);
        _periodSeconds = periodSeconds;
        _reportWindow = periodSeconds;
        _disputeWindow = periodSeconds;
        _formula = Formula(20, 200, 10, 10);
    }

    // ------------------------------------------------------------------ funding

    /// @notice Add ETH to the current period's pot.
    function fund() external payable {
        if (msg.value == 0) revert NodeRewardsZero();
        uint256 p = currentPeriod();
        _periods[p].eth += msg.value;
        emit Funded(p, msg.sender, address(0), msg.value);
    }

    /// @notice Add JAM to the current period's pot (approve this contract first).
    function fundToken(uint256 amount) external nonReentrant {
        if (amount == 0) revert NodeRewardsZero();
        uint256 p = currentPeriod();
        _periods[p].token += amount;
        emit Funded(p, msg.sender, address(_token), amount);
        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    // ------------------------------------------------------------------ reports

    /// @notice Report what the caller's node served in `periodId` (once, in the report window).
    function report(uint256 periodId, Report calldata r, Cosign[] calldata cosigns) external {
        if (!_nodes.isRegistered(msg.sender)) revert NodeRewardsNotRegistered(msg.sender);
        (uint256 ends, uint256 reportEnd,) = periodTimes(periodId);
        if (block.timestamp < ends || block.timestamp >= reportEnd) revert NodeRewardsWrongPhase(periodId);
        Entry storage entry = _entries[periodId][msg.sender];
        if (entry.weight != 0) revert NodeRewardsAlreadyReported(periodId, msg.sender);
        if (
            r.soloMinutes > MAX_MINUTES || r.sharedMinutes > MAX_MINUTES || r.concealedBps > TOTAL_BPS
                || r.overrunBps > TOTAL_BPS || cosigns.length > MAX_COSIGNS
        ) revert NodeRewardsBadReport();
        uint256 shared = 0;
        for (uint256 i = 0; i < cosigns.length; ++i) {
            Cosign calldata c = cosigns[i];
            for (uint256 j = 0; j < i; ++j) {
                if (cosigns[j].node == c.node) revert NodeRewardsBadCosign(c.node);
            }
            if (
                c.node == msg.sender || c.servedMinutes == 0 || !_nodes.isRegistered(c.node)
                    || !SignatureChecker.isValidSignatureNow(c.node, servedDigest(periodId, msg.sender, c.servedMinutes, r), c.signature)
            ) revert NodeRewardsBadCosign(c.node);
            shared += c.servedMinutes;
            emit Countersigned(periodId, msg.sender, c.node, c.servedMinutes);
        }
        if (shared != r.sharedMinutes) revert NodeRewardsBadReport();
        // Every report of a period is weighed by one formula: the one in force at its first report.
        Formula memory f = _periodFormula[periodId];
        if (_periods[periodId].totalWeight == 0) {
            f = _formula;
            _periodFormula[periodId] = f;
        }
        uint256 q = _quality(f, r.concealedBps, r.addedMs, r.overrunBps);
        uint256 weight = (uint256(r.soloMinutes) + shared) * q;
        if (weight == 0) revert NodeRewardsBadReport();
        entry.weight = weight;
        _periods[periodId].totalWeight += weight;
        emit Reported(periodId, msg.sender, r.soloMinutes, r.sharedMinutes, q, weight);
    }

    /// @notice A registered node disputes another's report during the dispute window (for
    /// example: they shared a session and the report carries no countersignature of theirs).
    function dispute(uint256 periodId, address node, bytes32 reason) external {
        if (!_nodes.isRegistered(msg.sender) || msg.sender == node) revert NodeRewardsUnauthorized(msg.sender);
        (uint256 ends,, uint256 disputeEnd) = periodTimes(periodId);
        if (block.timestamp < ends || block.timestamp >= disputeEnd) revert NodeRewardsWrongPhase(periodId);
        Entry storage entry = _entries[periodId][node];
        if (entry.weight == 0 || entry.voided) revert NodeRewardsNotReported(periodId, node);
        entry.disputed = true;
        emit Disputed(periodId, node, msg.sender, reason);
    }

    /// @notice Governance settles a dispute: the report stands, or it is voided (its share
    /// moves to the current period's pot).
    function resolve(uint256 periodId, address node, bool upheld) external {
        if (msg.sender != _governance) revert NodeRewardsUnauthorized(msg.sender);
        Entry storage entry = _entries[periodId][node];
        if (!entry.disputed || entry.voided || entry.claimed) revert NodeRewardsNotReported(periodId, node);
        entry.disputed = false;
        emit Resolved(periodId, node, upheld);
        if (upheld) return;
        entry.voided = true;
        (uint256 eth, uint256 jam) = _share(periodId, entry.weight);
        Period storage p = _periods[periodId];
        p.paidEth += eth;
        p.paidToken += jam;
        uint256 now_ = currentPeriod();
        _periods[now_].eth += eth;
        _periods[now_].token += jam;
        _settle(periodId, entry.weight);
    }

    /// @notice Withdraw the caller's share of a period, after its dispute window, to `to`.
    function claim(uint256 periodId, address payable to) external nonReentrant {
        if (to == address(0)) revert NodeRewardsZeroAddress();
        (,, uint256 disputeEnd) = periodTimes(periodId);
        if (block.timestamp < disputeEnd) revert NodeRewardsWrongPhase(periodId);
        Entry storage entry = _entries[periodId][msg.sender];
        if (entry.weight == 0 || entry.voided || entry.claimed) revert NodeRewardsNothingOwed(periodId, msg.sender);
        if (entry.disputed) revert NodeRewardsDisputed(periodId, msg.sender);
        entry.claimed = true;
        (uint256 eth, uint256 jam) = _share(periodId, entry.weight);
        Period storage p = _periods[periodId];
        p.paidEth += eth;
        p.paidToken += jam;
        _settle(periodId, entry.weight);
        emit RewardClaimed(periodId, msg.sender, eth, jam, to);
        if (jam > 0) _token.safeTransfer(to, jam);
        if (eth > 0) Address.sendValue(to, eth);
    }

    /// @notice Move the pot of a period nobody reported in (after its report window) to the
    /// current period; anyone may call.
    function rollover(uint256 periodId) external {
        (, uint256 reportEnd,) = periodTimes(periodId);
        Period storage p = _periods[periodId];
        if (block.timestamp < reportEnd || p.totalWeight != 0) revert NodeRewardsWrongPhase(periodId);
        uint256 eth = p.eth - p.paidEth;
        uint256 jam = p.token - p.paidToken;
        if (eth == 0 && jam == 0) revert NodeRewardsZero();
        p.paidEth = p.eth;
        p.paidToken = p.token;
        uint256 now_ = currentPeriod();
        _periods[now_].eth += eth;
        _periods[now_].token += jam;
    }

    // ------------------------------------------------------------------ governance

    /// @notice Governance sets the quality formula (for periods not reported in yet: a period
    /// keeps the formula of its first report).
    function setFormula(Formula calldata f) external {
        if (msg.sender != _governance) revert NodeRewardsUnauthorized(msg.sender);
        _formula = f;
        emit FormulaSet(f.concealPenalty, f.latencyPenalty, f.latencyTargetMs, f.overrunPenalty);
    }

    /// @notice Governance sets how long nodes have to report, then to dispute.
    function setWindows(uint64 reportWindow, uint64 disputeWindow) external {
        if (msg.sender != _governance) revert NodeRewardsUnauthorized(msg.sender);
        if (reportWindow == 0 || reportWindow > 30 days || disputeWindow > 30 days) revert NodeRewardsBadReport();
        _reportWindow = reportWindow;
        _disputeWindow = disputeWindow;
        emit WindowsSet(reportWindow, disputeWindow);
    }

    // ------------------------------------------------------------------ views

    /// @notice Quality in basis points for these figures, by the current formula.
    function quality(uint16 concealedBps, uint16 addedMs, uint16 overrunBps) external view returns (uint256) {
        return _quality(_formula, concealedBps, addedMs, overrunBps);
    }

    /// @notice The formula a period's reports are weighed by (set at its first report).
    function periodFormula(uint256 periodId) external view returns (Formula memory) {
        return _periods[periodId].totalWeight == 0 ? _formula : _periodFormula[periodId];
    }

    function _quality(Formula memory f, uint16 concealedBps, uint16 addedMs, uint16 overrunBps)
        private
        pure
        returns (uint256)
    {
        uint256 late = addedMs > f.latencyTargetMs ? addedMs - f.latencyTargetMs : 0;
        uint256 penalty = uint256(f.concealPenalty) * concealedBps + uint256(f.latencyPenalty) * late
            + uint256(f.overrunPenalty) * overrunBps;
        return penalty >= TOTAL_BPS ? 0 : TOTAL_BPS - penalty;
    }

    /// @notice The EIP-712 digest a peer node signs to countersign `servedMinutes` shared with `reporter`.
    function servedDigest(uint256 periodId, address reporter, uint64 servedMinutes, Report calldata r)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(SERVED_TYPEHASH, periodId, reporter, servedMinutes, r.concealedBps, r.addedMs, r.overrunBps))
        );
    }

    /// @notice The period now.
    function currentPeriod() public view returns (uint256) {
        return (block.timestamp - _genesis) / _periodSeconds;
    }

    /// @notice When a period ends, when its report window ends, when its dispute window ends.
    function periodTimes(uint256 periodId) public view returns (uint256 ends, uint256 reportEnd, uint256 disputeEnd) {
        ends = _genesis + (periodId + 1) * _periodSeconds;
        reportEnd = ends + _reportWindow;
        disputeEnd = reportEnd + _disputeWindow;
    }

    /// @notice A period's pots, total weight and what was paid out of it.
    function period(uint256 periodId) external view returns (Period memory) {
        return _periods[periodId];
    }

    /// @notice A node's entry for a period and what it can claim (or could, once undisputed).
    function entry(uint256 periodId, address node)
        external
        view
        returns (Entry memory e, uint256 eth, uint256 token)
    {
        e = _entries[periodId][node];
        if (e.weight != 0 && !e.voided && !e.claimed) (eth, token) = _share(periodId, e.weight);
    }

    /// @notice The formula, the windows, the period length and the first period's start.
    function parameters()
        external
        view
        returns (Formula memory formula, uint64 reportWindow, uint64 disputeWindow, uint64 periodSeconds, uint64 genesis)
    {
        return (_formula, _reportWindow, _disputeWindow, _periodSeconds, _genesis);
    }

    /// @dev Count `weight` as claimed or voided; once every report of the period is, the
    /// rounding dust the shares left behind moves to the current period's pot.
    function _settle(uint256 periodId, uint256 weight) private {
        Period storage p = _periods[periodId];
        p.settledWeight += weight;
        if (p.settledWeight != p.totalWeight) return;
        uint256 eth = p.eth - p.paidEth;
        uint256 jam = p.token - p.paidToken;
        if (eth == 0 && jam == 0) return;
        uint256 now_ = currentPeriod();
        p.paidEth = p.eth;
        p.paidToken = p.token;
        _periods[now_].eth += eth;
        _periods[now_].token += jam;
        emit DustRolled(periodId, now_, eth, jam);
    }

    function _share(uint256 periodId, uint256 weight) private view returns (uint256 eth, uint256 jam) {
        Period storage p = _periods[periodId];
        eth = (p.eth * weight) / p.totalWeight;
        jam = (p.token * weight) / p.totalWeight;
    }
}
