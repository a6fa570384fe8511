// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @notice A project's contract that TaskRouter calls, with bounded gas, after storing a result.
interface IResultReceiver {
    function onResult(uint256 projectId, uint256 taskId, bytes calldata output, bytes32 proofHash) external;
}
