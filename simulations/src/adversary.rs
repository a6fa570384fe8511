//! What the scenario's adversarial nodes do: they run the real node and protocol, with a hand
//! on the MPC frames they send (tamper, abort) or junk on gossip (spam). The trust model says
//! every such attempt ends in an abort or a rejected message, never in a wrong result.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use conclave_mpc::PartyId;
use conclave_p2p::channel::FrameTamper;
use conclave_p2p::messages::{GossipMessage, Heartbeat};

use crate::scenario::Behaviour;

/// Alters the last byte of every MPC frame it sends: a share, MAC, opening or OT message off
/// by a bit.
#[derive(Debug, Default)]
pub struct Tampering {
    pub frames: AtomicU64,
}

impl FrameTamper for Tampering {
    fn outgoing(&self, _to: PartyId, frame: Bytes) -> Option<Bytes> {
        self.frames.fetch_add(1, Ordering::Relaxed);
        let mut altered = frame.to_vec();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        Some(altered.into())
    }
}

/// Closes a channel on every [`ABORT_EVERY`]th frame it would send: an abort part-way through
/// a computation.
#[derive(Debug, Default)]
pub struct Aborting {
    pub frames: AtomicU64,
}

const ABORT_EVERY: u64 = 16;

impl FrameTamper for Aborting {
    fn outgoing(&self, _to: PartyId, frame: Bytes) -> Option<Bytes> {
        let n = self.frames.fetch_add(1, Ordering::Relaxed);
        (n % ABORT_EVERY != ABORT_EVERY - 1).then_some(frame)
    }
}

/// The frame tamper of an adversarial node with these behaviours (tampering wins over
/// aborting when both are asked for).
pub fn frame_tamper(behaviours: &[Behaviour]) -> Option<Arc<dyn FrameTamper>> {
    if behaviours.contains(&Behaviour::Tamper) {
        Some(Arc::new(Tampering::default()))
    } else if behaviours.contains(&Behaviour::Abort) {
        Some(Arc::new(Aborting::default()))
    } else {
        None
    }
}

/// Gossip junk per adversarial node and second.
pub const SPAM_PER_SEC: u64 = 20;

/// Publishes heartbeats in other peers' names from `network` until aborted: every receiver
/// must reject them (the signer is not the named peer) and lower the sender's score.
pub async fn spam_gossip(network: conclave_p2p::network::Network, victims: Vec<libp2p::PeerId>) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / SPAM_PER_SEC));
    let mut n = 0usize;
    loop {
        tick.tick().await;
        let Some(victim) = victims.get(n % victims.len().max(1)) else {
            return;
        };
        n += 1;
        let forged = GossipMessage::Heartbeat(Heartbeat {
            peer_id: victim.to_bytes(),
            chain_address: [0xad; 20],
            version: "spam".into(),
            free_capacity: u32::MAX,
            sent_at_ms: 0,
            addresses: Vec::new(),
        });
        let _ = network.publish(forged).await;
    }
}
