//! One MASCOT batch, sans-IO: triples, random values and input masks, output only if every check
//! passed.
//!
//! Rounds (frames per peer unless noted); the heavy steps run in segments so that no frame holds
//! more than [`SEGMENT_BYTES`] of payload, whatever the batch size:
//! - **Extend** (one round per segment of triples): as SoftSpokenOT receiver, the OT-extension
//!   message whose choices are the bits of this party's τ candidate values a_{t,k} of the
//!   segment; each peer checks it before using it.
//! - **Gilboa** (right after each Extend): as OT sender, corrections d = v0 − v1 + b_t, so the
//!   peer's chosen message gives it a share of a_{t,k}·b_t; every party ends with a share of
//!   c_{t,k} = a_{t,k}·b_t where a = Σ_i a^i, b = Σ_i b^i.
//! - coin toss (2 rounds, broadcast): r, r̂ combine the τ candidates into (a, c) and (â, ĉ), so a
//!   selective-failure attack on the Gilboa step learns nothing about a.
//! - **Refill** (four rounds per silent-VOLE extension, only when a stock runs low): see
//!   [`super::refill`].
//! - **Authenticate** (one round per segment of values): x − u for this party's next random VOLEs
//!   u with each peer, MACing its shares of a, b, c, â, ĉ, its random values, its input masks and
//!   one random x₀ under every peer's key share (one field element per value and peer).
//! - coin toss (2 rounds, broadcast): the sacrifice challenges s_t and the coefficients χ.
//! - **Open** (broadcast): ρ_t = s_t·a_t − â_t, and y = Σ χ_k·v_k + x₀ over every value MACed.
//! - MAC check (4 rounds) of ρ, y, and of s_t·c_t − ĉ_t − ρ_t·b_t claimed to be 0 (the sacrifice).

use bytes::Bytes;
use zeroize::Zeroize;

use super::refill::Refill;
use super::{FIELD_BITS, MAX_PREP_FRAME, MascotKeys, SEGMENT_BYTES, TAU, bits, pair_context};
use crate::commit::{Binding, CoinToss};
use crate::driver::{Outgoing, Protocol};
use crate::field::Fp;
use crate::mac_check::{CheckStage, Committed, Ctx, MacCheck, OpenedLog, Progress};
use crate::ot::prg::Prg;
use crate::ot::softspoken::{OtExtError, SoftReceiver};
use crate::prep::{InputMask, Triple};
use crate::rounds::RoundGate;
use crate::session::Abort;
use crate::share::{MacKeyShare, PartyId, Share};
use crate::wire::{Body, BodyView, FrameError, encode_values};

/// The most triples, or random values plus masks, in one batch (bounded by memory; frames are
/// bounded by segmenting).
pub const MAX_PER_BATCH: usize = 1 << 16;

/// OTs per Gilboa product: one per bit of a candidate value.
const OTS_PER_CANDIDATE: usize = FIELD_BITS;
/// Triples per Extend/Gilboa segment: a segment's corrections fill at most [`SEGMENT_BYTES`].
const TRIPLES_PER_SEGMENT: usize = SEGMENT_BYTES / (TAU * OTS_PER_CANDIDATE * 32);
// Segment nonces stay below bit 19, which the silent VOLE's nonces set (see `refill`).
const _: () = assert!(MAX_PER_BATCH.div_ceil(TRIPLES_PER_SEGMENT) < 1 << 19);

/// Values per Authenticate segment: one field element each.
const VALUES_PER_SEGMENT: usize = SEGMENT_BYTES / 32;

/// What one batch produces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchSpec {
    pub triples: usize,
    pub randoms: usize,
    /// Input masks for each owner.
    pub masks: Vec<usize>,
}

/// Why a batch was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("a batch holds at most {MAX_PER_BATCH} triples and {MAX_PER_BATCH} randoms plus masks")]
    TooLarge,
    #[error("the batch names masks for {got} parties, the committee has {parties}")]
    MaskOwners { got: usize, parties: usize },
    #[error("the OT state with party {0} was destroyed after a failed check")]
    PairDestroyed(PartyId),
    #[error("an earlier batch did not finish: the VOLE stocks are out of step with the peers'")]
    VoleOutOfStep,
    #[error(
        "the setup was sized for fewer values: party {owner} would authenticate {need}, {left} are left"
    )]
    VoleExhausted {
        owner: PartyId,
        need: usize,
        left: usize,
    },
}

/// What one batch produced for this party: all of it checked.
#[derive(Clone, Debug, Default)]
pub struct BatchOutput {
    pub triples: Vec<Triple>,
    pub randoms: Vec<Share>,
    /// Input masks by owner.
    pub masks: Vec<Vec<InputMask>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Extend(usize),
    Gilboa(usize),
    CombineCommit,
    CombineOpen,
    Refill,
    Authenticate(usize),
    ChallengeCommit,
    ChallengeOpen,
    Open,
    Check,
}

/// One party's state in one batch. Borrows the party's long-lived OT state.
pub struct Batch<'k> {
    keys: &'k mut MascotKeys,
    spec: BatchSpec,
    batch: u64,
    gate: RoundGate,
    step: Step,
    out: Outgoing,
    /// Candidate a_{t,k} (index t·τ + k) and b_t.
    a: Vec<Fp>,
    b: Vec<Fp>,
    /// Shares of a_{t,k}·b_t being accumulated.
    c: Vec<Fp>,
    /// OT-extension receiver rows of the current segment, for each peer.
    t_rows: Vec<Vec<u128>>,
    /// Gilboa corrections of the current segment, for each peer.
    corrections: Vec<Vec<Fp>>,
    coin: CoinToss,
    /// This party's authenticated inputs and its own MAC shares of them.
    inputs: Vec<Fp>,
    own_macs: Vec<Fp>,
    /// MAC shares this party holds of each peer's inputs.
    peer_macs: Vec<Vec<Fp>>,
    /// Authenticated values (see `assemble`) and the batch's x₀.
    items: Vec<Share>,
    x0: Share,
    /// Sacrifice challenges, and the shares opened in `Open`.
    s: Vec<Fp>,
    opened: Vec<Fp>,
    open_shares: Vec<Share>,
    check: Option<Box<MacCheck>>,
    /// The rounds that refill the pairs' random VOLE, if this batch needs any.
    refill: Option<Refill>,
    /// The batch's check waits for an earlier check under the key.
    blocked: bool,
    done: bool,
}

