//! Direct MPC channels: one libp2p stream per pair of parties per session, carrying
//! length-prefixed, size-limited frames. [`P2pTransport`] implements the MPC crate's
//! [`Transport`], so the same MPC code runs over the network as in memory.
//!
//! For a pair (i, j) with i < j, party i opens the stream and writes the session id; party j's
//! acceptor reads it and hands the stream to whoever waits for that session and peer. Streams
//! that arrive before anyone waits are parked for a while, then dropped. Party j answers one
//! acknowledgement byte once its session has taken the stream, and party i opens again while
//! none comes: libp2p's stream acceptor drops a stream that arrives while another is unclaimed,
//! the handshake and parking limits drop streams, and a parked stream expires when its party
//! is late. Without it the opener learned of none of these, and its party waited for a stream
//! that never came.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use conclave_mpc::PartyId;
use conclave_mpc::transport::{Transport, TransportError};
use conclave_mpc::wire::SessionId;
use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

/// The MPC stream protocol.
pub const MPC_PROTOCOL: StreamProtocol = StreamProtocol::new("/conclave/2/mpc");
/// The byte a party answers once its session has taken a stream.
const ACK: u8 = 0xA5;
/// How long an opener has to send its session id, and a parked stream waits to be claimed
/// (anyone may park streams, so they stay briefly).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause between two attempts at opening a stream.
const MAX_BACKOFF: Duration = Duration::from_millis(1600);
/// How long a party waits for another's stream: members hear of a task from its coordinator
/// seconds apart on a busy mesh (at 200 simulated nodes on two cores, more than 10 s).
const PARTY_WAIT: Duration = Duration::from_secs(30);
/// Incoming streams waiting for their session id at once; more are closed unread. Anyone may
/// open streams, so each waiting one is memory a stranger could claim.
pub const MAX_HANDSHAKES: usize = 256;
/// Of which one peer may hold this many.
pub const MAX_HANDSHAKES_PER_PEER: usize = 16;
/// Streams parked (waiting to be claimed by a session) at once, and per peer: a stream for a
/// session this node never joins stays until [`HANDSHAKE_TIMEOUT`]; beyond these it is closed.
pub const MAX_PARKED: usize = 1024;
pub const MAX_PARKED_PER_PEER: usize = 64;

/// Why channels could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("this node is not among the session's parties")]
    NotAParty,
    #[error("could not open a stream to {peer}: {reason}")]
    Open { peer: PeerId, reason: String },
    #[error("party {peer} did not open its stream in time")]
    Timeout { peer: PeerId },
}

type Key = (SessionId, PeerId);

#[derive(Default)]
struct Rendezvous {
    /// Streams waiting for their session, each counted as the peer's session meanwhile.
    parked: HashMap<Key, (Stream, Instant, PeerPermit)>,
    waiting: HashMap<Key, oneshot::Sender<Stream>>,
}

impl Rendezvous {
    /// Drops parked streams past their time, and waits nobody waits on any more (a session
    /// whose setup failed on another pair drops its other claims mid-wait).
    fn sweep(&mut self) {
        let now = Instant::now();
        self.parked
            .retain(|_, (_, at, _)| now.duration_since(*at) < HANDSHAKE_TIMEOUT);
        self.waiting.retain(|_, waiter| !waiter.is_closed());
    }
}

/// Counts per peer (handshakes under way, sessions open), shared with whoever reads them.
pub type PeerCounts = Arc<Mutex<HashMap<PeerId, usize>>>;

/// One count of a peer's (at most `limit`), given back when dropped.
struct PeerPermit {
    counts: PeerCounts,
    peer: PeerId,
}

impl PeerPermit {
    fn take(counts: &PeerCounts, peer: PeerId, limit: usize) -> Option<PeerPermit> {
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = c.entry(peer).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(PeerPermit {
            counts: counts.clone(),
            peer,
        })
    }
}

impl Drop for PeerPermit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = c.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.peer);
            }
        }
    }
}

