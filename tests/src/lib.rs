//! conclave-tests: cross-crate integration tests.
//!
//! The tests that need several crates at once (multi-process nodes, a real chain) will live in
//! `tests/tests/` once the chain and the node exist. Today each crate tests itself: the MPC engine
//! in `mpc/tests/`, the mesh (including MPC over p2p streams) in `p2p/tests/`.
