//! MASCOT preprocessing for 2, 3 and 4 parties: every triple satisfies c = a·b, every MAC verifies
//! under α, masks and random values are right, and the online phase runs on the output.

use conclave_mpc::driver::run;
use conclave_mpc::mascot::MascotKeys;
use conclave_mpc::mascot::batch::{Batch, BatchError, BatchOutput, BatchSpec};
use conclave_mpc::mascot::setup::Setup;
use conclave_mpc::share::MacKeyShare;
use conclave_mpc::transport::{MemoryTransport, Transport, TransportError};
use conclave_mpc::wire::SessionId;
use conclave_mpc::{Abort, Fp, Share};

const SESSION: SessionId = SessionId([0x3a; 16]);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .worker_threads(2)
        .build()
        .unwrap()
}

/// A transport that refuses to send a frame above `cap` bytes, as a node's channel would.
struct Capped {
    inner: MemoryTransport,
    cap: usize,
}

impl Transport for Capped {
    fn party(&self) -> usize {
        self.inner.party()
    }
    fn parties(&self) -> usize {
        self.inner.parties()
    }
    async fn send(&mut self, to: usize, frame: bytes::Bytes) -> Result<(), TransportError> {
        if frame.len() > self.cap {
            return Err(TransportError::Io {
                peer: to,
                reason: format!(
                    "frame of {} bytes over the cap of {}",
                    frame.len(),
                    self.cap
                ),
            });
        }
        self.inner.send(to, frame).await
    }
    async fn recv(&mut self, from: usize) -> Result<bytes::Bytes, TransportError> {
        self.inner.recv(from).await
    }
}

/// Sets up `parties` parties and runs `batches` batches of `spec`; returns α and each party's outputs.
fn produce(parties: usize, spec: BatchSpec, batches: usize) -> (Fp, Vec<Vec<BatchOutput>>) {
    produce_capped(parties, spec, batches, usize::MAX)
}

/// [`produce`] over transports that refuse frames above `cap` bytes.
fn produce_capped(
    parties: usize,
    spec: BatchSpec,
    batches: usize,
    cap: usize,
) -> (Fp, Vec<Vec<BatchOutput>>) {
    let (alpha, outs, _) = produce_with(parties, spec, batches, cap, None);
    (alpha, outs)
}

