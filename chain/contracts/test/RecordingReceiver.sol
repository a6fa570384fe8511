// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IResultReceiver} from "../IResultReceiver.sol";

/// Test double: a receiver that stores the last result it was given.
contract RecordingReceiver is IResultReceiver {
    uint256 public calls;
    uint256 public lastTaskId;
    bytes public lastOutput;

    function onResult(uint256, uint256 taskId, bytes calldata output, bytes32) external {
        calls += 1;
        lastTaskId = taskId;
        lastOutput = output;
    }
}
