//! The `spdz` prover: the committee's members compute together by SPDZ, after MASCOT
//! preprocessing, over per-session libp2p streams.
//!
//! Inputs come from external clients (MP-SPDZ's external-client protocol, per bit): before the
//! input window opens the committee makes `bits` Beaver triples per input slot ([`prepare`]); a
//! client receives the members' shares of its slot's triples (a_j, b_j, c_j), checks a_j·b_j = c_j
//! (a member that lied about its share of a_j would break the relation), and sends y_j = β_j − a_j
//! for each bit β_j of its record's fields (each offset by 2^(width−1)). In the online phase each
//! member forms [β_j] = y_j + [a_j] locally, checks every β_j is a bit ([`range_check`]), leaving out
//! a record with a non-bit, and runs the task's program over the records that pass
//! ([`run_program`]), where each field's declared range is checked inside the computation.
//! Members that received different y for a slot would fail the MAC check, so the coordinator only
//! runs slots whose y every member agrees on.

use std::sync::Arc;

use conclave_mpc::circuit::{CircuitBuilder, Gate, Wire};
use conclave_mpc::driver::run;
use conclave_mpc::lang::{InputWires, OutputValue, Parsed, Provider};
use conclave_mpc::mascot::pool::{Pool, PoolConfig};
use conclave_mpc::prep::{Material, Preprocessing, Requirements, Triple};
use conclave_mpc::share::{MacKeyShare, Share};
use conclave_mpc::wire::SessionId;
use conclave_mpc::{Abort, Fp, Session, SessionConfig};
use conclave_p2p::channel::{ChannelError, MpcChannels};
use libp2p::PeerId;

use crate::{Opened, Proven, Prover, ProverKind};

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
    #[error("the program: {0}")]
    Program(String),
}

/// One member's preprocessed material for a task: its MAC key share, `bits` triples per slot,
/// and what the program consumes beyond the slots' masks.
pub struct TaskMaterial {
    pub alpha: Fp,
    pub triples: Vec<Triple>,
    pub program: ProgramMaterial,
}

/// Triples and random bits for a program's comparisons, truncations and products.
#[derive(Clone, Debug, Default)]
pub struct ProgramMaterial {
    pub triples: Vec<Triple>,
    pub bits: Vec<Share>,
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
            program: derive("conclave spdz program v1"),
        },
    )
}

/// Runs MASCOT with the rest of `committee` and returns, for this member, `count` checked
/// triples for the slots plus `program_triples` triples and `program_bits` random bits.
pub async fn prepare(
    channels: &MpcChannels,
    session: SessionId,
    committee: &[PeerId],
    count: usize,
    program_triples: usize,
    program_bits: usize,
) -> Result<TaskMaterial, SpdzError> {
    if committee.len() < 2 || count == 0 {
        return Err(SpdzError::Invalid(format!(
            "{} members and {count} triples",
            committee.len()
        )));
    }
    let alpha = Fp::random(&mut rand::rng());
    let transport = channels.connect(session, committee, MAX_FRAME).await?;
    let triples = count + program_triples;
    let config = PoolConfig::for_material(committee.len(), triples, program_bits);
    let mut pool = Pool::start(session, MacKeyShare::new(alpha), transport, config).await?;
    let need = Requirements {
        triples,
        randoms: 0,
        input_masks: vec![0; committee.len()],
        bits: program_bits,
    };
    pool.ready(&need).await?;
    // Stop the producer before taking: taking would wake it for another batch, and a batch
    // abandoned after this point would poison a key nobody looks at again.
    pool.stop().await;
    let mut slot_triples = pool.triples(triples)?;
    let program = ProgramMaterial {
        triples: slot_triples.split_off(count),
        bits: pool.bits(program_bits)?,
    };
    if pool.mac_key().is_poisoned() {
        return Err(SpdzError::KeyPoisoned(Abort::KeyPoisoned));
    }
    Ok(TaskMaterial {
        alpha,
        triples: slot_triples,
        program,
    })
}

/// One input slot at one member. The device encodes each field of its record as the bits of the
/// value plus 2^(width−1) and sends y_j = b_j − a_j for each bit b_j; the member holds its shares
/// of each bit's triple (a_j, b'_j, c_j), whose `a_j` masked the bit.
pub struct SlotInput {
    pub triples: Vec<Triple>,
    pub masked_bits: Vec<Fp>,
}

/// The sessions of a task's online phase: the bit check, then the program over the slots it kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnlineSessions {
    pub check: SessionId,
    pub program: SessionId,
}

