//! Which connections a node keeps (sans-IO: the swarm task reports events and acts on answers).
//!
//! A node dials peers on its own only up to a target, counting the connections *it* dialed
//! (inbound ones are others' choice: a crowd of strangers connecting must not stop it from
//! choosing its own peers). Gossipsub holds a stream open on every connection, so connections
//! never fall idle by themselves; beyond twice the target, unused ones are closed, inbound-only
//! peers first. A peer is in use while this node asked it something within the request timeout,
//! or is answering one of its requests, or shares an MPC session (the caller's `protected`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

#[derive(Debug, Default)]
pub struct Connections {
    /// Open connections per peer that this node dialed.
    dialed: HashMap<PeerId, usize>,
    /// Open connections per peer that the peer dialed.
    accepted: HashMap<PeerId, usize>,
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
    pub fn opened(&mut self, peer: PeerId, dialed: bool) {
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

    /// The peers to disconnect so that at most `limit` stay, among those not in use (asked
    /// within `recent`, being answered, or `protected`): inbound-only peers first.
    pub fn to_close(
        &mut self,
        limit: usize,
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
        let Some(excess) = peers.len().checked_sub(limit).filter(|e| *e > 0) else {
            return Vec::new();
        };
        let mut idle: Vec<PeerId> = peers
            .into_iter()
            .filter(|p| {
                !self.asked.contains_key(p) && !self.answering.contains_key(p) && !protected(p)
            })
            .collect();
        // Inbound-only peers (false) before peers this node chose (true).
        idle.sort_by_key(|p| self.dialed.contains_key(p));
        idle.truncate(excess);
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unused peers go, strangers that connected first; peers asked lately, being answered or
    /// protected stay, however many strangers connect.
    #[test]
    fn unused_inbound_peers_go_first_and_peers_in_use_stay() {
        let mut c = Connections::default();
        let now = Instant::now();
        let chosen: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let strangers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        for p in &chosen {
            c.opened(*p, true);
        }
        for p in &strangers {
            c.opened(*p, false);
        }
        assert_eq!(c.dialed(), 4);
        c.asked(chosen[0], now);
        c.answering(chosen[1]);
        let session = chosen[2];
        let closed = c.to_close(4, now, Duration::from_secs(60), |p| *p == session);
        assert_eq!(closed.len(), 6);
        assert!(closed.iter().all(|p| strangers.contains(p)), "{closed:?}");
        // Beyond the strangers, only the unused chosen peer goes.
        let closed = c.to_close(2, now, Duration::from_secs(60), |p| *p == session);
        assert_eq!(closed.len(), 7);
        assert!(closed.contains(&chosen[3]));
        assert!(!closed.contains(&chosen[0]) && !closed.contains(&chosen[1]));
        assert!(!closed.contains(&session));
        // A request long ago no longer counts; an answer given does not either.
        c.answered(&chosen[1]);
        let later = now + Duration::from_secs(61);
        let closed = c.to_close(1, later, Duration::from_secs(60), |p| *p == session);
        assert!(closed.contains(&chosen[0]) && closed.contains(&chosen[1]));
        for p in &strangers {
            c.closed(p, false);
        }
        assert!(
            c.to_close(4, later, Duration::from_secs(60), |_| false)
                .is_empty()
        );
    }
}
