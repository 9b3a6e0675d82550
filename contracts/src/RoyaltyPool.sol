// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IRewardsFunding, IWorkPayments} from "./Interfaces.sol";

/// @title The royalty pool: listening pays works, one period at a time
/// @notice Listeners, sponsors and the treasury (through governance) fund the pool in ETH or
/// JAM. Each period a settler (a node governance appointed) settles what the period pays out:
/// one Merkle root over (period, work, ETH, JAM) leaves and the two totals, taken from the
/// pool's unallocated funds. Settling costs the same for 10 works or 10 000. Anyone then
/// claims a work's leaf with its proof, once: the amounts go into the work's split in
/// WorkRegistry (its contributors withdraw from there). A period never pays out more than was
/// settled for it, and a period id settles once. A governed share of everything funding the
/// pool (at most `MAX_OPERATOR_SHARE_BPS`) goes on to NodeRewards, for the node operators who
/// served the sessions.
contract RoyaltyPool is ReentrancyGuard {
    using SafeERC20 for IERC20;

    struct Period {
        bytes32 root;
        uint128 eth;
        uint128 token;
        uint128 claimedEth;
        uint128 claimedToken;
        uint64 settledAt;
        uint32 works;
    }

    /// @notice Highest share of the pool's funding governance may send to node operators: 30 %.
    uint16 public constant MAX_OPERATOR_SHARE_BPS = 3000;

    IERC20 private immutable _token;
    IWorkPayments private immutable _works;
    IRewardsFunding private immutable _rewards;
    uint16 private _operatorShareBps;
    address private immutable _governance;
    uint256 private _unallocatedEth;
    uint256 private _unallocatedToken;
    mapping(address account => bool) private _settler;
    mapping(uint256 periodId => Period) private _periods;
    mapping(uint256 periodId => mapping(uint256 word => uint256 bits)) private _claimed;

    /// @notice Someone funded the pool (`token` is address(0) for ETH).
    event Funded(address indexed funder, address indexed token, uint256 amount);
    /// @notice A period was settled: its root, its totals and how many works it pays.
    event PeriodSettled(uint256 indexed periodId, bytes32 root, uint256 eth, uint256 token, uint256 works);
    /// @notice A work's share of a period went into its split.
    event Claimed(uint256 indexed periodId, uint256 indexed workId, uint256 eth, uint256 token);
    /// @notice Governance appointed or removed a settler.
    event SettlerSet(address indexed account, bool allowed);
    /// @notice Governance changed the operators' share of the pool's funding.
    event OperatorShareSet(uint16 bps);

    /// @notice Only governance (the timelock) may do this.
    error RoyaltyPoolUnauthorized(address caller);
    /// @notice A zero amount or an empty root.
    error RoyaltyPoolZero();
    /// @notice This period is already settled.
    error RoyaltyPoolSettled(uint256 periodId);
    /// @notice The period is not settled.
    error RoyaltyPoolNotSettled(uint256 periodId);
    /// @notice The pool holds less unallocated than the settlement asks for.
    error RoyaltyPoolShort(uint256 asked, uint256 available);
    /// @notice This work's leaf of this period was claimed already.
    error RoyaltyPoolClaimed(uint256 periodId, uint256 workId);
    /// @notice The proof does not lead to the period's root.
    error RoyaltyPoolBadProof(uint256 periodId, uint256 workId);
    /// @notice Claims would take more than the period settled (a wrong root).
    error RoyaltyPoolOverdrawn(uint256 periodId);
    /// @notice A required address is zero.
    error RoyaltyPoolZeroAddress();
    /// @notice The operators' share is above `MAX_OPERATOR_SHARE_BPS`.
    error RoyaltyPoolShareTooHigh(uint16 bps);

    /// @param token the JAM token
    /// @param works WorkRegistry
    /// @param governance the timelock: appoints settlers
    /// @param settler the first settler (the deploying node), or zero for none
    /// @param rewards NodeRewards: where the operators' share goes
    /// @param operatorShareBps the operators' initial share of the pool's funding
    constructor(
        IERC20 token,
        IWorkPayments works,
        address governance,
        address settler,
        IRewardsFunding rewards,
        uint16 operatorShareBps
    ) {
        if (
            address(token) == address(0) || address(works) == address(0) || governance == address(0)
                || address(rewards) == address(0)
        ) {
            revert RoyaltyPoolZeroAddress();
        }
        if (operatorShareBps > MAX_OPERATOR_SHARE_BPS) revert RoyaltyPoolShareTooHigh(operatorShareBps);
        _token = token;
        _works = works;
        _governance = governance;
        _rewards = rewards;
        _operatorShareBps = operatorShareBps;
        if (settler != address(0)) {
            _settler[settler] = true;
            emit SettlerSet(settler, true);
        }
    }

    /// @notice Fund the pool in ETH.
    function fund() external payable nonReentrant {
        if (msg.value == 0) revert RoyaltyPoolZero();
        uint256 cut = (msg.value * _operatorShareBps) / 10_000;
        _unallocatedEth += msg.value - cut;
        emit Funded(msg.sender, address(0), msg.value);
        if (cut > 0) _rewards.fund{value: cut}();
    }

    /// @notice Fund the pool in JAM (approve this contract first).
    function fundToken(uint256 amount) external nonReentrant {
        if (amount == 0) revert RoyaltyPoolZero();
        uint256 cut = (amount * _operatorShareBps) / 10_000;
        _unallocatedToken += amount - cut;
        emit Funded(msg.sender, address(_token), amount);
        _token.safeTransferFrom(msg.sender, address(this), amount);
        if (cut > 0) {
            _token.forceApprove(address(_rewards), cut);
            _rewards.fundToken(cut);
        }
    }

    /// @notice Settle a period: `eth` and `tokenAmount` (the sums of its leaves) move from the
    /// unallocated funds to the period, claimable against `root`. Once per period id.
    /// @param periodId the period (the node's numbering)
    /// @param root Merkle root over leaves keccak256(keccak256(abi.encode(periodId, workId, eth, token)))
    /// @param eth ETH the period pays out
    /// @param tokenAmount JAM the period pays out
    /// @param works how many leaves (for readers; not trusted for anything)
    function settle(uint256 periodId, bytes32 root, uint256 eth, uint256 tokenAmount, uint32 works) external {
        if (!_settler[msg.sender]) revert RoyaltyPoolUnauthorized(msg.sender);
        if (root == bytes32(0)) revert RoyaltyPoolZero();
        Period storage entry = _periods[periodId];
        if (entry.root != bytes32(0)) revert RoyaltyPoolSettled(periodId);
        if (eth > _unallocatedEth) revert RoyaltyPoolShort(eth, _unallocatedEth);
        if (tokenAmount > _unallocatedToken) revert RoyaltyPoolShort(tokenAmount, _unallocatedToken);
        _unallocatedEth -= eth;
        _unallocatedToken -= tokenAmount;
        entry.root = root;
        entry.eth = SafeCast.toUint128(eth);
        entry.token = SafeCast.toUint128(tokenAmount);
        entry.settledAt = uint64(block.timestamp);
        entry.works = works;
        emit PeriodSettled(periodId, root, eth, tokenAmount, works);
    }

    /// @notice Pay a work its share of a settled period, into its WorkRegistry split. Anyone
    /// may call; each (period, work) pays once.
    function claim(uint256 periodId, uint256 workId, uint256 eth, uint256 tokenAmount, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Period storage entry = _periods[periodId];
        if (entry.root == bytes32(0)) revert RoyaltyPoolNotSettled(periodId);
        uint256 word = workId >> 8;
        uint256 bit = uint256(1) << (workId & 0xff);
        if (_claimed[periodId][word] & bit != 0) revert RoyaltyPoolClaimed(periodId, workId);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(periodId, workId, eth, tokenAmount))));
        if (!MerkleProof.verifyCalldata(proof, entry.root, leaf)) revert RoyaltyPoolBadProof(periodId, workId);
        if (entry.claimedEth + eth > entry.eth || entry.claimedToken + tokenAmount > entry.token) {
            revert RoyaltyPoolOverdrawn(periodId);
        }
        _claimed[periodId][word] |= bit;
        entry.claimedEth += SafeCast.toUint128(eth);
        entry.claimedToken += SafeCast.toUint128(tokenAmount);
        emit Claimed(periodId, workId, eth, tokenAmount);
        if (eth > 0) _works.pay{value: eth}(workId);
        if (tokenAmount > 0) {
            _token.forceApprove(address(_works), tokenAmount);
            _works.payToken(workId, tokenAmount);
        }
    }

    /// @notice Governance appoints or removes a settler.
    function setSettler(address account, bool allowed) external {
        if (msg.sender != _governance) revert RoyaltyPoolUnauthorized(msg.sender);
        if (account == address(0)) revert RoyaltyPoolZeroAddress();
        _settler[account] = allowed;
        emit SettlerSet(account, allowed);
    }

    /// @notice Governance sets the operators' share of the pool's funding.
    function setOperatorShare(uint16 bps) external {
        if (msg.sender != _governance) revert RoyaltyPoolUnauthorized(msg.sender);
        if (bps > MAX_OPERATOR_SHARE_BPS) revert RoyaltyPoolShareTooHigh(bps);
        _operatorShareBps = bps;
        emit OperatorShareSet(bps);
    }

    /// @notice The operators' share of the pool's funding, and where it goes.
    function operatorShare() external view returns (uint16 bps, address rewards) {
        return (_operatorShareBps, address(_rewards));
    }

    /// @notice A period's root, totals, what was claimed, when it settled and its leaf count.
    function period(uint256 periodId)
        external
        view
        returns (
            bytes32 root,
            uint256 eth,
            uint256 token,
            uint256 claimedEth,
            uint256 claimedToken,
            uint64 settledAt,
            uint32 works
        )
    {
        Period storage p = _periods[periodId];
        return (p.root, p.eth, p.token, p.claimedEth, p.claimedToken, p.settledAt, p.works);
    }

    /// @notice Whether a work's leaf of a period was claimed.
    function isClaimed(uint256 periodId, uint256 workId) external view returns (bool) {
        return _claimed[periodId][workId >> 8] & (uint256(1) << (workId & 0xff)) != 0;
    }

    /// @notice Funds not yet settled into any period: (ETH, JAM).
    function unallocated() external view returns (uint256 eth, uint256 token) {
        return (_unallocatedEth, _unallocatedToken);
    }

    /// @notice Whether `account` may settle periods.
    function isSettler(address account) external view returns (bool) {
        return _settler[account];
    }

    /// @notice The JAM token, WorkRegistry and governance addresses.
    function addresses() external view returns (address token, address works, address governance) {
        return (address(_token), address(_works), _governance);
    }
}
