//! The `spdz` prover: the committee's members compute together by SPDZ, after MASCOT
//! preprocessing, over per-session libp2p streams.
//!
//! Inputs come from external clients (MP-SPDZ's external-client protocol): before the input window
//! opens the committee makes one Beaver triple per input slot ([`prepare`]); a client receives the
//! members' shares of slot k's triple (a, b, c), checks a·b = c (a member that lied about its share
//! of a would break the relation), and sends y = x − a to every member. In the online phase each
//! member forms [x] = y + [a] locally: a `Random` gate carrying its share of a plus a `Const` gate
//! y, which party 0 adds and every party MACs. Members that received different y for a slot would
//! fail the MAC check, so the coordinator only runs slots whose y every member agrees on.

use conclave_mpc::circuit::CircuitBuilder;
use conclave_mpc::driver::run;
use conclave_mpc::mascot::pool::{Pool, PoolConfig};
use conclave_mpc::prep::{Material, Preprocessing, Requirements, Triple};
use conclave_mpc::share::{MacKeyShare, Share};
use conclave_mpc::wire::SessionId;
use conclave_mpc::{Abort, Fp, Session, SessionConfig};
use conclave_p2p::channel::{ChannelError, MpcChannels};
use libp2p::PeerId;

use crate::{Proven, Prover, ProverKind};

/// Largest MPC frame accepted from a committee member.
pub const MAX_FRAME: usize = 16 << 20;

/// Errors of the spdz prover.
#[derive(Debug, thiserror::Error)]
pub enum SpdzError {
    #[error("MPC channels: {0}")]
    Channels(#[from] ChannelError),
    #[error("MPC aborted: {0}")]
    Abort(#[from] Abort),
    #[error("MPC aborted during a MAC check, which poisons the task's MAC key: {0}")]
    KeyPoisoned(Abort),
    #[error("preprocessing: {0}")]
    Prep(#[from] conclave_mpc::prep::PrepError),
    #[error("session set-up: {0}")]
    Setup(#[from] conclave_mpc::session::SetupError),
    #[error("invalid job: {0}")]
    Invalid(String),
    #[error("the sum does not fit in 64 bits")]
    Overflow,
}

/// One member's preprocessed material for a task: its MAC key share and one triple per slot.
pub struct TaskMaterial {
    pub alpha: Fp,
    pub triples: Vec<Triple>,
}

impl Drop for TaskMaterial {
    fn drop(&mut self) {
        self.alpha.wipe();
    }
}

/// The session ids of a task's preprocessing and online phase, derived from the task id.
pub fn session_ids(task: &[u8; 32], attempt: u32) -> (SessionId, SessionId) {
    let derive = |label: &str| {
        let mut h = blake3::Hasher::new_derive_key(label);
        h.update(task);
        h.update(&attempt.to_le_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.finalize().as_bytes()[..16]);
        SessionId(id)
    };
    (
        derive("conclave spdz preprocessing v1"),
        derive("conclave spdz online v1"),
    )
}

/// Runs MASCOT with the rest of `committee` and returns `slots` checked triples for this member.
pub async fn prepare(
    channels: &MpcChannels,
    session: SessionId,
    committee: &[PeerId],
    slots: usize,
) -> Result<TaskMaterial, SpdzError> {
    if committee.len() < 2 || slots == 0 {
        return Err(SpdzError::Invalid(format!(
            "{} members and {slots} slots",
            committee.len()
        )));
    }
    let alpha = Fp::random(&mut rand::rng());
    let transport = channels.connect(session, committee, MAX_FRAME).await?;
    let per_batch = slots.clamp(1, 1024);
    let config = PoolConfig::for_triples(committee.len(), per_batch, slots);
    let mut pool = Pool::start(session, MacKeyShare::new(alpha), transport, config).await?;
    let need = Requirements {
        triples: slots,
        randoms: 0,
        input_masks: vec![0; committee.len()],
    };
    pool.ready(&need).await?;
    // Stop the producer before taking: taking would wake it for another batch, and a batch
    // abandoned after this point would poison a key nobody looks at again.
    pool.stop().await;
    let triples = pool.triples(slots)?;
    if pool.mac_key().is_poisoned() {
        return Err(SpdzError::KeyPoisoned(Abort::KeyPoisoned));
    }
    Ok(TaskMaterial { alpha, triples })
}

/// One member's part in a sum over client inputs.
pub struct SumJob {
    pub session: SessionId,
    /// The committee's peers in party order.
    pub committee: Vec<PeerId>,
    pub alpha: Fp,
    /// This member's share of each used slot's `a`, and the masked input y = x − a.
    pub inputs: Vec<(Share, Fp)>,
    /// Binds the committee and the inputs computed on; every member derives the same one and it
    /// becomes the proof hash TaskRouter stores.
    pub proof_context: [u8; 32],
}

impl Drop for SumJob {
    fn drop(&mut self) {
        self.alpha.wipe();
    }
}

/// The spdz prover of one node: it computes over that node's MPC channels.
#[derive(Clone)]
pub struct SpdzProver {
    pub channels: MpcChannels,
}

impl Prover for SpdzProver {
    type Job = SumJob;
    type Error = SpdzError;

    fn kind(&self) -> ProverKind {
        ProverKind::Spdz
    }

    async fn prove(&self, job: SumJob) -> Result<Proven, SpdzError> {
        let sum = sum_inputs(&self.channels, &job).await?;
        Ok(Proven {
            outputs: vec![sum],
            proof_hash: job.proof_context,
        })
    }
}

/// Computes Σ x over the job's inputs by SPDZ and returns it once its MAC check passed.
pub async fn sum_inputs(channels: &MpcChannels, job: &SumJob) -> Result<i64, SpdzError> {
    let parties = job.committee.len();
    let me = job
        .committee
        .iter()
        .position(|p| *p == channels.me())
        .ok_or_else(|| SpdzError::Invalid("not a committee member".into()))?;
    let mut b = CircuitBuilder::new(parties);
    let mut total = b.constant(Fp::from_u64(0));
    for (_, y) in &job.inputs {
        let a = b.random();
        let y = b.constant(*y);
        let x = b.add(a, y);
        total = b.add(total, x);
    }
    b.reveal(total);
    let circuit = b.build();
    let key = MacKeyShare::new(job.alpha);
    let material = Material {
        key: key.clone(),
        triples: Vec::new(),
        randoms: job.inputs.iter().map(|(a, _)| *a).collect(),
        input_masks: vec![Vec::new(); parties],
    };
    let session = Session::new(
        SessionConfig::new(job.session, me, parties),
        circuit,
        Vec::new(),
        material,
    )?;
    let mut transport = channels
        .connect(job.session, &job.committee, MAX_FRAME)
        .await?;
    let outputs = match run(session, &mut transport).await {
        Ok(outputs) => outputs,
        Err(abort) if key.is_poisoned() => return Err(SpdzError::KeyPoisoned(abort)),
        Err(abort) => return Err(abort.into()),
    };
    outputs
        .first()
        .and_then(Fp::to_i64)
        .ok_or(SpdzError::Overflow)
}
