//! The `spdz` prover: the committee's members compute together by SPDZ, after MASCOT
//! preprocessing, over per-session libp2p streams.
//!
//! Inputs come from external clients (MP-SPDZ's external-client protocol, per bit): before the
//! input window opens the committee makes `bits` Beaver triples per input slot ([`prepare`]); a
//! client receives the members' shares of its slot's triples (a_j, b_j, c_j), checks a_j·b_j = c_j
//! (a member that lied about its share of a_j would break the relation), and sends y_j = β_j − a_j
//! for each bit β_j of its offset reading. In the online phase each member forms [β_j] = y_j + [a_j]
//! locally, checks every β_j is a bit ([`range_checked_sum`]), and sums the inputs that pass.
//! Members that received different y for a slot would fail the MAC check, so the coordinator only
//! runs slots whose y every member agrees on.

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

/// One member's preprocessed material for a task: its MAC key share and `bits` triples per slot.
pub struct TaskMaterial {
    pub alpha: Fp,
    pub triples: Vec<Triple>,
}

impl Drop for TaskMaterial {
    fn drop(&mut self) {
        self.alpha.wipe();
    }
}

/// The session ids of a task's preprocessing and online phases, derived from the task id.
pub fn session_ids(task: &[u8; 32], attempt: u32) -> (SessionId, OnlineSessions) {
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
        OnlineSessions {
            check: derive("conclave spdz range check v1"),
            sum: derive("conclave spdz sum v1"),
        },
    )
}

/// Runs MASCOT with the rest of `committee` and returns `count` checked triples for this member.
pub async fn prepare(
    channels: &MpcChannels,
    session: SessionId,
    committee: &[PeerId],
    count: usize,
) -> Result<TaskMaterial, SpdzError> {
    if committee.len() < 2 || count == 0 {
        return Err(SpdzError::Invalid(format!(
            "{} members and {count} triples",
            committee.len()
        )));
    }
    let alpha = Fp::random(&mut rand::rng());
    let transport = channels.connect(session, committee, MAX_FRAME).await?;
    let per_batch = count.clamp(1, 1024);
    let config = PoolConfig::for_triples(committee.len(), per_batch, count);
    let mut pool = Pool::start(session, MacKeyShare::new(alpha), transport, config).await?;
    let need = Requirements {
        triples: count,
        randoms: 0,
        input_masks: vec![0; committee.len()],
        bits: 0,
    };
    pool.ready(&need).await?;
    // Stop the producer before taking: taking would wake it for another batch, and a batch
    // abandoned after this point would poison a key nobody looks at again.
    pool.stop().await;
    let triples = pool.triples(count)?;
    if pool.mac_key().is_poisoned() {
        return Err(SpdzError::KeyPoisoned(Abort::KeyPoisoned));
    }
    Ok(TaskMaterial { alpha, triples })
}

/// One input slot at one member. The device encodes its reading x as `bits` bits of
/// x + 2^(bits−1) and sends y_j = b_j − a_j for each bit b_j; the member holds its shares of each
/// bit's triple (a_j, b'_j, c_j), whose `a_j` masked the bit.
pub struct SlotInput {
    pub triples: Vec<Triple>,
    pub masked_bits: Vec<Fp>,
}

/// The sessions of a task's online phase: the range check, then the sum over the slots it kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnlineSessions {
    pub check: SessionId,
    pub sum: SessionId,
}

/// One member's part in a range-checked sum over client inputs.
pub struct SumJob {
    pub sessions: OnlineSessions,
    /// The committee's peers in party order.
    pub committee: Vec<PeerId>,
    pub alpha: Fp,
    /// Bits per input: a reading lies in [−2^(bits−1), 2^(bits−1)).
    pub bits: u32,
    pub inputs: Vec<SlotInput>,
    /// The fewest inputs in range the sum may be opened over: fewer would let a device that
    /// filled the other slots read an honest input from the output.
    pub min_counted: usize,
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
        let sum = range_checked_sum(&self.channels, &job).await?;
        Ok(Proven {
            outputs: vec![sum.sum, sum.counted as i64],
            proof_hash: job.proof_context,
        })
    }
}

