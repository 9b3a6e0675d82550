// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {INodeDirectory} from "./Interfaces.sol";

/// @title Registry of jamnet node operators
/// @notice Operators stake JAM (at least the governance-set minimum), register their node's
/// libp2p peer id, HTTP endpoint and metadata, update them, unbond (their node leaves the
/// registry at once; the stake unlocks after a governance-set delay) and withdraw. Governance
/// (the timelock) can slash a stake to the treasury.
contract NodeRegistry is ReentrancyGuard, INodeDirectory {
    using SafeERC20 for IERC20;

    struct Operator {
        uint256 stake;
        uint256 unbonding;
        uint64 unlockAt;
        bool registered;
        string peerId;
        string endpoint;
        string metadata;
    }

    /// @notice Longest unbonding delay governance may set.
    uint64 public constant MAX_UNBOND_DELAY = 90 days;
    /// @notice Longest peer id, endpoint or metadata string, in bytes.
    uint256 public constant MAX_FIELD_BYTES = 512;

    IERC20 private immutable _token;
    address private immutable _governance;
    address private immutable _treasury;
    uint256 private _minStake;
    uint64 private _unbondDelay;
    mapping(address operator => Operator) private _operators;
    mapping(bytes32 peerIdHash => address operator) private _peerOwner;
    address[] private _registeredList;
    mapping(address operator => uint256 indexPlusOne) private _listIndex;

    /// @notice An operator added to their stake.
    event Staked(address indexed operator, uint256 amount, uint256 stake);
    /// @notice An operator registered or updated their node.
    event NodeRegistered(address indexed operator, string peerId, string endpoint, string metadata);
    /// @notice An operator's node left the registry and its stake started unbonding.
    event Unbonding(address indexed operator, uint256 amount, uint64 unlockAt);
    /// @notice An operator withdrew their unbonded stake.
    event StakeWithdrawn(address indexed operator, uint256 amount);
    /// @notice Governance slashed an operator's stake to the treasury.
    event Slashed(address indexed operator, uint256 amount);
    /// @notice Governance changed the minimum stake or the unbonding delay.
    event ParametersSet(uint256 minStake, uint64 unbondDelay);

    /// @notice Only governance (the timelock) may do this.
    error NodeRegistryUnauthorized(address caller);
    /// @notice The stake is below the minimum.
    error NodeRegistryStakeTooLow(uint256 stake, uint256 minimum);
    /// @notice A zero amount.
    error NodeRegistryZeroAmount();
    /// @notice A field is empty or too long.
    error NodeRegistryBadField(string field);
    /// @notice The peer id belongs to another operator.
    error NodeRegistryPeerTaken(string peerId, address owner);
    /// @notice The caller has no registered node.
    error NodeRegistryNotRegistered(address operator);
    /// @notice Nothing is unbonding, or not yet unlocked.
    error NodeRegistryLocked(uint64 unlockAt);
    /// @notice The delay is above `MAX_UNBOND_DELAY`.
    error NodeRegistryDelayTooLong(uint64 delay);
    /// @notice A required address is zero.
    error NodeRegistryZeroAddress();

    /// @param token the JAM token
    /// @param governance the timelock
    /// @param treasury receives slashed stake
    /// @param minStake minimum stake to register a node
    /// @param unbondDelay seconds between unbonding and withdrawing
    constructor(IERC20 token, address governance, address treasury, uint256 minStake, uint64 unbondDelay) {
        if (unbondDelay > MAX_UNBOND_DELAY) revert NodeRegistryDelayTooLong(unbondDelay);
        if (address(token) == address(0) || governance == address(0) || treasury == address(0)) {
            revert NodeRegistryZeroAddress();
        }
        _token = token;
        _governance = governance;
        _treasury = treasury;
        _minStake = minStake;
        _unbondDelay = unbondDelay;
    }

    modifier onlyGovernance() {
        if (msg.sender != _governance) revert NodeRegistryUnauthorized(msg.sender);
        _;
    }

    /// @notice Add `amount` JAM to the caller's stake (approve this contract first). The stake
    /// it makes must reach the minimum: a smaller one could register nothing and would only sit
    /// locked until unbonded.
    function stake(uint256 amount) external nonReentrant {
        if (amount == 0) revert NodeRegistryZeroAmount();
        Operator storage op = _operators[msg.sender];
        if (op.stake + amount < _minStake) revert NodeRegistryStakeTooLow(op.stake + amount, _minStake);
        op.stake += amount;
        emit Staked(msg.sender, amount, op.stake);
        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Register (or update) the caller's node; needs at least the minimum stake.
    /// @param peerId the node's libp2p peer id
    /// @param endpoint the node's public HTTP(S) URL
    /// @param metadata free-form JSON (region, capacity, ...)
    function register(string calldata peerId, string calldata endpoint, string calldata metadata) external {
        Operator storage op = _operators[msg.sender];
        if (op.stake < _minStake || op.stake == 0) revert NodeRegistryStakeTooLow(op.stake, _minStake);
        _checkField(peerId, "peerId", true);
        _checkField(endpoint, "endpoint", true);
        _checkField(metadata, "metadata", false);
        bytes32 key = keccak256(bytes(peerId));
        address owner = _peerOwner[key];
        if (owner != address(0) && owner != msg.sender) revert NodeRegistryPeerTaken(peerId, owner);
        _releasePeer(msg.sender, op);
        _peerOwner[key] = msg.sender;
        op.peerId = peerId;
        op.endpoint = endpoint;
        op.metadata = metadata;
        if (!op.registered) {
            op.registered = true;
            _registeredList.push(msg.sender);
            _listIndex[msg.sender] = _registeredList.length;
        }
        emit NodeRegistered(msg.sender, peerId, endpoint, metadata);
    }

    /// @notice Leave the registry and start unbonding the whole stake.
    function unbond() external {
        Operator storage op = _operators[msg.sender];
        if (op.stake == 0) revert NodeRegistryZeroAmount();
        uint256 amount = op.stake;
        op.stake = 0;
        op.unbonding += amount;
        op.unlockAt = uint64(block.timestamp) + _unbondDelay;
        _deregister(msg.sender, op);
        emit Unbonding(msg.sender, amount, op.unlockAt);
    }

    /// @notice Withdraw unbonded stake once its delay has passed.
    function withdraw() external nonReentrant {
        Operator storage op = _operators[msg.sender];
        uint256 amount = op.unbonding;
        if (amount == 0 || block.timestamp < op.unlockAt) revert NodeRegistryLocked(op.unlockAt);
        op.unbonding = 0;
        emit StakeWithdrawn(msg.sender, amount);
        _token.safeTransfer(msg.sender, amount);
    }

    /// @notice Governance slashes up to `amount` of an operator's stake (bonded first, then
    /// unbonding) to the treasury; a node left below the minimum leaves the registry.
    function slash(address account, uint256 amount) external onlyGovernance nonReentrant {
        Operator storage op = _operators[account];
        uint256 fromStake = amount < op.stake ? amount : op.stake;
        op.stake -= fromStake;
        uint256 rest = amount - fromStake;
        uint256 fromUnbonding = rest < op.unbonding ? rest : op.unbonding;
        op.unbonding -= fromUnbonding;
        uint256 total = fromStake + fromUnbonding;
        if (total == 0) revert NodeRegistryZeroAmount();
        if (op.registered && op.stake < _minStake) _deregister(account, op);
        emit Slashed(account, total);
        _token.safeTransfer(_treasury, total);
    }

    /// @notice Governance sets the minimum stake and the unbonding delay.
    function setParameters(uint256 minStake, uint64 unbondDelay) external onlyGovernance {
        if (unbondDelay > MAX_UNBOND_DELAY) revert NodeRegistryDelayTooLong(unbondDelay);
        _minStake = minStake;
        _unbondDelay = unbondDelay;
        emit ParametersSet(minStake, unbondDelay);
    }

    /// @notice An operator's stake, unbonding amount and unlock time, and node fields.
    function operator(address account)
        external
        view
        returns (
            uint256 staked,
            uint256 unbonding,
            uint64 unlockAt,
            bool registered,
            string memory peerId,
            string memory endpoint,
            string memory metadata
        )
    {
        Operator storage op = _operators[account];
        return (op.stake, op.unbonding, op.unlockAt, op.registered, op.peerId, op.endpoint, op.metadata);
    }

    /// @notice Whether `account` has a registered node (WorkRegistry asks before trusting an attestation).
    function isRegistered(address account) external view returns (bool) {
        return _operators[account].registered;
    }

    /// @notice The operator whose registered node has the libp2p peer id `peerId` (the zero
    /// address if none): how a node learns who a peer it talks to over libp2p is on chain.
    function operatorOf(string calldata peerId) external view returns (address) {
        address owner = _peerOwner[keccak256(bytes(peerId))];
        return owner != address(0) && _operators[owner].registered ? owner : address(0);
    }

    /// @notice Operators with a registered node.
    function registeredOperators() external view returns (address[] memory) {
        return _registeredList;
    }

    /// @notice Minimum stake and unbonding delay.
    function parameters() external view returns (uint256 minStake, uint64 unbondDelay) {
        return (_minStake, _unbondDelay);
    }

    /// @dev Drop the operator's claim on their current peer id, if it is still theirs (after
    /// leaving, someone else may have registered it), and forget the id.
    function _releasePeer(address account, Operator storage op) private {
        if (bytes(op.peerId).length == 0) return;
        bytes32 key = keccak256(bytes(op.peerId));
        if (_peerOwner[key] == account) delete _peerOwner[key];
        op.peerId = "";
    }

    function _deregister(address account, Operator storage op) private {
        if (!op.registered) return;
        op.registered = false;
        _releasePeer(account, op);
        uint256 index = _listIndex[account] - 1;
        address last = _registeredList[_registeredList.length - 1];
        _registeredList[index] = last;
        _listIndex[last] = index + 1;
        _registeredList.pop();
        delete _listIndex[account];
    }

    function _checkField(string calldata value, string memory name, bool required) private pure {
        uint256 length = bytes(value).length;
        if ((required && length == 0) || length > MAX_FIELD_BYTES) revert NodeRegistryBadField(name);
    }
}