/// One member's part in running a program over client inputs.
pub struct ProgramJob {
    pub sessions: OnlineSessions,
    /// The committee's peers in party order.
    pub committee: Vec<PeerId>,
    pub alpha: Fp,
    /// The task's program (its source's hash is what the chain pins).
    pub program: Parsed,
    /// Bits of one device record: every input slot holds this many masked bits.
    pub bits: u32,
    pub inputs: Vec<SlotInput>,
    /// The project owner's parameters (its record's masked bits), for a program that reads
    /// them: they must be well formed, or the run fails.
    pub owner: Option<SlotInput>,
    /// Triples and random bits for the program itself.
    pub material: ProgramMaterial,
    /// The fewest well-formed inputs the program may run over: fewer would let a device that
    /// filled the other slots read an honest input from the output.
    pub min_counted: usize,
    /// Binds the committee and the inputs computed on; every member derives the same one and it
    /// becomes the proof hash TaskRouter stores.
    pub proof_context: [u8; 32],
}

impl Drop for ProgramJob {
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
    type Job = ProgramJob;
    type Error = SpdzError;

    fn kind(&self) -> ProverKind {
        ProverKind::Spdz
    }

    async fn prove(&self, job: ProgramJob) -> Result<Proven, SpdzError> {
        let job = Arc::new(job);
        let kept = range_check(&self.channels, &job).await?;
        let (outputs, receiver_shares) = run_program(&self.channels, &job, &kept).await?;
        Ok(Proven {
            outputs,
            receiver_shares,
            excluded: job.inputs.len() - kept.len(),
            proof_hash: job.proof_context,
        })
    }
}

fn my_party(channels: &MpcChannels, job: &ProgramJob) -> Result<usize, SpdzError> {
    job.committee
        .iter()
        .position(|p| *p == channels.me())
        .ok_or_else(|| SpdzError::Invalid("not a committee member".into()))
}

/// Which inputs are well formed: opens b_j·(b_j − 1) for every bit of every input, 0 for a bit
/// and anything else for a device that sent a field element instead, whose input is then left
/// out (an ill-formed input must not sink the task). The product uses the bit's own triple: its
/// Beaver opening b_j − a_j is the y_j everyone holds already, and b_j − 1 − b'_j reveals
/// nothing as b'_j is uniform. Returns the positions kept, in the job's input order. The owner's
/// record is checked alike, after the devices'; an ill-formed one fails the run (the owner's
/// parameters cannot be left out).
pub async fn range_check(
    channels: &MpcChannels,
    job: &ProgramJob,
) -> Result<Vec<usize>, SpdzError> {
    let parties = job.committee.len();
    let me = my_party(channels, job)?;
    if job.bits == 0
        || job.inputs.iter().any(|i| {
            i.triples.len() != job.bits as usize || i.masked_bits.len() != job.bits as usize
        })
    {
        return Err(SpdzError::Invalid(format!(
            "every input must have {} masked bits and triples",
            job.bits
        )));
    }
    if job
        .owner
        .as_ref()
        .is_some_and(|o| o.triples.is_empty() || o.triples.len() != o.masked_bits.len())
    {
        return Err(SpdzError::Invalid(
            "the owner's input must have a triple for each masked bit".into(),
        ));
    }
    let key = MacKeyShare::new(job.alpha);
    let mut b = CircuitBuilder::new(parties);
    let minus_one = b.constant(-Fp::ONE);
    for input in job.inputs.iter().chain(&job.owner) {
        for y in &input.masked_bits {
            let bit = masked_bit(&mut b, *y);
            let less_one = b.add(bit, minus_one);
            let product = b.mul(bit, less_one);
            b.reveal(product);
        }
    }
    let all: Vec<usize> = (0..job.inputs.len()).collect();
    let mut randoms = masks(job, &all);
    randoms.extend(job.owner.iter().flat_map(|o| o.triples.iter().map(|t| t.a)));
    let material = Material {
        key: key.clone(),
        triples: job
            .inputs
            .iter()
            .chain(&job.owner)
            .flat_map(|i| i.triples.clone())
            .collect(),
        randoms,
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
        &[],
    )
    .await?
    .0;
    let bits = job.bits as usize;
    let devices_end = job.inputs.len() * bits;
    if !products[devices_end..].iter().all(Fp::is_zero) {
        return Err(SpdzError::Invalid(
            "the owner's input is not well formed (a value is not a bit)".into(),
        ));
    }
    let kept: Vec<usize> = all
        .into_iter()
        .filter(|&i| products[i * bits..(i + 1) * bits].iter().all(Fp::is_zero))
        .collect();
    if kept.len() < job.min_counted {
        return Err(SpdzError::Invalid(format!(
            "only {} of {} inputs are well formed; a run needs {}",
            kept.len(),
            job.inputs.len(),
            job.min_counted
        )));
    }
    Ok(kept)
}

