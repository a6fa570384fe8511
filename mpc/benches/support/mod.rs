//! What the MPC benches share: the multiplication-batch circuit, one timed honest run, a byte
//! counter and loopback TCP. Each bench uses part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use conclave_mpc::dealer::InsecureDealer;
use conclave_mpc::driver::run;
use conclave_mpc::transport::MemoryTransport;
use conclave_mpc::wire::SessionId;
use conclave_mpc::{Circuit, CircuitBuilder, Session, SessionConfig};

/// `batch` independent multiplications of shared random values (one layer); the products are
/// summed and revealed, so a run covers the Beaver round, both MAC checks and the output opening.
pub fn multiplication_batch(parties: usize, batch: usize) -> Circuit {
    let mut b = CircuitBuilder::new(parties);
    let mut sum = None;
    for _ in 0..batch {
        let (x, y) = (b.random(), b.random());
        let p = b.mul(x, y);
        sum = Some(match sum {
            None => p,
            Some(s) => b.add(s, p),
        });
    }
    b.reveal(sum.expect("batch > 0"));
    b.build()
}

/// One honest run of `circuit` over the in-memory transport, or loopback TCP when `tcp`. Dealing
/// preprocessing and connecting are not timed.
pub fn timed_run(circuit: &Circuit, seed: u64, tcp: bool) -> Duration {
    timed_run_with(circuit, &vec![Vec::new(); circuit.parties()], seed, tcp)
}

/// [`timed_run`] with the parties' inputs.
pub fn timed_run_with(
    circuit: &Circuit,
    inputs: &[Vec<conclave_mpc::Fp>],
    seed: u64,
    tcp: bool,
) -> Duration {
    let parties = circuit.parties();
    let materials = InsecureDealer::new(parties, seed).deal(&circuit.requirements());
    let sessions: Vec<Session> = materials
        .into_iter()
        .enumerate()
        .map(|(party, m)| {
            let cfg = SessionConfig::new(SessionId([seed as u8; 16]), party, parties);
            Session::new(cfg, circuit.clone(), inputs[party].clone(), m).expect("session")
        })
        .collect();
    if tcp {
        let jobs: Vec<_> = sessions
            .into_iter()
            .zip(tcp::mesh(parties))
            .enumerate()
            .map(|(me, (s, streams))| {
                move || async move {
                    let mut t = tcp::TcpTransport::new(me, streams);
                    let start = Instant::now();
                    run(s, &mut t).await.expect("honest run");
                    let elapsed = start.elapsed();
                    t.close().await;
                    elapsed
                }
            })
            .collect();
        return on_own_threads(jobs).into_iter().max().expect("parties");
    }
    let start = Instant::now();
    let jobs: Vec<_> = sessions
        .into_iter()
        .zip(MemoryTransport::mesh(parties))
        .map(|(s, mut t)| move || async move { run(s, &mut t).await.expect("honest run") })
        .collect();
    on_own_threads(jobs);
    start.elapsed()
}

/// How long MASCOT takes to make `triples` triples and `bits` random bits among `parties`
/// (a background pool per party, as nodes run it; the base-OT setup included).
pub fn timed_pool(parties: usize, triples: usize, bits: usize) -> Duration {
    timed_pool_sized(parties, triples, bits, true).0
}

/// [`timed_pool`], with the setup sized for the workload when `sized` (as
/// `PoolConfig::for_material` chooses) or one that extends; also the most bytes a party sent.
pub fn timed_pool_sized(
    parties: usize,
    triples: usize,
    bits: usize,
    sized: bool,
) -> (Duration, u64) {
    use conclave_mpc::mascot::pool::{Pool, PoolConfig};
    use conclave_mpc::prep::Requirements;
    use conclave_mpc::share::MacKeyShare;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let jobs: Vec<_> = MemoryTransport::mesh(parties)
        .into_iter()
        .map(|inner| {
            move || async move {
                let sent = Arc::new(AtomicU64::new(0));
                let t = Counting {
                    inner,
                    sent: sent.clone(),
                };
                let start = Instant::now();
                let key = MacKeyShare::new(conclave_mpc::Fp::random(&mut rand::rng()));
                let mut config = PoolConfig::for_material(parties, triples, bits);
                if !sized {
                    config.setup_values = None;
                }
                let mut pool = Pool::start(SessionId([9; 16]), key, t, config)
                    .await
                    .expect("pool");
                let need = Requirements {
                    triples,
                    randoms: 0,
                    input_masks: vec![0; parties],
                    bits,
                };
                pool.ready(&need).await.expect("material");
                let elapsed = start.elapsed();
                pool.stop().await;
                (elapsed, sent.load(Ordering::Relaxed))
            }
        })
        .collect();
    let runs = on_own_threads(jobs);
    let elapsed = runs.iter().map(|r| r.0).max().expect("parties");
    let bytes = runs.iter().map(|r| r.1).max().expect("parties");
    (elapsed, bytes)
}

/// Runs each party on its own OS thread with its own single-threaded runtime, so parties compute
/// in parallel as separate processes would (a shared runtime tends to run a woken peer on the
/// waker's thread).
pub fn on_own_threads<F, Fut, T>(jobs: Vec<F>) -> Vec<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let threads: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(job())
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("party thread"))
        .collect()
}

