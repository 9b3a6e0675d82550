// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface ILicensing {
    function commit(uint256 auctionId, bytes32 commitment) external payable;
    function reveal(uint256 auctionId, uint256 value, bytes32 salt) external;
    function withdrawRefunds(address payable to) external;
    function bidCommitment(uint256 auctionId, address bidder, uint256 value, bytes32 salt)
        external
        pure
        returns (bytes32);
}

/// @notice Test-only attacker: a bidder whose receive() re-enters withdrawRefunds().
contract ReentrantBidder {
    ILicensing public immutable licensing;
    uint256 public reentryAttempts;
    uint256 public reentrySuccesses;

    constructor(ILicensing target) {
        licensing = target;
    }

    function bid(uint256 auctionId, uint256 value, bytes32 salt) external payable {
        licensing.commit{value: msg.value}(auctionId, licensing.bidCommitment(auctionId, address(this), value, salt));
    }

    function reveal(uint256 auctionId, uint256 value, bytes32 salt) external {
        licensing.reveal(auctionId, value, salt);
    }

    function attack() external {
        licensing.withdrawRefunds(payable(address(this)));
    }

    receive() external payable {
        if (reentryAttempts < 3) {
            ++reentryAttempts;
            try licensing.withdrawRefunds(payable(address(this))) {
                ++reentrySuccesses;
            } catch {}
        }
    }
}