impl<'k> Batch<'k> {
    /// Starts a batch for `spec` with this party's `keys`.
    pub fn new(keys: &'k mut MascotKeys, spec: BatchSpec) -> Result<Self, BatchError> {
        let extra: usize = spec.randoms + spec.masks.iter().sum::<usize>();
        if spec.triples > MAX_PER_BATCH || extra > MAX_PER_BATCH {
            return Err(BatchError::TooLarge);
        }
        if spec.masks.len() != keys.parties {
            return Err(BatchError::MaskOwners {
                got: spec.masks.len(),
                parties: keys.parties,
            });
        }
        let mut rng = rand::rng();
        let n = spec.triples;
        let a: Vec<Fp> = (0..n * TAU).map(|_| Fp::random(&mut rng)).collect();
        let b: Vec<Fp> = (0..n).map(|_| Fp::random(&mut rng)).collect();
        let c = (0..n * TAU).map(|g| a[g] * b[g / TAU]).collect();
        let batch = keys.next_batch;
        let gate = RoundGate::starting_at(
            keys.session,
            keys.party,
            keys.parties,
            MAX_PREP_FRAME,
            keys.next_round,
        );
        let parties = keys.parties;
        for j in gate.peers() {
            keys.pairs[j].as_ref().ok_or(BatchError::PairDestroyed(j))?;
        }
        if !keys.vole_in_step {
            return Err(BatchError::VoleOutOfStep);
        }
        let refill = Refill::plan(keys, batch, |i| input_len(&spec, i))?;
        keys.next_batch += 1;
        let mut batch = Batch {
            spec,
            batch,
            step: Step::Extend(0),
            out: Outgoing::PerPeer(Vec::new()),
            a,
            b,
            c,
            t_rows: vec![Vec::new(); parties],
            corrections: vec![Vec::new(); parties],
            coin: CoinToss::new(parties),
            inputs: Vec::new(),
            own_macs: Vec::new(),
            peer_macs: vec![Vec::new(); parties],
            items: Vec::new(),
            x0: Share::default(),
            s: Vec::new(),
            opened: Vec::new(),
            open_shares: Vec::new(),
            check: None,
            refill,
            blocked: false,
            done: false,
            gate,
            keys,
        };
        batch.out = batch.extend_frames(0);
        Ok(batch)
    }

    /// Extend/Gilboa segments: triples `[s·T, min((s+1)·T, n))` for s below this.
    fn triple_segments(&self) -> usize {
        self.spec.triples.div_ceil(TRIPLES_PER_SEGMENT).max(1)
    }

    /// Authenticate segments, enough for the party with the most values.
    fn value_segments(&self) -> usize {
        let most = (0..self.gate.parties)
            .map(|j| self.input_len(j))
            .max()
            .unwrap_or(0);
        most.div_ceil(VALUES_PER_SEGMENT)
    }

    /// The candidates of triple segment `seg`, and the index of its first OT in the batch.
    fn candidates(&self, seg: usize) -> (std::ops::Range<usize>, usize) {
        segment_candidates(self.spec.triples, seg)
    }

    /// Party `j`'s values in value segment `seg`.
    fn values(&self, j: PartyId, seg: usize) -> std::ops::Range<usize> {
        let len = self.input_len(j);
        let first = (seg * VALUES_PER_SEGMENT).min(len);
        first..((seg + 1) * VALUES_PER_SEGMENT).min(len)
    }

    fn nonce(&self, seg: usize) -> u64 {
        segment_nonce(self.batch, seg)
    }

    fn tweak(&self, ot: usize) -> u64 {
        ot_tweak(self.batch, ot)
    }

    /// This party's OT-extension messages for triple segment `seg` (choices: its a bits).
    fn extend_frames(&mut self, seg: usize) -> Outgoing {
        let (session, me) = (self.gate.session, self.gate.party);
        let (range, _) = self.candidates(seg);
        let mut choices: Vec<bool> = self.a[range].iter().flat_map(bits).collect();
        let nonce = self.nonce(seg);
        let mut frames = vec![Bytes::new(); self.gate.parties];
        for j in self.gate.peers() {
            let pair = self.keys.pairs[j].as_ref().expect("checked at start");
            let context = pair_context(session, me, j, "OT extension");
            let (msg, rows) = pair
                .ot_receiver
                .extend(&context, nonce, &choices, &mut rand::rng());
            self.t_rows[j] = rows;
            frames[j] = self.gate.frame(Body::Bytes(msg));
        }
        choices.zeroize();
        Outgoing::PerPeer(frames)
    }

