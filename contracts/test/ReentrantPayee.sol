// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IWorkRegistry {
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

    function register(Registration calldata r, bytes[] calldata signatures, bytes calldata attestation)
        external
        returns (uint256);
    function withdraw(uint256) external;
}

/// @notice Test-only attacker: a contributor whose receive() re-enters withdraw().
contract ReentrantPayee {
    IWorkRegistry public immutable registry;
    uint256 public workId;
    uint256 public reentryAttempts;
    uint256 public reentrySuccesses;

    constructor(IWorkRegistry target) {
        registry = target;
    }

    /// @notice Register a work whose only contributor is this contract (the attester signed
    /// provenance for exactly that).
    function registerAlone(bytes32 contentHash, address attester, bytes calldata attestation) external {
        address[] memory contributors = new address[](1);
        contributors[0] = address(this);
        uint16[] memory shares = new uint16[](1);
        shares[0] = 10_000;
        bytes[] memory signatures = new bytes[](1);
        uint256[] memory parents = new uint256[](0);
        workId = registry.register(
            IWorkRegistry.Registration(contentHash, "ipfs://attack", contributors, shares, type(uint256).max, 1, attester, parents, 0),
            signatures,
            attestation
        );
    }

    function attack() external {
        registry.withdraw(workId);
    }

    receive() external payable {
        if (reentryAttempts < 3) {
            ++reentryAttempts;
            try registry.withdraw(workId) {
                ++reentrySuccesses;
            } catch {}
        }
    }
}
