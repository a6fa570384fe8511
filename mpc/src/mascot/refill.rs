//! The rounds of a batch that refill every pair's stock of random VOLE ([`super::silent`])
//! before the batch authenticates its values with it, sans-IO.
//!
//! How much a batch refills is a function of the batch specs alone, so every party plans the same
//! rounds: as many silent extensions (four rounds each, all pairs at once) as the owner with the
//! most values needs to keep [`BASE`] in reserve for the next one. A batch that does not finish
//! leaves the stocks out of step with the peers', and the keys refuse further batches.

use bytes::Bytes;

use super::batch::{BatchError, MAX_PER_BATCH};
use super::silent::{BASE, KeyExtension, NET, OUTPUTS, OwnerExtension, Position, SilentError};
use super::{MascotKeys, pair_context};
use crate::driver::Outgoing;
use crate::ot::softspoken::OtExtError;
use crate::rounds::RoundGate;
use crate::session::Abort;
use crate::share::PartyId;
use crate::wire::{Body, BodyView, SessionId};

/// The most random VOLEs an owner keeps between batches: every pair runs as many extensions as
/// the neediest owner, so an owner that needs fewer would otherwise pile up outputs batch after
/// batch. The excess is dropped on both sides alike (the counts are public).
const MAX_LEFT: usize = BASE + NET;

/// After a batch passed: the stocks are in step again, trimmed to [`MAX_LEFT`].
pub(crate) fn settle(keys: &mut MascotKeys) {
    for left in keys.vole_left.iter_mut() {
        *left = (*left).min(MAX_LEFT);
    }
    let me = keys.party;
    for (j, pair) in keys.pairs.iter_mut().enumerate() {
        if let Some(pair) = pair {
            pair.owner_stock.keep(keys.vole_left[me]);
            pair.key_stock.keep(keys.vole_left[j]);
        }
    }
    keys.vole_in_step = true;
}

/// The hash domain of the silent VOLE that `owner` runs under `holder`'s key share.
fn silent_context(session: SessionId, owner: PartyId, holder: PartyId) -> Vec<u8> {
    pair_context(session, owner, holder, "silent VOLE")
}

/// The most values one owner authenticates in a batch.
const MAX_NEED: usize = 6 * MAX_PER_BATCH + 1;

// Positions never collide: a batch runs fewer than 2^8 extensions, an extension hashes fewer than
// 2^24 leaves, and Gilboa's segment nonces stay below bit 19 (asserted in `batch`).
const _: () = assert!((MAX_NEED + BASE).div_ceil(NET) < 1 << 8);
const _: () = assert!(OUTPUTS < 1 << 24);

/// Where extension `ext` of batch `batch` runs its OTs and hashes: a SoftSpokenOT nonce with bit
/// 19 set (Gilboa's segments use the bits below) and a tweak range of its own.
fn position(context: &[u8], batch: u64, ext: usize) -> Position<'_> {
    Position {
        context,
        nonce: (batch << 20) | (1 << 19) | ext as u64,
        tweak: (batch << 32) | ((ext as u64) << 24),
    }
}

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

/// A batch's refill: its plan and the pairwise extension states.
pub(crate) struct Refill {
    batch: u64,
    extensions: usize,
    ext: usize,
    phase: Phase,
    owner: Vec<Option<OwnerExtension>>,
    key: Vec<Option<KeyExtension>>,
    /// What this party sends each peer in the next round.
    reply: Vec<Vec<u8>>,
}

