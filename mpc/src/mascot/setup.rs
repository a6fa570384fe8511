//! Base OTs, punctured seed trees and base VOLEs between every ordered pair, once per committee.
//!
//! Toward each peer j this party is the base-OT *sender* of 4 × (32 + 64) OTs: from their key
//! pairs it grows full seed trees ([`crate::ot::ggm`]) for its SoftSpokenOT receiver role (its
//! Gilboa choices) and its VOLE sender role (MACs on its values under j's key), and sends j the
//! masked level sums. It is the *receiver* of j's OTs with the choices that puncture j's trees at
//! the digits of Δ_j (a fresh OT-extension Δ for this pair) and then of α_i, and rebuilds those
//! punctured trees from j's level sums.
//!
//! Then every pair authenticates the first silent extension's base values with the digit VOLE
//! and checks them ([`super::base_vole`]); the digit VOLE's trees are dropped after.
//!
//! Rounds: 0 sender point; 1 receiver points; 2 level sums; 3 on: the base VOLE.

use bytes::Bytes;
use rand::RngExt;
use zeroize::Zeroize;

use super::base_vole::{BaseVole, PairVole};
use super::silent::{BASE, Stock};
use super::vole::{self, VoleReceiver, VoleSender};
use super::{MAX_PREP_FRAME, MascotKeys, PairOt, pair_context};
use crate::driver::{Outgoing, Protocol};
use crate::ot::base::{BaseOtSender, PointBytes, receive};
use crate::ot::ggm::{self, DEPTH, FullSeeds, PuncturedSeeds};
use crate::ot::prg::Block;
use crate::ot::softspoken::{self, SoftReceiver, SoftSender};
use crate::rounds::RoundGate;
use crate::session::Abort;
use crate::share::{MacKeyShare, PartyId};
use crate::wire::{Body, BodyView, SessionId};

/// Trees per pair and direction: SoftSpokenOT's, then the VOLE's.
const TREES: usize = softspoken::DIGITS + vole::DIGITS;
const BASE_OTS: usize = DEPTH * TREES;

/// One party's side of the setup.
pub struct Setup {
    gate: RoundGate,
    key: MacKeyShare,
    senders: Vec<Option<BaseOtSender>>,
    deltas: Vec<u128>,
    /// Keys this party chose in each peer's base OTs.
    chosen: Vec<Vec<Block>>,
    /// This party's full trees toward each peer.
    full: Vec<Option<(FullSeeds, FullSeeds)>>,
    /// Punctured trees rebuilt from each peer's level sums.
    punctured: Vec<Option<(PuncturedSeeds, PuncturedSeeds)>>,
    /// What each peer gets next round.
    replies: Vec<Vec<u8>>,
    /// The OT-extension roles with each peer, once the trees are in.
    ots: Vec<Option<(SoftReceiver, SoftSender)>>,
    /// The base VOLE, from round 3 on.
    base: Option<BaseVole>,
    /// Random VOLEs the base VOLE makes per ordered pair: [`BASE`] for keys that extend, fewer
    /// for keys that never do.
    values: usize,
    out: Vec<Bytes>,
    done: bool,
}

impl Setup {
    /// Starts the setup of `party` among `parties` with MAC key share `key`, for any number of
    /// batches: its keys refill their random VOLE by silent extension from a base of [`BASE`].
    pub fn new(session: SessionId, party: PartyId, parties: usize, key: MacKeyShare) -> Self {
        Self::for_values(session, party, parties, key, BASE)
    }