/// Opens and accepts MPC streams for sessions.
#[derive(Clone)]
pub struct MpcChannels {
    control: libp2p_stream::Control,
    me: PeerId,
    rendezvous: Arc<Mutex<Rendezvous>>,
    tamper: Option<Arc<dyn FrameTamper>>,
    /// Open sessions per peer: the swarm never closes a connection a session uses.
    sessions: PeerCounts,
    /// Asks the swarm to connect to a peer before a stream is opened to it. libp2p-stream dials
    /// an unconnected peer itself, but its dial queue holds one request and drops the next that
    /// comes meanwhile: a party opening streams to two unconnected peers at once waited out its
    /// open for one of them.
    connect: mpsc::Sender<PeerId>,
}

/// A simulated adversary's hand on the MPC frames its own node sends (`conclave-sim`'s
/// adversarial nodes; see [`crate::config::NetworkConfig::tamper`]). Honest nodes have none.
pub trait FrameTamper: Send + Sync + std::fmt::Debug + 'static {
    /// The frame to send to party `to` in place of `frame`, or `None` to close the channel
    /// to that party instead (an abort).
    fn outgoing(&self, to: PartyId, frame: Bytes) -> Option<Bytes>;
}

impl MpcChannels {
    /// Registers the MPC protocol on `control` and starts accepting streams; `tamper` is a
    /// simulated adversary's hand on what this node sends (`None` on every real node).
    pub fn start(
        mut control: libp2p_stream::Control,
        me: PeerId,
        tamper: Option<Arc<dyn FrameTamper>>,
        connect: mpsc::Sender<PeerId>,
    ) -> Self {
        let rendezvous = Arc::new(Mutex::new(Rendezvous::default()));
        let mut incoming = control
            .accept(MPC_PROTOCOL)
            .expect("the MPC protocol is registered once");
        let shared = rendezvous.clone();
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let per_peer: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
        let sessions = PeerCounts::default();
        let counted = sessions.clone();
        tokio::spawn(async move {
            while let Some((peer, mut stream)) = incoming.next().await {
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    continue;
                };
                let Some(peer_permit) = PeerPermit::take(&per_peer, peer, MAX_HANDSHAKES_PER_PEER)
                else {
                    continue;
                };
                let shared = shared.clone();
                // The connection is in use from the first byte: the upkeep must not close it
                // under a stream waiting for its session.
                let in_use = PeerPermit::take(&counted, peer, usize::MAX);
                tokio::spawn(async move {
                    let _permits = (permit, peer_permit);
                    let mut id = [0u8; 16];
                    let read =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut id)).await;
                    if !matches!(read, Ok(Ok(()))) {
                        return;
                    }
                    let key = (SessionId(id), peer);
                    let mut r = shared.lock().unwrap_or_else(|p| p.into_inner());
                    r.sweep();
                    match r.waiting.remove(&key) {
                        Some(waiter) => {
                            let _ = waiter.send(stream);
                        }
                        None => {
                            let of_peer = r.parked.keys().filter(|(_, p)| *p == peer).count();
                            if r.parked.len() < MAX_PARKED
                                && of_peer < MAX_PARKED_PER_PEER
                                && let Some(in_use) = in_use
                            {
                                r.parked.insert(key, (stream, Instant::now(), in_use));
                            }
                        }
                    }
                });
            }
        });
        MpcChannels {
            control,
            me,
            rendezvous,
            tamper,
            sessions,
            connect,
        }
    }

    /// Open sessions per peer (read by the swarm's connection upkeep).
    pub fn sessions(&self) -> PeerCounts {
        self.sessions.clone()
    }

    /// This node's peer id.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// Streams parked now, waiting to be claimed by a session.
    pub fn parked(&self) -> usize {
        self.rendezvous
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .parked
            .len()
    }

    /// Channels to every other party of `session`; `parties[i]` is party i. Frames longer than
    /// `max_frame` are refused on receipt.
    pub async fn connect(
        &self,
        session: SessionId,
        parties: &[PeerId],
        max_frame: usize,
    ) -> Result<P2pTransport, ChannelError> {
        let me = parties
            .iter()
            .position(|p| *p == self.me)
            .ok_or(ChannelError::NotAParty)?;
        let mut transport = P2pTransport {
            _in_use: parties
                .iter()
                .filter(|p| **p != self.me)
                .filter_map(|p| PeerPermit::take(&self.sessions, *p, usize::MAX))
                .collect(),
            party: me,
            writers: (0..parties.len()).map(|_| None).collect(),
            readers: (0..parties.len()).map(|_| None).collect(),
            max_frame,
            tamper: self.tamper.clone(),
        };
        // Every pair at once: one at a time, a party that started late held up each later
        // pair, and the waits added up past the other parties' patience.
        let pairs =
            parties
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != me)
                .map(|(j, &peer)| async move {
                    let stream = if me < j {
                        self.open(session, peer).await?
                    } else {
                        self.claim((session, peer)).await?
                    };
                    Ok::<_, ChannelError>((j, peer, stream))
                });
        for (j, peer, stream) in futures::future::try_join_all(pairs).await? {
            let (read, write) = stream.split();
            let in_use = PeerPermit::take(&self.sessions, peer, usize::MAX);
            transport.writers[j] = Some(spawn_writer(write, in_use));
            transport.readers[j] = Some(read);
        }
        Ok(transport)
    }

    /// Opens the stream to `peer`, sends the session id and waits for the party's
    /// acknowledgement, opening again when the stream ends without one (dropped unread, or
    /// parked past its time while the party was late). A connection that libp2p is just
    /// replacing (two nodes dialled each other at once) can refuse a new stream too. All
    /// attempts together wait at most [`PARTY_WAIT`]: a party that never answers holds this
    /// session no longer than one that never opens.
    async fn open(&self, session: SessionId, peer: PeerId) -> Result<Stream, ChannelError> {
        let mut last = String::from("no acknowledgement in time");
        let attempts = async {
            // Until the deadline: a failure often comes back at once (a dial that failed, a
            // stream dropped at a full table), and the party may be a few seconds late.
            let mut backoff = Duration::ZERO;
            loop {
                tokio::time::sleep(backoff).await;
                match self.open_once(session, peer).await {
                    Ok(s) => return s,
                    Err(e) => last = e,
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(200), MAX_BACKOFF);
            }
        };
        tokio::time::timeout(PARTY_WAIT, attempts)
            .await
            .map_err(|_| ChannelError::Open { peer, reason: last })
    }

    /// One attempt of [`MpcChannels::open`].
    async fn open_once(&self, session: SessionId, peer: PeerId) -> Result<Stream, String> {
        // A full queue drops the request: the next attempt asks again.
        let _ = self.connect.try_send(peer);
        let mut control = self.control.clone();
        let mut s =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, control.open_stream(peer, MPC_PROTOCOL))
                .await
                .map_err(|_| "opening the stream took too long".to_string())?
                .map_err(|e| e.to_string())?;
        s.write_all(&session.0).await.map_err(|e| e.to_string())?;
        s.flush().await.map_err(|e| e.to_string())?;
        let mut ack = [0u8];
        s.read_exact(&mut ack)
            .await
            .map_err(|e| format!("no acknowledgement: {e}"))?;
        if ack[0] != ACK {
            return Err(format!("acknowledged with {:#04x}", ack[0]));
        }
        Ok(s)
    }

    /// One attempt at opening `session`'s stream to `peer`, without the retries of
    /// [`MpcChannels::connect`] (tests only: a retry hides a dropped dial).
    #[cfg(feature = "test-support")]
    pub async fn open_one_attempt(&self, session: SessionId, peer: PeerId) -> Result<(), String> {
        self.open_once(session, peer).await.map(drop)
    }

    /// Opens an MPC stream to `peer` and sends nothing, as a stranger squatting handshake slots
    /// would (tests only).
    #[cfg(feature = "test-support")]
    pub async fn open_silent(&self, peer: PeerId) -> Result<Stream, ChannelError> {
        self.control
            .clone()
            .open_stream(peer, MPC_PROTOCOL)
            .await
            .map_err(|e| ChannelError::Open {
                peer,
                reason: e.to_string(),
            })
    }

    /// Waits for `key`'s stream and acknowledges it; a stream whose opener is gone by then is
    /// not taken, and the wait goes on for its next attempt.
    async fn claim(&self, key: Key) -> Result<Stream, ChannelError> {
        let deadline = tokio::time::Instant::now() + PARTY_WAIT;
        loop {
            let mut stream = self.next_stream(key, deadline).await?;
            let ack = async {
                stream.write_all(&[ACK]).await?;
                stream.flush().await
            };
            // Not cut at `deadline`: a byte queued and then dropped would tell the opener its
            // stream was taken while this side gave up.
            if matches!(
                tokio::time::timeout(HANDSHAKE_TIMEOUT, ack).await,
                Ok(Ok(()))
            ) {
                return Ok(stream);
            }
        }
    }

    /// `key`'s parked stream, or the next one to arrive before `deadline`.
    async fn next_stream(
        &self,
        key: Key,
        deadline: tokio::time::Instant,
    ) -> Result<Stream, ChannelError> {
        let rx = {
            let mut r = self.rendezvous.lock().unwrap_or_else(|p| p.into_inner());
            r.sweep();
            if let Some((stream, _, _)) = r.parked.remove(&key) {
                return Ok(stream);
            }
            let (tx, rx) = oneshot::channel();
            r.waiting.insert(key, tx);
            rx
        };
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(stream)) => Ok(stream),
            _ => {
                // Forgets this wait (its receiver is gone now) and any other stale entry.
                self.rendezvous
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .sweep();
                Err(ChannelError::Timeout { peer: key.1 })
            }
        }
    }
}

