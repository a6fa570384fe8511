// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Operators of Conclave nodes and their stakes.
/// @notice An operator registers its libp2p peer id with a stake in the native coin. It can
/// deactivate at any time, and withdraw the stake `withdrawDelay` blocks later. A stake cannot change
/// while registered, so the committee draw of an epoch sees the stakes the epoch opened with.
contract NodeRegistry {
    struct Node {
        bytes peerId;
        uint256 stake;
        uint64 registeredAt; // block
        uint64 deactivatedAt; // block, 0 while active
    }

    uint256 public constant MAX_PEER_ID_BYTES = 64;

    uint256 public immutable minStake;
    uint64 public immutable withdrawDelay;

    uint256 public totalActiveStake;
    mapping(address => Node) private nodes;
    /// Registered operators (active or waiting to withdraw), for the views.
    address[] private operators;
    mapping(address => uint256) private slot; // index in `operators` + 1

    event NodeRegistered(address indexed operator, bytes peerId, uint256 stake);
    event NodeDeactivated(address indexed operator, uint64 withdrawableAt);
    event NodeWithdrawn(address indexed operator, uint256 stake);

    error StakeTooLow(uint256 given, uint256 minimum);
    error InvalidPeerId();
    error AlreadyRegistered(address operator);
    error NotRegistered(address operator);
    error NotActive(address operator);
    error StillActive(address operator);
    error WithdrawTooEarly(uint64 availableAt);
    error TransferFailed();

    constructor(uint256 minStake_, uint64 withdrawDelay_) {
        minStake = minStake_ == 0 ? 1 : minStake_;
        withdrawDelay = withdrawDelay_;
    }

    function register(bytes calldata peerId) external payable {
        if (msg.value < minStake) revert StakeTooLow(msg.value, minStake);
        if (peerId.length == 0 || peerId.length > MAX_PEER_ID_BYTES) revert InvalidPeerId();
        if (slot[msg.sender] != 0) revert AlreadyRegistered(msg.sender);
        nodes[msg.sender] = Node(peerId, msg.value, uint64(block.number), 0);
        operators.push(msg.sender);
        slot[msg.sender] = operators.length;
        totalActiveStake += msg.value;
        emit NodeRegistered(msg.sender, peerId, msg.value);
    }

    function deactivate() external {
        Node storage n = nodes[msg.sender];
        if (slot[msg.sender] == 0) revert NotRegistered(msg.sender);
        if (n.deactivatedAt != 0) revert NotActive(msg.sender);
        n.deactivatedAt = uint64(block.number);
        totalActiveStake -= n.stake;
        emit NodeDeactivated(msg.sender, n.deactivatedAt + withdrawDelay);
    }

    function withdraw() external {
        Node storage n = nodes[msg.sender];
        if (slot[msg.sender] == 0) revert NotRegistered(msg.sender);
        if (n.deactivatedAt == 0) revert StillActive(msg.sender);
        uint64 availableAt = n.deactivatedAt + withdrawDelay;
        if (block.number < availableAt) revert WithdrawTooEarly(availableAt);
        uint256 stake = n.stake;
        delete nodes[msg.sender];
        _removeOperator(msg.sender);
        (bool ok,) = msg.sender.call{value: stake}("");
        if (!ok) revert TransferFailed();
        emit NodeWithdrawn(msg.sender, stake);
    }

    function getNode(address operator) external view returns (Node memory) {
        return nodes[operator];
    }

    /// The stake with which `operator` takes part in the draws of an epoch that opened at block
    /// `epochStart`: registered before it, and not deactivated before it; 0 otherwise.
    function stakeAt(address operator, uint64 epochStart) public view returns (uint256) {
        Node storage n = nodes[operator];
        if (n.stake == 0 || n.registeredAt >= epochStart) return 0;
        if (n.deactivatedAt != 0 && n.deactivatedAt < epochStart) return 0;
        return n.stake;
    }

    /// Every registered operator (active or waiting to withdraw).
    function allOperators() external view returns (address[] memory) {
        return operators;
    }

    /// The active set and its stakes.
    function activeNodes() external view returns (address[] memory active, uint256[] memory stakes) {
        uint256 count;
        for (uint256 i; i < operators.length; ++i) {
            if (nodes[operators[i]].deactivatedAt == 0) ++count;
        }
        active = new address[](count);
        stakes = new uint256[](count);
        uint256 j;
        for (uint256 i; i < operators.length; ++i) {
            Node storage n = nodes[operators[i]];
            if (n.deactivatedAt == 0) {
                active[j] = operators[i];
                stakes[j] = n.stake;
                ++j;
            }
        }
    }

    function _removeOperator(address operator) private {
        uint256 index = slot[operator] - 1;
        address last = operators[operators.length - 1];
        operators[index] = last;
        slot[last] = index + 1;
        operators.pop();
        delete slot[operator];
    }
}
