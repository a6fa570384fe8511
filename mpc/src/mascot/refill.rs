//! The rounds of a batch that refill every pair's stock of random VOLE ([`super::silent`]) before
//! the batch authenticates its values with it, sans-IO.
//!
//! How much each batch refills is a function of the batch specs alone, so every party plans the
//! same rounds: the first batch authenticates [`BASE`] base values per ordered pair with the digit
//! VOLE ([`super::vole`], in segments) and checks them, then every batch runs as many silent extensions (four
//! rounds each, all pairs at once) as the owner with the most values needs to keep [`BASE`] in
//! reserve for the next one. A batch that does not finish leaves the stocks out of step with the
//! peers', and the keys refuse further batches.

use bytes::Bytes;

use super::silent::{
    BASE, BASE_CHECK_MASKS, BaseTranscript, KeyExtension, NET, OwnerExtension, Position,
    SilentError, Stock, prove_base, verify_base,
};
use super::vole::ELEMENTS_PER_VALUE;
use super::{MascotKeys, SEGMENT_BYTES, pair_context};
use crate::driver::Outgoing;
use crate::field::Fp;
use crate::rounds::RoundGate;
use crate::session::Abort;
use crate::share::PartyId;
use crate::wire::{Body, BodyView};

/// Base values per digit-VOLE segment.
const BASE_PER_SEGMENT: usize = SEGMENT_BYTES / (ELEMENTS_PER_VALUE * 32);
/// Values the digit VOLE authenticates per pair: the first extension's base and the check's mask.
const BASE_VALUES: usize = BASE + BASE_CHECK_MASKS;
/// Digit-VOLE segments of the first batch; its base check takes one more round.
pub const BASE_SEGMENTS: usize = BASE_VALUES.div_ceil(BASE_PER_SEGMENT);

/// The four messages of one extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Owner → key holder: the OT extension for the noise trees.
    Trees,
    /// Key holder → owner: level sums and g.
    Sums,
    /// Owner → key holder: x*.
    Challenge,
    /// Key holder → owner: the check digest.
    Confirm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Base(usize),
    BaseCheck,
    Extend(usize, Phase),
}

/// A batch's refill: its plan and the pairwise extension states.
pub(crate) struct Refill {
    batch: u64,
    base_segments: usize,
    extensions: usize,
    step: Step,
    owner: Vec<Option<OwnerExtension>>,
    key: Vec<Option<KeyExtension>>,
    /// What this party sends each peer in the next round.
    reply: Vec<Vec<u8>>,
    /// The base messages this party sent to each peer, and received from each.
    sent: Vec<BaseTranscript>,
    received: Vec<BaseTranscript>,
}

impl Refill {
    /// Plans the refill for a batch in which party i authenticates `need(i)` values, and books
    /// it in `keys` (the stocks are out of step until [`MascotKeys::vole_in_step`] is set again).
    /// `None` if no round is needed.
    pub(crate) fn plan(
        keys: &mut MascotKeys,
        batch: u64,
        need: impl Fn(PartyId) -> usize,
    ) -> Option<Refill> {
        let base_segments = if keys.vole_based { 0 } else { BASE_SEGMENTS };
        let left = |i: PartyId| {
            if keys.vole_based {
                keys.vole_left[i]
            } else {
                BASE
            }
        };
        // Enough extensions that every owner keeps BASE after this batch.
        let extensions = (0..keys.parties)
            .map(|i| (need(i) + BASE).saturating_sub(left(i)).div_ceil(NET))
            .max()
            .unwrap_or(0);
        keys.vole_left = (0..keys.parties)
            .map(|i| left(i) + extensions * NET - need(i))
            .collect();
        keys.vole_based = true;
        keys.vole_in_step = false;
        let step = match (base_segments, extensions) {
            (0, 0) => return None,
            (0, _) => Step::Extend(0, Phase::Trees),
            _ => Step::Base(0),
        };
        let parties = keys.parties;
        Some(Refill {
            batch,
            base_segments,
            extensions,
            step,
            owner: (0..parties).map(|_| None).collect(),
            key: (0..parties).map(|_| None).collect(),
            reply: vec![Vec::new(); parties],
            sent: (0..parties)
                .map(|j| BaseTranscript::new(&Self::context(keys, keys.party, j)))
                .collect(),
            received: (0..parties)
                .map(|j| BaseTranscript::new(&Self::context(keys, j, keys.party)))
                .collect(),
        })
    }

