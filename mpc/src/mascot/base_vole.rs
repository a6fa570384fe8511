//! The setup's last rounds, sans-IO: every ordered pair authenticates random values of the owner
//! under the key holder's α with the digit VOLE ([`super::vole`]), in segments, plus one mask,
//! and checks them ([`super::silent::prove_base`]). Usually [`BASE`] values: the first silent
//! extension's base; later extensions take theirs from earlier outputs. A setup sized for a
//! workload below [`BASE`] makes just the values its batches consume, and never extends
//! ([`super::setup::Setup::for_values`]). Either way the digit VOLE and its seed trees are
//! dropped once the setup ends.

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
/// Rounds of the base VOLE of a setup that extends: segments of [`BASE`] values and the check's
/// mask, then the check.
pub const ROUNDS: usize = rounds(BASE);

/// Rounds of a base VOLE of `values` values per pair: digit-VOLE segments (the check's mask
/// included), then the check.
pub const fn rounds(values: usize) -> usize {
    (values + BASE_CHECK_MASKS).div_ceil(PER_SEGMENT) + 1
}
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
    /// Values authenticated per pair, the check's mask included.
    values: usize,
    owner: Vec<Stock>,
    key: Vec<Stock>,
    /// The base messages this party sent to each peer, and received from each.
    sent: Vec<BaseTranscript>,
    received: Vec<BaseTranscript>,
}

impl BaseVole {
    /// The digit VOLE of `values` random values per ordered pair (and the check's mask).
    pub(crate) fn new(gate: &RoundGate, pairs: Vec<Option<PairVole>>, values: usize) -> Self {
        let (session, me, parties) = (gate.session, gate.party, gate.parties);
        let context = |owner, holder| pair_context(session, owner, holder, "base VOLE");
        BaseVole {
            pairs,
            step: 0,
            values: values + BASE_CHECK_MASKS,
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

    fn segments(&self) -> usize {
        self.values.div_ceil(PER_SEGMENT)
    }

    /// The base values of segment `seg`.
    fn segment(&self, seg: usize) -> std::ops::Range<usize> {
        seg * PER_SEGMENT..((seg + 1) * PER_SEGMENT).min(self.values)
    }

    /// This round's frame for every peer.
    pub(crate) fn frames(&mut self, gate: &RoundGate) -> Vec<Bytes> {
        let mut frames = vec![Bytes::new(); gate.parties];
        for j in gate.peers() {
            let body = if self.step < self.segments() {
                let range = self.segment(self.step);
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
        if self.step < self.segments() {
            let range = self.segment(self.step);
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
        if self.step <= self.segments() {
            return None;
        }
        self.pairs.clear();
        let owner = std::mem::take(&mut self.owner);
        let key = std::mem::take(&mut self.key);
        Some(owner.into_iter().zip(key).collect())
    }
}
