//! The setup's last rounds, sans-IO: every ordered pair authenticates [`BASE`] random values of
//! the owner under the key holder's α with the digit VOLE ([`super::vole`]), in segments, plus
//! one mask, and checks them ([`super::silent::prove_base`]). These are the first silent
//! extension's base; later extensions take theirs from earlier outputs, so the digit VOLE and its
//! seed trees are dropped once the setup ends.

use bytes::Bytes;

use super::silent::{BASE, BASE_CHECK_MASKS, BaseTranscript, Stock, prove_base, verify_base};
use super::vole::{ELEMENTS_PER_VALUE, VoleReceiver, VoleSender};
use super::{SEGMENT_BYTES, pair_context};
use crate::field::Fp;
use crate::rounds::RoundGate;
use crate::session::Abort;
use crate::share::PartyId;
use crate::wire::{Body, BodyView};

/// Base values per digit-VOLE segment.
const PER_SEGMENT: usize = SEGMENT_BYTES / (ELEMENTS_PER_VALUE * 32);
/// Values the digit VOLE authenticates per pair: the first extension's base and the check's mask.
const VALUES: usize = BASE + BASE_CHECK_MASKS;
/// Digit-VOLE segments; the check takes one more round.
pub const SEGMENTS: usize = VALUES.div_ceil(PER_SEGMENT);
/// Rounds of the base VOLE.
pub const ROUNDS: usize = SEGMENTS + 1;
/// The digit VOLE's PRG nonce: its seed trees serve this one use.
const NONCE: u64 = 0;

/// One party's digit-VOLE roles with one peer.
pub(crate) struct PairVole {
    pub(crate) sender: VoleSender,
    pub(crate) receiver: VoleReceiver,
}

/// One party's side of the base VOLE with every peer.
pub(crate) struct BaseVole {
    pairs: Vec<Option<PairVole>>,
    /// Round within the base VOLE: segments, then the check.
    step: usize,
    owner: Vec<Stock>,
    key: Vec<Stock>,
    /// The base messages this party sent to each peer, and received from each.
    sent: Vec<BaseTranscript>,
    received: Vec<BaseTranscript>,
}

/// The base values of segment `seg`.
fn segment(seg: usize) -> std::ops::Range<usize> {
    seg * PER_SEGMENT..((seg + 1) * PER_SEGMENT).min(VALUES)
}

impl BaseVole {
    pub(crate) fn new(gate: &RoundGate, pairs: Vec<Option<PairVole>>) -> Self {
        let (session, me, parties) = (gate.session, gate.party, gate.parties);
        let context = |owner, holder| pair_context(session, owner, holder, "base VOLE");
        BaseVole {
            pairs,
            step: 0,
            owner: (0..parties).map(|_| Stock::default()).collect(),
            key: (0..parties).map(|_| Stock::default()).collect(),
            sent: (0..parties)
                .map(|j| BaseTranscript::new(&context(me, j)))
                .collect(),
            received: (0..parties)
                .map(|j| BaseTranscript::new(&context(j, me)))
                .collect(),
        }
    }

    /// This round's frame for every peer.
    pub(crate) fn frames(&mut self, gate: &RoundGate) -> Vec<Bytes> {
        let mut frames = vec![Bytes::new(); gate.parties];
        for j in gate.peers() {
            let body = if self.step < SEGMENTS {
                let range = segment(self.step);
                let mut rng = rand::rng();
                let u: Vec<Fp> = range.clone().map(|_| Fp::random(&mut rng)).collect();
                let pair = self.pairs[j].as_ref().expect("every peer has a pair");
                let (e, w) = pair.sender.send(NONCE, range.start as u64, &u);
                self.owner[j].extend(Stock::owner(u, w));
                for v in &e {
                    self.sent[j].absorb(&v.to_montgomery_bytes());
                }
                Body::Values(e)
            } else {
                Body::Bytes(prove_base(&mut self.owner[j], &self.sent[j]))
            };
            frames[j] = gate.frame(body);
        }
        frames
    }

    /// Takes peer `from`'s frame of this round; `alpha` is this party's key share.
    pub(crate) fn accept(
        &mut self,
        from: PartyId,
        body: BodyView,
        alpha: &Fp,
    ) -> Result<(), Abort> {
        let unexpected = |expected, other: &BodyView| Abort::UnexpectedBody {
            from,
            expected,
            got: other.kind(),
        };
        if self.step < SEGMENTS {
            let range = segment(self.step);
            let e = match body {
                BodyView::Values(e) => e,
                other => return Err(unexpected("values", &other)),
            };
            self.received[from].absorb(e.as_bytes());
            let pair = self.pairs[from].as_ref().expect("every peer has a pair");
            let q = pair
                .receiver
                .receive(NONCE, range.start as u64, range.len(), e)
                .map_err(|error| Abort::BadFrame { from, error })?;
            self.key[from].extend(Stock::key(q));
            return Ok(());
        }
        let msg = match body {
            BodyView::Bytes(b) => b,
            other => return Err(unexpected("bytes", &other)),
        };
        verify_base(&mut self.key[from], alpha, &self.received[from], msg)
            .map_err(|error| Abort::SilentVole { party: from, error })
    }

    /// Finishes the round: the stocks with each peer (owner's, key holder's) after the last.
    pub(crate) fn complete(&mut self) -> Option<Vec<(Stock, Stock)>> {
        self.step += 1;
        if self.step < ROUNDS {
            return None;
        }
        self.pairs.clear();
        let owner = std::mem::take(&mut self.owner);
        let key = std::mem::take(&mut self.key);
        Some(owner.into_iter().zip(key).collect())
    }
}
