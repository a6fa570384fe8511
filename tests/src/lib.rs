//! conclave-tests: cross-crate integration tests.
//!
//! The tests that need several crates at once (multi-process nodes, a real chain) live in
//! `tests/tests/`. For now only the MPC engine exists; its own tests live in `mpc/tests/`.
