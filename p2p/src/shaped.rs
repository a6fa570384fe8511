//! Links between memory-transport nodes that a simulation shapes: latency, bandwidth, loss and
//! partitions, applied to the raw byte streams below Noise and Yamux, so every protocol above runs
//! unchanged.
//!
//! Each end of a connection delays what it *receives* from its peer by what the [`LinkModel`]
//! says for that direction; a cut link refuses dials and resets the connections across it. The
//! dialer first tells the listener its node's port (8 bytes), since the memory transport gives
//! the listener only an ephemeral dial port.

use std::collections::VecDeque;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::task::AtomicWaker;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, Transport};
use tokio::time::{Instant, Sleep};

/// How a chunk of bytes crosses the link from one node to another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crossing {
    /// Propagation delay of this chunk (a loss shows here as a retransmission delay: the
    /// streams are reliable, as TCP's are).
    pub latency: Duration,
    /// Time the chunk occupies the link (its size over the link's bandwidth).
    pub transmit: Duration,
}

/// A simulation's view of the links between nodes, named by their memory ports.
pub trait LinkModel: Send + Sync + 'static {
    /// How `bytes` sent from node `from` reach node `to` now, or `None` while the link is cut.
    fn cross(&self, from: u64, to: u64, bytes: usize) -> Option<Crossing>;
}

/// The link model shared by every node of a simulation, and the connections to wake when it
/// changes (a partition opening resets idle connections at once).
pub struct Links {
    model: Box<dyn LinkModel>,
    watchers: Mutex<Vec<Weak<AtomicWaker>>>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Links")
    }
}

impl Links {
    pub fn new(model: impl LinkModel) -> Arc<Links> {
        Arc::new(Links {
            model: Box::new(model),
            watchers: Mutex::new(Vec::new()),
        })
    }

    /// Makes every open connection look at its link again; call after cutting or healing links.
    pub fn changed(&self) {
        let mut watchers = self.watchers.lock().expect("links lock");
        watchers.retain(|w| match w.upgrade() {
            Some(waker) => {
                waker.wake();
                true
            }
            None => false,
        });
    }

    fn watch(&self) -> Arc<AtomicWaker> {
        let waker = Arc::new(AtomicWaker::new());
        let mut watchers = self.watchers.lock().expect("links lock");
        if watchers.len() >= watchers.capacity() {
            watchers.retain(|w| w.strong_count() > 0);
        }
        watchers.push(Arc::downgrade(&waker));
        waker
    }

    fn cross(&self, from: u64, to: u64, bytes: usize) -> Option<Crossing> {
        self.model.cross(from, to, bytes)
    }
}

/// The memory port of a `/memory/<port>` address.
pub fn memory_port(addr: &Multiaddr) -> Option<u64> {
    addr.iter().find_map(|p| match p {
        Protocol::Memory(port) => Some(port),
        _ => None,
    })
}

fn cut(from: u64, to: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        format!("the simulated link {from} → {to} is cut"),
    )
}

/// The memory transport of node `me` with its links shaped by `links`.
pub fn transport(
    links: Arc<Links>,
    me: u64,
) -> impl Transport<
    Output = Shaped<libp2p::core::transport::memory::Channel<Vec<u8>>>,
    Error = impl std::error::Error + Send + Sync + 'static,
    ListenerUpgrade = impl Send,
    Dial = impl Send,
> + Send
+ Unpin
+ 'static {
    libp2p::core::transport::MemoryTransport::default().and_then(move |mut channel, point| {
        let links = links.clone();
        async move {
            let peer = match &point {
                ConnectedPoint::Dialer { address, .. } => {
                    let peer = memory_port(address).ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidInput, "not a memory address")
                    })?;
                    if links.cross(me, peer, 0).is_none() {
                        return Err(cut(me, peer));
                    }
                    channel.write_all(&me.to_le_bytes()).await?;
                    channel.flush().await?;
                    peer
                }
                ConnectedPoint::Listener { .. } => {
                    let mut port = [0u8; 8];
                    tokio::time::timeout(PREAMBLE_WAIT, channel.read_exact(&mut port))
                        .await
                        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no preamble"))??;
                    let peer = u64::from_le_bytes(port);
                    if links.cross(peer, me, 0).is_none() {
                        return Err(cut(peer, me));
                    }
                    peer
                }
            };
            Ok(Shaped::new(channel, links, me, peer))
        }
    })
}

/// How long a listener waits for the dialer's port.
const PREAMBLE_WAIT: Duration = Duration::from_secs(10);

/// Bytes read ahead from the peer and held until their crossing completes.
const MAX_HELD: usize = 4 << 20;
const READ_CHUNK: usize = 16 << 10;

/// One end of a shaped connection: delays what it receives, resets when the link is cut.
pub struct Shaped<S> {
    inner: S,
    links: Arc<Links>,
    me: u64,
    peer: u64,
    waker: Arc<AtomicWaker>,
    /// Received chunks and when each may be read.
    held: VecDeque<(Instant, Bytes)>,
    scratch: Vec<u8>,
    held_bytes: usize,
    /// When the link finishes transmitting what was sent so far, and the last release time
    /// (chunks are released in order).
    link_free: Instant,
    last_release: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    eof: bool,
}

impl<S> Shaped<S> {
    fn new(inner: S, links: Arc<Links>, me: u64, peer: u64) -> Self {
        let now = Instant::now();
        Shaped {
            inner,
            waker: links.watch(),
            links,
            me,
            peer,
            held: VecDeque::new(),
            scratch: vec![0u8; READ_CHUNK],
            held_bytes: 0,
            link_free: now,
            last_release: now,
            timer: None,
            eof: false,
        }
    }

    fn check(&self, cx: &mut Context<'_>) -> io::Result<()> {
        self.waker.register(cx.waker());
        match self.links.cross(self.peer, self.me, 0) {
            Some(_) => Ok(()),
            None => Err(cut(self.peer, self.me)),
        }
    }
}

impl<S: AsyncRead + Unpin> Shaped<S> {
    /// Reads what the peer sent so far into `held`, stamping each chunk with its release time.
    fn read_ahead(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while !self.eof && self.held_bytes < MAX_HELD {
            match Pin::new(&mut self.inner).poll_read(cx, &mut self.scratch)? {
                Poll::Pending => break,
                Poll::Ready(0) => self.eof = true,
                Poll::Ready(n) => {
                    let crossing = self
                        .links
                        .cross(self.peer, self.me, n)
                        .ok_or_else(|| cut(self.peer, self.me))?;
                    let now = Instant::now();
                    self.link_free = self.link_free.max(now) + crossing.transmit;
                    let release = (self.link_free + crossing.latency).max(self.last_release);
                    self.last_release = release;
                    self.held
                        .push_back((release, Bytes::copy_from_slice(&self.scratch[..n])));
                    self.held_bytes += n;
                }
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Shaped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        this.read_ahead(cx)?;
        loop {
            let Some((release, chunk)) = this.held.front_mut() else {
                return if this.eof {
                    Poll::Ready(Ok(0))
                } else {
                    Poll::Pending
                };
            };
            if *release <= Instant::now() {
                this.timer = None;
                let n = buf.len().min(chunk.len());
                buf[..n].copy_from_slice(&chunk.split_to(n));
                if chunk.is_empty() {
                    this.held.pop_front();
                }
                this.held_bytes -= n;
                return Poll::Ready(Ok(n));
            }
            let at = *release;
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Shaped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}
