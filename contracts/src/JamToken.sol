// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title JAM, jamnet's governance and payment token
/// @notice A fixed-supply ERC-20 with EIP-2612 permits and vote delegation (ERC20Votes).
/// Votes are checkpointed by timestamp (EIP-6372 `mode=timestamp`), so governance periods are
/// in seconds. The genesis supply goes to the treasury (the timelock) less a stated genesis
/// distribution: each holder gets their amount *delegated to themselves*, so the chain can
/// govern itself from its first block (the treasury's tokens never vote). On the devnet the
/// holders are the local test accounts; on a testnet the deployment names them.
contract JamToken is ERC20, ERC20Permit, ERC20Votes {
    /// @notice The genesis holders and amounts do not fit the supply, or the lists differ.
    error JamTokenBadAllocation(uint256 allocated, uint256 supply);

    /// @param treasury receives the genesis supply minus the distribution
    /// @param supply total supply, fixed forever
    /// @param holders genesis holders (each self-delegated)
    /// @param amounts tokens per holder, in the same order
    constructor(address treasury, uint256 supply, address[] memory holders, uint256[] memory amounts)
        ERC20("jamnet", "JAM")
        ERC20Permit("jamnet")
    {
        if (holders.length != amounts.length) revert JamTokenBadAllocation(holders.length, amounts.length);
        uint256 allocated = 0;
        for (uint256 i = 0; i < holders.length; ++i) {
            allocated += amounts[i];
            if (allocated > supply) revert JamTokenBadAllocation(allocated, supply);
            _mint(holders[i], amounts[i]);
            _delegate(holders[i], holders[i]);
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
