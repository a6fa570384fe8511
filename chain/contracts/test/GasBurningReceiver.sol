// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IResultReceiver} from "../IResultReceiver.sol";

/// Test double: a receiver that spins until it runs out of gas.
contract GasBurningReceiver is IResultReceiver {
    uint256 public counter;

    function onResult(uint256, uint256, bytes calldata, bytes32) external {
        while (true) {
            counter += 1;
        }
    }
}
