//! conclave-provers: how a committee proves a task's result.
//!
//! - [`Prover`]: one interface per prover kind (DESIGN.md "Provers").
//! - [`spdz`]: the committee computes by SPDZ over MASCOT preprocessing on p2p channels; its
//!   "proof" is the committee's threshold of signatures, so the proof hash binds the committee and
//!   the inputs it computed on.
//!
//! - [`wasm`]: the engine of the `wasm` prover (deterministic module runs, native and W3bstream
//!   applet ABIs); the node runs it at every seat of a `wasm` task.
//! - [`halo2`]: a program's circuit IR proven with halo2 (KZG on BN254).
//! - [`byop`]: a client (and `conclave-prover`'s server) for W3bstream's VM gRPC protocols.
//! - [`tee`]: offline verification of TEE attestation evidence against a project's policy.

pub mod byop;
pub mod halo2;
pub mod spdz;
pub mod tee;
pub mod wasm;

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

/// A prover's answer: the outputs in program order, how many inputs were left out as
/// ill-formed, and the hash that `TaskRouter` stores as the proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proven {
    pub outputs: Vec<Opened>,
    /// This member's shares (a, b, c) of each private output's mask triple, in output order:
    /// the mask is `a`, and the receiver checks Σc = Σa·Σb over all members' shares.
    pub receiver_shares: Vec<[conclave_mpc::Fp; 3]>,
    pub excluded: usize,
    pub proof_hash: [u8; 32],
}

/// One output as the chain gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A public output's value.
    Public(conclave_mpc::lang::OutputValue),
    /// A private output: value + mask, which only the receiver (holding the mask) can read.
    Masked {
        name: String,
        kind: conclave_mpc::lang::Kind,
        masked: conclave_mpc::Fp,
    },
}

impl Opened {
    pub fn name(&self) -> &str {
        match self {
            Opened::Public(v) => &v.name,
            Opened::Masked { name, .. } => name,
        }
    }

    /// The value, if it is public.
    pub fn value(&self) -> Option<&conclave_mpc::lang::OutputValue> {
        match self {
            Opened::Public(v) => Some(v),
            Opened::Masked { .. } => None,
        }
    }
}

impl std::fmt::Display for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::Public(v) => v.fmt(f),
            Opened::Masked { .. } => f.write_str("(private: sealed for the receiver)"),
        }
    }
}
