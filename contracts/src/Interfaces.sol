// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice What WorkRegistry asks of NodeRegistry: whether an address runs a registered node.
interface INodeDirectory {
    function isRegistered(address account) external view returns (bool);
}

/// @notice What RoyaltyPool needs of WorkRegistry: paying a work in ETH or JAM.
interface IWorkPayments {
    function pay(uint256 workId) external payable;
    function payToken(uint256 workId, uint256 amount) external;
    function workCount() external view returns (uint256);
    function leadOf(uint256 workId) external view returns (address);
}

/// @notice What RoyaltyPool and WorkRegistry need of NodeRewards: adding to the current pot.
interface IRewardsFunding {
    function fund() external payable;
    function fundToken(uint256 amount) external;
}