    /// How many values party `j` authenticates.
    fn input_len(&self, j: PartyId) -> usize {
        input_len(&self.spec, j)
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            session: self.gate.session,
            round: self.gate.round,
            party: self.gate.party,
        }
    }

    fn accept(&mut self, from: PartyId, body: BodyView) -> Result<(), Abort> {
        match self.step {
            Step::Extend(seg) => {
                let msg = expect_bytes(from, body)?;
                self.gilboa_send(from, seg, msg)?;
            }
            Step::Gilboa(seg) => {
                let (range, _) = self.candidates(seg);
                let d = expect_values(from, body, range.len() * OTS_PER_CANDIDATE)?;
                self.gilboa_receive(from, seg, &d);
            }
            Step::CombineCommit | Step::ChallengeCommit => match body {
                BodyView::Commit(c) => self.coin.take_commitment(from, c),
                other => return Err(unexpected(from, "commitment", &other)),
            },
            Step::CombineOpen | Step::ChallengeOpen => match body {
                BodyView::Seed(seed) => {
                    if !self.coin.take_opening(self.gate.session, from, seed) {
                        return Err(Abort::CommitmentMismatch {
                            party: from,
                            what: Committed::CoinSeed,
                        });
                    }
                }
                other => return Err(unexpected(from, "coin seed", &other)),
            },
            Step::Refill => {
                let refill = self.refill.as_mut().expect("planned");
                refill.accept(self.keys, &self.gate, from, body)?;
            }
            Step::Authenticate(seg) => {
                // x − u for the owner's next random VOLEs: the MAC share is q + α·(x − u).
                let values = self.values(from, seg);
                let e = expect_values(from, body, values.len())?;
                let alpha = self.keys.key.value();
                let pair = self.keys.pairs[from]
                    .as_mut()
                    .ok_or_else(|| Abort::Preprocessing(format!("pair {from} destroyed")))?;
                let (_, q) = pair.key_stock.take(values.len());
                for ((m, q), e) in self.peer_macs[from][values].iter_mut().zip(&q).zip(&e) {
                    *m = *q + alpha * *e;
                }
                wipe_all(q);
            }
            Step::Open => {
                let theirs = expect_values(from, body, self.opened.len())?;
                for (o, v) in self.opened.iter_mut().zip(theirs) {
                    *o += v;
                }
            }
            Step::Check => {
                let ctx = self.ctx();
                self.check
                    .as_mut()
                    .expect("in check")
                    .accept(ctx, from, body)?;
            }
        }
        Ok(())
    }

    /// Finishes the round; the batch's output after the last one.
    fn complete(&mut self) -> Result<Option<BatchOutput>, Abort> {
        let me = self.gate.party;
        let next = match self.step {
            Step::Extend(seg) => Step::Gilboa(seg),
            Step::Gilboa(seg) if seg + 1 < self.triple_segments() => Step::Extend(seg + 1),
            Step::Gilboa(_) => Step::CombineCommit,
            Step::CombineCommit => Step::CombineOpen,
            Step::CombineOpen => {
                self.combine_and_prepare_inputs();
                if self.refill.is_some() {
                    Step::Refill
                } else {
                    Step::Authenticate(0)
                }
            }
            Step::Refill => {
                let refill = self.refill.as_mut().expect("planned");
                if refill.complete(self.keys, &self.gate) {
                    Step::Authenticate(0)
                } else {
                    Step::Refill
                }
            }
            Step::Authenticate(seg) if seg + 1 < self.value_segments() => {
                Step::Authenticate(seg + 1)
            }
            Step::Authenticate(_) => {
                self.assemble();
                self.coin = CoinToss::new(self.gate.parties);
                Step::ChallengeCommit
            }
            Step::ChallengeCommit => Step::ChallengeOpen,
            Step::ChallengeOpen => {
                self.prepare_open();
                Step::Open
            }
            Step::Open => {
                let log = self.sacrifice_log();
                self.check = Some(Box::new(MacCheck::new(
                    CheckStage::Preprocessing,
                    log,
                    self.gate.parties,
                    &self.keys.key,
                )?));
                Step::Check
            }
            Step::Check => {
                let ctx = self.ctx();
                let check = self.check.as_mut().expect("in check");
                match check.complete(ctx, &self.keys.key)? {
                    Progress::Continue => Step::Check,
                    Progress::Blocked => {
                        self.blocked = true;
                        return Ok(None);
                    }
                    Progress::Passed => {
                        self.done = true;
                        super::refill::settle(self.keys);
                        self.keys.next_round = self.gate.round + 1;
                        return Ok(Some(self.output()));
                    }
                }
            }
        };
        self.gate.advance();
        self.step = next;
        let ctx = self.ctx();
        let me_binding = Binding {
            session: ctx.session,
            round: ctx.round,
            party: me,
        };
        self.out = match next {
            Step::Extend(seg) => self.extend_frames(seg),
            Step::Gilboa(_) => {
                let frames = (0..self.gate.parties)
                    .map(|j| {
                        let d = std::mem::take(&mut self.corrections[j]);
                        if j == me {
                            Bytes::new()
                        } else {
                            encode_values(ctx.session, ctx.round, &d)
                        }
                    })
                    .collect();
                Outgoing::PerPeer(frames)
            }
            Step::CombineCommit | Step::ChallengeCommit => Outgoing::Broadcast(
                self.gate
                    .frame(Body::Commit(self.coin.commitment(me_binding))),
            ),
            Step::CombineOpen | Step::ChallengeOpen => {
                Outgoing::Broadcast(self.gate.frame(Body::Seed(self.coin.opening(me))))
            }
            Step::Refill => {
                let refill = self.refill.as_mut().expect("planned");
                refill.frames(self.keys, &self.gate)?
            }
            Step::Authenticate(seg) => self.authenticate_frames(seg),
            Step::Open => Outgoing::Broadcast(encode_values(ctx.session, ctx.round, &self.opened)),
            Step::Check => {
                let body = self.check.as_mut().expect("in check").outgoing(ctx);
                Outgoing::Broadcast(self.gate.frame(body))
            }
        };
        Ok(None)
    }

    /// As OT-extension sender toward `from`: checks its message for segment `seg`, then makes
    /// the Gilboa corrections d = v0 − v1 + b and subtracts Σ 2^h v0 from this party's c.
    fn gilboa_send(&mut self, from: PartyId, seg: usize, msg: &[u8]) -> Result<(), Abort> {
        let (range, first_ot) = self.candidates(seg);
        let ots = range.len() * OTS_PER_CANDIDATE;
        let (nonce, tweak) = (self.nonce(seg), self.tweak(first_ot));
        let context = pair_context(self.gate.session, from, self.gate.party, "OT extension");
        let pair = self.keys.pairs[from]
            .as_mut()
            .ok_or(Abort::Preprocessing(format!(
                "the OT state with party {from} was destroyed"
            )))?;
        let q = match pair.ot_sender.extend(&context, nonce, ots, msg) {
            Ok(q) => q,
            // A message of the wrong length was never checked: a plain bad frame.
            Err(OtExtError::BadLength { expected, got }) => {
                let error = if got < expected {
                    FrameError::Truncated
                } else {
                    FrameError::TrailingBytes(got - expected)
                };
                return Err(Abort::BadFrame { from, error });
            }
            Err(_) => {
                // A failed check: none of this pair's OT or VOLE state is used again.
                self.keys.pairs[from] = None;
                return Err(Abort::OtCheckFailed { party: from });
            }
        };
        let mut d = vec![Fp::ZERO; ots];
        for (k, g) in range.enumerate() {
            let rows = k * OTS_PER_CANDIDATE..(k + 1) * OTS_PER_CANDIDATE;
            let (v0, v1) = pair
                .ot_sender
                .outputs_all(tweak + rows.start as u64, &q[rows.clone()]);
            let b = self.b[g / TAU];
            let mut acc = Fp::ZERO;
            for h in (0..OTS_PER_CANDIDATE).rev() {
                d[rows.start + h] = v0[h] - v1[h] + b;
                acc = acc + acc + v0[h];
            }
            self.c[g] -= acc;
            for v in [v0, v1] {
                wipe_all(v);
            }
        }
        let mut q = q;
        q.zeroize();
        self.corrections[from] = d;
        Ok(())
    }

    /// As OT-extension receiver from `from`: adds Σ 2^h (w + a_h·d) to this party's c.
    fn gilboa_receive(&mut self, from: PartyId, seg: usize, d: &[Fp]) {
        let (range, first_ot) = self.candidates(seg);
        let rows = std::mem::take(&mut self.t_rows[from]);
        let tweak = self.tweak(first_ot);
        for (k, g) in range.enumerate() {
            let at = k * OTS_PER_CANDIDATE;
            let w = SoftReceiver::outputs_all(tweak + at as u64, &rows[at..at + OTS_PER_CANDIDATE]);
            let mut a = self.a[g].to_bytes();
            let mut acc = Fp::ZERO;
            for h in (0..OTS_PER_CANDIDATE).rev() {
                let bit = (a[h / 8] >> (h % 8)) & 1 == 1;
                acc = acc + acc + Fp::select(bit, w[h] + d[at + h], w[h]);
            }
            self.c[g] += acc;
            a.zeroize();
            wipe_all(w);
        }
        let mut rows = rows;
        rows.zeroize();
    }

    /// VOLE messages authenticating this party's values of segment `seg` under each peer's key;
    /// adds the MAC-share parts to this party's own MACs.
    fn authenticate_frames(&mut self, seg: usize) -> Outgoing {
        let me = self.gate.party;
        let values = self.values(me, seg);
        let alpha = self.keys.key.value();
        for k in values.clone() {
            self.own_macs[k] = alpha * self.inputs[k];
        }
        let mut frames = vec![Bytes::new(); self.gate.parties];
        for j in self.gate.peers() {
            let pair = self.keys.pairs[j].as_mut().expect("checked at start");
            let (u, w) = pair.owner_stock.take(values.len());
            let e: Vec<Fp> = self.inputs[values.clone()]
                .iter()
                .zip(&u)
                .map(|(x, u)| *x - *u)
                .collect();
            frames[j] = self.gate.frame(Body::Values(e));
            for (m, w) in self.own_macs[values.clone()].iter_mut().zip(&w) {
                *m += *w;
            }
            wipe_all(u);
            wipe_all(w);
        }
        Outgoing::PerPeer(frames)
    }

    /// Combines the τ candidates with the tossed r, r̂ and lays out this party's VOLE inputs:
    /// a, b, c, â, ĉ (N each), random shares, own masks, x₀.
    fn combine_and_prepare_inputs(&mut self) {
        let n = self.spec.triples;
        let mut prg = Prg::new(&self.coin.result(self.gate.session), 1);
        let r = prg.field_elements(2 * TAU * n);
        let mut rng = rand::rng();
        let mut a = Vec::with_capacity(n);
        let mut c = Vec::with_capacity(n);
        let mut ah = Vec::with_capacity(n);
        let mut ch = Vec::with_capacity(n);
        for t in 0..n {
            let (mut sa, mut sc, mut sah, mut sch) = (Fp::ZERO, Fp::ZERO, Fp::ZERO, Fp::ZERO);
            for k in 0..TAU {
                let g = t * TAU + k;
                let (rk, rhk) = coefficients(&r, g);
                sa += rk * self.a[g];
                sc += rk * self.c[g];
                sah += rhk * self.a[g];
                sch += rhk * self.c[g];
            }
            a.push(sa);
            c.push(sc);
            ah.push(sah);
            ch.push(sch);
        }
        let me = self.gate.party;
        let mut inputs = Vec::with_capacity(self.input_len(me));
        inputs.extend(a);
        inputs.extend_from_slice(&self.b);
        inputs.extend(c);
        inputs.extend(ah);
        inputs.extend(ch);
        inputs
            .extend((0..self.spec.randoms + self.spec.masks[me] + 1).map(|_| Fp::random(&mut rng)));
        self.inputs = inputs;
        self.own_macs = vec![Fp::ZERO; self.inputs.len()];
        for j in self.gate.peers() {
            self.peer_macs[j] = vec![Fp::ZERO; self.input_len(j)];
        }
        self.a
            .iter_mut()
            .chain(self.c.iter_mut())
            .for_each(Fp::wipe);
    }

    /// Authenticated shares: the summed values (a, b, c, â, ĉ, randoms), then every owner's masks.
    fn assemble(&mut self) {
        let me = self.gate.party;
        let summed = 5 * self.spec.triples + self.spec.randoms;
        let mac_of = |k: usize, peer_macs: &[Vec<Fp>], own: &[Fp]| -> Fp {
            own[k]
                + peer_macs
                    .iter()
                    .filter(|m| !m.is_empty())
                    .map(|m| m[k])
                    .sum::<Fp>()
        };
        let mut items: Vec<Share> = (0..summed)
            .map(|k| Share {
                value: self.inputs[k],
                mac: mac_of(k, &self.peer_macs, &self.own_macs),
            })
            .collect();
        for (owner, &count) in self.spec.masks.iter().enumerate() {
            for k in summed..summed + count {
                items.push(if owner == me {
                    Share {
                        value: self.inputs[k],
                        mac: self.own_macs[k],
                    }
                } else {
                    Share {
                        value: Fp::ZERO,
                        mac: self.peer_macs[owner][k],
                    }
                });
            }
        }
        // x₀ is the last input of every party.
        let own_last = self.inputs.len() - 1;
        let mut x0 = Share {
            value: self.inputs[own_last],
            mac: self.own_macs[own_last],
        };
        for m in self.peer_macs.iter().filter(|m| !m.is_empty()) {
            x0.mac += m[m.len() - 1];
        }
        self.items = items;
        self.x0 = x0;
    }

    /// Shares of ρ_t = s_t·a_t − â_t and of y = Σ χ_k·v_k + x₀, to open.
    fn prepare_open(&mut self) {
        let n = self.spec.triples;
        let mut prg = Prg::new(&self.coin.result(self.gate.session), 2);
        self.s = prg.field_elements(n);
        let chi = prg.field_elements(self.items.len());
        let mut shares = Vec::with_capacity(n + 1);
        for t in 0..n {
            shares.push(self.items[t].scale(self.s[t]) - self.items[3 * n + t]);
        }
        let y = self
            .items
            .iter()
            .zip(&chi)
            .fold(self.x0, |acc, (v, c)| acc + v.scale(*c));
        shares.push(y);
        self.opened = shares.iter().map(|s| s.value).collect();
        self.open_shares = shares;
    }

    /// What the MAC check covers: the opened ρ and y, and the sacrifice s·c − ĉ − ρ·b, which must
    /// be zero (its value is never opened; only its MAC is checked against 0).
    fn sacrifice_log(&mut self) -> OpenedLog {
        let n = self.spec.triples;
        let mut log = OpenedLog::with_capacity(2 * n + 1);
        for (v, s) in self.opened.iter().zip(&self.open_shares) {
            log.push(*v, s.mac);
        }
        for t in 0..n {
            let rho = self.opened[t];
            let zero = self.items[2 * n + t].scale(self.s[t])
                - self.items[4 * n + t]
                - self.items[n + t].scale(rho);
            log.push(Fp::ZERO, zero.mac);
        }
        log
    }

    fn output(&mut self) -> BatchOutput {
        let n = self.spec.triples;
        let me = self.gate.party;
        let triples = (0..n)
            .map(|t| Triple {
                a: self.items[t],
                b: self.items[n + t],
                c: self.items[2 * n + t],
            })
            .collect();
        let summed = 5 * n + self.spec.randoms;
        let randoms = self.items[5 * n..summed].to_vec();
        let mut masks = Vec::with_capacity(self.spec.masks.len());
        let mut at = summed;
        for (owner, &count) in self.spec.masks.iter().enumerate() {
            let clear_at = 5 * n + self.spec.randoms;
            masks.push(
                (0..count)
                    .map(|k| InputMask {
                        share: self.items[at + k],
                        clear: (owner == me).then(|| self.inputs[clear_at + k]),
                    })
                    .collect(),
            );
            at += count;
        }
        self.wipe();
        BatchOutput {
            triples,
            randoms,
            masks,
        }
    }

    fn wipe(&mut self) {
        for v in [
            &mut self.a,
            &mut self.b,
            &mut self.c,
            &mut self.inputs,
            &mut self.own_macs,
        ] {
            v.iter_mut().for_each(Fp::wipe);
            *v = Vec::new();
        }
        self.items.iter_mut().for_each(Share::wipe);
        self.items = Vec::new();
        self.open_shares.iter_mut().for_each(Share::wipe);
        self.open_shares = Vec::new();
        for v in self.peer_macs.iter_mut().chain(&mut self.corrections) {
            v.iter_mut().for_each(Fp::wipe);
        }
        self.peer_macs = Vec::new();
        self.corrections = Vec::new();
        self.t_rows.iter_mut().for_each(|r| r.zeroize());
        self.t_rows = Vec::new();
        self.x0.wipe();
        if let Some(check) = &mut self.check {
            check.wipe();
        }
    }

    fn fail(&mut self, e: Abort) -> Abort {
        self.done = true;
        self.wipe();
        // An unresolved check poisons the key when dropped: its outcome may say something
        // about α.
        self.check = None;
        e
    }
}

