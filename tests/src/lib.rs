//! conclave-tests: cross-crate integration tests.
//!
//! Empty on purpose: the cross-crate tests live next to the binaries they drive, because Cargo
//! only hands a package's own binaries to its tests. Multi-process nodes with a real anvil are in
//! `node/tests/processes.rs`; many nodes in one process with the embedded chain in
//! `simulations/tests/`; the chain against anvil and the embedded EVM in `chain/tests/`; MPC over
//! p2p streams in `p2p/tests/`.