/// What a range-checked sum computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedSum {
    /// Σ x over the inputs whose bits were all bits.
    pub sum: i64,
    /// How many inputs that is.
    pub counted: u64,
    /// Positions (in the job's input order) of the inputs left out.
    pub excluded: Vec<usize>,
}

/// Computes Σ x over the job's well-formed inputs by SPDZ, in two MAC-checked sessions.
///
/// The range check opens b_j·(b_j − 1) for every bit of every input: 0 for a bit, anything else
/// for a device that sent a field element instead, whose input is then left out (an out-of-range
/// input must not sink the task). The product uses the bit's own triple: its Beaver opening
/// b_j − a_j is the y_j everyone holds already, and b_j − 1 − b'_j reveals nothing as b'_j is
/// uniform. A second session then sums the kept inputs' bits, weighted, and opens the total only.
pub async fn range_checked_sum(
    channels: &MpcChannels,
    job: &SumJob,
) -> Result<CheckedSum, SpdzError> {
    let parties = job.committee.len();
    let me = job
        .committee
        .iter()
        .position(|p| *p == channels.me())
        .ok_or_else(|| SpdzError::Invalid("not a committee member".into()))?;
    if !(1..=MAX_INPUT_BITS).contains(&job.bits)
        || job.inputs.iter().any(|i| {
            i.triples.len() != job.bits as usize || i.masked_bits.len() != job.bits as usize
        })
    {
        return Err(SpdzError::Invalid(format!(
            "every input must have {} masked bits and triples",
            job.bits
        )));
    }
    let key = MacKeyShare::new(job.alpha);
    let all: Vec<usize> = (0..job.inputs.len()).collect();

    let mut b = CircuitBuilder::new(parties);
    let minus_one = b.constant(-Fp::ONE);
    for input in &job.inputs {
        for y in &input.masked_bits {
            let bit = masked_bit(&mut b, *y);
            let less_one = b.add(bit, minus_one);
            let product = b.mul(bit, less_one);
            b.reveal(product);
        }
    }
    let material = Material {
        key: key.clone(),
        triples: job.inputs.iter().flat_map(|i| i.triples.clone()).collect(),
        randoms: masks(job, &all),
        input_masks: vec![Vec::new(); parties],
        bits: Vec::new(),
    };
    let circuit = b.build();
    if !bits_meet_their_own_triples(&circuit) {
        return Err(SpdzError::Invalid(
            "the range check would pair a bit with another bit's triple".into(),
        ));
    }
    let products = run_session(
        channels,
        job,
        job.sessions.check,
        me,
        circuit,
        material,
        &key,
    )
    .await?;
    let bits = job.bits as usize;
    let (kept, excluded): (Vec<usize>, Vec<usize>) = all
        .into_iter()
        .partition(|&i| products[i * bits..(i + 1) * bits].iter().all(Fp::is_zero));
    if kept.len() < job.min_counted {
        return Err(SpdzError::Invalid(format!(
            "only {} of {} inputs are in range; a sum needs {}",
            kept.len(),
            job.inputs.len(),
            job.min_counted
        )));
    }

    let mut b = CircuitBuilder::new(parties);
    let mut total = b.constant(Fp::ZERO);
    for &i in &kept {
        for (j, y) in job.inputs[i].masked_bits.iter().enumerate() {
            let bit = masked_bit(&mut b, *y);
            let weighted = b.mul_const(bit, Fp::from_u64(1 << j));
            total = b.add(total, weighted);
        }
    }
    b.reveal(total);
    let material = Material {
        key: key.clone(),
        triples: Vec::new(),
        randoms: masks(job, &kept),
        input_masks: vec![Vec::new(); parties],
        bits: Vec::new(),
    };
    let opened = run_session(
        channels,
        job,
        job.sessions.sum,
        me,
        b.build(),
        material,
        &key,
    )
    .await?;
    // Σ of kept offset readings x + 2^(bits−1): below 2^63 for MAX_INPUT_BITS and any
    // realistic input count, so it is exact.
    let offset_sum = opened
        .first()
        .and_then(Fp::to_i64)
        .ok_or(SpdzError::Overflow)?;
    let counted = kept.len() as u64;
    let offset = 1i64 << (job.bits - 1);
    let sum = i64::try_from(counted)
        .ok()
        .and_then(|n| n.checked_mul(offset))
        .and_then(|o| offset_sum.checked_sub(o))
        .ok_or(SpdzError::Overflow)?;
    Ok(CheckedSum {
        sum,
        counted,
        excluded,
    })
}