/// [`produce_capped`] after a setup of `setup_values` random VOLEs per pair (`None`: one that
/// extends); also whether each party's keys would then start another batch.
fn produce_with(
    parties: usize,
    spec: BatchSpec,
    batches: usize,
    cap: usize,
    setup_values: Option<usize>,
) -> (Fp, Vec<Vec<BatchOutput>>, Vec<Result<(), BatchError>>) {
    let alphas: Vec<Fp> = (0..parties).map(|_| Fp::random(&mut rand::rng())).collect();
    let alpha = alphas.iter().copied().sum();
    let rt = runtime();
    let (outputs, next) = rt.block_on(async {
        let tasks: Vec<_> = MemoryTransport::mesh(parties)
            .into_iter()
            .enumerate()
            .map(|(party, inner)| {
                let (spec, key) = (spec.clone(), MacKeyShare::new(alphas[party]));
                let mut t = Capped { inner, cap };
                tokio::spawn(async move {
                    let setup = match setup_values {
                        Some(values) => Setup::for_values(SESSION, party, parties, key, values),
                        None => Setup::new(SESSION, party, parties, key),
                    };
                    let mut keys: MascotKeys = run(setup, &mut t).await?;
                    let mut outs = Vec::new();
                    for _ in 0..batches {
                        let batch = Batch::new(&mut keys, spec.clone()).expect("batch");
                        outs.push(run(batch, &mut t).await?);
                    }
                    let next = Batch::new(&mut keys, spec).map(|_| ());
                    Ok::<_, Abort>((outs, next))
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut next = Vec::new();
        for t in tasks {
            let (outs, n) = t.await.unwrap().expect("honest preprocessing");
            all.push(outs);
            next.push(n);
        }
        (all, next)
    });
    (alpha, outputs, next)
}

/// A setup sized for two batches (the digit VOLE makes just their values, no silent extension
/// runs): their material is right, and a third batch does not start.
#[test]
fn a_setup_sized_for_its_batches_makes_right_material_and_no_more() {
    for parties in [2, 3] {
        let spec = BatchSpec {
            triples: 20,
            randoms: 5,
            masks: (0..parties).map(|p| p + 1).collect(),
        };
        // a, b, c, â, ĉ per triple, the randoms, the most masks any party owns, x₀.
        let per_batch = 5 * spec.triples + spec.randoms + parties + 1;
        let (alpha, outs, next) =
            produce_with(parties, spec.clone(), 2, usize::MAX, Some(2 * per_batch));
        check_material(alpha, &spec, &outs, 2);
        for n in next {
            assert!(
                matches!(n, Err(BatchError::VoleExhausted { .. })),
                "{parties} parties: {n:?}"
            );
        }
    }
}

/// Opens shares and checks the MAC relation Σm = α·Σx.
fn open(alpha: Fp, shares: &[Share]) -> Fp {
    let value: Fp = shares.iter().map(|s| s.value).sum();
    let mac: Fp = shares.iter().map(|s| s.mac).sum();
    assert_eq!(mac, alpha * value, "MAC does not verify under α");
    value
}

fn check_outputs(parties: usize) {
    let spec = BatchSpec {
        triples: 20,
        randoms: 5,
        masks: (0..parties).map(|p| p + 1).collect(),
    };
    let (alpha, outs) = produce(parties, spec.clone(), 2);
    check_material(alpha, &spec, &outs, 2);
}

/// Every triple, random value and mask of every batch opens correctly under α.
fn check_material(alpha: Fp, spec: &BatchSpec, outs: &[Vec<BatchOutput>], batches: usize) {
    for b in 0..batches {
        let batch: Vec<&BatchOutput> = outs.iter().map(|o| &o[b]).collect();
        for t in 0..spec.triples {
            let a = open(
                alpha,
                &batch.iter().map(|o| o.triples[t].a).collect::<Vec<_>>(),
            );
            let bb = open(
                alpha,
                &batch.iter().map(|o| o.triples[t].b).collect::<Vec<_>>(),
            );
            let c = open(
                alpha,
                &batch.iter().map(|o| o.triples[t].c).collect::<Vec<_>>(),
            );
            assert_eq!(c, a * bb, "triple {t} of batch {b}");
            assert!(!a.is_zero() && !bb.is_zero());
        }
        for r in 0..spec.randoms {
            open(
                alpha,
                &batch.iter().map(|o| o.randoms[r]).collect::<Vec<_>>(),
            );
        }
        for (owner, &count) in spec.masks.iter().enumerate() {
            for k in 0..count {
                let shares: Vec<_> = batch.iter().map(|o| o.masks[owner][k]).collect();
                let value = open(alpha, &shares.iter().map(|m| m.share).collect::<Vec<_>>());
                for (p, m) in shares.iter().enumerate() {
                    assert_eq!(
                        m.clear,
                        (p == owner).then_some(value),
                        "mask {k} of owner {owner} at party {p}"
                    );
                }
            }
        }
    }
}

/// A batch far larger than one frame can hold runs in segments under the node's 16 MiB cap.
#[test]
fn a_4096_triple_batch_completes_under_a_16_mib_frame_cap() {
    let spec = BatchSpec {
        triples: 4096,
        randoms: 300,
        masks: vec![200, 100],
    };
    let (alpha, outs) = produce_capped(2, spec.clone(), 1, 16 << 20);
    check_material(alpha, &spec, &outs, 1);
}

/// Batches that need more than one silent extension, then one whose extension takes its base from
/// earlier outputs; owners that need different counts (the stock of the one that needs fewer is
/// trimmed on both sides alike).
#[test]
fn batches_that_need_several_extensions_produce_correct_material() {
    use conclave_mpc::mascot::silent::NET;
    let spec = BatchSpec {
        triples: 300,
        randoms: 35_000,
        masks: vec![30_000, 0],
    };
    assert!(
        5 * spec.triples + spec.randoms + spec.masks[0] > NET,
        "two extensions at first"
    );
    let (alpha, outs) = produce(2, spec.clone(), 2);
    check_material(alpha, &spec, &outs, 2);
}

#[test]
fn two_parties_produce_correct_authenticated_material() {
    check_outputs(2);
}

#[test]
fn three_parties_produce_correct_authenticated_material() {
    check_outputs(3);
}

#[test]
fn four_parties_produce_correct_authenticated_material() {
    check_outputs(4);
}

/// What [`online_on_pool`] saw: α, each party's outputs and bits, and the plaintext result.
struct PoolRun {
    alpha: Fp,
    outputs: Vec<Vec<Fp>>,
    bits: Vec<Vec<Share>>,
    expected: Vec<Fp>,
}

/// Starts a pool per party, waits for the circuit's material, runs the online phase on it, and
/// takes some random bits.
fn online_on_pool(parties: usize) -> PoolRun {
    use conclave_mpc::mascot::pool::{Pool, PoolConfig};
    use conclave_mpc::prep::Material;
    use conclave_mpc::{CircuitBuilder, Session, SessionConfig};

    let mut b = CircuitBuilder::new(parties);
    let x: Vec<_> = (0..parties).map(|p| b.input(p)).collect();
    let mut prod = x[0];
    let mut sum = x[0];
    for &w in &x[1..] {
        prod = b.mul(prod, w);
        sum = b.add(sum, w);
    }
    let sq = b.mul(sum, sum);
    b.reveal(prod);
    b.reveal(sq);
    let circuit = b.build();
    let inputs: Vec<Fp> = (0..parties).map(|p| Fp::from_u64(3 + p as u64)).collect();
    let expected = circuit
        .evaluate_plain(&inputs.iter().map(|v| vec![*v]).collect::<Vec<_>>(), &[])
        .unwrap();

    let alphas: Vec<Fp> = (0..parties).map(|_| Fp::random(&mut rand::rng())).collect();
    let alpha = alphas.iter().copied().sum();
    let rt = runtime();
    let (outputs, bits) = rt.block_on(async {
        let prep = MemoryTransport::mesh(parties);
        let online = MemoryTransport::mesh(parties);
        let tasks: Vec<_> = prep
            .into_iter()
            .zip(online)
            .enumerate()
            .map(|(party, (pt, mut ot))| {
                let circuit = circuit.clone();
                let input = inputs[party];
                let key = MacKeyShare::new(alphas[party]);
                tokio::spawn(async move {
                    let config = PoolConfig::for_triples(parties, 64, 64);
                    let mut pool = Pool::start(SESSION, key, pt, config).await?;
                    let req = circuit.requirements();
                    pool.ready(&req).await?;
                    let material = Material::take(&mut pool, &req).expect("ready");
                    let cfg = SessionConfig::new(SessionId([9; 16]), party, parties);
                    let session = Session::new(cfg, circuit, vec![input], material).unwrap();
                    let out = run(session, &mut ot).await?;
                    let bits = pool.take_bits(4).await?;
                    Ok::<_, Abort>((out, bits))
                })
            })
            .collect();
        let mut outs = Vec::new();
        let mut bits = Vec::new();
        for t in tasks {
            let (o, b) = t.await.unwrap().expect("honest run");
            outs.push(o);
            bits.push(b);
        }
        (outs, bits)
    });
    PoolRun {
        alpha,
        outputs,
        bits,
        expected,
    }
}

#[test]
fn online_phase_runs_on_pool_material_and_bits_are_bits() {
    for parties in [2, 3, 4] {
        let PoolRun {
            alpha,
            outputs,
            bits,
            expected,
        } = online_on_pool(parties);
        for out in &outputs {
            assert_eq!(out, &expected, "{parties} parties");
        }
        for k in 0..4 {
            let bit = open(alpha, &bits.iter().map(|b| b[k]).collect::<Vec<_>>());
            assert!(bit == Fp::ZERO || bit == Fp::ONE, "bit {k} is {bit:?}");
        }
    }
}
