// SPDX-License-Identifier: MIT
// Test-only receivers for the escrow's payouts. None of this ships with micropay.
pragma solidity 0.8.30;

/// A wallet that books every ETH payment it receives: its receive() writes fresh storage, which
/// needs more than the escrow's 30,000-gas push. It makes no calls of its own, so a payout
/// credited to it is pulled out only by someone calling withdrawFor.
contract Bookkeeper {
    struct Entry {
        address from;
        uint256 amount;
    }

    Entry[] public entries;

    function count() external view returns (uint256) {
        return entries.length;
    }

    receive() external payable {
        entries.push(Entry(msg.sender, msg.value));
    }
}
