// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Sortition} from "./Sortition.sol";

/// @title Operators of Conclave nodes, their identities and their stakes.
/// @notice An operator registers with a stake in the native coin, its libp2p peer id, its X25519
/// input key and a proof of possession: the peer key's ed25519 signature binding the peer id to this
/// operator and input key (see `conclave_chain::identity`). The EVM cannot check ed25519 cheaply, so
/// nodes and devices check the proof and ignore a record that fails it; a squatter who registers
/// someone else's peer id therefore gets a record nobody uses, and cannot block the real owner.
/// A stake cannot change while registered; it counts in whole units of `minStake` (at most
/// Sortition.MAX_UNITS). An operator can deactivate at any time and withdraw `withdrawDelay` blocks
/// later. The TaskRouter (set once, by the deployer, right after deployment) slashes an operator
/// that signed two outputs of one task: a tenth of the stake goes to the reporter (a bounty small
/// enough that reporting oneself is no way out), the rest stays locked for good, and the record
/// stays, so that the operator cannot register again.
contract NodeRegistry {
    struct Node {
        bytes peerId;
        bytes32 inputKey;
        bytes proofOfPossession;
        uint256 stake;
        uint64 registeredAt; // block
        uint64 deactivatedAt; // block, 0 while active
        bool slashed;
    }

    uint256 public constant MAX_PEER_ID_BYTES = 64;
    uint256 public constant POP_BYTES = 64;

    uint256 public immutable minStake;
    uint64 public immutable withdrawDelay;
    address private immutable deployer;

    /// The contract allowed to slash (the TaskRouter); 0 until set.
    address public slasher;
    uint256 public totalActiveStake;
    uint256 public totalActiveUnits;
    /// The total units at the start of block `unitsChangedAt` (before that block's changes).
    uint256 private unitsBeforeChange;
    uint64 private unitsChangedAt;
    mapping(address => Node) private nodes;
    /// Registered operators (active or waiting to withdraw), for the views.
    address[] private operators;
    mapping(address => uint256) private slot; // index in `operators` + 1

    event NodeRegistered(address indexed operator, bytes peerId, bytes32 inputKey, uint256 stake);
    event NodeDeactivated(address indexed operator, uint64 withdrawableAt);
    event NodeWithdrawn(address indexed operator, uint256 stake);
    event NodeSlashed(address indexed operator, address indexed reporter, uint256 stake);

    error StakeTooLow(uint256 given, uint256 minimum);
    error InvalidPeerId();
    error InvalidProofOfPossession();
    error AlreadyRegistered(address operator);
    error NotRegistered(address operator);
    error NotActive(address operator);
    error StillActive(address operator);
    error WithdrawTooEarly(uint64 availableAt);
    error TransferFailed();
    error NotSlasher(address caller);
    error SlasherAlreadySet();
    error AlreadySlashed(address operator);

    constructor(uint256 minStake_, uint64 withdrawDelay_) {
        minStake = minStake_ == 0 ? 1 : minStake_;
        withdrawDelay = withdrawDelay_;
        deployer = msg.sender;
    }

    /// Names the slasher, once; only the deployer may, and only while none is set.
    function setSlasher(address slasher_) external {
        if (msg.sender != deployer) revert NotSlasher(msg.sender);
        if (slasher != address(0)) revert SlasherAlreadySet();
        slasher = slasher_;
    }

    function register(bytes calldata peerId, bytes32 inputKey, bytes calldata proofOfPossession) external payable {
        if (msg.value < minStake) revert StakeTooLow(msg.value, minStake);
        if (peerId.length == 0 || peerId.length > MAX_PEER_ID_BYTES) revert InvalidPeerId();
        if (proofOfPossession.length != POP_BYTES) revert InvalidProofOfPossession();
        if (slot[msg.sender] != 0) revert AlreadyRegistered(msg.sender);
        nodes[msg.sender] = Node(peerId, inputKey, proofOfPossession, msg.value, uint64(block.number), 0, false);
        operators.push(msg.sender);
        slot[msg.sender] = operators.length;
        totalActiveStake += msg.value;
        _changeUnits(unitsOf(msg.value), true);
        emit NodeRegistered(msg.sender, peerId, inputKey, msg.value);
    }

    function deactivate() external {
        if (slot[msg.sender] == 0) revert NotRegistered(msg.sender);
        if (nodes[msg.sender].deactivatedAt != 0) revert NotActive(msg.sender);
        _deactivate(msg.sender);
    }

    function withdraw() external {
        Node storage n = nodes[msg.sender];
        if (slot[msg.sender] == 0) revert NotRegistered(msg.sender);
        if (n.deactivatedAt == 0) revert StillActive(msg.sender);
        // A slashed record stays, so that its operator cannot register again.
        if (n.slashed) revert AlreadySlashed(msg.sender);
        uint64 availableAt = n.deactivatedAt + withdrawDelay;
        if (block.number < availableAt) revert WithdrawTooEarly(availableAt);
        uint256 stake = n.stake;
        delete nodes[msg.sender];
        _removeOperator(msg.sender);
        (bool ok,) = msg.sender.call{value: stake}("");
        if (!ok) revert TransferFailed();
        emit NodeWithdrawn(msg.sender, stake);
    }

    /// The share of a slashed stake the reporter gets (the rest is locked for good).
    uint256 public constant BOUNTY_DIVISOR = 10;

    /// Takes `operator`'s stake: a tenth to `reporter`, the rest locked for good. Slasher only.
    function slash(address operator, address reporter) external {
        if (msg.sender != slasher || slasher == address(0)) revert NotSlasher(msg.sender);
        Node storage n = nodes[operator];
        if (slot[operator] == 0) revert NotRegistered(operator);
        if (n.slashed) revert AlreadySlashed(operator);
        if (n.deactivatedAt == 0) _deactivate(operator);
        uint256 stake = n.stake;
        n.stake = 0;
        n.slashed = true;
        emit NodeSlashed(operator, reporter, stake);
        (bool ok,) = reporter.call{value: stake / BOUNTY_DIVISOR}("");
        if (!ok) revert TransferFailed();
    }

    function getNode(address operator) external view returns (Node memory) {
        return nodes[operator];
    }

    /// How many whole units a stake counts for in the committee draw.
    function unitsOf(uint256 stake) public view returns (uint256) {
        uint256 units = stake / minStake;
        return units > Sortition.MAX_UNITS ? Sortition.MAX_UNITS : units;
    }

    /// The units with which `operator` takes part in the draw of a task opened at block `openedAt`:
    /// registered before that block, not deactivated before it, not slashed; 0 otherwise.
    function unitsAt(address operator, uint64 openedAt) external view returns (uint256) {
        Node storage n = nodes[operator];
        if (n.stake == 0 || n.registeredAt >= openedAt) return 0;
        if (n.deactivatedAt != 0 && n.deactivatedAt < openedAt) return 0;
        return unitsOf(n.stake);
    }

    /// The active units at the start of the current block: what `unitsAt(·, block.number)` sums to.
    function unitsAtBlockStart() external view returns (uint256) {
        return unitsChangedAt == block.number ? unitsBeforeChange : totalActiveUnits;
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

    function _deactivate(address operator) private {
        Node storage n = nodes[operator];
        n.deactivatedAt = uint64(block.number);
        totalActiveStake -= n.stake;
        _changeUnits(unitsOf(n.stake), false);
        emit NodeDeactivated(operator, n.deactivatedAt + withdrawDelay);
    }

    /// Changes the active units, first noting the total this block started with.
    function _changeUnits(uint256 units, bool add) private {
        if (unitsChangedAt != block.number) {
            unitsBeforeChange = totalActiveUnits;
            unitsChangedAt = uint64(block.number);
        }
        totalActiveUnits = add ? totalActiveUnits + units : totalActiveUnits - units;
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