/// Device bits as the program reads them: [b] = y + [a] (a `Random` gate carrying this member's
/// share of the bit's mask, plus the constant y), kept slot by kept slot. The compiler asks for a
/// slot's fields in record order, so each request starts where the slot's last one ended.
struct MaskedBits<'a> {
    job: &'a ProgramJob,
    kept: &'a [usize],
    taken: Taken,
}

/// What lowering took from a job: where each record's reading got to, and the masks handed out.
struct Taken {
    /// Per kept slot, the next bit of its record to hand out.
    next: Vec<usize>,
    /// The next bit of the owner's record to hand out.
    owner_next: usize,
    /// The mask share of each `Random` gate created, in creation order.
    masks: Vec<Share>,
    /// The triples whose `a` masked each private output, in output order: taken from the end
    /// of the program's material, never used for a product.
    output_triples: Vec<Triple>,
    /// Asked for more bits than a record has, or more output masks than were prepared.
    overrun: bool,
}

impl InputWires for MaskedBits<'_> {
    fn bits(
        &mut self,
        b: &mut CircuitBuilder,
        provider: Provider,
        _field: usize,
        count: u32,
    ) -> Vec<Wire> {
        let (input, next) = match provider {
            Provider::Slot(slot) => (
                Some(&self.job.inputs[self.kept[slot]]),
                &mut self.taken.next[slot],
            ),
            Provider::Owner => (self.job.owner.as_ref(), &mut self.taken.owner_next),
        };
        let first = *next;
        *next += count as usize;
        let Some(input) = input else {
            self.taken.overrun = true;
            return (0..count).map(|_| b.constant(Fp::ZERO)).collect();
        };
        (first..first + count as usize)
            .map(|j| match (input.triples.get(j), input.masked_bits.get(j)) {
                (Some(t), Some(y)) => {
                    self.taken.masks.push(t.a);
                    masked_bit(b, *y)
                }
                _ => {
                    // Reported after lowering; a constant keeps the circuit well formed.
                    self.taken.overrun = true;
                    b.constant(Fp::ZERO)
                }
            })
            .collect()
    }

    fn output_mask(&mut self, b: &mut CircuitBuilder) -> Wire {
        let triples = &self.job.material.triples;
        match triples
            .len()
            .checked_sub(self.taken.output_triples.len() + 1)
        {
            Some(i) => {
                self.taken.output_triples.push(triples[i]);
                self.taken.masks.push(triples[i].a);
                b.random()
            }
            None => {
                self.taken.overrun = true;
                b.constant(Fp::ZERO)
            }
        }
    }
}