/// Counts the bytes a transport sends.
pub struct Counting<T> {
    pub inner: T,
    pub sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<T: conclave_mpc::transport::Transport> conclave_mpc::transport::Transport for Counting<T> {
    fn party(&self) -> usize {
        self.inner.party()
    }
    fn parties(&self) -> usize {
        self.inner.parties()
    }
    async fn send(
        &mut self,
        to: usize,
        frame: bytes::Bytes,
    ) -> Result<(), conclave_mpc::transport::TransportError> {
        self.sent
            .fetch_add(frame.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.inner.send(to, frame).await
    }
    async fn recv(
        &mut self,
        from: usize,
    ) -> Result<bytes::Bytes, conclave_mpc::transport::TransportError> {
        self.inner.recv(from).await
    }
}

/// Loopback TCP between parties of one process, for benchmarks: length-prefixed frames, one
/// connection per pair, a writer task per connection so sending never waits for the peer.
/// Unauthenticated: nodes use the p2p crate's Noise-authenticated streams instead.
pub mod tcp {
    use bytes::Bytes;
    use conclave_mpc::transport::{Transport, TransportError};
    use std::io::Write;
    use std::sync::mpsc::{Sender, channel};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    const MAX_FRAME: usize = 128 << 20;
    const SOCKET_BUFFER: libc::c_int = 16 << 20;

    /// SO_SNDBUF and SO_RCVBUF of a connected socket (std has no setter for them).
    fn set_buffers(stream: &std::net::TcpStream, bytes: libc::c_int) {
        use std::os::fd::AsRawFd;
        for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
            // SAFETY: a valid socket descriptor, an int option and its exact size.
            let status = unsafe {
                libc::setsockopt(
                    stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&bytes as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(status, 0, "setsockopt");
        }
    }

    /// Reads on the party's runtime; writes on one OS thread per connection, as a node's
    /// multi-threaded runtime would, so that a party busy computing never holds back the frame
    /// its peer is waiting for.
    pub struct TcpTransport {
        party: usize,
        writers: Vec<Option<Sender<Bytes>>>,
        readers: Vec<Option<TcpStream>>,
        flushers: Vec<std::thread::JoinHandle<()>>,
    }

    /// Writes all of `buf` to a non-blocking socket, waiting in poll(2) when it is full.
    fn write_all(stream: &mut std::net::TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        while !buf.is_empty() {
            match stream.write(buf) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut fd = libc::pollfd {
                        fd: stream.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd, for a descriptor this thread's stream owns.
                    unsafe { libc::poll(&mut fd, 1, -1) };
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Connected sockets for `parties` parties over 127.0.0.1: `result[i][j]` is party i's end of
    /// its connection to party j. Plain std sockets, so each party can adopt its own in its own
    /// runtime ([`TcpTransport::new`]).
    pub fn mesh(parties: usize) -> Vec<Vec<Option<std::net::TcpStream>>> {
        let listeners: Vec<_> = (0..parties)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback"))
            .collect();
        let mut ends: Vec<Vec<Option<std::net::TcpStream>>> = (0..parties)
            .map(|_| (0..parties).map(|_| None).collect())
            .collect();
        #[allow(clippy::needless_range_loop)] // i and j index the same table from both sides
        for i in 0..parties {
            for j in i + 1..parties {
                let a = std::net::TcpStream::connect(listeners[j].local_addr().unwrap())
                    .expect("connect");
                let (b, _) = listeners[j].accept().expect("accept");
                ends[i][j] = Some(a);
                ends[j][i] = Some(b);
            }
        }
        ends
    }

    impl TcpTransport {
        /// Party `party`'s transport over its sockets; call inside the runtime that will use it.
        pub fn new(party: usize, streams: Vec<Option<std::net::TcpStream>>) -> Self {
            let parties = streams.len();
            let mut t = TcpTransport {
                party,
                writers: (0..parties).map(|_| None).collect(),
                readers: (0..parties).map(|_| None).collect(),
                flushers: Vec::new(),
            };
            for (other, stream) in streams.into_iter().enumerate() {
                let Some(stream) = stream else { continue };
                stream.set_nodelay(true).unwrap();
                stream.set_nonblocking(true).unwrap();
                // Kernel buffers that hold a whole Beaver frame, so a sender never waits for
                // its peer to start reading (the default caps turn one frame into many
                // wake-ups on each side).
                set_buffers(&stream, SOCKET_BUFFER);
                let mut write = stream.try_clone().expect("clone socket");
                let read = TcpStream::from_std(stream).expect("adopt socket");
                let (tx, rx) = channel::<Bytes>();
                t.flushers.push(std::thread::spawn(move || {
                    for frame in rx {
                        let len = (frame.len() as u32).to_le_bytes();
                        if write_all(&mut write, &len).is_err()
                            || write_all(&mut write, &frame).is_err()
                        {
                            break;
                        }
                    }
                }));
                t.writers[other] = Some(tx);
                t.readers[other] = Some(read);
            }
            t
        }
    }

    impl TcpTransport {
        /// Sends everything still queued, then closes.
        pub async fn close(mut self) {
            self.writers.clear();
            for f in self.flushers.drain(..) {
                let _ = f.join();
            }
        }
    }

    impl Transport for TcpTransport {
        fn party(&self) -> usize {
            self.party
        }
        fn parties(&self) -> usize {
            self.writers.len()
        }
        async fn send(&mut self, to: usize, frame: Bytes) -> Result<(), TransportError> {
            let w = self
                .writers
                .get(to)
                .and_then(Option::as_ref)
                .ok_or(TransportError::UnknownPeer(to))?;
            w.send(frame).map_err(|_| TransportError::Closed(to))
        }
        async fn recv(&mut self, from: usize) -> Result<Bytes, TransportError> {
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
            if len > MAX_FRAME {
                return Err(TransportError::Io {
                    peer: from,
                    reason: format!("frame of {len} bytes"),
                });
            }
            let mut buf = vec![0u8; len];
            r.read_exact(&mut buf).await.map_err(io)?;
            Ok(Bytes::from(buf))
        }
    }
}
