// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title The committee draw (DESIGN.md, "Committee draw"); `conclave_chain::sortition` is its twin.
/// @notice Every registered node draws a ticket per task from a seed nobody could choose. Dividing the
/// ticket by the node's stake gives its key: a node with k times the stake has k times the chance of
/// a small key. The nodes whose key is under the cutoff are the task's candidates (about `expected`
/// of them); ranked by key, the first `committeeSize` form the committee and the rest replace
/// members that fail. Checking one node needs only its own stake and the epoch's total stake, so
/// the cost does not grow with the registry (Algorand-style sortition).
library Sortition {
    /// The ticket of `operator` for a task: keccak256(abi.encode(seed, projectId, taskId, operator)).
    function ticket(bytes32 seed, uint256 projectId, uint256 taskId, address operator)
        internal
        pure
        returns (uint256)
    {
        return uint256(keccak256(abi.encode(seed, projectId, taskId, operator)));
    }

    /// A node's key: its ticket divided by its stake (rounded down); smaller ranks first.
    function key(uint256 ticket_, uint256 stake) internal pure returns (uint256) {
        return ticket_ / stake;
    }

    /// Keys below the cutoff are candidates: floor((2^256 - 1) / totalStake) * expected, or every
    /// key when `expected` reaches the total stake.
    function cutoff(uint256 totalStake, uint256 expected) internal pure returns (uint256) {
        if (expected >= totalStake) return type(uint256).max;
        return (type(uint256).max / totalStake) * expected;
    }

    /// Whether a node with `stake` is a candidate for the task (stake 0 never is).
    function isCandidate(
        bytes32 seed,
        uint256 totalStake,
        uint256 expected,
        uint256 projectId,
        uint256 taskId,
        address operator,
        uint256 stake
    ) internal pure returns (bool) {
        if (stake == 0) return false;
        return key(ticket(seed, projectId, taskId, operator), stake) < cutoff(totalStake, expected);
    }

    /// The task's candidates in rank order: by key, then by address. O(n^2); for views only.
    function rank(
        bytes32 seed,
        uint256 totalStake,
        uint256 expected,
        uint256 projectId,
        uint256 taskId,
        address[] memory operators,
        uint256[] memory stakes
    ) internal pure returns (address[] memory ranked) {
        uint256 limit = cutoff(totalStake, expected);
        address[] memory who = new address[](operators.length);
        uint256[] memory keys = new uint256[](operators.length);
        uint256 n;
        for (uint256 i; i < operators.length; ++i) {
            if (stakes[i] == 0) continue;
            uint256 k = key(ticket(seed, projectId, taskId, operators[i]), stakes[i]);
            if (k >= limit) continue;
            // Insertion into the sorted prefix.
            uint256 j = n;
            while (j > 0 && (keys[j - 1] > k || (keys[j - 1] == k && who[j - 1] > operators[i]))) {
                keys[j] = keys[j - 1];
                who[j] = who[j - 1];
                --j;
            }
            keys[j] = k;
            who[j] = operators[i];
            ++n;
        }
        ranked = new address[](n);
        for (uint256 i; i < n; ++i) {
            ranked[i] = who[i];
        }
    }
}