/// Writes queued frames (length-prefixed) in order, so sending never waits for the peer.
/// `in_use` keeps the connection counted as in use until the last frame is flushed.
fn spawn_writer(
    mut write: WriteHalf<Stream>,
    in_use: Option<PeerPermit>,
) -> mpsc::UnboundedSender<Bytes> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let _in_use = in_use;
        while let Some(frame) = rx.recv().await {
            let len = (frame.len() as u32).to_le_bytes();
            if write.write_all(&len).await.is_err() || write.write_all(&frame).await.is_err() {
                return;
            }
            if rx.is_empty() && write.flush().await.is_err() {
                return;
            }
        }
        let _ = write.close().await;
    });
    tx
}

/// One party's MPC channels over libp2p streams.
pub struct P2pTransport {
    party: PartyId,
    writers: Vec<Option<mpsc::UnboundedSender<Bytes>>>,
    readers: Vec<Option<ReadHalf<Stream>>>,
    max_frame: usize,
    tamper: Option<Arc<dyn FrameTamper>>,
    /// Marks the other parties' connections as in use while the session lives.
    _in_use: Vec<PeerPermit>,
}

impl Transport for P2pTransport {
    fn party(&self) -> PartyId {
        self.party
    }

    fn parties(&self) -> usize {
        self.writers.len()
    }

