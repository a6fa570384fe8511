// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IResultReceiver} from "../IResultReceiver.sol";

/// Test double: a receiver that always reverts.
contract RevertingReceiver is IResultReceiver {
    function onResult(uint256, uint256, bytes calldata, bytes32) external pure {
        revert("RevertingReceiver: no");
    }
}