impl Drop for Batch<'_> {
    /// A batch dropped mid-run wipes what it holds; an unresolved check poisons the key.
    fn drop(&mut self) {
        if !self.done {
            self.wipe();
        }
    }
}

/// The tossed coefficients of candidate `g` in a and in â: each element of `r` serves once, so
/// the sacrificed â is independent of a (the same coefficient for both would open a multiple of a).
fn coefficients(r: &[Fp], g: usize) -> (Fp, Fp) {
    (r[2 * g], r[2 * g + 1])
}

/// The SoftSpokenOT nonce of triple segment `seg` of batch `batch`: unique per batch and segment,
/// with bit 19 clear (the silent VOLE's nonces set it).
fn segment_nonce(batch: u64, seg: usize) -> u64 {
    (batch << 20) | seg as u64
}

/// The hash tweak of OT `ot` of batch `batch`: unique per batch and OT.
fn ot_tweak(batch: u64, ot: usize) -> u64 {
    (batch << 32) | ot as u64
}

/// How many values party `j` authenticates in a batch of `spec`: a, b, c, â, ĉ per triple, the
/// randoms, its masks and x₀.
/// The candidates of triple segment `seg` of a batch of `triples`, and the index of the
/// segment's first OT in the batch (its OTs hash under their own tweaks: `ot_tweak`).
fn segment_candidates(triples: usize, seg: usize) -> (std::ops::Range<usize>, usize) {
    let first = seg * TRIPLES_PER_SEGMENT;
    let last = ((seg + 1) * TRIPLES_PER_SEGMENT).min(triples);
    let range = first * TAU..last.max(first) * TAU;
    let first_ot = range.start * OTS_PER_CANDIDATE;
    (range, first_ot)
}