    async fn send(&mut self, to: PartyId, frame: Bytes) -> Result<(), TransportError> {
        let frame = match &self.tamper {
            None => frame,
            Some(tamper) => match tamper.outgoing(to, frame) {
                Some(frame) => frame,
                None => {
                    if let Some(slot) = self.writers.get_mut(to) {
                        *slot = None;
                    }
                    return Ok(());
                }
            },
        };
        let w = self
            .writers
            .get(to)
            .and_then(Option::as_ref)
            .ok_or(TransportError::UnknownPeer(to))?;
        w.send(frame).map_err(|_| TransportError::Closed(to))
    }

    async fn recv(&mut self, from: PartyId) -> Result<Bytes, TransportError> {
        let max = self.max_frame;
        let r = self
            .readers
            .get_mut(from)
            .and_then(Option::as_mut)
            .ok_or(TransportError::UnknownPeer(from))?;
        let io = |e: std::io::Error| TransportError::Io {
            peer: from,
            reason: e.to_string(),
        };
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await.map_err(io)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > max {
            return Err(TransportError::Io {
                peer: from,
                reason: format!("frame of {len} bytes exceeds the limit of {max}"),
            });
        }
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf).await.map_err(io)?;
        Ok(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim dropped mid-wait (its session failed on another pair) leaves no entry behind.
    #[test]
    fn a_sweep_forgets_waits_nobody_waits_on() {
        let mut r = Rendezvous::default();
        let (gone, dropped) = oneshot::channel();
        let (live, _waiting) = oneshot::channel();
        let (a, b) = (PeerId::random(), PeerId::random());
        r.waiting.insert((SessionId([1; 16]), a), gone);
        r.waiting.insert((SessionId([1; 16]), b), live);
        drop(dropped);
        r.sweep();
        assert_eq!(
            r.waiting.keys().collect::<Vec<_>>(),
            vec![&(SessionId([1; 16]), b)]
        );
    }
}
