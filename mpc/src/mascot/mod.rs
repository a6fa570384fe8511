//! MASCOT preprocessing (Keller, Orsini, Scholl, CCS 2016): authenticated triples, input masks and
//! random values from oblivious transfer, secure against a dishonest majority.
//!
//! - [`setup`]: once per committee, base OTs between every ordered pair of parties, for KOS OT
//!   extension (Gilboa products) and for COPE (MACs under each party's key share α_i).
//! - [`batch`]: one batch: Gilboa multiplication, combining, COPE authentication, sacrifice and a
//!   MAC check, all sans-IO. Nothing from a batch is output unless every check passed.
//! - [`cope`]: COPE itself.
//! - [`pool`]: a background producer that keeps material ready for the online phase.

pub mod batch;
pub mod cope;
pub mod pool;
pub mod setup;

use crate::ot::kos::{KosReceiver, KosSender};
use crate::share::{MacKeyShare, PartyId};
use crate::wire::SessionId;
use cope::{CopeReceiver, CopeSender};

/// Products per triple before combining (MASCOT's τ): three candidates whose random combination
/// hides anything a selective-failure attack on Gilboa multiplication could learn.
pub const TAU: usize = 3;

/// The largest frame a preprocessing party accepts (a batch's COPE message is the largest).
pub const MAX_PREP_FRAME: usize = 64 << 20;

/// This party's OT state with one peer, reusable for any number of batches.
pub struct PairOt {
    /// This party as KOS receiver (its Gilboa choice bits).
    kos_receiver: KosReceiver,
    /// This party as KOS sender (its Gilboa correlation).
    kos_sender: KosSender,
    /// This party authenticating its own values under the peer's key share.
    cope_sender: CopeSender,
    /// The peer's values authenticated under this party's key share.
    cope_receiver: CopeReceiver,
}

/// Everything a party keeps between batches: its MAC key share and its OT state with each peer.
pub struct MascotKeys {
    session: SessionId,
    party: PartyId,
    parties: usize,
    key: MacKeyShare,
    pairs: Vec<Option<PairOt>>,
    next_batch: u64,
    next_round: u32,
}

impl MascotKeys {
    pub fn party(&self) -> PartyId {
        self.party
    }

    pub fn parties(&self) -> usize {
        self.parties
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    pub fn mac_key(&self) -> &MacKeyShare {
        &self.key
    }

    /// Test-only: makes this party check MACs with a key other than the one its COPE role was set
    /// up with, as a cheating party would.
    #[cfg(feature = "insecure-dealer")]
    pub fn replace_mac_key_insecure(&mut self, key: MacKeyShare) {
        self.key = key;
    }
}

/// The context string bound into a pair's OT hashes: session, sender-side party, receiver-side.
fn pair_context(session: SessionId, first: PartyId, second: PartyId, label: &str) -> Vec<u8> {
    let mut c = Vec::with_capacity(16 + 16 + label.len());
    c.extend_from_slice(&session.0);
    c.extend_from_slice(&(first as u64).to_le_bytes());
    c.extend_from_slice(&(second as u64).to_le_bytes());
    c.extend_from_slice(label.as_bytes());
    c
}
