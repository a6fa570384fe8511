//! The async driver: runs any sans-IO [`Protocol`] (an online [`Session`], a preprocessing batch)
//! over a [`Transport`] until it ends, with a deadline on every receive and on every wait for
//! another MAC check, so a silent peer ends a run with a typed abort instead of stalling it.

use std::time::Duration;

use bytes::Bytes;

use crate::field::Fp;
use crate::session::{Abort, Session, Status};
use crate::share::{MacKeyShare, PartyId};
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
    /// The key whose other MAC checks must resolve before this protocol can go on, if it waits.
    fn blocked_on(&self) -> Option<MacKeyShare> {
        None
    }
    /// Retries what waited ([`Protocol::blocked_on`]); the output if that ended the protocol.
    fn resume(&mut self) -> Result<Option<Self::Output>, Abort> {
        Ok(None)
    }
}

/// How long a run waits for any one thing before it aborts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest wait for a peer's next frame, or for another MAC check under the same key.
    pub recv_deadline: Duration,
}

/// Generous enough for a large preprocessing batch on a slow machine.
pub const DEFAULT_RECV_DEADLINE: Duration = Duration::from_secs(120);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            recv_deadline: DEFAULT_RECV_DEADLINE,
        }
    }
}

impl Protocol for Session {
    type Output = Vec<Fp>;

    fn outgoing(&mut self) -> Result<Outgoing, Abort> {
        Session::outgoing(self).map(Outgoing::Broadcast)
    }

    fn incoming(&mut self, from: PartyId, bytes: &[u8]) -> Result<Option<Vec<Fp>>, Abort> {
        Ok(done(Session::incoming(self, from, bytes)?))
    }

    fn abort(&mut self, reason: Abort) -> Abort {
        Session::abort(self, reason)
    }

    fn blocked_on(&self) -> Option<MacKeyShare> {
        self.is_blocked().then(|| self.mac_key().clone())
    }

    fn resume(&mut self) -> Result<Option<Vec<Fp>>, Abort> {
        Ok(done(Session::resume(self)?))
    }
}

fn done(status: Status) -> Option<Vec<Fp>> {
    match status {
        Status::Done(out) => Some(out),
        Status::Continue | Status::Blocked => None,
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

    fn blocked_on(&self) -> Option<MacKeyShare> {
        Protocol::blocked_on(&self.0)
    }

    fn resume(&mut self) -> Result<Option<Self::Output>, Abort> {
        Ok(Protocol::resume(&mut self.0)?.map(|out| (out, self.0.kept_shares())))
    }
}

/// Runs `protocol` to its end over `transport` with the default [`Limits`]: its output, or the
/// reason it aborted.
pub async fn run<P: Protocol, T: Transport>(
    protocol: P,
    transport: &mut T,
) -> Result<P::Output, Abort> {
    run_with(protocol, transport, Limits::default()).await
}

/// [`run`] with explicit limits. A protocol dropped or aborted in the middle of a MAC check
/// leaves its key poisoned.
pub async fn run_with<P: Protocol, T: Transport>(
    mut protocol: P,
    transport: &mut T,
    limits: Limits,
) -> Result<P::Output, Abort> {
    let me = transport.party();
    let peers: Vec<usize> = (0..transport.parties()).filter(|&j| j != me).collect();
    let deadline = limits.recv_deadline;
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
            let bytes = match tokio::time::timeout(deadline, transport.recv(j)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(protocol.abort(transport_abort(j, e))),
                Err(_) => {
                    return Err(protocol.abort(Abort::Timeout {
                        waiting_for: Some(j),
                        after: deadline,
                    }));
                }
            };
            if let Some(output) = protocol.incoming(j, &bytes)? {
                return Ok(output);
            }
        }
        while let Some(key) = protocol.blocked_on() {
            let changed = key.changed();
            if let Some(output) = protocol.resume()? {
                return Ok(output);
            }
            if protocol.blocked_on().is_none() {
                break;
            }
            if tokio::time::timeout(deadline, changed).await.is_err() {
                return Err(protocol.abort(Abort::Timeout {
                    waiting_for: None,
                    after: deadline,
                }));
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