    /// A setup for a known workload of `values` authenticated values per party. Below [`BASE`],
    /// the digit VOLE makes just those random VOLEs per ordered pair and the keys never extend,
    /// so a small task moves a fraction of the base's 19.5 MB per pair; batches that need more
    /// in all fail to start ([`super::batch::BatchError::VoleExhausted`]). From [`BASE`] on, the
    /// setup of [`Setup::new`], whose keys extend.
    pub fn for_values(
        session: SessionId,
        party: PartyId,
        parties: usize,
        key: MacKeyShare,
        values: usize,
    ) -> Self {
        let mut rng = rand::rng();
        let gate = RoundGate::new(session, party, parties, MAX_PREP_FRAME);
        let mut senders: Vec<Option<BaseOtSender>> = (0..parties).map(|_| None).collect();
        let mut out = vec![Bytes::new(); parties];
        for j in gate.peers() {
            let (sender, point) = BaseOtSender::new(&mut rng);
            senders[j] = Some(sender);
            out[j] = gate.frame(Body::Bytes(point.to_vec()));
        }
        Setup {
            deltas: (0..parties).map(|_| rng.random()).collect(),
            chosen: vec![Vec::new(); parties],
            full: (0..parties).map(|_| None).collect(),
            punctured: (0..parties).map(|_| None).collect(),
            replies: vec![Vec::new(); parties],
            ots: (0..parties).map(|_| None).collect(),
            base: None,
            values: values.min(BASE),
            gate,
            key,
            senders,
            out,
            done: false,
        }
    }

    /// The digits this party hides from peer `j`: those of Δ_j, then those of α_i.
    fn hidden_digits(&self, j: PartyId) -> Vec<u8> {
        let mut digits = softspoken::delta_digits(self.deltas[j]);
        digits.extend(vole::alpha_digits(&self.key.value()));
        digits
    }

    /// Takes party `from`'s frame; returns what to send it next round.
    fn accept(&mut self, from: PartyId, body: BodyView) -> Result<Vec<u8>, Abort> {
        let bytes = match body {
            BodyView::Bytes(b) => b,
            other => {
                return Err(Abort::UnexpectedBody {
                    from,
                    expected: "bytes",
                    got: other.kind(),
                });
            }
        };
        let me = self.gate.party;
        let session = self.gate.session;
        let expect_len = |expected: usize| {
            if bytes.len() == expected {
                Ok(())
            } else {
                Err(Abort::WrongLength {
                    from,
                    expected,
                    got: bytes.len(),
                })
            }
        };
        let reply = match self.gate.round {
            0 => {
                expect_len(32)?;
                let point: PointBytes = bytes.try_into().expect("length checked");
                let mut digits = self.hidden_digits(from);
                let mut choices: Vec<bool> = digits.iter().flat_map(|&d| ggm::choices(d)).collect();
                digits.zeroize();
                let context = pair_context(session, from, me, "base OT");
                let (points, keys) = receive(&context, &point, &choices, &mut rand::rng())
                    .map_err(|error| Abort::BaseOt { party: from, error })?;
                choices.zeroize();
                self.chosen[from] = keys;
                points.concat()
            }
            1 => {
                expect_len(32 * BASE_OTS)?;
                let points: Vec<PointBytes> = bytes
                    .chunks_exact(32)
                    .map(|c| c.try_into().expect("32 bytes"))
                    .collect();
                let sender = self.senders[from].take().expect("one sender per peer");
                let context = pair_context(session, me, from, "base OT");
                let mut pairs = sender
                    .finish(&context, &points)
                    .map_err(|error| Abort::BaseOt { party: from, error })?;
                let mut rng = rand::rng();
                let mut roots: Vec<Block> = (0..TREES).map(|_| rng.random()).collect();
                let split = DEPTH * softspoken::DIGITS;
                let (ot_trees, mut msg) =
                    FullSeeds::deal(&roots[..softspoken::DIGITS], &pairs[..split]);
                let (vole_trees, vole_msg) =
                    FullSeeds::deal(&roots[softspoken::DIGITS..], &pairs[split..]);
                msg.extend(vole_msg);
                roots.zeroize();
                pairs.iter_mut().for_each(|(a, b)| {
                    a.zeroize();
                    b.zeroize();
                });
                self.full[from] = Some((ot_trees, vole_trees));
                msg
            }
            _ => {
                expect_len(ggm::CORRECTION_BYTES * TREES)?;
                let mut digits = self.hidden_digits(from);
                let split = softspoken::DIGITS;
                let keys = std::mem::take(&mut self.chosen[from]);
                let rebuild = |range: std::ops::Range<usize>| {
                    PuncturedSeeds::rebuild(
                        &digits[range.clone()],
                        &keys[DEPTH * range.start..DEPTH * range.end],
                        &bytes[ggm::CORRECTION_BYTES * range.start
                            ..ggm::CORRECTION_BYTES * range.end],
                    )
                    .map_err(|e| Abort::Preprocessing(e.to_string()))
                };
                let trees = rebuild(0..split).and_then(|ot| Ok((ot, rebuild(split..TREES)?)));
                let mut keys = keys;
                keys.iter_mut().for_each(|k| k.zeroize());
                digits.zeroize();
                let (ot, vole) = trees?;
                self.punctured[from] = Some((ot, vole));
                Vec::new()
            }
        };
        Ok(reply)
    }

