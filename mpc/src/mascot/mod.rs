//! MASCOT preprocessing (Keller, Orsini, Scholl, CCS 2016): authenticated triples, input masks and
//! random values from oblivious transfer, secure against a dishonest majority.
//!
//! - [`setup`]: once per committee, base OTs and punctured seed trees between every ordered pair
//!   of parties, for SoftSpokenOT extension (Gilboa products) and for the digit VOLE, which then
//!   authenticates each pair's first base VOLEs ([`base_vole`]) and is dropped. A setup for a
//!   small known workload makes just the random VOLEs it consumes and never extends.
//! - [`batch`]: one batch: Gilboa multiplication, combining, a refill of random VOLE
//!   ([`refill`]), authentication (one field element per value), sacrifice and a MAC check, all
//!   sans-IO. Nothing from a batch is output unless every check passed.
//! - [`silent`]: random VOLE under α by LPN (Ferret/Wolverine), bootstrapped from its own output.
//! - [`vole`]: the digit VOLE under α (64 field elements per value), for the setup's base.
//! - [`pool`]: a background producer that keeps material ready for the online phase.

pub mod base_vole;
pub mod batch;
pub mod pool;
pub mod refill;
pub mod setup;
pub mod silent;
pub mod vole;

use crate::field::Fp;
use crate::ot::softspoken::{SoftReceiver, SoftSender};
use crate::share::{MacKeyShare, PartyId};
use crate::wire::SessionId;
use silent::Stock;

/// Products per triple before combining (MASCOT's τ): three candidates whose random combination
/// hides anything a selective-failure attack on Gilboa multiplication could learn.
pub const TAU: usize = 3;

/// The most payload one preprocessing frame carries: batches run their heavy steps in segments of
/// this size, so any batch fits any transport whose frame limit is above [`MAX_PREP_FRAME`].
pub const SEGMENT_BYTES: usize = 4 << 20;

/// The largest frame a preprocessing party accepts: a segment plus framing.
pub const MAX_PREP_FRAME: usize = SEGMENT_BYTES + (64 << 10);

/// Bits of a field element: l < 2^253.
pub const FIELD_BITS: usize = 253;

/// The bits of `x`, least significant first.
pub fn bits(x: &Fp) -> impl Iterator<Item = bool> + use<> {
    let bytes = x.to_bytes();
    (0..FIELD_BITS).map(move |h| (bytes[h / 8] >> (h % 8)) & 1 == 1)
}

/// This party's OT state with one peer, reusable for any number of batches.
pub struct PairOt {
    /// This party as OT-extension receiver (its Gilboa choice bits).
    ot_receiver: SoftReceiver,
    /// This party as OT-extension sender (its Gilboa correlation).
    ot_sender: SoftSender,
    /// Random VOLE for this party's values under the peer's key share: (u, w).
    owner_stock: Stock,
    /// Random VOLE for the peer's values under this party's key share: q.
    key_stock: Stock,
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
    /// Random VOLEs left per owner (the same with every peer, and known to all).
    vole_left: Vec<usize>,
    /// False while a batch is consuming or refilling the stocks; a batch that did not finish
    /// leaves them out of step with the peers'.
    vole_in_step: bool,
    /// Whether batches refill the stocks by silent extension (false after
    /// [`setup::Setup::for_values`]: the setup's values are all there is).
    extends: bool,
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

    /// Test-only: makes this party check MACs with a key other than the one its VOLE role was set
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::driver::run;
    use crate::transport::MemoryTransport;

    /// Runs `party(i, transport)` for parties 0 and 1 over a memory mesh, each in its own task
    /// on a fresh runtime; their results in party order.
    pub(crate) fn two_parties<T, F, Fut>(party: F) -> Vec<T>
    where
        T: Send + 'static,
        F: Fn(PartyId, MemoryTransport) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = MemoryTransport::mesh(2)
                .into_iter()
                .enumerate()
                .map(|(i, t)| tokio::spawn(party(i, t)))
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        })
    }

    /// Both parties' keys after a two-party setup over memory.
    pub(crate) fn two_party_keys() -> Vec<MascotKeys> {
        two_parties(|party, mut t| async move {
            let key = MacKeyShare::new(Fp::random(&mut rand::rng()));
            run(setup::Setup::new(SessionId([9; 16]), party, 2, key), &mut t)
                .await
                .expect("honest setup")
        })
    }
}
