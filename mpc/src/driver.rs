//! The async driver: runs a sans-IO [`Session`] over a [`Transport`] until it ends.

use crate::field::Fp;
use crate::session::{Abort, Session, Status};
use crate::transport::{Transport, TransportError};

/// Runs `session` to its end: the checked outputs, or the reason it aborted. A transport failure
/// also aborts the session, so its secrets are wiped either way.
pub async fn run<T: Transport>(mut session: Session, transport: &mut T) -> Result<Vec<Fp>, Abort> {
    let me = transport.party();
    let peers: Vec<usize> = (0..transport.parties()).filter(|&j| j != me).collect();
    loop {
        let frame = session.outgoing()?;
        // A failed send is reported only after this round's frames are read: if the peer hung up
        // because it detected cheating, the cheating is what this party should detect too.
        let mut send_failure = None;
        for &j in &peers {
            if let Err(e) = transport.send(j, frame.clone()).await {
                send_failure.get_or_insert(transport_abort(j, e));
            }
        }
        for &j in &peers {
            let bytes = match transport.recv(j).await {
                Ok(b) => b,
                Err(e) => return Err(session.abort(transport_abort(j, e))),
            };
            if let Status::Done(outputs) = session.incoming(j, &bytes)? {
                return Ok(outputs);
            }
        }
        if let Some(failure) = send_failure {
            return Err(session.abort(failure));
        }
    }
}

fn transport_abort(peer: usize, e: TransportError) -> Abort {
    Abort::Transport {
        peer,
        reason: e.to_string(),
    }
}
