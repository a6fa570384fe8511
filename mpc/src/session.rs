//! The SPDZ online phase for one circuit, as a sans-IO state machine.
//!
//! Every round, each party broadcasts one frame ([`Session::outgoing`]) and takes one frame from
//! every other party ([`Session::incoming`]); when the last one is in, the round completes. Rounds:
//! inputs (masked by input masks), one per multiplication layer (Beaver, all of a layer at once), a
//! MAC check of everything opened so far, the output opening, and a MAC check of the outputs. The
//! outputs are returned only after that last check passes. Any error poisons the session: its key
//! share, preprocessed material and shares are wiped and every later call fails.

use bytes::Bytes;

use crate::circuit::{Circuit, CircuitError, Gate, Wire};
use crate::field::Fp;
use crate::mac_check::{CheckStage, Committed, Ctx, MacCheck, OpenedLog, Progress};
use crate::prep::{Material, Requirements};
use crate::rounds::RoundGate;
use crate::schedule::Plan;
use crate::share::{KeyError, KeyLease, PartyId, Share};
use crate::wire::{BodyView, DEFAULT_MAX_FRAME, Frame, FrameError, SessionId, encode_values};

/// Who this party is in which session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub session: SessionId,
    pub party: PartyId,
    pub parties: usize,
    /// Frames longer than this are refused before they are decoded.
    pub max_frame: usize,
}

