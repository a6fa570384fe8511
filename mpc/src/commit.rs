//! Hash commitments and coin tossing for the MAC check.
//!
//! Every commitment binds the session, the round it was sent in and the committing party, so a
//! commitment cannot be replayed into another session or round or claimed by another party.

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

/// Commit-then-open coin tossing among all parties: no party can bias the result, because each
/// commits to its seed before seeing any other.
pub(crate) struct CoinToss {
    seed: [u8; 32],
    /// The round in which the commitments were sent.
    commit_round: u32,
    commits: Vec<Digest>,
    seeds: Vec<[u8; 32]>,
}

impl CoinToss {
    pub fn new(parties: usize) -> Self {
        CoinToss {
            seed: rand::random(),
            commit_round: 0,
            commits: vec![[0; 32]; parties],
            seeds: vec![[0; 32]; parties],
        }
    }

    /// This party's commitment, sent in round `me.round`.
    pub fn commitment(&mut self, me: Binding) -> Digest {
        self.commit_round = me.round;
        self.commits[me.party] = commit(me, "coin", &[], &self.seed);
        self.commits[me.party]
    }

    pub fn take_commitment(&mut self, from: PartyId, c: Digest) {
        self.commits[from] = c;
    }

    /// This party's seed, opening its commitment.
    pub fn opening(&mut self, party: PartyId) -> [u8; 32] {
        self.seeds[party] = self.seed;
        self.seed
    }

    /// Takes party `from`'s seed; false if it does not open `from`'s commitment.
    pub fn take_opening(&mut self, session: SessionId, from: PartyId, seed: [u8; 32]) -> bool {
        let binding = Binding {
            session,
            round: self.commit_round,
            party: from,
        };
        self.seeds[from] = seed;
        commit(binding, "coin", &[], &seed) == self.commits[from]
    }

    /// The tossed coin: a PRG seed derived from every party's seed.
    pub fn result(&self, session: SessionId) -> [u8; 16] {
        let mut h = blake3::Hasher::new_derive_key("conclave-mpc v1 coin");
        h.update(&session.0);
        h.update(&self.commit_round.to_le_bytes());
        for s in &self.seeds {
            h.update(s);
        }
        h.finalize().as_bytes()[..16].try_into().expect("16 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tosses a coin among three parties whose seeds are `seeds`.
    fn toss(seeds: [[u8; 32]; 3]) -> [u8; 16] {
        let session = SessionId([4; 16]);
        let mut coins: Vec<CoinToss> = (0..3).map(|_| CoinToss::new(3)).collect();
        for (coin, seed) in coins.iter_mut().zip(seeds) {
            coin.seed = seed;
        }
        let commitments: Vec<Digest> = coins
            .iter_mut()
            .enumerate()
            .map(|(party, c)| {
                c.commitment(Binding {
                    session,
                    round: 7,
                    party,
                })
            })
            .collect();
        let openings: Vec<[u8; 32]> = (0..3).map(|p| coins[p].opening(p)).collect();
        let mine = &mut coins[0];
        for p in 1..3 {
            mine.take_commitment(p, commitments[p]);
            assert!(mine.take_opening(session, p, openings[p]));
        }
        mine.result(session)
    }

    /// The coin is a function of every party's seed: no party, and no constant, fixes it.
    #[test]
    fn the_coin_depends_on_every_seed() {
        let base = toss([[1; 32], [2; 32], [3; 32]]);
        assert_eq!(base, toss([[1; 32], [2; 32], [3; 32]]));
        assert_ne!(base, toss([[9; 32], [2; 32], [3; 32]]));
        assert_ne!(base, toss([[1; 32], [9; 32], [3; 32]]));
        assert_ne!(base, toss([[1; 32], [2; 32], [9; 32]]));
        assert_ne!(base, [0; 16]);
        assert_ne!(base, [1; 16]);
    }

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
