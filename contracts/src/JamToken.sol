// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title JAM, jamnet's governance and payment token
/// @notice A fixed-supply ERC-20 with EIP-2612 permits and vote delegation (ERC20Votes).
/// Votes are checkpointed by timestamp (EIP-6372 `mode=timestamp`), so governance periods are
/// in seconds. The genesis supply goes to the treasury (the timelock); on a devnet a slice is
/// split between the local test accounts.
contract JamToken is ERC20, ERC20Permit, ERC20Votes {
    /// @notice The devnet allocation lists and amounts do not fit the genesis supply.
    error JamTokenBadAllocation(uint256 allocated, uint256 supply);

    /// @param treasury receives the genesis supply minus the devnet allocation
    /// @param supply total supply, fixed forever
    /// @param devnetAccounts accounts that each receive `devnetAmount` (empty on real networks)
    /// @param devnetAmount tokens per devnet account
    constructor(address treasury, uint256 supply, address[] memory devnetAccounts, uint256 devnetAmount)
        ERC20("jamnet", "JAM")
        ERC20Permit("jamnet")
    {
        uint256 allocated = devnetAccounts.length * devnetAmount;
        if (allocated > supply) revert JamTokenBadAllocation(allocated, supply);
        for (uint256 i = 0; i < devnetAccounts.length; ++i) {
            _mint(devnetAccounts[i], devnetAmount);
        }
        _mint(treasury, supply - allocated);
    }

    /// @notice Votes are counted at timestamps (EIP-6372).
    function clock() public view override returns (uint48) {
        return uint48(block.timestamp);
    }

    /// @notice EIP-6372 clock description.
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Votes) {
        super._update(from, to, value);
    }

    /// @notice Permit nonces (shared by ERC20Permit and Nonces).
    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }
}