    /// The owner → key-holder position of extension `ext`: unique per batch and extension.
    fn position<'c>(&self, context: &'c [u8], ext: usize) -> Position<'c> {
        Position {
            context,
            nonce: (self.batch << 20) | (1 << 19) | ext as u64,
            tweak: (self.batch << 32) | ((ext as u64) << 24),
        }
    }

    fn context(keys: &MascotKeys, owner: PartyId, holder: PartyId) -> Vec<u8> {
        pair_context(keys.session, owner, holder, "silent VOLE")
    }

    /// This round's frames for every peer.
    pub(crate) fn frames(
        &mut self,
        keys: &mut MascotKeys,
        gate: &RoundGate,
    ) -> Result<Outgoing, Abort> {
        let me = gate.party;
        let mut frames = vec![Bytes::new(); gate.parties];
        for j in gate.peers() {
            let context = Self::context(keys, me, j);
            let pair = keys.pairs[j].as_mut().ok_or_else(|| destroyed(j))?;
            let body = match self.step {
                Step::Base(seg) => {
                    let range = base_range(seg);
                    let mut rng = rand::rng();
                    let u: Vec<Fp> = range.clone().map(|_| Fp::random(&mut rng)).collect();
                    let (e, w) = pair.vole_sender.send(self.batch, range.start as u64, &u);
                    pair.owner_stock.extend(Stock::owner(u, w));
                    for v in &e {
                        self.sent[j].absorb(&v.to_montgomery_bytes());
                    }
                    Body::Values(e)
                }
                Step::BaseCheck => Body::Bytes(prove_base(&mut pair.owner_stock, &self.sent[j])),
                Step::Extend(ext, Phase::Trees) => {
                    let base = pair.owner_stock.split_off_front(BASE);
                    let at = self.position(&context, ext);
                    let (state, msg) = OwnerExtension::start(base, &pair.ot_receiver, &at);
                    self.owner[j] = Some(state);
                    Body::Bytes(msg)
                }
                Step::Extend(_, _) => Body::Bytes(std::mem::take(&mut self.reply[j])),
            };
            frames[j] = gate.frame(body);
        }
        Ok(Outgoing::PerPeer(frames))
    }

    /// Takes peer `from`'s frame of this round.
    pub(crate) fn accept(
        &mut self,
        keys: &mut MascotKeys,
        gate: &RoundGate,
        from: PartyId,
        body: BodyView,
    ) -> Result<(), Abort> {
        let me = gate.party;
        if let Step::Base(seg) = self.step {
            let range = base_range(seg);
            let e = match body {
                BodyView::Values(e) => e,
                other => return Err(super::batch::unexpected(from, "values", &other)),
            };
            let pair = keys.pairs[from].as_mut().ok_or_else(|| destroyed(from))?;
            self.received[from].absorb(e.as_bytes());
            let q = pair
                .vole_receiver
                .receive(self.batch, range.start as u64, range.len(), e)
                .map_err(|error| Abort::BadFrame { from, error })?;
            pair.key_stock.extend(Stock::key(q));
            return Ok(());
        }
        let silent = |error| Abort::SilentVole { party: from, error };
        if self.step == Step::BaseCheck {
            let msg = super::batch::expect_bytes(from, body)?;
            let alpha = keys.key.value();
            let pair = keys.pairs[from].as_mut().ok_or_else(|| destroyed(from))?;
            let checked = verify_base(&mut pair.key_stock, &alpha, &self.received[from], msg);
            if checked == Err(SilentError::BaseCheckFailed) {
                keys.pairs[from] = None;
            }
            return checked.map_err(silent);
        }
        let Step::Extend(ext, phase) = self.step else {
            unreachable!("base handled above")
        };
        let msg = super::batch::expect_bytes(from, body)?;
        match phase {
            // As key holder: the owner `from`'s OT extension.
            Phase::Trees => {
                let context = Self::context(keys, from, me);
                let at = self.position(&context, ext);
                let pair = keys.pairs[from].as_mut().ok_or_else(|| destroyed(from))?;
                let base = pair.key_stock.split_off_front(BASE);
                match KeyExtension::respond(base, &mut pair.ot_sender, &at, msg) {
                    Ok((state, sums)) => {
                        self.key[from] = Some(state);
                        self.reply[from] = sums;
                    }
                    Err(SilentError::OtExtension(_)) => {
                        // As with Gilboa's OTs: none of this pair's state is used again.
                        keys.pairs[from] = None;
                        return Err(Abort::OtCheckFailed { party: from });
                    }
                    Err(error) => return Err(silent(error)),
                }
            }
            // As owner: the key holder `from`'s sums.
            Phase::Sums => {
                let context = Self::context(keys, me, from);
                let at = self.position(&context, ext);
                let state = self.owner[from].as_mut().expect("started in Trees");
                self.reply[from] = state.open(&at, msg).map_err(silent)?.to_vec();
            }
            // As key holder: the owner's x*.
            Phase::Challenge => {
                let context = Self::context(keys, from, me);
                let at = self.position(&context, ext);
                let state = self.key[from].as_ref().expect("responded in Trees");
                let alpha = keys.key.value();
                self.reply[from] = state.confirm(&at, &alpha, msg).map_err(silent)?.to_vec();
            }
            // As owner: the key holder's digest; a wrong one means it cheated.
            Phase::Confirm => {
                let context = Self::context(keys, me, from);
                let at = self.position(&context, ext);
                let state = self.owner[from].take().expect("started in Trees");
                match state.finish(&at, msg) {
                    Ok(outputs) => keys.pairs[from]
                        .as_mut()
                        .ok_or_else(|| destroyed(from))?
                        .owner_stock
                        .extend(outputs),
                    Err(error) => {
                        if error == SilentError::CheckFailed {
                            keys.pairs[from] = None;
                        }
                        return Err(silent(error));
                    }
                }
            }
        }
        Ok(())
    }

    /// Finishes the round: `true` once the last refill round is done.
    pub(crate) fn complete(&mut self, keys: &mut MascotKeys, gate: &RoundGate) -> bool {
        let next = match self.step {
            Step::Base(seg) if seg + 1 < self.base_segments => Step::Base(seg + 1),
            Step::Base(_) => Step::BaseCheck,
            Step::BaseCheck if self.extensions == 0 => return true,
            Step::BaseCheck => Step::Extend(0, Phase::Trees),
            Step::Extend(ext, Phase::Trees) => Step::Extend(ext, Phase::Sums),
            Step::Extend(ext, Phase::Sums) => Step::Extend(ext, Phase::Challenge),
            Step::Extend(ext, Phase::Challenge) => Step::Extend(ext, Phase::Confirm),
            Step::Extend(ext, Phase::Confirm) => {
                // As key holder, this side's outputs are final once its digest went out.
                let me = gate.party;
                for j in gate.peers() {
                    let context = Self::context(keys, j, me);
                    let at = self.position(&context, ext);
                    if let (Some(state), Some(pair)) = (self.key[j].take(), keys.pairs[j].as_mut())
                    {
                        pair.key_stock.extend(state.finish(&at));
                    }
                }
                if ext + 1 == self.extensions {
                    return true;
                }
                Step::Extend(ext + 1, Phase::Trees)
            }
        };
        self.step = next;
        false
    }
}

/// The base values of digit-VOLE segment `seg`.
fn base_range(seg: usize) -> std::ops::Range<usize> {
    seg * BASE_PER_SEGMENT..((seg + 1) * BASE_PER_SEGMENT).min(BASE_VALUES)
}

fn destroyed(party: PartyId) -> Abort {
    Abort::Preprocessing(format!("the OT state with party {party} was destroyed"))
}