pub(crate) fn input_len(spec: &BatchSpec, j: PartyId) -> usize {
    5 * spec.triples + spec.randoms + spec.masks[j] + 1
}

/// Wipes a vector of secrets before it is freed.
fn wipe_all(mut v: Vec<Fp>) {
    v.iter_mut().for_each(Fp::wipe);
}

pub(super) fn unexpected(from: PartyId, expected: &'static str, got: &BodyView) -> Abort {
    Abort::UnexpectedBody {
        from,
        expected,
        got: got.kind(),
    }
}

pub(super) fn expect_bytes<'a>(from: PartyId, body: BodyView<'a>) -> Result<&'a [u8], Abort> {
    match body {
        BodyView::Bytes(b) => Ok(b),
        other => Err(unexpected(from, "bytes", &other)),
    }
}

fn expect_values(from: PartyId, body: BodyView, len: usize) -> Result<Vec<Fp>, Abort> {
    match body {
        BodyView::Values(v) if v.len() == len => v
            .iter()
            .collect::<Result<_, _>>()
            .map_err(|error| Abort::BadFrame { from, error }),
        BodyView::Values(v) => Err(Abort::WrongLength {
            from,
            expected: len,
            got: v.len(),
        }),
        other => Err(unexpected(from, "values", &other)),
    }
}