/// Runs the job's program over the kept inputs: compiles it for this committee and their count,
/// and opens its outputs after the MAC check (a private one masked by a triple's `a`). Returns
/// them with this member's shares of each private output's triple.
pub async fn run_program(
    channels: &MpcChannels,
    job: &Arc<ProgramJob>,
    kept: &[usize],
) -> Result<(Vec<Opened>, Vec<[Fp; 3]>), SpdzError> {
    let parties = job.committee.len();
    let me = my_party(channels, job)?;
    let key = MacKeyShare::new(job.alpha);
    // Compiling a large program takes a while: off the async workers.
    let (lowered, mut taken) = {
        let (job, kept) = (Arc::clone(job), kept.to_vec());
        tokio::task::spawn_blocking(move || {
            let mut source = MaskedBits {
                job: &job,
                kept: &kept,
                taken: Taken {
                    next: vec![0; kept.len()],
                    owner_next: 0,
                    masks: Vec::new(),
                    output_triples: Vec::new(),
                    overrun: false,
                },
            };
            let lowered = job.program.lower(parties, Some(kept.len()), &mut source);
            (lowered, source.taken)
        })
        .await
        .map_err(|e| SpdzError::Program(format!("compiling the program: {e}")))?
    };
    let lowered = lowered.map_err(|e| SpdzError::Program(e.to_string()))?;
    let owner_bits = job.owner.as_ref().map_or(0, |o| o.masked_bits.len());
    if taken.overrun
        || taken.next.iter().any(|&n| n != job.bits as usize)
        || taken.owner_next != owner_bits
    {
        return Err(SpdzError::Invalid(format!(
            "the program's records do not have the task's {} bits (the owner's {owner_bits}), or its private outputs lack mask triples",
            job.bits
        )));
    }
    let circuit = lowered.circuit;
    let need = circuit.requirements();
    let randoms = std::mem::take(&mut taken.masks);
    let output_triples = std::mem::take(&mut taken.output_triples);
    let only_masks = circuit
        .gates()
        .iter()
        .filter(|g| matches!(g, Gate::Random))
        .count()
        == randoms.len();
    if !only_masks {
        return Err(SpdzError::Program(
            "the program's random values are not the inputs' and outputs' masks".into(),
        ));
    }
    // The output triples come from the end of the material: the products must not reach them.
    if need.triples + output_triples.len() > job.material.triples.len()
        || need.bits > job.material.bits.len()
    {
        return Err(SpdzError::Invalid(format!(
            "the program needs {} triples and {} random bits, {} and {} were prepared",
            need.triples,
            need.bits,
            job.material.triples.len(),
            job.material.bits.len()
        )));
    }
    let material = Material {
        key: key.clone(),
        triples: job.material.triples[..need.triples].to_vec(),
        randoms,
        input_masks: vec![Vec::new(); parties],
        bits: job.material.bits[..need.bits].to_vec(),
    };
    let outputs = lowered.outputs;
    let (opened, _) = run_session(
        channels,
        job,
        job.sessions.program,
        me,
        circuit,
        material,
        &key,
        &[],
    )
    .await?;
    outputs
        .iter()
        .zip(opened)
        .map(|(spec, v)| {
            if spec.private {
                return Ok(Opened::Masked {
                    name: spec.name.clone(),
                    kind: spec.kind,
                    masked: v,
                });
            }
            let scaled = v
                .to_i128()
                .ok_or_else(|| SpdzError::Program(format!("output {} does not fit", spec.name)))?;
            Ok(Opened::Public(OutputValue {
                name: spec.name.clone(),
                kind: spec.kind,
                private: false,
                scaled,
            }))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|outputs| {
            let shares = output_triples
                .iter()
                .map(|t| [t.a.value, t.b.value, t.c.value])
                .collect();
            (outputs, shares)
        })
}

/// Whether the k-th multiplication the session performs multiplies [a_k] + y_k, the k-th
/// `Random` gate's bit, so that it consumes the k-th triple: the bit's own. Its Beaver opening
/// b − a is then y_k, public already; paired with another bit's triple it would open the
/// difference of two bits. The engine consumes triples layer by layer in gate order; this
/// checks that the circuit keeps to it.
fn bits_meet_their_own_triples(circuit: &conclave_mpc::Circuit) -> bool {
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

/// The wire [b] = y + [a]: a `Random` gate carrying this member's share of a, plus the constant y.
fn masked_bit(b: &mut CircuitBuilder, y: Fp) -> conclave_mpc::circuit::Wire {
    let a = b.random();
    let y = b.constant(y);
    b.add(a, y)
}

/// The mask shares of the given inputs' bits, in circuit order.
fn masks(job: &ProgramJob, inputs: &[usize]) -> Vec<Share> {
    inputs
        .iter()
        .flat_map(|&i| job.inputs[i].triples.iter().map(|t| t.a))
        .collect()
}

/// Runs one online session of the job and returns its MAC-checked outputs and this member's
/// shares of `keep`.
#[allow(clippy::too_many_arguments)]
async fn run_session(
    channels: &MpcChannels,
    job: &ProgramJob,
    id: SessionId,
    me: usize,
    circuit: conclave_mpc::circuit::Circuit,
    material: Material,
    key: &MacKeyShare,
    keep: &[Wire],
) -> Result<(Vec<Fp>, Vec<Share>), SpdzError> {
    let parties = job.committee.len();
    let mut session = Session::new(
        SessionConfig::new(id, me, parties),
        circuit,
        Vec::new(),
        material,
    )?;
    session
        .keep_shares(keep.to_vec())
        .map_err(|e| SpdzError::Invalid(e.to_string()))?;
    let mut transport = channels.connect(id, &job.committee, MAX_FRAME).await?;
    match run(conclave_mpc::driver::Keeping(session), &mut transport).await {
        Ok(out) => Ok(out),
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
