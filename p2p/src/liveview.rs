//! The live view of the mesh: who sent a heartbeat recently. Sans-IO: time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::messages::Heartbeat;

/// A peer seen alive recently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePeer {
    pub peer: PeerId,
    pub chain_address: [u8; 20],
    pub version: String,
    pub free_capacity: u32,
    pub last_seen: Instant,
}

/// Peers whose last heartbeat is younger than `ttl`.
#[derive(Debug)]
pub struct LiveView {
    ttl: Duration,
    peers: HashMap<PeerId, LivePeer>,
}

impl LiveView {
    pub fn new(ttl: Duration) -> Self {
        LiveView {
            ttl,
            peers: HashMap::new(),
        }
    }

    /// Records a validated heartbeat from `peer`; true if the peer was not live before.
    pub fn observe(&mut self, peer: PeerId, hb: &Heartbeat, now: Instant) -> bool {
        let live = LivePeer {
            peer,
            chain_address: hb.chain_address,
            version: hb.version.clone(),
            free_capacity: hb.free_capacity,
            last_seen: now,
        };
        self.peers.insert(peer, live).is_none()
    }

    /// Drops peers silent for longer than the ttl and returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let ttl = self.ttl;
        let gone: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| now.duration_since(p.last_seen) > ttl)
            .map(|p| p.peer)
            .collect();
        for p in &gone {
            self.peers.remove(p);
        }
        gone
    }

    /// The live peers, ordered by peer id.
    pub fn peers(&self) -> Vec<LivePeer> {
        let mut v: Vec<LivePeer> = self.peers.values().cloned().collect();
        v.sort_by_key(|p| p.peer);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_expire_after_the_ttl() {
        let mut view = LiveView::new(Duration::from_secs(5));
        let (a, b) = (PeerId::random(), PeerId::random());
        let hb = Heartbeat {
            peer_id: vec![],
            chain_address: [0; 20],
            version: "v".into(),
            free_capacity: 1,
            sent_at_ms: 0,
        };
        let t0 = Instant::now();
        assert!(view.observe(a, &hb, t0));
        assert!(view.observe(b, &hb, t0 + Duration::from_secs(6)));
        assert!(!view.observe(a, &hb, t0 + Duration::from_secs(4)));
        assert_eq!(
            view.expire(t0 + Duration::from_secs(8)),
            Vec::<PeerId>::new()
        );
        assert_eq!(view.expire(t0 + Duration::from_secs(10)), vec![a]);
        assert_eq!(view.peers().len(), 1);
        assert_eq!(view.peers()[0].peer, b);
    }
}