    /// After the level sums: the OT-extension roles, and the digit VOLE for the base.
    fn start_base_vole(&mut self) -> BaseVole {
        let me = self.gate.party;
        let mut voles: Vec<Option<PairVole>> = (0..self.gate.parties).map(|_| None).collect();
        for j in self.gate.peers() {
            let (ot_full, vole_full) = self.full[j].take().expect("dealt in round 1");
            let (ot_punctured, vole_punctured) =
                self.punctured[j].take().expect("rebuilt in round 2");
            self.ots[j] = Some((
                SoftReceiver::new(ot_full),
                SoftSender::new(self.deltas[j], ot_punctured),
            ));
            voles[j] = Some(PairVole {
                sender: VoleSender::new(vole_full),
                receiver: VoleReceiver::new(vole_punctured),
            });
        }
        debug_assert!(voles[me].is_none());
        BaseVole::new(&self.gate, voles, self.values)
    }

    fn finish(&mut self, stocks: Vec<(Stock, Stock)>) -> MascotKeys {
        let pairs = stocks
            .into_iter()
            .zip(&mut self.ots)
            .map(|((owner_stock, key_stock), ots)| {
                let (ot_receiver, ot_sender) = ots.take()?;
                Some(PairOt {
                    ot_receiver,
                    ot_sender,
                    owner_stock,
                    key_stock,
                })
            })
            .collect();
        MascotKeys {
            session: self.gate.session,
            party: self.gate.party,
            parties: self.gate.parties,
            key: self.key.clone(),
            pairs,
            next_batch: 0,
            next_round: self.gate.round + 1,
            vole_left: vec![self.values; self.gate.parties],
            vole_in_step: true,
            extends: self.values == BASE,
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.deltas.zeroize();
        self.chosen.iter_mut().flatten().for_each(|k| k.zeroize());
    }
}

impl Protocol for Setup {
    type Output = MascotKeys;

    fn outgoing(&mut self) -> Result<Outgoing, Abort> {
        if self.done {
            return Err(Abort::Ended("finished"));
        }
        Ok(Outgoing::PerPeer(self.out.clone()))
    }

    fn incoming(&mut self, from: PartyId, bytes: &[u8]) -> Result<Option<MascotKeys>, Abort> {
        if self.done {
            return Err(Abort::Ended("finished"));
        }
        let body = self.gate.admit(from, bytes)?;
        let accepted = match self.base.as_mut() {
            Some(base) => base.accept(from, body, &self.key.value()),
            None => self
                .accept(from, body)
                .map(|reply| self.replies[from] = reply),
        };
        if let Err(e) = accepted {
            self.done = true;
            return Err(e);
        }
        if !self.gate.accepted(from) {
            return Ok(None);
        }
        if let Some(base) = self.base.as_mut()
            && let Some(stocks) = base.complete()
        {
            self.done = true;
            return Ok(Some(self.finish(stocks)));
        }
        if self.gate.round == 2 {
            self.base = Some(self.start_base_vole());
        }
        self.gate.advance();
        match self.base.as_mut() {
            Some(base) => self.out = base.frames(&self.gate),
            None => {
                for j in self.gate.peers() {
                    let reply = std::mem::take(&mut self.replies[j]);
                    self.out[j] = self.gate.frame(Body::Bytes(reply));
                }
            }
        }
        Ok(None)
    }

    fn abort(&mut self, reason: Abort) -> Abort {
        self.done = true;
        reason
    }
}
