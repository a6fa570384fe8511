//! conclave-provers: how a committee proves a task's result.
//!
//! - [`Prover`]: one interface per prover kind (DESIGN.md "Provers").
//! - [`spdz`]: the committee computes by SPDZ over MASCOT preprocessing on p2p channels; its
//!   "proof" is the committee's threshold of signatures, so the proof hash binds the committee and
//!   the inputs it computed on.
//!
//! Only `spdz` exists; `halo2`, `wasm`, `tee` and `byop` are not built.

pub mod spdz;

pub use conclave_chain::contracts::ProverKind;

/// A prover: runs a task's program over its inputs and says what it computed.
pub trait Prover {
    /// What the prover runs on.
    type Job;
    type Error: std::error::Error;
    fn kind(&self) -> ProverKind;
    fn prove(
        &self,
        job: Self::Job,
    ) -> impl std::future::Future<Output = Result<Proven, Self::Error>> + Send;
}

/// A prover's answer: the public outputs, how many inputs were left out as ill-formed, and the
/// hash that `TaskRouter` stores as the proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proven {
    pub outputs: Vec<conclave_mpc::lang::OutputValue>,
    pub excluded: usize,
    pub proof_hash: [u8; 32],
}
