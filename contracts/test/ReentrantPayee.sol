// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IWorkRegistry {
    function register(bytes32, string calldata, address[] calldata, uint16[] calldata, bytes[] calldata)
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

    function registerAlone(bytes32 contentHash) external {
        address[] memory contributors = new address[](1);
        contributors[0] = address(this);
        uint16[] memory shares = new uint16[](1);
        shares[0] = 10_000;
        bytes[] memory signatures = new bytes[](1);
        workId = registry.register(contentHash, "ipfs://attack", contributors, shares, signatures);
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