impl Protocol for Batch<'_> {
    type Output = BatchOutput;

    fn outgoing(&mut self) -> Result<Outgoing, Abort> {
        if self.done || self.blocked {
            return Err(Abort::Ended("finished, aborted or waiting"));
        }
        Ok(match &self.out {
            Outgoing::Broadcast(f) => Outgoing::Broadcast(f.clone()),
            Outgoing::PerPeer(f) => Outgoing::PerPeer(f.clone()),
        })
    }

    fn incoming(&mut self, from: PartyId, bytes: &[u8]) -> Result<Option<BatchOutput>, Abort> {
        if self.done || self.blocked {
            return Err(Abort::Ended("finished or aborted"));
        }
        let result = self
            .gate
            .admit(from, bytes)
            .and_then(|body| self.accept(from, body))
            .and_then(|()| {
                if self.gate.accepted(from) {
                    self.complete()
                } else {
                    Ok(None)
                }
            });
        result.map_err(|e| self.fail(e))
    }

    fn abort(&mut self, reason: Abort) -> Abort {
        self.fail(reason)
    }

    fn blocked_on(&self) -> Option<MacKeyShare> {
        self.blocked.then(|| self.keys.key.clone())
    }

    fn resume(&mut self) -> Result<Option<BatchOutput>, Abort> {
        if !self.blocked || self.done {
            return Ok(None);
        }
        self.blocked = false;
        self.complete().map_err(|e| self.fail(e))
    }
}

