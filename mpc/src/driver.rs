//! The async driver: runs any sans-IO [`Protocol`] (an online [`Session`], a preprocessing batch)
//! over a [`Transport`] until it ends.

use bytes::Bytes;

use crate::field::Fp;
use crate::session::{Abort, Session, Status};
use crate::share::PartyId;
use crate::transport::{Transport, TransportError};

/// What a party sends in one round.
pub enum Outgoing {
    /// The same frame to every other party.
    Broadcast(Bytes),
    /// One frame per party, indexed by party id (this party's own slot is ignored).
    PerPeer(Vec<Bytes>),
}

/// A round-based protocol: each round, send [`Protocol::outgoing`] and feed every other party's
/// frame to [`Protocol::incoming`]; the last frame of the last round yields the output.
pub trait Protocol {
    type Output;
    fn outgoing(&mut self) -> Result<Outgoing, Abort>;
    fn incoming(&mut self, from: PartyId, bytes: &[u8]) -> Result<Option<Self::Output>, Abort>;
    /// Aborts from outside (a transport failure): the protocol wipes its secrets.
    fn abort(&mut self, reason: Abort) -> Abort;
}

impl Protocol for Session {
    type Output = Vec<Fp>;

    fn outgoing(&mut self) -> Result<Outgoing, Abort> {
        Session::outgoing(self).map(Outgoing::Broadcast)
    }

    fn incoming(&mut self, from: PartyId, bytes: &[u8]) -> Result<Option<Vec<Fp>>, Abort> {
        Ok(match Session::incoming(self, from, bytes)? {
            Status::Done(out) => Some(out),
            Status::Continue => None,
        })
    }

    fn abort(&mut self, reason: Abort) -> Abort {
        Session::abort(self, reason)
    }
}

/// A session whose output also carries the shares it was asked to keep.
pub struct Keeping(pub Session);

impl Protocol for Keeping {
    type Output = (Vec<Fp>, Vec<crate::share::Share>);

    fn outgoing(&mut self) -> Result<Outgoing, Abort> {
        Protocol::outgoing(&mut self.0)
    }

    fn incoming(&mut self, from: PartyId, bytes: &[u8]) -> Result<Option<Self::Output>, Abort> {
        Ok(Protocol::incoming(&mut self.0, from, bytes)?.map(|out| (out, self.0.kept_shares())))
    }

    fn abort(&mut self, reason: Abort) -> Abort {
        self.0.abort(reason)
    }
}

/// Runs `protocol` to its end over `transport`: its output, or the reason it aborted.
pub async fn run<P: Protocol, T: Transport>(
    mut protocol: P,
    transport: &mut T,
) -> Result<P::Output, Abort> {
    let me = transport.party();
    let peers: Vec<usize> = (0..transport.parties()).filter(|&j| j != me).collect();
    loop {
        let out = protocol.outgoing()?;
        // A failed send is reported only after this round's frames are read: if the peer hung up
        // because it detected cheating, the cheating is what this party should detect too.
        let mut send_failure = None;
        for &j in &peers {
            let frame = match &out {
                Outgoing::Broadcast(f) => f.clone(),
                Outgoing::PerPeer(frames) => frames[j].clone(),
            };
            if let Err(e) = transport.send(j, frame).await {
                send_failure.get_or_insert(transport_abort(j, e));
            }
        }
        for &j in &peers {
            let bytes = match transport.recv(j).await {
                Ok(b) => b,
                Err(e) => return Err(protocol.abort(transport_abort(j, e))),
            };
            if let Some(output) = protocol.incoming(j, &bytes)? {
                return Ok(output);
            }
        }
        if let Some(failure) = send_failure {
            return Err(protocol.abort(failure));
        }
    }
}

fn transport_abort(peer: usize, e: TransportError) -> Abort {
    Abort::Transport {
        peer,
        reason: e.to_string(),
    }
}
