// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IResultReceiver} from "./IResultReceiver.sol";
import {NodeRegistry} from "./NodeRegistry.sol";
import {ProjectRegistry} from "./ProjectRegistry.sol";
import {Sortition} from "./Sortition.sol";

/// @title Accepts a task's result when enough of the task's committee signed it.
/// @notice Time is cut into epochs of `epochLength` blocks. Anyone may open the next epoch once the
/// current one is over; the contract then records the previous block's hash as the epoch's seed and
/// the total active stake, so neither a task's submitter nor a node can choose the draw. A task id
/// carries its epoch in its top 64 bits. A result is accepted while its epoch is at most
/// `maxTaskAge` epochs old, once, with at least `threshold` EIP-712 signatures from distinct
/// candidates of the task's committee draw (see Sortition), given in ascending signer order.
contract TaskRouter {
    /// How many candidates the draw aims for, per committee seat (spares replace failed members).
    uint256 public constant CANDIDATES_PER_SEAT = 3;
    uint256 public constant MAX_OUTPUT_BYTES = 4096;
    uint256 public constant RECEIVER_GAS = 200_000;

    bytes32 public constant RESULT_TYPEHASH =
        keccak256("Result(uint256 projectId,uint256 taskId,bytes32 outputHash,bytes32 proofHash)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("Conclave TaskRouter");
    bytes32 private constant VERSION_HASH = keccak256("1");
    /// secp256k1 order / 2: signatures with a larger s are malleable copies and are refused.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    struct Epoch {
        bytes32 seed;
        uint256 totalStake;
        uint64 startBlock;
    }

    struct Result {
        bytes output;
        bytes32 proofHash;
        uint64 publishedBlock;
        address submitter;
    }

    NodeRegistry public immutable nodes;
    ProjectRegistry public immutable projects;
    uint64 public immutable epochLength;
    uint64 public immutable maxTaskAge;

    uint64 public currentEpoch;
    mapping(uint64 => Epoch) private epochs;
    mapping(uint256 => mapping(uint256 => Result)) private results;

    event EpochOpened(uint64 indexed epoch, bytes32 seed, uint256 totalStake, uint64 startBlock);
    event ResultPublished(
        uint256 indexed projectId,
        uint256 indexed taskId,
        bytes32 outputHash,
        bytes32 proofHash,
        bytes output,
        address submitter,
        uint256 signers
    );
    event ReceiverFailed(uint256 indexed projectId, uint256 indexed taskId, address receiver);

    error EpochNotOver(uint64 nextAt);
    error NoActiveStake();
    error UnknownProject(uint256 projectId);
    error ProjectPaused(uint256 projectId);
    error UnknownEpoch(uint64 epoch);
    error TaskExpired(uint64 taskEpoch, uint64 currentEpoch);
    error AlreadyPublished(uint256 projectId, uint256 taskId);
    error OutputTooLarge(uint256 length);
    error TooFewSignatures(uint256 given, uint256 needed);
    error TooManySignatures(uint256 given, uint256 limit);
    error InvalidSignature(uint256 index);
    error SignersNotAscending(uint256 index);
    error DuplicateSigner(address signer);
    error NotCommitteeMember(address signer);
    error NotEnoughGasForReceiver();

    constructor(NodeRegistry nodes_, ProjectRegistry projects_, uint64 epochLength_, uint64 maxTaskAge_) {
        nodes = nodes_;
        projects = projects_;
        epochLength = epochLength_ == 0 ? 1 : epochLength_;
        maxTaskAge = maxTaskAge_;
    }

    /// Opens the next epoch; anyone may call it once the current epoch has lasted `epochLength`.
    function openEpoch() external returns (uint64 epoch) {
        if (currentEpoch != 0) {
            uint64 nextAt = epochs[currentEpoch].startBlock + epochLength;
            if (block.number < nextAt) revert EpochNotOver(nextAt);
        }
        uint256 total = nodes.totalActiveStake();
        if (total == 0) revert NoActiveStake();
        epoch = ++currentEpoch;
        bytes32 seed = keccak256(abi.encode(blockhash(block.number - 1), epoch));
        epochs[epoch] = Epoch(seed, total, uint64(block.number));
        emit EpochOpened(epoch, seed, total, uint64(block.number));
    }

    function submit(
        uint256 projectId,
        uint256 taskId,
        bytes calldata output,
        bytes32 proofHash,
        bytes[] calldata signatures
    ) external {
        ProjectRegistry.Project memory project = projects.getProject(projectId);
        if (project.paused) revert ProjectPaused(projectId);
        uint64 taskEpoch = epochOf(taskId);
        if (taskEpoch == 0 || taskEpoch > currentEpoch) revert UnknownEpoch(taskEpoch);
        if (currentEpoch - taskEpoch > maxTaskAge) revert TaskExpired(taskEpoch, currentEpoch);
        if (results[projectId][taskId].publishedBlock != 0) revert AlreadyPublished(projectId, taskId);
        if (output.length > MAX_OUTPUT_BYTES) revert OutputTooLarge(output.length);
        if (signatures.length < project.threshold) revert TooFewSignatures(signatures.length, project.threshold);
        uint256 expected = CANDIDATES_PER_SEAT * project.committeeSize;
        if (signatures.length > expected) revert TooManySignatures(signatures.length, expected);

        _checkSigners(projectId, taskId, resultDigest(projectId, taskId, keccak256(output), proofHash), signatures, expected, epochs[taskEpoch]);

        results[projectId][taskId] = Result(output, proofHash, uint64(block.number), msg.sender);
        emit ResultPublished(projectId, taskId, keccak256(output), proofHash, output, msg.sender, signatures.length);
        if (project.receiver != address(0)) _notify(project.receiver, projectId, taskId, output, proofHash);
    }

    /// The epoch a task belongs to: the top 64 bits of its id.
    function epochOf(uint256 taskId) public pure returns (uint64) {
        return uint64(taskId >> 192);
    }

    function getEpoch(uint64 epoch) external view returns (Epoch memory) {
        return epochs[epoch];
    }

    /// The stored result; `publishedBlock` is 0 when there is none.
    function getResult(uint256 projectId, uint256 taskId) external view returns (Result memory) {
        return results[projectId][taskId];
    }

    /// The EIP-712 digest a committee member signs for a result.
    function resultDigest(uint256 projectId, uint256 taskId, bytes32 outputHash, bytes32 proofHash)
        public
        view
        returns (bytes32)
    {
        bytes32 domain = keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
        bytes32 structHash = keccak256(abi.encode(RESULT_TYPEHASH, projectId, taskId, outputHash, proofHash));
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    /// Whether `operator` is a candidate of the task's committee draw.
    function isCandidate(uint256 projectId, uint256 taskId, address operator) external view returns (bool) {
        ProjectRegistry.Project memory project = projects.getProject(projectId);
        Epoch storage e = epochs[epochOf(taskId)];
        if (e.startBlock == 0) return false;
        return Sortition.isCandidate(
            e.seed,
            e.totalStake,
            CANDIDATES_PER_SEAT * project.committeeSize,
            projectId,
            taskId,
            operator,
            nodes.stakeAt(operator, e.startBlock)
        );
    }

    /// The task's candidates in rank order; the first `committeeSize` are its committee.
    /// Reads the whole registry: for off-chain use.
    function committee(uint256 projectId, uint256 taskId) external view returns (address[] memory) {
        ProjectRegistry.Project memory project = projects.getProject(projectId);
        Epoch storage e = epochs[epochOf(taskId)];
        if (e.startBlock == 0) revert UnknownEpoch(epochOf(taskId));
        address[] memory operators = nodes.allOperators();
        uint256[] memory stakes = new uint256[](operators.length);
        for (uint256 i; i < operators.length; ++i) {
            stakes[i] = nodes.stakeAt(operators[i], e.startBlock);
        }
        return Sortition.rank(
            e.seed, e.totalStake, CANDIDATES_PER_SEAT * project.committeeSize, projectId, taskId, operators, stakes
        );
    }

    /// The draw on explicit inputs, so that anyone can check an implementation against this one.
    function draw(
        bytes32 seed,
        uint256 totalStake,
        uint256 expected,
        uint256 projectId,
        uint256 taskId,
        address[] calldata operators,
        uint256[] calldata stakes
    ) external pure returns (address[] memory) {
        return Sortition.rank(seed, totalStake, expected, projectId, taskId, operators, stakes);
    }

    function _checkSigners(
        uint256 projectId,
        uint256 taskId,
        bytes32 digest,
        bytes[] calldata signatures,
        uint256 expected,
        Epoch storage e
    ) private view {
        address previous;
        for (uint256 i; i < signatures.length; ++i) {
            address signer = _recover(digest, signatures[i]);
            if (signer == address(0)) revert InvalidSignature(i);
            if (signer == previous) revert DuplicateSigner(signer);
            if (signer < previous) revert SignersNotAscending(i);
            uint256 stake = nodes.stakeAt(signer, e.startBlock);
            if (!Sortition.isCandidate(e.seed, e.totalStake, expected, projectId, taskId, signer, stake)) {
                revert NotCommitteeMember(signer);
            }
            previous = signer;
        }
    }

    /// Calls the receiver with at most RECEIVER_GAS and ignores what it returns: a failing receiver
    /// cannot undo the stored result. The caller must leave enough gas for the receiver's full share.
    function _notify(address receiver, uint256 projectId, uint256 taskId, bytes calldata output, bytes32 proofHash)
        private
    {
        if (gasleft() < RECEIVER_GAS + RECEIVER_GAS / 63 + 10_000) revert NotEnoughGasForReceiver();
        bytes memory data = abi.encodeCall(IResultReceiver.onResult, (projectId, taskId, output, proofHash));
        bool ok = receiver.code.length > 0;
        if (ok) {
            uint256 limit = RECEIVER_GAS;
            assembly ("memory-safe") {
                ok := call(limit, receiver, 0, add(data, 32), mload(data), 0, 0)
            }
        }
        if (!ok) emit ReceiverFailed(projectId, taskId, receiver);
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if ((v != 27 && v != 28) || uint256(s) > HALF_ORDER) return address(0);
        return ecrecover(digest, v, r, s);
    }
}
