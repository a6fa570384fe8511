//! Which connections a node keeps (sans-IO: the swarm task reports events and acts on answers).
//!
//! A node dials peers on its own only up to a target, counting the connections *it* dialed
//! (inbound ones are others' choice: a crowd of strangers connecting must not stop it from
//! choosing its own peers). Gossipsub holds a stream open on every connection, so connections
//! never fall idle by themselves. Like a connection manager with low and high water marks: once a
//! node has more peers than [`Watermarks::high`], it closes unused ones, inbound-only peers first,
//! until [`Watermarks::low`] remain. The gap keeps a mesh steady: with one line, half the nodes
//! sit above it (each dials `target` and is dialed about as often) and connections churn for
//! good, dropping gossip in flight. A peer is in use while this node asked it something within
//! the request timeout, or is answering one of its requests, or shares an MPC session (the
//! caller's `protected`), or was dialed by this node less than [`Watermarks::grace`] ago (a new
//! peer needs a few gossip heartbeats to join the mesh).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// When and how far [`Connections::to_close`] trims.
#[derive(Debug, Clone, Copy)]
pub struct Watermarks {
    /// Trimming starts above this many peers...
    pub high: usize,
    /// ...and stops at this many.
    pub low: usize,
    /// Peers this node dialed more recently than this are kept.
    pub grace: Duration,
}

impl Watermarks {
    /// For a node that dials `target` peers of its own: trims from three times that to twice.
    pub fn for_target(target: usize) -> Self {
        Watermarks {
            high: 3 * target,
            low: 2 * target,
            grace: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Default)]
pub struct Connections {
    /// Open connections per peer that this node dialed.
    dialed: HashMap<PeerId, usize>,
    /// Open connections per peer that the peer dialed.
    accepted: HashMap<PeerId, usize>,
    /// Since when each connected peer has had a connection.
    since: HashMap<PeerId, Instant>,
    /// When this node last sent each peer a request.
    asked: HashMap<PeerId, Instant>,
    /// Answers this node is preparing, per asking peer.
    answering: HashMap<PeerId, usize>,
}

fn add(map: &mut HashMap<PeerId, usize>, peer: PeerId) {
    *map.entry(peer).or_default() += 1;
}

fn remove(map: &mut HashMap<PeerId, usize>, peer: &PeerId) {
    if let Some(n) = map.get_mut(peer) {
        *n -= 1;
        if *n == 0 {
            map.remove(peer);
        }
    }
}

impl Connections {
    pub fn opened(&mut self, peer: PeerId, dialed: bool, now: Instant) {
        self.since.entry(peer).or_insert(now);
        add(
            if dialed {
                &mut self.dialed
            } else {
                &mut self.accepted
            },
            peer,
        );
    }

    pub fn closed(&mut self, peer: &PeerId, dialed: bool) {
        remove(
            if dialed {
                &mut self.dialed
            } else {
                &mut self.accepted
            },
            peer,
        );
        if !self.dialed.contains_key(peer) && !self.accepted.contains_key(peer) {
            self.asked.remove(peer);
            self.since.remove(peer);
        }
    }

    /// This node sent `peer` a request.
    pub fn asked(&mut self, peer: PeerId, now: Instant) {
        self.asked.insert(peer, now);
    }

    pub fn answering(&mut self, peer: PeerId) {
        add(&mut self.answering, peer);
    }

    pub fn answered(&mut self, peer: &PeerId) {
        remove(&mut self.answering, peer);
    }

    /// Peers this node has dialed connections to.
    pub fn dialed(&self) -> usize {
        self.dialed.len()
    }

