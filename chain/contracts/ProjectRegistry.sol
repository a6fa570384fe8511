// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Projects: what a committee computes, how, and who receives the result.
contract ProjectRegistry {
    /// Prover kinds, as in DESIGN.md "Provers".
    uint8 public constant PROVER_SPDZ = 0;
    uint8 public constant PROVER_HALO2 = 1;
    uint8 public constant PROVER_WASM = 2;
    uint8 public constant PROVER_TEE = 3;
    uint8 public constant PROVER_BYOP = 4;

    uint16 public constant MAX_COMMITTEE = 32;
    uint256 public constant MAX_URI_BYTES = 256;

    struct Project {
        address owner;
        bytes32 programHash;
        string programUri;
        uint8 proverKind;
        uint16 committeeSize;
        uint16 threshold;
        address receiver;
        bool paused;
    }

    uint256 public projectCount;
    mapping(uint256 => Project) private projects;

    event ProjectRegistered(uint256 indexed projectId, address indexed owner, bytes32 programHash);
    event ProjectUpdated(uint256 indexed projectId, bytes32 programHash);
    event ProjectPaused(uint256 indexed projectId, bool paused);

    error UnknownProject(uint256 projectId);
    error NotProjectOwner(uint256 projectId, address caller);
    error InvalidCommittee(uint16 committeeSize, uint16 threshold);
    error UnknownProverKind(uint8 proverKind);
    error UriTooLong(uint256 length);

    /// Registers a project owned by the caller; ids start at 1.
    function register(
        bytes32 programHash,
        string calldata programUri,
        uint8 proverKind,
        uint16 committeeSize,
        uint16 threshold,
        address receiver
    ) external returns (uint256 projectId) {
        _check(programUri, proverKind, committeeSize, threshold);
        projectId = ++projectCount;
        projects[projectId] =
            Project(msg.sender, programHash, programUri, proverKind, committeeSize, threshold, receiver, false);
        emit ProjectRegistered(projectId, msg.sender, programHash);
    }

    function update(
        uint256 projectId,
        bytes32 programHash,
        string calldata programUri,
        uint8 proverKind,
        uint16 committeeSize,
        uint16 threshold,
        address receiver
    ) external {
        Project storage p = _owned(projectId);
        _check(programUri, proverKind, committeeSize, threshold);
        p.programHash = programHash;
        p.programUri = programUri;
        p.proverKind = proverKind;
        p.committeeSize = committeeSize;
        p.threshold = threshold;
        p.receiver = receiver;
        emit ProjectUpdated(projectId, programHash);
    }

    function setPaused(uint256 projectId, bool paused) external {
        _owned(projectId).paused = paused;
        emit ProjectPaused(projectId, paused);
    }

    /// The project; reverts with UnknownProject if there is none.
    function getProject(uint256 projectId) external view returns (Project memory) {
        Project storage p = projects[projectId];
        if (p.owner == address(0)) revert UnknownProject(projectId);
        return p;
    }

    function _owned(uint256 projectId) private view returns (Project storage p) {
        p = projects[projectId];
        if (p.owner == address(0)) revert UnknownProject(projectId);
        if (p.owner != msg.sender) revert NotProjectOwner(projectId, msg.sender);
    }

    function _check(string calldata programUri, uint8 proverKind, uint16 committeeSize, uint16 threshold)
        private
        pure
    {
        if (bytes(programUri).length > MAX_URI_BYTES) revert UriTooLong(bytes(programUri).length);
        if (proverKind > PROVER_BYOP) revert UnknownProverKind(proverKind);
        if (committeeSize == 0 || committeeSize > MAX_COMMITTEE || threshold == 0 || threshold > committeeSize) {
            revert InvalidCommittee(committeeSize, threshold);
        }
    }
}
