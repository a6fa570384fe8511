// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Committee seats (DESIGN.md, "Tasks"); `conclave_chain::sortition` is its twin.
/// @notice Algorand-style sortition over stake units. A node's stake counts as `units` lottery
/// tickets (at most MAX_UNITS); each unit independently wins a seat of a task with probability
/// expectedSeats / totalUnits, so a node's seats follow its stake and splitting a stake over many
/// identities changes nothing. The committee's size is random around `expectedSeats`. Checking a
/// claimed seat costs one hash and needs only the node's own units and the task's snapshot of the
/// total, so the cost per signer does not grow with the registry.
library Sortition {
    /// A node's units beyond this do not count: seats are claimed as one 256-bit mask per signer.
    uint256 internal constant MAX_UNITS = 256;

    /// The lottery ticket of one unit: keccak256(abi.encode(seed, taskId, operator, unit)).
    function ticket(bytes32 seed, uint256 taskId, address operator, uint256 unit) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, taskId, operator, unit)));
    }

    /// Tickets below the cutoff win: floor((2^256 - 1) / totalUnits) * expectedSeats, or every ticket
    /// when `expectedSeats` reaches the total.
    function cutoff(uint256 totalUnits, uint256 expectedSeats) internal pure returns (uint256) {
        if (expectedSeats >= totalUnits) return type(uint256).max;
        return (type(uint256).max / totalUnits) * expectedSeats;
    }

    /// The seats of a node with `units` units, as a mask (bit u set when unit u won).
    function seats(bytes32 seed, uint256 taskId, address operator, uint256 units, uint256 limit)
        internal
        pure
        returns (uint256 mask)
    {
        if (units > MAX_UNITS) units = MAX_UNITS;
        for (uint256 u; u < units; ++u) {
            if (ticket(seed, taskId, operator, u) < limit) mask |= 1 << u;
        }
    }

    /// How many seats `mask` claims, or 0 when it claims any unit that is not a seat of the node.
    /// One hash per claimed seat.
    function countClaimed(bytes32 seed, uint256 taskId, address operator, uint256 units, uint256 limit, uint256 mask)
        internal
        pure
        returns (uint256 count)
    {
        if (units > MAX_UNITS) units = MAX_UNITS;
        if (units < MAX_UNITS && mask >> units != 0) return 0;
        while (mask != 0) {
            uint256 u = _lowestBit(mask);
            if (ticket(seed, taskId, operator, u) >= limit) return 0;
            mask &= mask - 1;
            ++count;
        }
    }

    /// The index of the lowest set bit of a nonzero word.
    function _lowestBit(uint256 x) private pure returns (uint256 i) {
        x &= ~x + 1; // isolate it
        if (x >= 1 << 128) { x >>= 128; i += 128; }
        if (x >= 1 << 64) { x >>= 64; i += 64; }
        if (x >= 1 << 32) { x >>= 32; i += 32; }
        if (x >= 1 << 16) { x >>= 16; i += 16; }
        if (x >= 1 << 8) { x >>= 8; i += 8; }
        if (x >= 1 << 4) { x >>= 4; i += 4; }
        if (x >= 1 << 2) { x >>= 2; i += 2; }
        if (x >= 1 << 1) { i += 1; }
    }
}