/// Two parties in memory, small enough that mutation testing can run these per mutant: honest
/// material opens right under α, and a changed Gilboa correction or opened value fails the
/// batch's MAC check. (The protocol-level tests, for 2–4 parties and every cheat, are in
/// `tests/it/mascot*.rs`.)
#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::run;
    use crate::mascot::base_vole;
    use crate::mascot::setup::Setup;
    use crate::mascot::tests::two_parties;
    use crate::transport::{MemoryTransport, Transport, TransportError};
    use crate::wire::{Frame, SessionId};

    /// The batch's first round, after the setup's three rounds and its base VOLE.
    const EXTEND: u32 = 3 + base_vole::ROUNDS as u32;
    const GILBOA: u32 = EXTEND + 1;
    /// Extend, Gilboa, coin toss (2), one silent extension (4), Authenticate, coin toss (2).
    const OPEN: u32 = EXTEND + 11;

    /// A transport whose outgoing frames `tamper` may change.
    struct Tampering {
        inner: MemoryTransport,
        tamper: fn(&mut Frame),
    }

    impl Transport for Tampering {
        fn party(&self) -> PartyId {
            self.inner.party()
        }
        fn parties(&self) -> usize {
            self.inner.parties()
        }
        async fn send(&mut self, to: PartyId, frame: Bytes) -> Result<(), TransportError> {
            let mut f = Frame::decode(&frame, usize::MAX).expect("a frame this party built");
            (self.tamper)(&mut f);
            self.inner.send(to, f.encode()).await
        }
        async fn recv(&mut self, from: PartyId) -> Result<Bytes, TransportError> {
            self.inner.recv(from).await
        }
    }

    fn spec() -> BatchSpec {
        BatchSpec {
            triples: 6,
            randoms: 2,
            masks: vec![1, 2],
        }
    }

    /// Setup and one batch of [`spec`] for two parties, party 1's frames through `tamper`: the
    /// global α and each party's result.
    fn two_party_batch(tamper: fn(&mut Frame)) -> (Fp, Vec<Result<BatchOutput, Abort>>) {
        let alphas = [Fp::random(&mut rand::rng()), Fp::random(&mut rand::rng())];
        let honest: fn(&mut Frame) = |_| {};
        let results = two_parties(|party, inner| {
            let key = MacKeyShare::new(alphas[party]);
            let tamper = if party == 1 { tamper } else { honest };
            async move {
                let mut t = Tampering { inner, tamper };
                let session = SessionId([5; 16]);
                let mut keys = run(Setup::new(session, party, 2, key), &mut t).await?;
                run(Batch::new(&mut keys, spec()).expect("batch"), &mut t).await
            }
        });
        (alphas[0] + alphas[1], results)
    }

    /// A transport that notes the round of every frame it sends.
    struct Recording {
        inner: MemoryTransport,
        rounds: Vec<u32>,
    }

    impl Transport for Recording {
        fn party(&self) -> PartyId {
            self.inner.party()
        }
        fn parties(&self) -> usize {
            self.inner.parties()
        }
        async fn send(&mut self, to: PartyId, frame: Bytes) -> Result<(), TransportError> {
            let f = Frame::decode(&frame, usize::MAX).expect("a frame this party built");
            self.rounds.push(f.round);
            self.inner.send(to, frame).await
        }
        async fn recv(&mut self, from: PartyId) -> Result<Bytes, TransportError> {
            self.inner.recv(from).await
        }
    }

    /// What each side has left of every random-VOLE stock is what the public count says: a count
    /// above the stock would run a later batch out of VOLEs, one below would waste them.
    fn stocks_match_their_counts(keys: &MascotKeys) {
        for (j, pair) in keys.pairs.iter().enumerate() {
            let Some(pair) = pair else { continue };
            assert_eq!(
                pair.owner_stock.len(),
                keys.vole_left[keys.party],
                "own stock with {j}"
            );
            assert_eq!(pair.key_stock.len(), keys.vole_left[j], "{j}'s stock");
        }
    }

    /// A frame of one batch can never pass a later batch's round gate (and the stocks stay in
    /// step with their counts): the next batch starts
    /// after the last round of the one before (both sides agreeing on a reused round number would
    /// keep every output correct while letting a replayed frame in).
    #[test]
    fn batches_never_reuse_a_round_number() {
        let rounds = two_parties(|party, inner| async move {
            let mut t = Recording {
                inner,
                rounds: Vec::new(),
            };
            let key = MacKeyShare::new(Fp::random(&mut rand::rng()));
            let mut keys = run(Setup::new(SessionId([6; 16]), party, 2, key), &mut t)
                .await
                .unwrap();
            let mut per_batch = Vec::new();
            for _ in 0..2 {
                t.rounds.clear();
                run(Batch::new(&mut keys, spec()).unwrap(), &mut t)
                    .await
                    .expect("honest batch");
                per_batch.push(std::mem::take(&mut t.rounds));
                stocks_match_their_counts(&keys);
            }
            per_batch
        });
        for (party, per_batch) in rounds.iter().enumerate() {
            let last_of_first = per_batch[0].iter().max().unwrap();
            let first_of_second = per_batch[1].iter().min().unwrap();
            assert!(
                first_of_second > last_of_first,
                "party {party}: batch 2 starts at round {first_of_second}, batch 1 ended at {last_of_first}"
            );
        }
    }

    fn open(alpha: Fp, shares: [Share; 2]) -> Fp {
        let value = shares[0].value + shares[1].value;
        assert_eq!(shares[0].mac + shares[1].mac, alpha * value, "MAC under α");
        value
    }

    /// Nonces and tweaks never repeat across batches and segments (a repeat would reuse PRG
    /// streams and hashes while every output stayed correct), and nonces stay clear of bit 19.
    #[test]
    fn nonces_and_tweaks_are_unique() {
        let segments = MAX_PER_BATCH.div_ceil(TRIPLES_PER_SEGMENT);
        let mut nonces = std::collections::HashSet::new();
        for batch in [0u64, 1, 2, 77] {
            for seg in [0, 1, segments - 1] {
                let nonce = segment_nonce(batch, seg);
                assert!(nonces.insert(nonce), "batch {batch} segment {seg}");
                assert_eq!(nonce & (1 << 19), 0);
            }
        }
        let most_ots = MAX_PER_BATCH * TAU * OTS_PER_CANDIDATE;
        let mut tweaks = std::collections::HashSet::new();
        for batch in [0u64, 1, 2, 77] {
            for ot in [0, 1, most_ots - 1] {
                assert!(tweaks.insert(ot_tweak(batch, ot)), "batch {batch} OT {ot}");
            }
        }
    }

    /// More values than one Authenticate segment holds (5 per triple, plus the masks): the last
    /// masks, in the second segment, still open under α (a wrong segment count would leave the
    /// tail unauthenticated).
    #[test]
    fn values_beyond_one_authenticate_segment_are_all_authenticated() {
        let (triples, masks) = (13_108, MAX_PER_BATCH);
        assert!(
            input_len(
                &BatchSpec {
                    triples,
                    randoms: 0,
                    masks: vec![masks, 0]
                },
                0
            ) > VALUES_PER_SEGMENT
        );
        let alphas = [Fp::random(&mut rand::rng()), Fp::random(&mut rand::rng())];
        let outs = two_parties(|party, mut t| {
            let key = MacKeyShare::new(alphas[party]);
            async move {
                let mut keys = run(Setup::new(SessionId([7; 16]), party, 2, key), &mut t)
                    .await
                    .unwrap();
                let spec = BatchSpec {
                    triples,
                    randoms: 0,
                    masks: vec![masks, 0],
                };
                run(Batch::new(&mut keys, spec).unwrap(), &mut t)
                    .await
                    .expect("honest batch")
            }
        });
        let alpha = alphas[0] + alphas[1];
        assert_eq!(outs[0].masks[0].len(), masks);
        for k in [0, masks / 2, masks - 2, masks - 1] {
            open(
                alpha,
                [outs[0].masks[0][k].share, outs[1].masks[0][k].share],
            );
        }
    }

    /// The segments of the largest batch cover its candidates once, in order, and their OT
    /// indices follow on without a gap or an overlap (an overlap would hash two segments' OTs
    /// under the same tweaks while every output stayed correct).
    #[test]
    fn segments_cover_every_candidate_and_ot_once() {
        let segments = MAX_PER_BATCH.div_ceil(TRIPLES_PER_SEGMENT);
        assert!(segments > 2);
        let (mut next, mut next_ot) = (0, 0);
        for seg in 0..segments {
            let (range, first_ot) = segment_candidates(MAX_PER_BATCH, seg);
            assert_eq!((range.start, first_ot), (next, next_ot), "segment {seg}");
            assert!(!range.is_empty());
            next_ot = first_ot + range.len() * OTS_PER_CANDIDATE;
            next = range.end;
        }
        assert_eq!(next, MAX_PER_BATCH * TAU);
    }

    /// Each tossed coefficient combines one candidate into one of a and â, never two.
    #[test]
    fn every_combining_coefficient_is_used_once() {
        let r: Vec<Fp> = (0..2 * TAU * 5).map(|i| Fp::from_u64(i as u64)).collect();
        let mut seen = std::collections::HashSet::new();
        for g in 0..TAU * 5 {
            let (a, a_hat) = coefficients(&r, g);
            assert!(
                seen.insert(a.to_bytes()) && seen.insert(a_hat.to_bytes()),
                "{g}"
            );
        }
        assert_eq!(seen.len(), r.len());
    }

    #[test]
    fn an_honest_batch_gives_material_that_opens_under_alpha() {
        let (alpha, results) = two_party_batch(|_| {});
        let outs: Vec<BatchOutput> = results.into_iter().map(|r| r.expect("honest")).collect();
        for o in &outs {
            assert_eq!(o.triples.len(), spec().triples);
            assert_eq!(o.randoms.len(), spec().randoms);
            let masks: Vec<usize> = o.masks.iter().map(Vec::len).collect();
            assert_eq!(masks, spec().masks);
        }
        let both = |f: &dyn Fn(&BatchOutput) -> Share| [f(&outs[0]), f(&outs[1])];
        for t in 0..spec().triples {
            let a = open(alpha, both(&|o| o.triples[t].a));
            let b = open(alpha, both(&|o| o.triples[t].b));
            let c = open(alpha, both(&|o| o.triples[t].c));
            assert_eq!(c, a * b, "triple {t}");
            assert!(!a.is_zero() && !b.is_zero());
        }
        for r in 0..spec().randoms {
            open(alpha, both(&|o| o.randoms[r]));
        }
        for (owner, &count) in spec().masks.iter().enumerate() {
            for k in 0..count {
                let value = open(alpha, both(&|o| o.masks[owner][k].share));
                for (p, o) in outs.iter().enumerate() {
                    let want = (p == owner).then_some(value);
                    assert_eq!(o.masks[owner][k].clear, want, "mask {k} of {owner} at {p}");
                }
            }
        }
    }

    /// A values frame one element short or long is refused as such, not read in part.
    #[test]
    fn a_values_frame_of_the_wrong_length_is_a_typed_error() {
        let short: fn(&mut Frame) = |f| {
            if let (GILBOA, Body::Values(v)) = (f.round, &mut f.body) {
                v.pop();
            }
        };
        let long: fn(&mut Frame) = |f| {
            if let (GILBOA, Body::Values(v)) = (f.round, &mut f.body) {
                v.push(Fp::ONE);
            }
        };
        for tamper in [short, long] {
            let (_, results) = two_party_batch(tamper);
            assert!(
                matches!(
                    results[0].as_ref().err(),
                    Some(Abort::WrongLength { from: 1, .. })
                ),
                "{:?}",
                results[0].as_ref().err()
            );
        }
    }

    /// Every correction changed: one alone matters only if the receiver's choice bit there is 1
    /// (Gilboa's selective failure, which combining hides), so half the time nothing would fail.
    #[test]
    fn changed_gilboa_corrections_fail_the_mac_check() {
        let (_, results) = two_party_batch(|f| {
            if let (GILBOA, Body::Values(v)) = (f.round, &mut f.body) {
                v.iter_mut().for_each(|d| *d += Fp::ONE);
            }
        });
        assert_eq!(
            results[0].as_ref().err(),
            Some(&Abort::MacCheckFailed(CheckStage::Preprocessing))
        );
    }

    #[test]
    fn a_changed_opened_value_fails_the_mac_check() {
        for at in [0, spec().triples] {
            let tamper: fn(&mut Frame) = if at == 0 {
                |f| {
                    if let (OPEN, Body::Values(v)) = (f.round, &mut f.body) {
                        v[0] += Fp::ONE;
                    }
                }
            } else {
                |f| {
                    if let (OPEN, Body::Values(v)) = (f.round, &mut f.body) {
                        let y = v.len() - 1;
                        v[y] += Fp::ONE;
                    }
                }
            };
            let (_, results) = two_party_batch(tamper);
            assert_eq!(
                results[0].as_ref().err(),
                Some(&Abort::MacCheckFailed(CheckStage::Preprocessing)),
                "opened value {at}"
            );
        }
    }
}