impl Refill {
    /// Plans the refill for a batch in which party i authenticates `need(i)` values, and books
    /// it in `keys` (the stocks are out of step until the batch passes its check). `None` if no
    /// round is needed. Keys that do not extend only spend: `Err` (nothing booked) if a stock is
    /// short.
    pub(crate) fn plan(
        keys: &mut MascotKeys,
        batch: u64,
        need: impl Fn(PartyId) -> usize,
    ) -> Result<Option<Refill>, BatchError> {
        if !keys.extends {
            if let Some(owner) = (0..keys.parties).find(|&i| need(i) > keys.vole_left[i]) {
                return Err(BatchError::VoleExhausted {
                    owner,
                    need: need(owner),
                    left: keys.vole_left[owner],
                });
            }
            for (i, left) in keys.vole_left.iter_mut().enumerate() {
                *left -= need(i);
            }
            keys.vole_in_step = false;
            return Ok(None);
        }
        // Enough extensions that every owner keeps BASE after this batch.
        let extensions = (0..keys.parties)
            .map(|i| {
                (need(i) + BASE)
                    .saturating_sub(keys.vole_left[i])
                    .div_ceil(NET)
            })
            .max()
            .unwrap_or(0);
        for (i, left) in keys.vole_left.iter_mut().enumerate() {
            *left = *left + extensions * NET - need(i);
        }
        keys.vole_in_step = false;
        if extensions == 0 {
            return Ok(None);
        }
        let parties = keys.parties;
        Ok(Some(Refill {
            batch,
            extensions,
            ext: 0,
            phase: Phase::Trees,
            owner: (0..parties).map(|_| None).collect(),
            key: (0..parties).map(|_| None).collect(),
            reply: vec![Vec::new(); parties],
        }))
    }
    fn position<'c>(&self, context: &'c [u8], ext: usize) -> Position<'c> {
        position(context, self.batch, ext)
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
            let msg = if self.phase == Phase::Trees {
                let context = silent_context(keys.session, me, j);
                let at = self.position(&context, self.ext);
                let pair = keys.pairs[j].as_mut().ok_or_else(|| destroyed(j))?;
                let base = pair.owner_stock.split_off_front(BASE);
                let (state, msg) = OwnerExtension::start(base, &pair.ot_receiver, &at);
                self.owner[j] = Some(state);
                msg
            } else {
                std::mem::take(&mut self.reply[j])
            };
            frames[j] = gate.frame(Body::Bytes(msg));
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
        let ext = self.ext;
        let silent = |error| Abort::SilentVole { party: from, error };
        let msg = super::batch::expect_bytes(from, body)?;
        match self.phase {
            // As key holder: the owner `from`'s OT extension.
            Phase::Trees => {
                let context = silent_context(keys.session, from, me);
                let at = self.position(&context, ext);
                let pair = keys.pairs[from].as_mut().ok_or_else(|| destroyed(from))?;
                let base = pair.key_stock.split_off_front(BASE);
                match KeyExtension::respond(base, &mut pair.ot_sender, &at, msg) {
                    Ok((state, sums)) => {
                        self.key[from] = Some(state);
                        self.reply[from] = sums;
                    }
                    // A message of the wrong length was never checked: a plain abort.
                    Err(e @ SilentError::OtExtension(OtExtError::BadLength { .. })) => {
                        return Err(silent(e));
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
                let context = silent_context(keys.session, me, from);
                let at = self.position(&context, ext);
                let state = self.owner[from].as_mut().expect("started in Trees");
                self.reply[from] = state.open(&at, msg).map_err(silent)?.to_vec();
            }
            // As key holder: the owner's x*.
            Phase::Challenge => {
                let context = silent_context(keys.session, from, me);
                let at = self.position(&context, ext);
                let state = self.key[from].as_ref().expect("responded in Trees");
                let alpha = keys.key.value();
                self.reply[from] = state.confirm(&at, &alpha, msg).map_err(silent)?.to_vec();
            }
            // As owner: the key holder's digest; a wrong one means it cheated.
            Phase::Confirm => {
                let context = silent_context(keys.session, me, from);
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
        self.phase = match self.phase {
            Phase::Trees => Phase::Sums,
            Phase::Sums => Phase::Challenge,
            Phase::Challenge => Phase::Confirm,
            Phase::Confirm => {
                // As key holder, this side's outputs are final once its digest went out.
                let me = gate.party;
                for j in gate.peers() {
                    let context = silent_context(keys.session, j, me);
                    let at = self.position(&context, self.ext);
                    if let (Some(state), Some(pair)) = (self.key[j].take(), keys.pairs[j].as_mut())
                    {
                        pair.key_stock.extend(state.finish(&at));
                    }
                }
                self.ext += 1;
                if self.ext == self.extensions {
                    return true;
                }
                Phase::Trees
            }
        };
        false
    }
}

fn destroyed(party: PartyId) -> Abort {
    Abort::Preprocessing(format!("the OT state with party {party} was destroyed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (batch, extension) has its own SoftSpokenOT nonce, never one of Gilboa's, and its
    /// own range of [`OUTPUTS`] tweaks.
    #[test]
    fn positions_are_unique() {
        let mut nonces = std::collections::HashSet::new();
        let mut tweaks = Vec::new();
        for batch in [0u64, 1, 2, 1000] {
            for ext in 0..(MAX_NEED + BASE).div_ceil(NET) {
                let at = position(b"", batch, ext);
                assert!(nonces.insert(at.nonce));
                assert_eq!((at.nonce >> 19) & 1, 1, "Gilboa's nonces have bit 19 clear");
                tweaks.push(at.tweak..at.tweak + OUTPUTS as u64);
            }
        }
        tweaks.sort_by_key(|r| r.start);
        assert!(tweaks.windows(2).all(|w| w[0].end <= w[1].start));
    }

    /// Each ordered pair of each session hashes in its own domain: one domain for both
    /// directions of a pair, or for two sessions, would let one VOLE's hashes stand for another's.
    #[test]
    fn each_ordered_pair_and_session_has_its_own_context() {
        let mut seen = std::collections::HashSet::new();
        for session in [SessionId([1; 16]), SessionId([2; 16])] {
            for (owner, holder) in [(0, 1), (1, 0), (0, 2), (2, 1)] {
                assert!(seen.insert(silent_context(session, owner, holder)));
            }
        }
        assert!(!seen.contains(&pair_context(SessionId([1; 16]), 0, 1, "")));
    }

    /// Settling trims what an owner has left to one extension's worth (the base and the net
    /// outputs), on both sides alike, so that stocks cannot pile up batch after batch.
    #[test]
    fn settling_trims_the_stock_counts() {
        let mut keys = crate::mascot::tests::two_party_keys().remove(0);
        keys.vole_left = vec![usize::MAX / 2, 3];
        keys.vole_in_step = false;
        settle(&mut keys);
        assert_eq!(keys.vole_left, vec![BASE + NET, 3]);
        assert!(keys.vole_in_step);
    }
}