/// Whether the k-th multiplication the session performs multiplies [a_k] + y_k, the k-th
/// `Random` gate's bit, so that it consumes the k-th triple: the bit's own. Its Beaver opening
/// b − a is then y_k, public already; paired with another bit's triple it would open the
/// difference of two bits. The engine consumes triples layer by layer in gate order; this
/// checks that the circuit keeps to it.
fn bits_meet_their_own_triples(circuit: &conclave_mpc::Circuit) -> bool {
    use conclave_mpc::circuit::Gate;
    let gates = circuit.gates();
    let randoms: Vec<usize> = (0..gates.len())
        .filter(|&g| matches!(gates[g], Gate::Random))
        .collect();
    let plan = conclave_mpc::schedule::Plan::new(circuit);
    let muls: Vec<u32> = plan.mul_layers.iter().flatten().copied().collect();
    plan.depth() <= 1
        && muls.len() == randoms.len()
        && muls.iter().zip(&randoms).all(|(&m, &r)| {
            let Gate::Mul(bit, _) = gates[m as usize] else {
                return false;
            };
            matches!(gates[bit.index()], Gate::Add(a, _) if a.index() == r)
        })
}

/// Largest bit width of an input.
pub const MAX_INPUT_BITS: u32 = 48;

/// The wire [b] = y + [a]: a `Random` gate carrying this member's share of a, plus the constant y.
fn masked_bit(b: &mut CircuitBuilder, y: Fp) -> conclave_mpc::circuit::Wire {
    let a = b.random();
    let y = b.constant(y);
    b.add(a, y)
}

/// The mask shares of the given inputs' bits, in circuit order.
fn masks(job: &SumJob, inputs: &[usize]) -> Vec<Share> {
    inputs
        .iter()
        .flat_map(|&i| job.inputs[i].triples.iter().map(|t| t.a))
        .collect()
}

/// Runs one online session of the job and returns its MAC-checked outputs.
async fn run_session(
    channels: &MpcChannels,
    job: &SumJob,
    id: SessionId,
    me: usize,
    circuit: conclave_mpc::circuit::Circuit,
    material: Material,
    key: &MacKeyShare,
) -> Result<Vec<Fp>, SpdzError> {
    let parties = job.committee.len();
    let session = Session::new(
        SessionConfig::new(id, me, parties),
        circuit,
        Vec::new(),
        material,
    )?;
    let mut transport = channels.connect(id, &job.committee, MAX_FRAME).await?;
    match run(session, &mut transport).await {
        Ok(outputs) => Ok(outputs),
        Err(abort) if key.is_poisoned() => Err(SpdzError::KeyPoisoned(abort)),
        Err(abort) => Err(abort.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The range check's circuit pairs each bit with its own triple; one that multiplied a bit
    /// by the mask of another is caught.
    #[test]
    fn each_bit_meets_its_own_triple() {
        let mut b = CircuitBuilder::new(2);
        let minus_one = b.constant(-Fp::ONE);
        for y in 0..6u64 {
            let bit = masked_bit(&mut b, Fp::from_u64(y));
            let less_one = b.add(bit, minus_one);
            let product = b.mul(bit, less_one);
            b.reveal(product);
        }
        assert!(bits_meet_their_own_triples(&b.build()));

        let mut b = CircuitBuilder::new(2);
        let first = masked_bit(&mut b, Fp::ONE);
        let second = masked_bit(&mut b, Fp::ONE);
        let crossed = b.mul(second, first);
        b.reveal(crossed);
        let other = b.mul(first, second);
        b.reveal(other);
        assert!(!bits_meet_their_own_triples(&b.build()));
    }
}
