// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IResultReceiver} from "./IResultReceiver.sol";
import {NodeRegistry} from "./NodeRegistry.sol";
import {ProjectRegistry} from "./ProjectRegistry.sol";
import {Sortition} from "./Sortition.sol";

/// @title Opens tasks and accepts a task's result when enough of its seats signed it.
/// @notice `openTask` assigns the id, snapshots the project's configuration and the registry's
/// total units, and records the block. The committee's seed is the hash of the *next* block, so
/// whoever opens a task cannot choose its committee (only that block's proposer has a say: see
/// docs/chain.md). A result is accepted once, until the task's deadline, with EIP-712 signatures
/// from distinct signers in ascending order, each claiming its seats of this task as a bit mask;
/// each claimed seat costs one hash to check, and the seats must reach the task's threshold.
/// Anyone holding two signatures of one signer on different outputs of one task gets it slashed.
/// A `halo2` task's result goes through `submitProven` only: besides the signatures, its proof
/// must satisfy the project's verifier for instances this contract builds itself (see
/// `proofInstances`), so a committee cannot publish an output its program does not give.
contract TaskRouter {
    uint256 public constant MAX_OUTPUT_BYTES = 4096;
    uint256 public constant RECEIVER_GAS = 200_000;
    /// ProjectRegistry.PROVER_HALO2.
    uint8 private constant PROVER_HALO2 = 1;
    /// Gas a proof's verification may use (a generated verifier uses about 450,000).
    uint256 public constant VERIFIER_GAS = 2_000_000;
    /// Signers beyond this many are refused (the seats are random around the committee size).
    uint256 public constant MAX_SIGNERS = 64;

    bytes32 public constant RESULT_TYPEHASH =
        keccak256("Result(uint256 projectId,uint256 taskId,bytes32 outputHash,bytes32 proofHash)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("Conclave TaskRouter");
    bytes32 private constant VERSION_HASH = keccak256("2");
    /// BN254's scalar field: a halo2 proof's public instances are below it.
    uint256 public constant SNARK_FIELD = 0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001;
    /// secp256k1 order / 2: signatures with a larger s are malleable copies and are refused.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    /// A task: the project's configuration when it was opened, and the draw's snapshot.
    struct Task {
        uint256 projectId;
        bytes32 programHash;
        address receiver;
        /// The project's proof verifier (halo2 only), its code hash when the task was opened (a
        /// verifier whose code changed since cannot check the task), and the output's words.
        address verifier;
        bytes32 verifierCodeHash;
        uint16 outputWords;
        address opener;
        uint8 proverKind;
        uint16 committeeSize;
        uint16 threshold;
        uint64 openedAt; // block
        uint64 deadline; // last block a result is accepted in
        uint256 totalUnits;
        bytes32 seed; // 0 until fixed
        bool published;
    }

    struct Result {
        bytes output;
        bytes32 proofHash;
        uint64 publishedBlock;
        address submitter;
    }

    NodeRegistry public immutable nodes;
    ProjectRegistry public immutable projects;
    /// Blocks from opening to a task's deadline.
    uint64 public immutable taskWindow;

    uint256 public taskCount;
    mapping(uint256 => Task) private tasks;
    mapping(uint256 => Result) private results;

    event TaskOpened(
        uint256 indexed taskId, uint256 indexed projectId, address indexed opener, uint64 openedAt, uint64 deadline
    );
    event SeedFixed(uint256 indexed taskId, bytes32 seed);
    event ResultPublished(
        uint256 indexed projectId,
        uint256 indexed taskId,
        bytes32 outputHash,
        bytes32 proofHash,
        bytes output,
        address submitter,
        uint256 seats,
        address opener
    );
    event ReceiverFailed(uint256 indexed projectId, uint256 indexed taskId, address receiver);
    event Equivocation(uint256 indexed taskId, address indexed signer, address reporter);

    error WindowLongerThanWithdrawDelay(uint64 window, uint64 withdrawDelay);
    error MayNotOpen(uint256 projectId, address caller);
    error NoActiveStake();
    error UnknownTask(uint256 taskId);
    error SeedNotYet(uint64 fromBlock);
    error SeedLost(uint256 taskId);
    error TaskExpired(uint256 taskId, uint64 deadline);
    error AlreadyPublished(uint256 taskId);
    error OutputTooLarge(uint256 length);
    error SignatureCount(uint256 signatures, uint256 seatMasks);
    error TooManySignatures(uint256 given, uint256 limit);
    error TooFewSeats(uint256 given, uint256 needed);
    error InvalidSignature(uint256 index);
    error SignersNotAscending(uint256 index);
    error NotSeatHolder(address signer);
    error SameOutput();
    error NotEquivocation();
    error NotEnoughGasForReceiver();
    /// A `halo2` task publishes through `submitProven`, and only a `halo2` task does.
    error WrongSubmit(uint8 proverKind);
    error MalformedOutput(uint256 length);
    error InstanceOutOfRange(uint256 index);
    error ProofRejected();

    constructor(NodeRegistry nodes_, ProjectRegistry projects_, uint64 taskWindow_) {
        uint64 window = taskWindow_ == 0 ? 1 : taskWindow_;
        // A signer must not get its stake back while it can still sign for a task it was drawn
        // for, nor for another task window after that, while evidence of equivocation comes in.
        if (2 * uint256(window) > nodes_.withdrawDelay()) {
            revert WindowLongerThanWithdrawDelay(window, nodes_.withdrawDelay());
        }
        nodes = nodes_;
        projects = projects_;
        taskWindow = window;
    }

    /// Opens a task of `projectId` with the project's configuration as it is now.
    function openTask(uint256 projectId) external returns (uint256 taskId) {
        if (!projects.mayOpen(projectId, msg.sender)) revert MayNotOpen(projectId, msg.sender);
        ProjectRegistry.Project memory p = projects.getProject(projectId);
        uint256 units = nodes.unitsAtBlockStart();
        if (units == 0) revert NoActiveStake();
        taskId = ++taskCount;
        uint64 deadline = uint64(block.number) + taskWindow;
        tasks[taskId] = Task(
            projectId,
            p.programHash,
            p.receiver,
            p.verifier,
            p.verifier == address(0) ? bytes32(0) : p.verifier.codehash,
            p.outputWords,
            msg.sender,
            p.proverKind,
            p.committeeSize,
            p.threshold,
            uint64(block.number),
            deadline,
            units,
            bytes32(0),
            false
        );
        emit TaskOpened(taskId, projectId, msg.sender, uint64(block.number), deadline);
    }

    /// Stores the task's seed; anyone may call it from two blocks after the opening on, and must
    /// within 256 blocks of it (after that the hash is gone and the task can never publish).
    function fixSeed(uint256 taskId) external returns (bytes32 seed) {
        Task storage t = _task(taskId);
        if (t.seed == bytes32(0)) {
            t.seed = _drawSeed(taskId, t.openedAt);
            emit SeedFixed(taskId, t.seed);
        }
        return t.seed;
    }

    /// The task's seed: stored, or read from the next block's hash.
    function seedOf(uint256 taskId) public view returns (bytes32) {
        Task storage t = _task(taskId);
        return t.seed != bytes32(0) ? t.seed : _drawSeed(taskId, t.openedAt);
    }

    /// Publishes the result of a task of any kind but `halo2` with its committee's signatures.
    function submit(
        uint256 taskId,
        bytes calldata output,
        bytes32 proofHash,
        bytes[] calldata signatures,
        uint256[] calldata seatMasks
    ) external {
        Task storage t = _task(taskId);
        if (t.proverKind == PROVER_HALO2) revert WrongSubmit(t.proverKind);
        _publish(taskId, t, output, proofHash, signatures, seatMasks);
    }

    /// Publishes a `halo2` task's result: its signers sign `proofHash =
    /// keccak256(abi.encode(inputCommitment, keccak256(proof)))`, and the project's verifier must
    /// accept `proof` for `proofInstances(taskId, output, inputCommitment)`.
    function submitProven(
        uint256 taskId,
        bytes calldata output,
        uint256 inputCommitment,
        bytes calldata proof,
        bytes[] calldata signatures,
        uint256[] calldata seatMasks
    ) external {
        Task storage t = _task(taskId);
        if (t.proverKind != PROVER_HALO2) revert WrongSubmit(t.proverKind);
        // The cheap refusals first: the verifier costs hundreds of thousands of gas.
        if (t.published) revert AlreadyPublished(taskId);
        if (block.number > t.deadline) revert TaskExpired(taskId, t.deadline);
        if (output.length != 32 * uint256(t.outputWords)) revert MalformedOutput(output.length);
        _verify(t, proofInstances(taskId, output, inputCommitment), proof);
        bytes32 proofHash = keccak256(abi.encode(inputCommitment, keccak256(proof)));
        _publish(taskId, t, output, proofHash, signatures, seatMasks);
    }

    /// Calls the task's verifier on `instances` then `proof` with at most VERIFIER_GAS, copying
    /// nothing back; reverts ProofRejected unless it returns, or if its code changed since the
    /// task was opened (a verifier that self-destructed, or was replaced at its address).
    function _verify(Task storage t, uint256[] memory instances, bytes calldata proof) private view {
        address verifier = t.verifier;
        // (A call to an address without code succeeds: a verifier gone since must not pass.)
        if (verifier.code.length == 0 || verifier.codehash != t.verifierCodeHash) revert ProofRejected();
        bytes memory data = abi.encodePacked(instances, proof);
        uint256 limit = VERIFIER_GAS;
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(limit, verifier, add(data, 32), mload(data), 0, 0)
        }
        if (!ok) revert ProofRejected();
    }

    /// The public instances a `halo2` task's proof is checked for: a value binding the chain, this
    /// router and the task (a proof is good for one task only), the commitment to the task's
    /// inputs, then the output's 32-byte words read as signed integers and taken mod the field.
    function proofInstances(uint256 taskId, bytes calldata output, uint256 inputCommitment)
        public
        view
        returns (uint256[] memory instances)
    {
        if (output.length % 32 != 0 || output.length > MAX_OUTPUT_BYTES) revert MalformedOutput(output.length);
        if (inputCommitment >= SNARK_FIELD) revert InstanceOutOfRange(1);
        uint256 words = output.length / 32;
        instances = new uint256[](2 + words);
        instances[0] = uint256(keccak256(abi.encode(block.chainid, address(this), taskId))) >> 8;
        instances[1] = inputCommitment;
        int256 half = int256((SNARK_FIELD - 1) / 2);
        for (uint256 i; i < words; ++i) {
            int256 x = int256(uint256(bytes32(output[32 * i:32 * i + 32])));
            if (x > half || x < -half) revert InstanceOutOfRange(2 + i);
            instances[2 + i] = x >= 0 ? uint256(x) : SNARK_FIELD - uint256(-x);
        }
    }

    function _publish(
        uint256 taskId,
        Task storage t,
        bytes calldata output,
        bytes32 proofHash,
        bytes[] calldata signatures,
        uint256[] calldata seatMasks
    ) private {
        if (t.published) revert AlreadyPublished(taskId);
        if (block.number > t.deadline) revert TaskExpired(taskId, t.deadline);
        if (output.length > MAX_OUTPUT_BYTES) revert OutputTooLarge(output.length);
        if (signatures.length != seatMasks.length) revert SignatureCount(signatures.length, seatMasks.length);
        if (signatures.length > MAX_SIGNERS) revert TooManySignatures(signatures.length, MAX_SIGNERS);
        if (t.seed == bytes32(0)) {
            t.seed = _drawSeed(taskId, t.openedAt);
            emit SeedFixed(taskId, t.seed);
        }

        uint256 seats =
            _countSeats(taskId, t, resultDigest(t.projectId, taskId, keccak256(output), proofHash), signatures, seatMasks);
        if (seats < t.threshold) revert TooFewSeats(seats, t.threshold);
        _store(taskId, t, output, proofHash, seats);
    }

    /// Stores and announces a result that passed its checks, then tells the receiver.
    function _store(uint256 taskId, Task storage t, bytes calldata output, bytes32 proofHash, uint256 seats) private {
        t.published = true;
        results[taskId] = Result(output, proofHash, uint64(block.number), msg.sender);
        emit ResultPublished(t.projectId, taskId, keccak256(output), proofHash, output, msg.sender, seats, t.opener);
        if (t.receiver != address(0)) _notify(t.receiver, t.projectId, taskId, output, proofHash);
    }

    /// Slashes a signer that signed two different outputs of one task; the caller gets a tenth of
    /// the stake. Works whether or not either output was published.
    function reportEquivocation(
        uint256 taskId,
        bytes32 outputHashA,
        bytes32 proofHashA,
        bytes calldata signatureA,
        bytes32 outputHashB,
        bytes32 proofHashB,
        bytes calldata signatureB
    ) external {
        Task storage t = _task(taskId);
        if (outputHashA == outputHashB) revert SameOutput();
        address a = _recover(resultDigest(t.projectId, taskId, outputHashA, proofHashA), signatureA);
        address b = _recover(resultDigest(t.projectId, taskId, outputHashB, proofHashB), signatureB);
        if (a == address(0) || a != b) revert NotEquivocation();
        emit Equivocation(taskId, a, msg.sender);
        nodes.slash(a, msg.sender);
    }

    function getTask(uint256 taskId) external view returns (Task memory) {
        return _task(taskId);
    }

    /// The stored result; `publishedBlock` is 0 when there is none.
    function getResult(uint256 taskId) external view returns (Result memory) {
        return results[taskId];
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

    /// The seats of `operator` in the task, as a mask (bit u: unit u won). For nodes and views.
    function seatsOf(uint256 taskId, address operator) external view returns (uint256) {
        Task storage t = _task(taskId);
        uint256 units = nodes.unitsAt(operator, t.openedAt);
        return Sortition.seats(
            seedOf(taskId), taskId, operator, units, Sortition.cutoff(t.totalUnits, t.committeeSize)
        );
    }

    /// The seats of a node on explicit inputs, so that anyone can check an implementation.
    function draw(bytes32 seed, uint256 taskId, address operator, uint256 units, uint256 totalUnits, uint256 expected)
        external
        pure
        returns (uint256)
    {
        return Sortition.seats(seed, taskId, operator, units, Sortition.cutoff(totalUnits, expected));
    }

    /// Sums the seats the signers claim, reverting on a bad signature, an unsorted or repeated
    /// signer, or a claim that is not the signer's seat.
    function _countSeats(
        uint256 taskId,
        Task storage t,
        bytes32 digest,
        bytes[] calldata signatures,
        uint256[] calldata seatMasks
    ) private view returns (uint256 seats) {
        uint256 limit = Sortition.cutoff(t.totalUnits, t.committeeSize);
        address previous;
        for (uint256 i; i < signatures.length; ++i) {
            address signer = _recover(digest, signatures[i]);
            if (signer == address(0)) revert InvalidSignature(i);
            if (signer <= previous) revert SignersNotAscending(i);
            uint256 claimed = _claimedSeats(taskId, t, limit, signer, seatMasks[i]);
            if (claimed == 0) revert NotSeatHolder(signer);
            seats += claimed;
            previous = signer;
        }
    }

    /// How many seats of the task `mask` claims for `signer`; 0 if any claimed seat is not its.
    function _claimedSeats(uint256 taskId, Task storage t, uint256 limit, address signer, uint256 mask)
        private
        view
        returns (uint256)
    {
        uint256 units = nodes.unitsAt(signer, t.openedAt);
        return Sortition.countClaimed(t.seed, taskId, signer, units, limit, mask);
    }

    function _task(uint256 taskId) private view returns (Task storage t) {
        t = tasks[taskId];
        if (t.openedAt == 0) revert UnknownTask(taskId);
    }

    /// keccak256(abi.encode(hash of block openedAt + 1, taskId)).
    function _drawSeed(uint256 taskId, uint64 openedAt) private view returns (bytes32) {
        uint256 seedBlock = uint256(openedAt) + 1;
        if (block.number <= seedBlock) revert SeedNotYet(uint64(seedBlock + 1));
        bytes32 h = blockhash(seedBlock);
        if (h == bytes32(0)) revert SeedLost(taskId);
        return keccak256(abi.encode(h, taskId));
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
