//! Hash commitments and coin tossing for the MAC check.
//!
//! Every commitment binds the session, the round it was sent in and the committing party, so a
//! commitment cannot be replayed into another session or round or claimed by another party.

use crate::field::Fp;
use crate::share::PartyId;
use crate::wire::SessionId;

pub type Digest = [u8; 32];

/// Where a commitment was made: by whom, in which session and round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub session: SessionId,
    pub round: u32,
    pub party: PartyId,
}

/// Commits to `payload` with the random `nonce` (hiding) under `binding` (binding).
pub fn commit(binding: Binding, label: &str, payload: &[u8], nonce: &[u8; 32]) -> Digest {
    let mut h = blake3::Hasher::new_derive_key("conclave-mpc v1 commitment");
    h.update(&binding.session.0);
    h.update(&binding.round.to_le_bytes());
    h.update(&(binding.party as u64).to_le_bytes());
    h.update(&(label.len() as u64).to_le_bytes());
    h.update(label.as_bytes());
    h.update(&(payload.len() as u64).to_le_bytes());
    h.update(payload);
    h.update(nonce);
    *h.finalize().as_bytes()
}

/// The jointly tossed challenge: a field element derived from every party's opened seed.
pub fn coin(session: SessionId, round: u32, seeds: &[[u8; 32]]) -> Fp {
    let mut h = blake3::Hasher::new_derive_key("conclave-mpc v1 coin");
    h.update(&session.0);
    h.update(&round.to_le_bytes());
    for s in seeds {
        h.update(s);
    }
    let mut wide = [0u8; 64];
    h.finalize_xof().fill(&mut wide);
    Fp::from_uniform_bytes(&wide)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitments_bind_party_session_round_and_label() {
        let b = Binding {
            session: SessionId([1; 16]),
            round: 4,
            party: 2,
        };
        let base = commit(b, "coin", b"x", &[0; 32]);
        let variants = [
            commit(Binding { party: 1, ..b }, "coin", b"x", &[0; 32]),
            commit(Binding { round: 5, ..b }, "coin", b"x", &[0; 32]),
            commit(
                Binding {
                    session: SessionId([2; 16]),
                    ..b
                },
                "coin",
                b"x",
                &[0; 32],
            ),
            commit(b, "reveal", b"x", &[0; 32]),
            commit(b, "coin", b"y", &[0; 32]),
            commit(b, "coin", b"x", &[1; 32]),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
        assert_eq!(commit(b, "coin", b"x", &[0; 32]), base);
    }
}
