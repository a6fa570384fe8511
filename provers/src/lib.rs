//! conclave-provers: how a committee proves a task's result.
//!
//! Not built yet (issue 6). It will hold the `Prover` trait and its backends: `spdz` (the committee
//! runs the MPC), `halo2`, `wasm`, `tee` and `byop` (an external gRPC prover).
