// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title jamnet timelock and treasury
/// @notice Executes what governance passed, after a minimum delay; holds the treasury and is
/// the only account allowed to change protocol parameters or slash stakes.
contract JamTimelock is TimelockController {
    /// @param minDelaySeconds delay between queueing and executing an operation
    /// @param proposers accounts that may queue (the governor)
    /// @param executors accounts that may execute (address(0): anyone)
    /// @param admin optional bootstrap admin (address(0) for none)
    constructor(uint256 minDelaySeconds, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelaySeconds, proposers, executors, admin)
    {}
}
