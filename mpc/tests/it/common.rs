//! Shared harness for the MPC integration tests: run every party of a circuit over in-memory
//! channels, optionally with one party's material or outgoing frames tampered with.

use bytes::Bytes;
use conclave_mpc::dealer::InsecureDealer;
use conclave_mpc::driver::run;
use conclave_mpc::prep::Material;
use conclave_mpc::share::MacKeyShare;
use conclave_mpc::transport::{MemoryTransport, Transport, TransportError};
use conclave_mpc::wire::{DEFAULT_MAX_FRAME, Frame, SessionId};
use conclave_mpc::{Abort, Circuit, Fp, PartyId, Session, SessionConfig};

pub const SESSION: SessionId = SessionId([0x5e; 16]);

/// Rewrites the frames one party sends: `(recipient, frame) -> frame`.
pub type FrameTamper = Box<dyn FnMut(PartyId, Bytes) -> Bytes + Send>;

/// Rewrites a cheating party's preprocessed material before its session starts.
pub type MaterialTamper = Box<dyn FnOnce(&mut Material) + Send>;

/// A transport whose outgoing frames pass through a tamper function: a cheating party's wire.
pub struct TamperTransport {
    inner: MemoryTransport,
    tamper: FrameTamper,
}

impl TamperTransport {
    pub fn new(inner: MemoryTransport, tamper: FrameTamper) -> Self {
        TamperTransport { inner, tamper }
    }
}

impl Transport for TamperTransport {
    fn party(&self) -> PartyId {
        self.inner.party()
    }
    fn parties(&self) -> usize {
        self.inner.parties()
    }
    async fn send(&mut self, to: PartyId, frame: Bytes) -> Result<(), TransportError> {
        let frame = (self.tamper)(to, frame);
        self.inner.send(to, frame).await
    }
    async fn recv(&mut self, from: PartyId) -> Result<Bytes, TransportError> {
        self.inner.recv(from).await
    }
}

/// How one run deviates from the protocol.
#[derive(Default)]
pub struct Cheat {
    /// The cheating party.
    pub party: PartyId,
    /// Changes the cheater's preprocessed material (including its MAC key share).
    pub material: Option<MaterialTamper>,
    /// Changes the cheater's outgoing frames.
    pub frames: Option<FrameTamper>,
}

/// Runs all parties of `circuit` with `inputs[p]` for party p; returns each party's result.
pub fn run_circuit(
    circuit: &Circuit,
    inputs: &[Vec<Fp>],
    seed: u64,
) -> Vec<Result<Vec<Fp>, Abort>> {
    run_with_cheat(circuit, inputs, seed, Cheat::default())
}

/// As [`run_circuit`], with one party deviating as `cheat` says.
pub fn run_with_cheat(
    circuit: &Circuit,
    inputs: &[Vec<Fp>],
    seed: u64,
    cheat: Cheat,
) -> Vec<Result<Vec<Fp>, Abort>> {
    run_keeping_keys(circuit, inputs, seed, cheat).0
}

/// As [`run_with_cheat`], also returning a copy of each party's MAC key share.
pub fn run_keeping_keys(
    circuit: &Circuit,
    inputs: &[Vec<Fp>],
    seed: u64,
    mut cheat: Cheat,
) -> (Vec<Result<Vec<Fp>, Abort>>, Vec<MacKeyShare>) {
    let n = circuit.parties();
    let mut materials = InsecureDealer::new(n, seed).deal(&circuit.requirements());
    let keys = materials.iter().map(|m| m.key.clone()).collect();
    if let Some(f) = cheat.material.take() {
        f(&mut materials[cheat.party]);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for ((party, transport), material) in MemoryTransport::mesh(n)
            .into_iter()
            .enumerate()
            .zip(materials)
        {
            let cfg = SessionConfig::new(SESSION, party, n);
            let session = Session::new(cfg, circuit.clone(), inputs[party].clone(), material)
                .expect("session setup");
            let tamper = if party == cheat.party {
                cheat.frames.take()
            } else {
                None
            };
            tasks.push(tokio::spawn(async move {
                match tamper {
                    Some(tamper) => {
                        run(
                            session,
                            &mut TamperTransport {
                                inner: transport,
                                tamper,
                            },
                        )
                        .await
                    }
                    None => {
                        let mut transport = transport;
                        run(session, &mut transport).await
                    }
                }
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("party task panicked"));
        }
        (results, keys)
    })
}

/// The round a frame was sent in (frames of the harness always decode).
pub fn round_of(frame: &Bytes) -> u32 {
    Frame::decode(frame, DEFAULT_MAX_FRAME)
        .expect("own frame")
        .round
}

/// A party's outputs and its shares of the wires it kept.
pub type KeptRun = Result<(Vec<Fp>, Vec<conclave_mpc::Share>), Abort>;

/// Runs every party honestly, each keeping its shares of `keep` (for private outputs' masks).
pub fn run_keeping_shares(
    circuit: &Circuit,
    inputs: &[Vec<Fp>],
    seed: u64,
    keep: &[conclave_mpc::Wire],
) -> Vec<KeptRun> {
    let n = circuit.parties();
    let materials = InsecureDealer::new(n, seed).deal(&circuit.requirements());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for ((party, mut transport), material) in MemoryTransport::mesh(n)
            .into_iter()
            .enumerate()
            .zip(materials)
        {
            let cfg = SessionConfig::new(SESSION, party, n);
            let mut session = Session::new(cfg, circuit.clone(), inputs[party].clone(), material)
                .expect("session setup");
            session
                .keep_shares(keep.to_vec())
                .expect("kept wires exist");
            tasks.push(tokio::spawn(async move {
                run(conclave_mpc::driver::Keeping(session), &mut transport).await
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("party task panicked"));
        }
        results
    })
}