    /// The peers to disconnect, when more than `marks.high` are connected, so that at most
    /// `marks.low` stay, among those not in use (asked within `recent`, being answered,
    /// `protected`, or dialed within the grace period): inbound-only peers first.
    pub fn to_close(
        &mut self,
        marks: Watermarks,
        now: Instant,
        recent: Duration,
        protected: impl Fn(&PeerId) -> bool,
    ) -> Vec<PeerId> {
        self.asked.retain(|_, at| now.duration_since(*at) < recent);
        let mut peers: Vec<PeerId> = self.dialed.keys().copied().collect();
        peers.extend(
            self.accepted
                .keys()
                .filter(|p| !self.dialed.contains_key(p)),
        );
        if peers.len() <= marks.high {
            return Vec::new();
        }
        let excess = peers.len().saturating_sub(marks.low);
        // Only peers this node dialed get the grace: a stranger's connection must not buy
        // itself time (peers that dial in and join the gossip mesh are `protected`).
        let new = |p: &PeerId| {
            self.dialed.contains_key(p)
                && self
                    .since
                    .get(p)
                    .is_some_and(|at| now.duration_since(*at) < marks.grace)
        };
        let mut idle: Vec<PeerId> = peers
            .into_iter()
            .filter(|p| {
                !self.asked.contains_key(p)
                    && !self.answering.contains_key(p)
                    && !protected(p)
                    && !new(p)
            })
            .collect();
        // Inbound-only peers (false) before peers this node chose (true).
        idle.sort_by_key(|p| self.dialed.contains_key(p));
        idle.truncate(excess);
        idle
    }
}

/// A node's secret seed for [`spread_picks`], from its identity key: an ed25519 signature is
/// deterministic and nobody else can make it, so no one can grind peer ids that this node ranks
/// first.
pub fn dial_seed(key: &libp2p::identity::Keypair) -> [u8; 32] {
    let signature = key.sign(b"conclave: the order in which this node dials peers");
    // Keys that cannot sign (none Conclave uses) fall back to a public order.
    let material = signature.unwrap_or_else(|_| key.public().encode_protobuf());
    *blake3::hash(&material).as_bytes()
}

/// `n` of `candidates` to dial in round `round`, in an order of this node's own (a keyed hash
/// under its secret `seed`) without a random source. Every node sees about the same list of
/// live peers; picking by position in it sent every node to the same few, which then trimmed
/// most of them.
pub fn spread_picks(
    seed: &[u8; 32],
    round: u64,
    mut candidates: Vec<PeerId>,
    n: usize,
) -> Vec<PeerId> {
    let rank = |p: &PeerId| {
        let mut h = blake3::Hasher::new_keyed(seed);
        h.update(&round.to_le_bytes());
        h.update(&p.to_bytes());
        *h.finalize().as_bytes()
    };
    candidates.sort_by_cached_key(rank);
    candidates.truncate(n);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 200 nodes that see the same 200 live peers and each pick 12 spread their dials: no peer is
    /// picked by more than the high watermark's worth of nodes (picking by list position sent
    /// all 200 to the same 12).
    #[test]
    fn nodes_seeing_the_same_peers_dial_different_ones() {
        let keys: Vec<libp2p::identity::Keypair> = (0..200u8)
            .map(|i| libp2p::identity::Keypair::ed25519_from_bytes([i; 32]).unwrap())
            .collect();
        let nodes: Vec<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
        let mut picked: HashMap<PeerId, usize> = HashMap::new();
        for (key, me) in keys.iter().zip(&nodes) {
            let others: Vec<PeerId> = nodes.iter().filter(|p| *p != me).copied().collect();
            let picks = spread_picks(&dial_seed(key), 1, others, 12);
            assert_eq!(picks.len(), 12);
            assert!(!picks.contains(me));
            for p in picks {
                *picked.entry(p).or_default() += 1;
            }
        }
        let most = picked.values().max().copied().unwrap_or_default();
        assert!(
            most < Watermarks::for_target(12).high,
            "a peer picked {most} times"
        );
        // Another round picks differently; the seed is the key's own.
        let seed = dial_seed(&keys[0]);
        let again = spread_picks(&seed, 2, nodes[1..].to_vec(), 12);
        assert_ne!(again, spread_picks(&seed, 1, nodes[1..].to_vec(), 12));
        assert_eq!(seed, dial_seed(&keys[0]));
        assert_ne!(seed, dial_seed(&keys[1]));
    }

    fn marks(high: usize, low: usize) -> Watermarks {
        Watermarks {
            high,
            low,
            grace: Duration::from_secs(20),
        }
    }

    /// Unused peers go, strangers that connected first; peers asked lately, being answered,
    /// protected or just dialed stay, however many strangers connect (a stranger that just
    /// connected gets no grace).
    #[test]
    fn unused_inbound_peers_go_first_and_peers_in_use_stay() {
        let mut c = Connections::default();
        let now = Instant::now();
        let long_ago = now - Duration::from_secs(60);
        let chosen: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let strangers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        for p in &chosen {
            c.opened(*p, true, long_ago);
        }
        for p in &strangers {
            c.opened(*p, false, long_ago);
        }
        let just = now - Duration::from_secs(5);
        let newcomer = PeerId::random();
        c.opened(newcomer, true, just);
        let fresh_stranger = PeerId::random();
        c.opened(fresh_stranger, false, just);
        assert_eq!(c.dialed(), 5);
        c.asked(chosen[0], now);
        c.answering(chosen[1]);
        let session = chosen[2];
        let minute = Duration::from_secs(60);
        // 12 peers: nothing goes until there are more than `high`.
        assert!(c.to_close(marks(12, 4), now, minute, |_| false).is_empty());
        let closed = c.to_close(marks(11, 5), now, minute, |p| *p == session);
        assert_eq!(closed.len(), 7);
        assert!(closed.contains(&fresh_stranger), "{closed:?}");
        assert!(
            closed
                .iter()
                .all(|p| strangers.contains(p) || *p == fresh_stranger),
            "{closed:?}"
        );
        // Beyond the strangers, only the unused chosen peer goes; the newcomer stays.
        let closed = c.to_close(marks(3, 2), now, minute, |p| *p == session);
        assert_eq!(closed.len(), 8);
        assert!(closed.contains(&chosen[3]));
        assert!(!closed.contains(&chosen[0]) && !closed.contains(&chosen[1]));
        assert!(!closed.contains(&session) && !closed.contains(&newcomer));
        // A request long ago no longer counts; an answer given does not either; the newcomer
        // is past its grace.
        c.answered(&chosen[1]);
        let later = now + Duration::from_secs(61);
        let closed = c.to_close(marks(2, 1), later, minute, |p| *p == session);
        assert!(closed.contains(&chosen[0]) && closed.contains(&chosen[1]));
        assert!(closed.contains(&newcomer));
        for p in strangers.iter().chain([&fresh_stranger]) {
            c.closed(p, false);
        }
        c.closed(&newcomer, true);
        assert!(c.to_close(marks(4, 4), later, minute, |_| false).is_empty());
    }
}
