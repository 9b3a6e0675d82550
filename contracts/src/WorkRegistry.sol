// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {INodeDirectory, IRewardsFunding, IWorkPayments} from "./Interfaces.sol";

/// @title Royalty splits for jamnet works
/// @notice A work (content hash, metadata URI) is registered with its contributors and their
/// shares in basis points (summing to 10 000), with every contributor's consent: an EIP-712
/// signature over the exact split, the registrant, a deadline and a nonce (or the registrant's
/// own transaction), and with provenance: a node registered in NodeRegistry attests that the
/// content hash is a recording it made and that these are its contributors. Shares never change.
/// Anyone pays a work in ETH or JAM; a protocol fee (capped, set only by governance) goes to
/// the treasury. Payments cost the same for any number of contributors: a payment only adds
/// to the work's running total, and each contributor is owed `total * share / 10000` minus
/// what they already withdrew (pull payments), to themselves or to any address they name.
///
/// Derivative works (an AI remix of a work, a cover, a take seeded from one) name up to
/// `MAX_PARENTS` parent works at registration. Every work states the share it takes from its
/// derivatives (`derivativeBps`, at most the governance-set cap). A derivative's ancestors are
/// flattened at registration (its parents, their ancestors, each once, at most
/// `MAX_ANCESTORS`) with each one's share fixed then; their sum, the royalty stack, may not
/// exceed 100 %. A payment to a work (after the protocol fee) adds each ancestor's share to
/// that ancestor's own running total, O(1) per ancestor, and the rest to the work's: the
/// contributors of every work up the tree withdraw as they do from any payment. What came in
/// as a derivative's royalty is not taxed again on its way up (each ancestor is paid by every
/// descendant directly, as Story Protocol's "liquid absolute percentage" does).
contract WorkRegistry is EIP712, ReentrancyGuard, IWorkPayments {
    using SafeERC20 for IERC20;

    /// @notice Highest protocol fee governance may set: 10 %.
    uint16 public constant MAX_FEE_BPS = 1000;
    /// @notice Basis points in a whole.
    uint16 public constant TOTAL_BPS = 10_000;
    /// @notice Most contributors a work may have.
    uint256 public constant MAX_CONTRIBUTORS = 100;
    /// @notice Most parent works a derivative may name.
    uint256 public constant MAX_PARENTS = 2;
    /// @notice Most ancestors (parents, their parents, …, each once) a derivative may have.
    uint256 public constant MAX_ANCESTORS = 14;
    /// @notice Highest derivative share governance may allow a work to take: 50 %.
    uint16 public constant MAX_DERIVATIVE_CAP_BPS = 5000;
    /// @notice EIP-712 type of a contributor's consent.
    bytes32 public constant CONSENT_TYPEHASH = keccak256(
        "Consent(bytes32 contentHash,bytes32 metadataHash,address[] contributors,uint16[] shares,"
        "address registrant,uint256 deadline,uint256 nonce,uint256[] parents,uint16 derivativeBps)"
    );
    /// @notice EIP-712 type of a node's attestation that it recorded a take with these contributors.
    bytes32 public constant PROVENANCE_TYPEHASH =
        keccak256("Provenance(bytes32 contentHash,address[] contributors)");

    /// @notice One registration: the work, its split, and what binds the consents to it.
    struct Registration {
        bytes32 contentHash;
        string metadataURI;
        address[] contributors;
        uint16[] shares;
        uint256 deadline;
        uint256 nonce;
        address attester;
        uint256[] parents;
        uint16 derivativeBps;
    }

    /// @notice One flattened ancestor of a derivative and the share it takes of its payments.
    struct Ancestor {
        uint64 workId;
        uint16 bps;
    }

    struct Work {
        bytes32 contentHash;
        string metadataURI;
        address registrant;
        address[] contributors;
        uint16[] shares;
        uint256 totalEth;
        uint256 totalToken;
    }

    IERC20 private immutable _token;
    INodeDirectory private immutable _nodes;
    IRewardsFunding private immutable _rewards;
    address private immutable _governance;
    address private immutable _treasury;
    uint16 private _feeBps;
    uint16 private _derivativeCapBps;
    uint16 private _operatorFeeShareBps;
    uint256 private _feesEth;
    uint256 private _feesToken;
    Work[] private _works;
    mapping(bytes32 contentHash => bool) private _registered;
    mapping(address registrant => mapping(uint256 nonce => bool)) private _nonceUsed;
    mapping(address contributor => mapping(address registrant => mapping(uint256 nonce => bool))) private
        _consentCancelled;
    mapping(uint256 workId => mapping(address contributor => uint16)) private _shareOf;
    mapping(uint256 workId => uint256[]) private _parents;
    mapping(uint256 workId => Ancestor[]) private _ancestors;
    mapping(uint256 workId => uint16) private _derivativeBps;
    mapping(uint256 workId => mapping(address contributor => uint256)) private _withdrawnEth;
    mapping(uint256 workId => mapping(address contributor => uint256)) private _withdrawnToken;

    /// @notice A work and its split were registered.
    event WorkRegistered(uint256 indexed workId, bytes32 indexed contentHash, address indexed registrant, string metadataURI);
    /// @notice Someone paid a work (`token` is address(0) for ETH); `fee` went to the treasury.
    event WorkPaid(uint256 indexed workId, address indexed payer, address token, uint256 amount, uint256 fee);
    /// @notice A contributor withdrew what they were owed, to `to`.
    event Withdrawn(uint256 indexed workId, address indexed contributor, address token, uint256 amount, address to);
    /// @notice A contributor withdrew their consent to `registrant`'s registration `nonce`.
    event ConsentCancelled(address indexed contributor, address indexed registrant, uint256 nonce);
    /// @notice Governance changed the protocol fee.
    event ProtocolFeeSet(uint16 feeBps);
    /// @notice A work was registered as a derivative of `parents`; its royalty stack (the sum
    /// of its ancestors' shares) is `stackBps`.
    event DerivativeRegistered(uint256 indexed workId, uint256[] parents, uint256 stackBps);
    /// @notice A payment to `workId` sent `amount` up to its ancestor `ancestorId`.
    event RoyaltyForwarded(uint256 indexed workId, uint256 indexed ancestorId, address token, uint256 amount);
    /// @notice Governance changed the highest share a work may take from its derivatives.
    event DerivativeCapSet(uint16 capBps);
    /// @notice Governance changed the node operators' share of collected fees.
    event OperatorFeeShareSet(uint16 bps);
    /// @notice Accumulated fees were sent to the treasury.
    event FeesCollected(address indexed token, uint256 amount);

    /// @notice Only governance (the timelock) may do this.
    error WorkRegistryUnauthorized(address caller);
    /// @notice The fee is above `MAX_FEE_BPS`.
    error WorkRegistryFeeTooHigh(uint16 feeBps, uint16 maxBps);
    /// @notice Contributors and shares differ in length, are empty or too many.
    error WorkRegistryBadSplit();
    /// @notice The shares do not add up to 10 000 basis points.
    error WorkRegistrySharesNotWhole(uint256 sum);
    /// @notice A contributor is the zero address, listed twice, or has a zero share.
    error WorkRegistryBadContributor(address contributor);
    /// @notice A contributor's consent signature is missing or wrong.
    error WorkRegistryNoConsent(address contributor);
    /// @notice This content hash is already registered.
    error WorkRegistryDuplicate(bytes32 contentHash);
    /// @notice No such work.
    error WorkRegistryUnknownWork(uint256 workId);
    /// @notice A payment of zero.
    error WorkRegistryZeroPayment();
    /// @notice Nothing is owed to the caller.
    error WorkRegistryNothingOwed(address contributor);
    /// @notice A required address is zero.
    error WorkRegistryZeroAddress();
    /// @notice The consents' deadline has passed.
    error WorkRegistryConsentExpired(uint256 deadline);
    /// @notice The registrant already used this nonce, or a contributor cancelled it.
    error WorkRegistryNonceUsed(address account, uint256 nonce);
    /// @notice The attester is not a registered node, or its attestation is wrong.
    error WorkRegistryNoProvenance(address attester);
    /// @notice Too many parents, a parent named twice, or a parent that is not a work.
    error WorkRegistryBadParents();
    /// @notice The flattened ancestors are more than `MAX_ANCESTORS`.
    error WorkRegistryTooManyAncestors(uint256 count, uint256 maxCount);
    /// @notice The ancestors' shares would take more than the whole of the derivative's payments.
    error WorkRegistryStackTooHigh(uint256 stackBps);
    /// @notice The share taken from derivatives is above the governance-set cap.
    error WorkRegistryDerivativeShareTooHigh(uint16 bps, uint16 capBps);

    /// @param token the JAM token
    /// @param nodes NodeRegistry: whose nodes may attest provenance
    /// @param governance the timelock: sets the fee
    /// @param treasury receives protocol fees
    /// @param feeBps initial protocol fee
    /// @param derivativeCapBps initial cap on the share a work may take from its derivatives
    /// @param rewards NodeRewards: receives the operators' share of collected fees
    /// @param operatorFeeShareBps that share, initially
    constructor(
        IERC20 token,
        INodeDirectory nodes,
        address governance,
        address treasury,
        uint16 feeBps,
        uint16 derivativeCapBps,
        IRewardsFunding rewards,
        uint16 operatorFeeShareBps
    ) EIP712("jamnet WorkRegistry", "3") {
        if (operatorFeeShareBps > TOTAL_BPS) revert WorkRegistryFeeTooHigh(operatorFeeShareBps, TOTAL_BPS);
        if (feeBps > MAX_FEE_BPS) revert WorkRegistryFeeTooHigh(feeBps, MAX_FEE_BPS);
        if (derivativeCapBps > MAX_DERIVATIVE_CAP_BPS) {
            revert WorkRegistryDerivativeShareTooHigh(derivativeCapBps, MAX_DERIVATIVE_CAP_BPS);
        }
        if (
            address(token) == address(0) || address(nodes) == address(0) || governance == address(0)
                || treasury == address(0) || address(rewards) == address(0)
        ) {
            revert WorkRegistryZeroAddress();
        }
        _token = token;
        _nodes = nodes;
        _governance = governance;
        _treasury = treasury;
        _feeBps = feeBps;
        _derivativeCapBps = derivativeCapBps;
        _rewards = rewards;
        _operatorFeeShareBps = operatorFeeShareBps;
    }

    /// @notice Register a work with every contributor's consent and a registered node's attestation.
    /// @param r the work, its split, the consents' deadline and nonce, and the attesting node
    /// @param signatures each contributor's EIP-712 consent; may be empty for the caller
    /// @param attestation the attester's EIP-712 signature over the content hash and contributors
    /// @return workId the new work's id
    function register(Registration calldata r, bytes[] calldata signatures, bytes calldata attestation)
        external
        returns (uint256 workId)
    {
        uint256 count = r.contributors.length;
        if (count == 0 || count > MAX_CONTRIBUTORS || r.shares.length != count || signatures.length != count) {
            revert WorkRegistryBadSplit();
        }
        if (_registered[r.contentHash]) revert WorkRegistryDuplicate(r.contentHash);
        if (block.timestamp > r.deadline) revert WorkRegistryConsentExpired(r.deadline);
        if (_nonceUsed[msg.sender][r.nonce]) revert WorkRegistryNonceUsed(msg.sender, r.nonce);
        if (
            !_nodes.isRegistered(r.attester)
                || !SignatureChecker.isValidSignatureNow(
                    r.attester, provenanceDigest(r.contentHash, r.contributors), attestation
                )
        ) revert WorkRegistryNoProvenance(r.attester);
        bytes32 digest = consentDigest(r, msg.sender);
        workId = _works.length;
        uint256 sum = 0;
        for (uint256 i = 0; i < count; ++i) {
            address contributor = r.contributors[i];
            if (contributor == address(0) || r.shares[i] == 0 || _shareOf[workId][contributor] != 0) {
                revert WorkRegistryBadContributor(contributor);
            }
            if (_consentCancelled[contributor][msg.sender][r.nonce]) revert WorkRegistryNonceUsed(contributor, r.nonce);
            if (
                !(contributor == msg.sender && signatures[i].length == 0)
                    && !SignatureChecker.isValidSignatureNow(contributor, digest, signatures[i])
            ) revert WorkRegistryNoConsent(contributor);
            _shareOf[workId][contributor] = r.shares[i];
            sum += r.shares[i];
        }
        if (sum != TOTAL_BPS) revert WorkRegistrySharesNotWhole(sum);
        _nonceUsed[msg.sender][r.nonce] = true;
        _registered[r.contentHash] = true;
        _works.push(Work(r.contentHash, r.metadataURI, msg.sender, r.contributors, r.shares, 0, 0));
        emit WorkRegistered(workId, r.contentHash, msg.sender, r.metadataURI);
        _setLineage(workId, r.parents, r.derivativeBps);
    }

    /// @dev Record a new work's parents, its flattened ancestors with their shares, and the
    /// share it takes from its own derivatives.
    function _setLineage(uint256 workId, uint256[] calldata parents, uint16 derivativeBps) private {
        if (derivativeBps > _derivativeCapBps) revert WorkRegistryDerivativeShareTooHigh(derivativeBps, _derivativeCapBps);
        _derivativeBps[workId] = derivativeBps;
        uint256 count = parents.length;
        if (count == 0) return;
        if (count > MAX_PARENTS) revert WorkRegistryBadParents();
        uint256 stack = 0;
        for (uint256 i = 0; i < count; ++i) {
            uint256 parent = parents[i];
            if (parent >= workId || (i > 0 && parents[0] == parent)) revert WorkRegistryBadParents();
            _parents[workId].push(parent);
            stack += _addAncestor(workId, parent, _derivativeBps[parent]);
            Ancestor[] storage above = _ancestors[parent];
            for (uint256 j = 0; j < above.length; ++j) {
                stack += _addAncestor(workId, above[j].workId, above[j].bps);
            }
        }
        uint256 flattened = _ancestors[workId].length;
        if (flattened > MAX_ANCESTORS) revert WorkRegistryTooManyAncestors(flattened, MAX_ANCESTORS);
        if (stack > TOTAL_BPS) revert WorkRegistryStackTooHigh(stack);
        emit DerivativeRegistered(workId, parents, stack);
    }

    /// @dev Append an ancestor unless it is already listed (two parents sharing a grandparent);
    /// returns the share it added to the stack. Bounded: the list is checked against
    /// `MAX_ANCESTORS` after, and at most 2 × (1 + 14) entries are ever compared.
    function _addAncestor(uint256 workId, uint256 id, uint16 bps) private returns (uint256) {
        uint256 count = _ancestors[workId].length;
        for (uint256 k = 0; k < count; ++k) {
            if (_ancestors[workId][k].workId == id) return 0;
        }
        _ancestors[workId].push(Ancestor(uint64(id), bps));
        return bps;
    }

    /// @notice Withdraw a consent before it is used: `registrant` can no longer register with `nonce`.
    function cancelConsent(address registrant, uint256 nonce) external {
        _consentCancelled[msg.sender][registrant][nonce] = true;
        emit ConsentCancelled(msg.sender, registrant, nonce);
    }

    /// @notice The EIP-712 digest each contributor signs to consent to `registrant` registering `r`.
    function consentDigest(Registration calldata r, address registrant) public view returns (bytes32) {
        uint256[] memory wideShares = new uint256[](r.shares.length);
        for (uint256 i = 0; i < r.shares.length; ++i) {
            wideShares[i] = r.shares[i];
        }
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    CONSENT_TYPEHASH,
                    r.contentHash,
                    keccak256(bytes(r.metadataURI)),
                    keccak256(abi.encodePacked(r.contributors)),
                    keccak256(abi.encodePacked(wideShares)),
                    registrant,
                    r.deadline,
                    r.nonce,
                    keccak256(abi.encodePacked(r.parents)),
                    r.derivativeBps
                )
            )
        );
    }

    /// @notice The EIP-712 digest a registered node signs to attest a recording's contributors.
    function provenanceDigest(bytes32 contentHash, address[] calldata contributors) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(PROVENANCE_TYPEHASH, contentHash, keccak256(abi.encodePacked(contributors))))
        );
    }

    /// @notice Whether `registrant` has used `nonce`, or `contributor` cancelled their consent to it.
    function nonceUsed(address registrant, uint256 nonce, address contributor) external view returns (bool) {
        return _nonceUsed[registrant][nonce] || _consentCancelled[contributor][registrant][nonce];
    }

    /// @notice Pay a work in ETH.
    function pay(uint256 workId) external payable {
        Work storage entry = _work(workId);
        if (msg.value == 0) revert WorkRegistryZeroPayment();
        uint256 fee = (msg.value * _feeBps) / TOTAL_BPS;
        _feesEth += fee;
        emit WorkPaid(workId, msg.sender, address(0), msg.value, fee);
        entry.totalEth += _forward(workId, msg.value - fee, false);
    }

    /// @notice Pay a work in JAM (approve this contract first, or use a permit).
    function payToken(uint256 workId, uint256 amount) external nonReentrant {
        Work storage entry = _work(workId);
        if (amount == 0) revert WorkRegistryZeroPayment();
        uint256 fee = (amount * _feeBps) / TOTAL_BPS;
        _feesToken += fee;
        emit WorkPaid(workId, msg.sender, address(_token), amount, fee);
        entry.totalToken += _forward(workId, amount - fee, true);
        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @dev Credit each ancestor of `workId` its share of `net` (in ETH or JAM); returns what
    /// is left for the work itself (the remainder, so nothing is lost to rounding).
    function _forward(uint256 workId, uint256 net, bool isToken) private returns (uint256 left) {
        left = net;
        Ancestor[] storage flat = _ancestors[workId];
        uint256 count = flat.length;
        for (uint256 i = 0; i < count; ++i) {
            Ancestor memory a = flat[i];
            uint256 part = (net * a.bps) / TOTAL_BPS;
            if (part == 0) continue;
            left -= part;
            if (isToken) _works[a.workId].totalToken += part;
            else _works[a.workId].totalEth += part;
            emit RoyaltyForwarded(workId, a.workId, isToken ? address(_token) : address(0), part);
        }
    }

    /// @notice Withdraw the ETH the caller is owed by a work.
    function withdraw(uint256 workId) external {
        withdrawTo(workId, payable(msg.sender));
    }

    /// @notice Withdraw the ETH the caller is owed by a work to another address (for a
    /// contributor contract that cannot receive ETH, a cold wallet, a label).
    function withdrawTo(uint256 workId, address payable to) public nonReentrant {
        if (to == address(0)) revert WorkRegistryZeroAddress();
        uint256 amount = owedEth(workId, msg.sender);
        if (amount == 0) revert WorkRegistryNothingOwed(msg.sender);
        _withdrawnEth[workId][msg.sender] += amount;
        emit Withdrawn(workId, msg.sender, address(0), amount, to);
        Address.sendValue(to, amount);
    }

    /// @notice Withdraw the JAM the caller is owed by a work.
    function withdrawToken(uint256 workId) external {
        withdrawTokenTo(workId, msg.sender);
    }

    /// @notice Withdraw the JAM the caller is owed by a work to another address.
    function withdrawTokenTo(uint256 workId, address to) public nonReentrant {
        if (to == address(0)) revert WorkRegistryZeroAddress();
        uint256 amount = owedToken(workId, msg.sender);
        if (amount == 0) revert WorkRegistryNothingOwed(msg.sender);
        _withdrawnToken[workId][msg.sender] += amount;
        emit Withdrawn(workId, msg.sender, address(_token), amount, to);
        _token.safeTransfer(to, amount);
    }

    /// @notice Send accumulated protocol fees (ETH and JAM) on: the operators' governed share
    /// to NodeRewards (the current period's pot), the rest to the treasury; anyone may call.
    function collectFees() external nonReentrant {
        uint256 eth = _feesEth;
        uint256 jam = _feesToken;
        _feesEth = 0;
        _feesToken = 0;
        uint256 ethCut = (eth * _operatorFeeShareBps) / TOTAL_BPS;
        uint256 jamCut = (jam * _operatorFeeShareBps) / TOTAL_BPS;
        if (eth > 0) emit FeesCollected(address(0), eth);
        if (jam > 0) emit FeesCollected(address(_token), jam);
        if (jamCut > 0) {
            _token.forceApprove(address(_rewards), jamCut);
            _rewards.fundToken(jamCut);
        }
        if (jam > jamCut) _token.safeTransfer(_treasury, jam - jamCut);
        if (ethCut > 0) _rewards.fund{value: ethCut}();
        if (eth > ethCut) Address.sendValue(payable(_treasury), eth - ethCut);
    }

    /// @notice Governance sets the node operators' share of collected fees.
    function setOperatorFeeShare(uint16 bps) external {
        if (msg.sender != _governance) revert WorkRegistryUnauthorized(msg.sender);
        if (bps > TOTAL_BPS) revert WorkRegistryFeeTooHigh(bps, TOTAL_BPS);
        _operatorFeeShareBps = bps;
        emit OperatorFeeShareSet(bps);
    }

    /// @notice The node operators' share of collected fees, and where it goes.
    function operatorFeeShare() external view returns (uint16 bps, address rewards) {
        return (_operatorFeeShareBps, address(_rewards));
    }

    /// @notice Governance sets the protocol fee (at most `MAX_FEE_BPS`).
    function setProtocolFee(uint16 feeBps) external {
        if (msg.sender != _governance) revert WorkRegistryUnauthorized(msg.sender);
        if (feeBps > MAX_FEE_BPS) revert WorkRegistryFeeTooHigh(feeBps, MAX_FEE_BPS);
        _feeBps = feeBps;
        emit ProtocolFeeSet(feeBps);
    }

    /// @notice Governance sets the highest share a work may take from its derivatives (for
    /// works registered from now on; registered works keep theirs).
    function setDerivativeCap(uint16 capBps) external {
        if (msg.sender != _governance) revert WorkRegistryUnauthorized(msg.sender);
        if (capBps > MAX_DERIVATIVE_CAP_BPS) revert WorkRegistryDerivativeShareTooHigh(capBps, MAX_DERIVATIVE_CAP_BPS);
        _derivativeCapBps = capBps;
        emit DerivativeCapSet(capBps);
    }

    /// @notice ETH owed to `contributor` by work `workId`.
    function owedEth(uint256 workId, address contributor) public view returns (uint256) {
        Work storage entry = _work(workId);
        return (entry.totalEth * _shareOf[workId][contributor]) / TOTAL_BPS - _withdrawnEth[workId][contributor];
    }

    /// @notice JAM owed to `contributor` by work `workId`.
    function owedToken(uint256 workId, address contributor) public view returns (uint256) {
        Work storage entry = _work(workId);
        return (entry.totalToken * _shareOf[workId][contributor]) / TOTAL_BPS - _withdrawnToken[workId][contributor];
    }

    /// @notice A work's registration and totals received (after fees).
    function work(uint256 workId)
        external
        view
        returns (
            bytes32 contentHash,
            string memory metadataURI,
            address registrant,
            address[] memory contributors,
            uint16[] memory shares,
            uint256 totalEth,
            uint256 totalToken
        )
    {
        Work storage w = _work(workId);
        return (w.contentHash, w.metadataURI, w.registrant, w.contributors, w.shares, w.totalEth, w.totalToken);
    }

    /// @notice A work's family: the parents it named, its flattened ancestors with the share
    /// each takes of its payments, and the share it takes from its own derivatives.
    function lineage(uint256 workId)
        external
        view
        returns (uint256[] memory parents, uint256[] memory ancestors, uint16[] memory ancestorBps, uint16 derivativeBps)
    {
        _work(workId);
        Ancestor[] storage flat = _ancestors[workId];
        ancestors = new uint256[](flat.length);
        ancestorBps = new uint16[](flat.length);
        for (uint256 i = 0; i < flat.length; ++i) {
            ancestors[i] = flat[i].workId;
            ancestorBps[i] = flat[i].bps;
        }
        return (_parents[workId], ancestors, ancestorBps, _derivativeBps[workId]);
    }

    /// @notice A work's lead contributor: the largest share, the first listed among equals
    /// (who manages its licence offers).
    function leadOf(uint256 workId) external view returns (address lead) {
        Work storage w = _work(workId);
        uint16 best = 0;
        for (uint256 i = 0; i < w.shares.length; ++i) {
            if (w.shares[i] > best) {
                best = w.shares[i];
                lead = w.contributors[i];
            }
        }
    }

    /// @notice The highest share a work registered now may take from its derivatives.
    function derivativeCapBps() external view returns (uint16) {
        return _derivativeCapBps;
    }

    /// @notice Number of registered works.
    function workCount() external view returns (uint256) {
        return _works.length;
    }

    /// @notice Current protocol fee in basis points.
    function protocolFeeBps() external view returns (uint16) {
        return _feeBps;
    }

    /// @notice Fees not yet collected: (ETH, JAM).
    function pendingFees() external view returns (uint256 eth, uint256 jam) {
        return (_feesEth, _feesToken);
    }

    /// @notice The JAM token, the governance (timelock) and the treasury addresses.
    function addresses() external view returns (address token, address governance, address treasury) {
        return (address(_token), _governance, _treasury);
    }

    /// @notice The NodeRegistry whose nodes attest provenance.
    function nodeRegistry() external view returns (address) {
        return address(_nodes);
    }

    function _work(uint256 workId) private view returns (Work storage) {
        if (workId >= _works.length) revert WorkRegistryUnknownWork(workId);
        return _works[workId];
    }
}