impl SessionConfig {
    pub fn new(session: SessionId, party: PartyId, parties: usize) -> Self {
        SessionConfig {
            session,
            party,
            parties,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// Why a session could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("a session needs at least 2 parties and party {party} < {parties}")]
    BadParties { party: PartyId, parties: usize },
    #[error("the circuit is for {circuit} parties, the session has {session}")]
    PartyMismatch { circuit: usize, session: usize },
    #[error(transparent)]
    Circuit(#[from] CircuitError),
    #[error("preprocessed material does not fit the circuit: need {need:?}, have {have:?}")]
    MaterialMismatch {
        need: Requirements,
        have: Requirements,
    },
    #[error("input mask {index} of this party carries no clear mask value")]
    MaskNotOwned { index: usize },
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Why a session aborted. Honest parties abort on any deviation; nothing secret is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Abort {
    #[error("MAC check of {0:?} values failed: a party opened a wrong value or MAC share")]
    MacCheckFailed(CheckStage),
    #[error("party {party} opened a {what:?} commitment to something it did not commit to")]
    CommitmentMismatch { party: PartyId, what: Committed },
    #[error("party {party} saw different broadcast values from this party")]
    InconsistentBroadcast { party: PartyId },
    #[error("bad frame from party {from}: {error}")]
    BadFrame { from: PartyId, error: FrameError },
    #[error("party {from} sent a frame of another session")]
    WrongSession { from: PartyId },
    #[error("party {from} sent a frame for round {got} in round {expected}")]
    WrongRound {
        from: PartyId,
        expected: u32,
        got: u32,
    },
    #[error("party {from} sent a {got} where a {expected} was due")]
    UnexpectedBody {
        from: PartyId,
        expected: &'static str,
        got: &'static str,
    },
    #[error("party {from} sent {got} values where {expected} were due")]
    WrongLength {
        from: PartyId,
        expected: usize,
        got: usize,
    },
    #[error("party {from} is not a peer of this session")]
    UnknownParty { from: PartyId },
    #[error("party {from} sent twice in one round")]
    Duplicate { from: PartyId },
    #[error("party {party}'s OT-extension message failed the correlation check")]
    OtCheckFailed { party: PartyId },
    #[error("base OT with party {party} failed: {error}")]
    BaseOt {
        party: PartyId,
        error: crate::ot::base::BaseOtError,
    },
    #[error("silent VOLE with party {party} failed: {error}")]
    SilentVole {
        party: PartyId,
        error: crate::mascot::silent::SilentError,
    },
    #[error("preprocessing could not continue: {0}")]
    Preprocessing(String),
    #[error("a MAC check under this key failed elsewhere; the key is poisoned")]
    KeyPoisoned,
    #[error("transport to party {peer} failed: {reason}")]
    Transport { peer: PartyId, reason: String },
    /// Nothing arrived in time: from party `waiting_for`, or (None) the verdict of an earlier
    /// MAC check under the same key.
    #[error("waited {after:?} for {}", match waiting_for { Some(p) => format!("party {p}"), None => "another MAC check under this key".into() })]
    Timeout {
        waiting_for: Option<PartyId>,
        after: std::time::Duration,
    },
    #[error("the session already ended ({0})")]
    Ended(&'static str),
}

/// What a completed round led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// More rounds follow; call [`Session::outgoing`] again.
    Continue,
    /// Every frame of the round is in, but the round's MAC check must wait for an earlier check
    /// under the same key: call [`Session::resume`] after [`MacKeyShare::changed`](crate::share::MacKeyShare::changed).
    Blocked,
    /// The checked public outputs.
    Done(Vec<Fp>),
}

enum Phase {
    Inputs { received: Vec<Vec<Fp>> },
    Multiply { layer: usize, sums: Vec<Fp> },
    Check(Box<MacCheck>),
    OpenOutputs { sums: Vec<Fp> },
    Finished,
    Poisoned,
}

/// One party's state in one evaluation of a circuit.
pub struct Session {
    cfg: SessionConfig,
    circuit: Circuit,
    plan: Plan,
    material: Material,
    /// Exclusive use of the MAC key for this session's lifetime.
    lease: Option<KeyLease>,
    inputs: Vec<Fp>,
    wires: Vec<Share>,
    /// The values of public wires (empty when the circuit has none).
    clear: Vec<Fp>,
    log: OpenedLog,
    outputs: Vec<Fp>,
    /// Wires whose shares are handed out after a successful run (for preprocessing built on the
    /// online phase, such as random bits).
    keep: Vec<Wire>,
    kept: Vec<Share>,
    phase: Phase,
    /// All of the round's frames are in, but its check waits for an earlier one.
    blocked: bool,
    gate: RoundGate,
    out: Bytes,
}

impl Session {
    /// Sets up party `cfg.party`'s evaluation of `circuit` with its private `inputs` (in the order of
    /// its input gates) and `material` drawn for exactly this circuit.
    pub fn new(
        cfg: SessionConfig,
        circuit: Circuit,
        inputs: Vec<Fp>,
        material: Material,
    ) -> Result<Session, SetupError> {
        let lease = material.key.lease()?;
        Self::build(cfg, circuit, inputs, material, Some(lease))
    }

    /// A session run by the preprocessing producer itself (random bits), which owns the key's
    /// use while it runs and so takes no lease.
    pub(crate) fn for_preprocessing(
        cfg: SessionConfig,
        circuit: Circuit,
        material: Material,
    ) -> Result<Session, SetupError> {
        if material.key.is_poisoned() {
            return Err(SetupError::Key(KeyError::Poisoned));
        }
        Self::build(cfg, circuit, Vec::new(), material, None)
    }

    fn build(
        cfg: SessionConfig,
        circuit: Circuit,
        inputs: Vec<Fp>,
        material: Material,
        lease: Option<KeyLease>,
    ) -> Result<Session, SetupError> {
        if cfg.parties < 2 || cfg.party >= cfg.parties {
            return Err(SetupError::BadParties {
                party: cfg.party,
                parties: cfg.parties,
            });
        }
        circuit.validate()?;
        if circuit.parties() != cfg.parties {
            return Err(SetupError::PartyMismatch {
                circuit: circuit.parties(),
                session: cfg.parties,
            });
        }
        let need = circuit.requirements();
        if material.capacity() != need {
            return Err(SetupError::MaterialMismatch {
                need,
                have: material.capacity(),
            });
        }
        let expected = need.input_masks[cfg.party];
        if inputs.len() != expected {
            return Err(CircuitError::WrongInputCount {
                party: cfg.party,
                expected,
                got: inputs.len(),
            }
            .into());
        }
        if let Some(index) = material.input_masks[cfg.party]
            .iter()
            .position(|m| m.clear.is_none())
        {
            return Err(SetupError::MaskNotOwned { index });
        }
        let plan = Plan::new(&circuit);
        let mut wires = vec![Share::default(); circuit.gates().len()];
        for (&g, r) in plan.randoms.iter().zip(&material.randoms) {
            wires[g as usize] = *r;
        }
        for (&g, r) in plan.random_bits.iter().zip(&material.bits) {
            wires[g as usize] = *r;
        }
        let clear = if plan.public.iter().any(|p| *p) {
            vec![Fp::ZERO; circuit.gates().len()]
        } else {
            Vec::new()
        };
        let mut session = Session {
            log: OpenedLog::with_capacity(2 * need.triples),
            cfg,
            circuit,
            plan,
            material,
            lease,
            inputs,
            wires,
            clear,
            outputs: Vec::new(),
            keep: Vec::new(),
            kept: Vec::new(),
            phase: Phase::Inputs {
                received: vec![Vec::new(); cfg.parties],
            },
            blocked: false,
            gate: RoundGate::new(cfg.session, cfg.party, cfg.parties, cfg.max_frame),
            out: Bytes::new(),
        };
        session.begin_round();
        Ok(session)
    }

    /// Asks for this party's shares of `wires` after a successful run ([`Session::kept_shares`]).
    pub fn keep_shares(&mut self, wires: Vec<Wire>) -> Result<(), CircuitError> {
        let gates = self.circuit.gates().len();
        if let Some((output, w)) = wires.iter().enumerate().find(|(_, w)| w.index() >= gates) {
            return Err(CircuitError::UnknownOutput { output, wire: w.0 });
        }
        self.keep = wires;
        Ok(())
    }

    /// The shares asked for with [`Session::keep_shares`], once the session has finished.
    pub fn kept_shares(&mut self) -> Vec<Share> {
        std::mem::take(&mut self.kept)
    }

    /// This party's frame for the current round, to be sent to every other party.
    pub fn outgoing(&self) -> Result<Bytes, Abort> {
        self.ensure_running()?;
        Ok(self.out.clone())
    }

    /// Takes party `from`'s frame for the current round. Returns [`Status::Done`] with the outputs
    /// once the final check passes. On error the session is poisoned and wiped.
    pub fn incoming(&mut self, from: PartyId, bytes: &[u8]) -> Result<Status, Abort> {
        self.ensure_running()?;
        let result = self.take_frame(from, bytes);
        if let Err(e) = &result {
            self.poison();
            return Err(e.clone());
        }
        result
    }

    /// Aborts from outside (for example when a transport fails): wipes everything.
    pub fn abort(&mut self, reason: Abort) -> Abort {
        self.poison();
        reason
    }

    fn ensure_running(&self) -> Result<(), Abort> {
        match self.phase {
            Phase::Finished => Err(Abort::Ended("finished")),
            Phase::Poisoned => Err(Abort::Ended("aborted earlier")),
            _ if self.blocked => Err(Abort::Ended("waiting for another MAC check")),
            _ => Ok(()),
        }
    }

    /// Whether the session waits for another MAC check under its key ([`Status::Blocked`]).
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// The MAC key this session checks under.
    pub fn mac_key(&self) -> &crate::share::MacKeyShare {
        &self.material.key
    }

    /// Retries a round that returned [`Status::Blocked`].
    pub fn resume(&mut self) -> Result<Status, Abort> {
        if !self.blocked {
            return Ok(Status::Continue);
        }
        self.blocked = false;
        let result = self.complete_round();
        if let Err(e) = &result {
            self.poison();
            return Err(e.clone());
        }
        result
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            session: self.cfg.session,
            round: self.gate.round,
            party: self.cfg.party,
        }
    }

    fn take_frame(&mut self, from: PartyId, bytes: &[u8]) -> Result<Status, Abort> {
        let body = self.gate.admit(from, bytes)?;
        self.accept(from, body)?;
        if self.gate.accepted(from) {
            return self.complete_round();
        }
        Ok(Status::Continue)
    }

    /// Prepares this party's frame for the round that starts now.
    fn begin_round(&mut self) {
        let ctx = self.ctx();
        let (session, round) = (ctx.session, ctx.round);
        self.out = match &mut self.phase {
            Phase::Inputs { .. } => encode_values(session, round, &self.own_masked_inputs()),
            Phase::Multiply { layer, sums } => {
                let first = first_triple(&self.plan, *layer);
                let gates = &self.plan.mul_layers[*layer];
                *sums = beaver_masks(gates, &self.circuit, &self.wires, &self.material, first);
                for &g in &self.plan.open_layers[*layer] {
                    let Gate::Open(w) = self.circuit.gates()[g as usize] else {
                        unreachable!("open layers hold only openings")
                    };
                    sums.push(self.wires[w.index()].value);
                }
                encode_values(session, round, sums)
            }
            Phase::OpenOutputs { sums } => {
                let outputs = self.circuit.outputs().iter();
                *sums = outputs.map(|w| self.wires[w.index()].value).collect();
                encode_values(session, round, sums)
            }
            Phase::Check(check) => Frame {
                session,
                round,
                body: check.outgoing(ctx),
            }
            .encode(),
            Phase::Finished | Phase::Poisoned => return,
        };
    }

    fn own_masked_inputs(&self) -> Vec<Fp> {
        self.inputs
            .iter()
            .zip(&self.material.input_masks[self.cfg.party])
            .map(|(x, mask)| *x - mask.clear.unwrap_or(Fp::ZERO))
            .collect()
    }

    /// The values of a `Values` body of exactly `len` elements.
    fn expect_values<'a>(
        from: PartyId,
        body: BodyView<'a>,
        len: usize,
    ) -> Result<impl Iterator<Item = Result<Fp, Abort>> + 'a, Abort> {
        match body {
            BodyView::Values(v) if v.len() == len => Ok(v
                .iter()
                .map(move |r| r.map_err(|error| Abort::BadFrame { from, error }))),
            BodyView::Values(v) => Err(Abort::WrongLength {
                from,
                expected: len,
                got: v.len(),
            }),
            other => Err(Abort::UnexpectedBody {
                from,
                expected: "values",
                got: other.kind(),
            }),
        }
    }

    fn accept(&mut self, from: PartyId, body: BodyView) -> Result<(), Abort> {
        let ctx = self.ctx();
        match &mut self.phase {
            Phase::Inputs { received } => {
                let len = self.plan.inputs_by_party[from].len();
                received[from] = Self::expect_values(from, body, len)?.collect::<Result<_, _>>()?;
            }
            Phase::Multiply { sums, .. } | Phase::OpenOutputs { sums } => {
                let theirs = Self::expect_values(from, body, sums.len())?;
                for (s, v) in sums.iter_mut().zip(theirs) {
                    *s += v?;
                }
            }
            Phase::Check(check) => check.accept(ctx, from, body)?,
            Phase::Finished | Phase::Poisoned => unreachable!("checked by ensure_running"),
        }
        Ok(())
    }

    fn complete_round(&mut self) -> Result<Status, Abort> {
        let ctx = self.ctx();
        let phase = std::mem::replace(&mut self.phase, Phase::Finished);
        let next = match phase {
            Phase::Inputs { mut received } => {
                received[self.cfg.party] = self.own_masked_inputs();
                self.finish_inputs(&received);
                self.evaluate_linear(0);
                self.after_layer(0)?
            }
            Phase::Multiply { layer, sums } => {
                let (products, opened) = sums.split_at(2 * self.plan.mul_layers[layer].len());
                self.finish_multiplications(layer, products);
                self.finish_openings(layer, opened);
                self.evaluate_linear(layer);
                self.after_layer(layer)?
            }
            Phase::Check(mut check) => match check.complete(ctx, &self.material.key) {
                Err(e) => {
                    // Back in place so that poisoning sees the failed check.
                    self.phase = Phase::Check(check);
                    return Err(e);
                }
                Ok(Progress::Continue) => Phase::Check(check),
                Ok(Progress::Blocked) => {
                    self.phase = Phase::Check(check);
                    self.blocked = true;
                    return Ok(Status::Blocked);
                }
                Ok(Progress::Passed)
                    if check.stage == CheckStage::Intermediate
                        && self.circuit.outputs().is_empty() =>
                {
                    self.finish();
                    return Ok(Status::Done(Vec::new()));
                }
                Ok(Progress::Passed) if check.stage == CheckStage::Intermediate => {
                    Phase::OpenOutputs { sums: Vec::new() }
                }
                Ok(Progress::Passed) => {
                    let outputs = std::mem::take(&mut self.outputs);
                    self.finish();
                    return Ok(Status::Done(outputs));
                }
            },
            Phase::OpenOutputs { sums } => {
                let mut log = OpenedLog::with_capacity(sums.len());
                for (w, v) in self.circuit.outputs().iter().zip(&sums) {
                    log.push(*v, self.wires[w.index()].mac);
                }
                self.outputs = sums;
                Phase::Check(Box::new(MacCheck::new(
                    CheckStage::Outputs,
                    log,
                    self.cfg.parties,
                    &self.material.key,
                )?))
            }
            Phase::Finished | Phase::Poisoned => unreachable!("checked by ensure_running"),
        };
        self.gate.advance();
        self.phase = next;
        if matches!(self.phase, Phase::Finished) {
            self.finish();
            return Ok(Status::Done(Vec::new()));
        }
        self.begin_round();
        Ok(Status::Continue)
    }

    /// The phase after multiplication layer `layer` and its linear gates are done. Whatever was
    /// opened is checked before anything (outputs or kept shares) leaves the session.
    fn after_layer(&mut self, layer: usize) -> Result<Phase, Abort> {
        if layer < self.plan.depth() {
            return Ok(Phase::Multiply {
                layer: layer + 1,
                sums: Vec::new(),
            });
        }
        if self.log.is_empty() {
            return Ok(if self.circuit.outputs().is_empty() {
                Phase::Finished
            } else {
                Phase::OpenOutputs { sums: Vec::new() }
            });
        }
        let log = std::mem::take(&mut self.log);
        Ok(Phase::Check(Box::new(MacCheck::new(
            CheckStage::Intermediate,
            log,
            self.cfg.parties,
            &self.material.key,
        )?)))
    }

    fn finish_inputs(&mut self, received: &[Vec<Fp>]) {
        let (party, key) = (self.cfg.party, &self.material.key);
        for (owner, masked) in received.iter().enumerate() {
            let gates = &self.plan.inputs_by_party[owner];
            let masks = &self.material.input_masks[owner];
            for ((&g, mask), eps) in gates.iter().zip(masks).zip(masked) {
                self.wires[g as usize] = mask.share.add_public(*eps, party, key);
                self.log.publics.push(*eps);
            }
        }
    }

    fn finish_multiplications(&mut self, layer: usize, sums: &[Fp]) {
        let gates = &self.plan.mul_layers[layer];
        let m = gates.len();
        let first = first_triple(&self.plan, layer);
        let (party, alpha) = (self.cfg.party, self.material.key.value());
        for (k, &g) in gates.iter().enumerate() {
            let Gate::Mul(x, y) = self.circuit.gates()[g as usize] else {
                unreachable!("mul layers hold only multiplications")
            };
            let (x, y) = (self.wires[x.index()], self.wires[y.index()]);
            let t = &self.material.triples[first + k];
            let (d, e) = (sums[k], sums[m + k]);
            self.log.push(d, x.mac - t.a.mac);
            self.log.push(e, y.mac - t.b.mac);
            let de = d * e;
            let mut value = t.c.value + d * t.b.value + e * t.a.value;
            if party == 0 {
                value += de;
            }
            let mac = t.c.mac + d * t.b.mac + e * t.a.mac + de * alpha;
            self.wires[g as usize] = Share { value, mac };
        }
    }

    /// Each opened value becomes a public wire; its opening joins the log the MAC check covers.
    fn finish_openings(&mut self, layer: usize, opened: &[Fp]) {
        let (party, key) = (self.cfg.party, &self.material.key);
        for (&g, &value) in self.plan.open_layers[layer].iter().zip(opened) {
            let Gate::Open(w) = self.circuit.gates()[g as usize] else {
                unreachable!("open layers hold only openings")
            };
            self.log.push(value, self.wires[w.index()].mac);
            self.clear[g as usize] = value;
            self.wires[g as usize] = Share::constant(value, party, key);
        }
    }

    fn evaluate_linear(&mut self, layer: usize) {
        let (party, key) = (self.cfg.party, &self.material.key);
        for &g in &self.plan.linear_layers[layer] {
            let gate = &self.circuit.gates()[g as usize];
            if self.plan.public[g as usize] {
                let value = public_value(gate, &self.clear);
                self.clear[g as usize] = value;
                self.wires[g as usize] = Share::constant(value, party, key);
                continue;
            }
            let (w, public, clear) = (&self.wires, &self.plan.public, &self.clear);
            let out = match *gate {
                Gate::Add(a, b) => w[a.index()] + w[b.index()],
                Gate::Sub(a, b) => w[a.index()] - w[b.index()],
                Gate::Neg(a) => -w[a.index()],
                Gate::MulConst(a, c) => w[a.index()].scale(c),
                // A product with a public factor is local.
                Gate::Mul(a, b) if public[a.index()] => w[b.index()].scale(clear[a.index()]),
                Gate::Mul(a, b) => w[a.index()].scale(clear[b.index()]),
                Gate::Const(_)
                | Gate::Bit(..)
                | Gate::Input(_)
                | Gate::Random
                | Gate::RandomBit
                | Gate::Open(_) => {
                    unreachable!("secret linear gates read secret wires")
                }
            };
            self.wires[g as usize] = out;
        }
    }

    /// Ends a successful run. Consumed material and wire shares are dropped without the cost of
    /// zeroizing hundreds of megabytes; the MAC key share zeroizes itself on drop.
    fn finish(&mut self) {
        self.kept = self.keep.iter().map(|w| self.wires[w.index()]).collect();
        self.material = Material {
            key: self.material.key.clone(),
            triples: Vec::new(),
            randoms: Vec::new(),
            input_masks: Vec::new(),
            bits: Vec::new(),
        };
        self.wires = Vec::new();
        self.clear = Vec::new();
        self.log = OpenedLog::default();
        self.out = Bytes::new();
        self.lease = None;
        self.phase = Phase::Finished;
    }

    fn poison(&mut self) {
        if let Phase::Check(check) = &mut self.phase {
            // Dropping the unresolved check below (phase = Poisoned) poisons the key: whatever
            // ended a MAC check, its outcome may tell the adversary something about α.
            check.wipe();
        }
        self.wipe();
        self.outputs.iter_mut().for_each(Fp::wipe);
        self.outputs = Vec::new();
        self.phase = Phase::Poisoned;
    }

    fn wipe(&mut self) {
        self.material.wipe();
        self.wires.iter_mut().for_each(Share::wipe);
        self.wires = Vec::new();
        self.inputs.iter_mut().for_each(Fp::wipe);
        self.inputs = Vec::new();
        self.log.wipe();
        self.out = Bytes::new();
        self.lease = None;
    }
}

impl Drop for Session {
    /// A session dropped mid-run (its driver cancelled) still wipes what it holds.
    fn drop(&mut self) {
        if !matches!(self.phase, Phase::Finished | Phase::Poisoned) {
            self.wipe();
        }
    }
}

/// The value of a public local gate from the values of its public operands.
fn public_value(gate: &Gate, clear: &[Fp]) -> Fp {
    let v = |w: Wire| clear[w.index()];
    match *gate {
        Gate::Const(c) => c,
        Gate::Add(a, b) => v(a) + v(b),
        Gate::Sub(a, b) => v(a) - v(b),
        Gate::Neg(a) => -v(a),
        Gate::Mul(a, b) => v(a) * v(b),
        Gate::MulConst(a, c) => v(a) * c,
        Gate::Bit(a, i) => Fp::from_u64(u64::from(v(a).bit(usize::from(i)))),
        Gate::Input(_) | Gate::Random | Gate::RandomBit | Gate::Open(_) => {
            unreachable!("not a local gate")
        }
    }
}

/// Index of the first triple used by `layer`: triples are consumed layer by layer.
fn first_triple(plan: &Plan, layer: usize) -> usize {
    plan.mul_layers[..layer].iter().map(Vec::len).sum()
}

/// This party's shares of d = x − a (first half) and e = y − b (second half) for a layer.
fn beaver_masks(
    gates: &[u32],
    circuit: &Circuit,
    wires: &[Share],
    material: &Material,
    first: usize,
) -> Vec<Fp> {
    let m = gates.len();
    let mut out = vec![Fp::ZERO; 2 * m];
    for (k, &g) in gates.iter().enumerate() {
        let Gate::Mul(x, y) = circuit.gates()[g as usize] else {
            unreachable!("mul layers hold only multiplications")
        };
        let t = &material.triples[first + k];
        out[k] = wires[x.index()].value - t.a.value;
        out[m + k] = wires[y.index()].value - t.b.value;
    }
    out
}

#[cfg(all(test, feature = "insecure-dealer"))]
mod tests {
    use super::*;
    use crate::circuit::CircuitBuilder;
    use crate::dealer::InsecureDealer;

