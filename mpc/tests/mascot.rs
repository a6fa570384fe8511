//! MASCOT preprocessing for 2, 3 and 4 parties: every triple satisfies c = a·b, every MAC verifies
//! under α, masks and random values are right, and the online phase runs on the output.

use conclave_mpc::driver::run;
use conclave_mpc::mascot::MascotKeys;
use conclave_mpc::mascot::batch::{Batch, BatchOutput, BatchSpec};
use conclave_mpc::mascot::setup::Setup;
use conclave_mpc::share::MacKeyShare;
use conclave_mpc::transport::MemoryTransport;
use conclave_mpc::wire::SessionId;
use conclave_mpc::{Abort, Fp, Share};

const SESSION: SessionId = SessionId([0x3a; 16]);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap()
}

/// Sets up `parties` parties and runs `batches` batches of `spec`; returns α and each party's outputs.
fn produce(parties: usize, spec: BatchSpec, batches: usize) -> (Fp, Vec<Vec<BatchOutput>>) {
    let alphas: Vec<Fp> = (0..parties).map(|_| Fp::random(&mut rand::rng())).collect();
    let alpha = alphas.iter().copied().sum();
    let rt = runtime();
    let outputs = rt.block_on(async {
        let tasks: Vec<_> = MemoryTransport::mesh(parties)
            .into_iter()
            .enumerate()
            .map(|(party, mut t)| {
                let (spec, key) = (spec.clone(), MacKeyShare::new(alphas[party]));
                tokio::spawn(async move {
                    let mut keys: MascotKeys = run(Setup::new(SESSION, party, parties, key), &mut t).await?;
                    let mut outs = Vec::new();
                    for _ in 0..batches {
                        let batch = Batch::new(&mut keys, spec.clone()).expect("batch");
                        outs.push(run(batch, &mut t).await?);
                    }
                    Ok::<_, Abort>(outs)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap().expect("honest preprocessing"));
        }
        all
    });
    (alpha, outputs)
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
    for b in 0..2 {
        let batch: Vec<&BatchOutput> = outs.iter().map(|o| &o[b]).collect();
        for t in 0..spec.triples {
            let a = open(alpha, &batch.iter().map(|o| o.triples[t].a).collect::<Vec<_>>());
            let bb = open(alpha, &batch.iter().map(|o| o.triples[t].b).collect::<Vec<_>>());
            let c = open(alpha, &batch.iter().map(|o| o.triples[t].c).collect::<Vec<_>>());
            assert_eq!(c, a * bb, "triple {t} of batch {b}");
            assert!(!a.is_zero() && !bb.is_zero());
        }
        for r in 0..spec.randoms {
            open(alpha, &batch.iter().map(|o| o.randoms[r]).collect::<Vec<_>>());
        }
        for (owner, &count) in spec.masks.iter().enumerate() {
            for k in 0..count {
                let shares: Vec<_> = batch.iter().map(|o| o.masks[owner][k]).collect();
                let value = open(alpha, &shares.iter().map(|m| m.share).collect::<Vec<_>>());
                for (p, m) in shares.iter().enumerate() {
                    assert_eq!(m.clear, (p == owner).then_some(value), "mask {k} of owner {owner} at party {p}");
                }
            }
        }
    }
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
