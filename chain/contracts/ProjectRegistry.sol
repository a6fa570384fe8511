// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Projects: what a committee computes, how, who receives the result, and who opens tasks.
/// @notice A project's owner may change its configuration, but a change takes effect only
/// `changeDelay` blocks later, and TaskRouter snapshots the configuration when it opens a task: a
/// live task keeps the program, committee, threshold, receiver and verifier it was opened with. A
/// `halo2` project names the contract that verifies its program's proofs (deployed when the project
/// is registered); no other kind has one. By default
/// anyone may open the project's tasks (paying the gas); the owner may restrict opening to itself
/// and a list of openers. Pausing stops new tasks only.
contract ProjectRegistry {
    /// Prover kinds, as in DESIGN.md "Provers".
    uint8 public constant PROVER_SPDZ = 0;
    uint8 public constant PROVER_HALO2 = 1;
    uint8 public constant PROVER_WASM = 2;
    uint8 public constant PROVER_TEE = 3;
    uint8 public constant PROVER_BYOP = 4;

    uint16 public constant MAX_COMMITTEE = 32;
    uint256 public constant MAX_URI_BYTES = 256;
    /// As TaskRouter.MAX_OUTPUT_BYTES.
    uint256 public constant MAX_OUTPUT_BYTES = 4096;

    /// What a task of the project is opened with.
    struct Config {
        bytes32 programHash;
        string programUri;
        uint8 proverKind;
        /// Expected number of seats of a task's committee.
        uint16 committeeSize;
        /// Seats whose signatures publish a result.
        uint16 threshold;
        address receiver;
        /// The proof verifier of a `halo2` project; zero for other kinds.
        address verifier;
        /// A `halo2` program's output words: its verifier's public instances beyond the task
        /// binding and the input commitment (the verifier itself does not check their count).
        uint16 outputWords;
    }

    /// A project as it is now (the pending change applied once its block is reached).
    struct Project {
        address owner;
        bytes32 programHash;
        string programUri;
        uint8 proverKind;
        uint16 committeeSize;
        uint16 threshold;
        address receiver;
        address verifier;
        uint16 outputWords;
        bool paused;
        bool restrictOpeners;
    }

    struct Record {
        address owner;
        bool paused;
        bool restrictOpeners;
        uint64 pendingFrom; // block from which `pending` applies; 0 when nothing is pending
        Config current;
        Config pending;
    }

    uint64 public immutable changeDelay;
    uint256 public projectCount;
    mapping(uint256 => Record) private projects;
    mapping(uint256 => mapping(address => bool)) private openers;

    event ProjectRegistered(uint256 indexed projectId, address indexed owner, bytes32 programHash);
    event ProjectUpdated(uint256 indexed projectId, bytes32 programHash, uint64 effectiveFrom);
    event ProjectPaused(uint256 indexed projectId, bool paused);
    event OpenersRestricted(uint256 indexed projectId, bool restricted);
    event OpenerSet(uint256 indexed projectId, address indexed opener, bool allowed);

    error UnknownProject(uint256 projectId);
    error NotProjectOwner(uint256 projectId, address caller);
    error InvalidCommittee(uint16 committeeSize, uint16 threshold);
    error UnknownProverKind(uint8 proverKind);
    error UriTooLong(uint256 length);
    /// A `halo2` project needs a deployed verifier and its output's word count (1 to 128), and
    /// only a `halo2` project has them.
    error InvalidVerifier(uint8 proverKind, address verifier);

    constructor(uint64 changeDelay_) {
        changeDelay = changeDelay_;
    }

    /// Registers a project owned by the caller, in effect at once; ids start at 1.
    function register(Config calldata config) external returns (uint256 projectId) {
        _check(config);
        projectId = ++projectCount;
        Record storage r = projects[projectId];
        r.owner = msg.sender;
        r.current = config;
        emit ProjectRegistered(projectId, msg.sender, config.programHash);
    }

    /// Schedules a new configuration, in effect `changeDelay` blocks from now; it replaces any
    /// change still pending.
    function update(uint256 projectId, Config calldata config) external {
        Record storage r = _owned(projectId);
        _check(config);
        _settle(r);
        r.pending = config;
        r.pendingFrom = uint64(block.number) + changeDelay;
        if (changeDelay == 0) _settle(r);
        emit ProjectUpdated(projectId, config.programHash, uint64(block.number) + changeDelay);
    }

    function setPaused(uint256 projectId, bool paused) external {
        _owned(projectId).paused = paused;
        emit ProjectPaused(projectId, paused);
    }

    function setRestrictOpeners(uint256 projectId, bool restricted) external {
        _owned(projectId).restrictOpeners = restricted;
        emit OpenersRestricted(projectId, restricted);
    }

    function setOpener(uint256 projectId, address opener, bool allowed) external {
        _owned(projectId);
        openers[projectId][opener] = allowed;
        emit OpenerSet(projectId, opener, allowed);
    }

    /// Whether `who` may open a task of the project now.
    function mayOpen(uint256 projectId, address who) external view returns (bool) {
        Record storage r = projects[projectId];
        if (r.owner == address(0) || r.paused) return false;
        return !r.restrictOpeners || who == r.owner || openers[projectId][who];
    }

    /// The project as in effect now; reverts with UnknownProject if there is none.
    function getProject(uint256 projectId) external view returns (Project memory p) {
        Record storage r = projects[projectId];
        if (r.owner == address(0)) revert UnknownProject(projectId);
        Config storage c = _effective(r);
        p = Project(
            r.owner,
            c.programHash,
            c.programUri,
            c.proverKind,
            c.committeeSize,
            c.threshold,
            c.receiver,
            c.verifier,
            c.outputWords,
            r.paused,
            r.restrictOpeners
        );
    }

    /// The change still waiting for its block, if any (`pendingFrom` 0 when none).
    function pendingChange(uint256 projectId) external view returns (Config memory config, uint64 pendingFrom) {
        Record storage r = projects[projectId];
        if (r.pendingFrom != 0 && block.number < r.pendingFrom) return (r.pending, r.pendingFrom);
    }

    function _effective(Record storage r) private view returns (Config storage) {
        return r.pendingFrom != 0 && block.number >= r.pendingFrom ? r.pending : r.current;
    }

    /// Applies a pending change whose block has come.
    function _settle(Record storage r) private {
        if (r.pendingFrom != 0 && block.number >= r.pendingFrom) {
            r.current = r.pending;
            r.pendingFrom = 0;
        }
    }

    function _owned(uint256 projectId) private view returns (Record storage r) {
        r = projects[projectId];
        if (r.owner == address(0)) revert UnknownProject(projectId);
        if (r.owner != msg.sender) revert NotProjectOwner(projectId, msg.sender);
    }

    function _check(Config calldata c) private view {
        if (bytes(c.programUri).length > MAX_URI_BYTES) revert UriTooLong(bytes(c.programUri).length);
        if (c.proverKind > PROVER_BYOP) revert UnknownProverKind(c.proverKind);
        if (c.committeeSize == 0 || c.committeeSize > MAX_COMMITTEE || c.threshold == 0 || c.threshold > c.committeeSize)
        {
            revert InvalidCommittee(c.committeeSize, c.threshold);
        }
        bool halo2 = c.proverKind == PROVER_HALO2;
        bool wellFormed = halo2
            ? c.verifier.code.length > 0 && c.outputWords > 0 && 32 * uint256(c.outputWords) <= MAX_OUTPUT_BYTES
            : c.verifier == address(0) && c.outputWords == 0;
        if (!wellFormed) revert InvalidVerifier(c.proverKind, c.verifier);
    }
}
