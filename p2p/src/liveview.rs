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
    /// The sender's clock in its latest heartbeat: an older one (a replay) changes nothing.
    pub sent_at_ms: u64,
}

/// Most peers the view holds: heartbeats from fresh keys cannot grow it without bound. Peers
/// already live keep their place; newcomers wait for room.
pub const MAX_LIVE_PEERS: usize = 4096;

/// What a heartbeat did to the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// The peer was not live before.
    New,
    /// A live peer's newer heartbeat.
    Refreshed,
    /// Not newer than the peer's latest (a replay), or no room for a newcomer.
    Ignored,
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

    /// Records a validated heartbeat from `peer`.
    pub fn observe(&mut self, peer: PeerId, hb: &Heartbeat, now: Instant) -> Observed {
        let observed = match self.peers.get(&peer) {
            Some(known) if hb.sent_at_ms <= known.sent_at_ms => return Observed::Ignored,
            Some(_) => Observed::Refreshed,
            None if self.peers.len() >= MAX_LIVE_PEERS => return Observed::Ignored,
            None => Observed::New,
        };
        let live = LivePeer {
            peer,
            chain_address: hb.chain_address,
            version: hb.version.clone(),
            free_capacity: hb.free_capacity,
            last_seen: now,
            sent_at_ms: hb.sent_at_ms,
        };
        self.peers.insert(peer, live);
        observed
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

    fn beat(sent_at_ms: u64) -> Heartbeat {
        Heartbeat {
            peer_id: vec![],
            chain_address: [0; 20],
            version: "v".into(),
            free_capacity: 1,
            sent_at_ms,
            addresses: Vec::new(),
        }
    }

    #[test]
    fn peers_expire_after_the_ttl() {
        let mut view = LiveView::new(Duration::from_secs(5));
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert_eq!(view.observe(a, &beat(1), t0), Observed::New);
        assert_eq!(
            view.observe(b, &beat(1), t0 + Duration::from_secs(6)),
            Observed::New
        );
        assert_eq!(
            view.observe(a, &beat(2), t0 + Duration::from_secs(4)),
            Observed::Refreshed
        );
        assert_eq!(
            view.expire(t0 + Duration::from_secs(8)),
            Vec::<PeerId>::new()
        );
        assert_eq!(view.expire(t0 + Duration::from_secs(10)), vec![a]);
        assert_eq!(view.peers().len(), 1);
        assert_eq!(view.peers()[0].peer, b);
    }

    /// A replayed (not newer) heartbeat neither refreshes a peer nor changes what it said; a
    /// full view takes no newcomer but keeps refreshing the peers it holds.
    #[test]
    fn replays_are_ignored_and_the_view_is_bounded() {
        let mut view = LiveView::new(Duration::from_secs(5));
        let a = PeerId::random();
        let t0 = Instant::now();
        view.observe(a, &beat(10), t0);
        let later = t0 + Duration::from_secs(4);
        assert_eq!(view.observe(a, &beat(10), later), Observed::Ignored);
        assert_eq!(view.observe(a, &beat(9), later), Observed::Ignored);
        assert_eq!(view.peers()[0].last_seen, t0);
        for _ in 1..MAX_LIVE_PEERS {
            view.observe(PeerId::random(), &beat(1), t0);
        }
        assert_eq!(
            view.observe(PeerId::random(), &beat(1), t0),
            Observed::Ignored
        );
        assert_eq!(view.peers().len(), MAX_LIVE_PEERS);
        assert_eq!(view.observe(a, &beat(11), later), Observed::Refreshed);
    }
}
