//! The transport an MPC session runs over: ordered, reliable delivery of framed bytes between each
//! pair of parties, authenticated so a frame from party j really is from j. The p2p crate implements
//! it over libp2p streams; [`MemoryTransport`] connects parties in one process.

use std::future::Future;

use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::share::PartyId;

/// Why a transport could not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("no such peer {0}")]
    UnknownPeer(PartyId),
    #[error("the channel to party {0} is closed")]
    Closed(PartyId),
    #[error("transport failure with party {peer}: {reason}")]
    Io { peer: PartyId, reason: String },
}

/// Framed, ordered, authenticated point-to-point channels to every other party of a session.
pub trait Transport: Send {
    /// This party's index.
    fn party(&self) -> PartyId;
    /// The number of parties.
    fn parties(&self) -> usize;
    /// Queues `frame` for party `to`. Must not wait for the peer to read it.
    fn send(
        &mut self,
        to: PartyId,
        frame: Bytes,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// The next frame from party `from`, in the order it was sent.
    fn recv(&mut self, from: PartyId)
    -> impl Future<Output = Result<Bytes, TransportError>> + Send;
}

/// In-process channels between parties; frames are passed by reference count, never copied.
pub struct MemoryTransport {
    party: PartyId,
    to: Vec<Option<UnboundedSender<Bytes>>>,
    from: Vec<Option<UnboundedReceiver<Bytes>>>,
}

impl MemoryTransport {
    /// Fully connected endpoints for `parties` parties; endpoint i is party i.
    pub fn mesh(parties: usize) -> Vec<MemoryTransport> {
        let mut ends: Vec<MemoryTransport> = (0..parties)
            .map(|party| MemoryTransport {
                party,
                to: (0..parties).map(|_| None).collect(),
                from: (0..parties).map(|_| None).collect(),
            })
            .collect();
        for i in 0..parties {
            for j in 0..parties {
                if i != j {
                    let (tx, rx) = unbounded_channel();
                    ends[i].to[j] = Some(tx);
                    ends[j].from[i] = Some(rx);
                }
            }
        }
        ends
    }
}

impl Transport for MemoryTransport {
    fn party(&self) -> PartyId {
        self.party
    }

    fn parties(&self) -> usize {
        self.to.len()
    }

    async fn send(&mut self, to: PartyId, frame: Bytes) -> Result<(), TransportError> {
        let tx = self
            .to
            .get(to)
            .and_then(Option::as_ref)
            .ok_or(TransportError::UnknownPeer(to))?;
        tx.send(frame).map_err(|_| TransportError::Closed(to))
    }

    async fn recv(&mut self, from: PartyId) -> Result<Bytes, TransportError> {
        let rx = self
            .from
            .get_mut(from)
            .and_then(Option::as_mut)
            .ok_or(TransportError::UnknownPeer(from))?;
        rx.recv().await.ok_or(TransportError::Closed(from))
    }
}