    /// A party index outside the session, or a session of one, is refused before anything runs.
    #[test]
    fn a_party_outside_the_session_is_refused() {
        let mut b = CircuitBuilder::new(2);
        let x = b.random();
        b.reveal(x);
        let circuit = b.build();
        let material = InsecureDealer::new(2, 3)
            .deal(&circuit.requirements())
            .remove(0);
        for (party, parties) in [(2, 2), (5, 2), (0, 1)] {
            let cfg = SessionConfig::new(SessionId([2; 16]), party, parties);
            assert_eq!(
                Session::new(cfg, circuit.clone(), vec![], material.clone()).err(),
                Some(SetupError::BadParties { party, parties }),
                "party {party} of {parties}"
            );
        }
    }

    #[test]
    fn one_key_serves_one_session_at_a_time() {
        let mut b = CircuitBuilder::new(2);
        let (x, y) = (b.random(), b.random());
        let p = b.mul(x, y);
        b.reveal(p);
        let circuit = b.build();
        let mut dealer = InsecureDealer::new(2, 1);
        let first = dealer.deal(&circuit.requirements()).remove(0);
        let mut second = dealer.deal(&circuit.requirements()).remove(0);
        second.key = first.key.clone();
        let cfg = SessionConfig::new(SessionId([1; 16]), 0, 2);
        let running = Session::new(cfg, circuit.clone(), vec![], first).unwrap();
        let again = second.clone();
        assert!(matches!(
            Session::new(cfg, circuit.clone(), vec![], again),
            Err(SetupError::Key(KeyError::Busy))
        ));
        drop(running);
        assert!(Session::new(cfg, circuit, vec![], second).is_ok());
    }
}
