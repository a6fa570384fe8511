//! MAC checks under one key: a check that revealed σ and never concluded must keep every later
//! check under the key from passing ("Rushing at SPDZ"), a check abandoned midway poisons the key
//! for every copy, a session with no outputs still checks what it opened, and the check's
//! challenge is not predictable.

use std::time::Duration;

use bytes::Bytes;
use conclave_mpc::driver::{Limits, run, run_with};
use conclave_mpc::mac_check::CheckStage;
use conclave_mpc::mascot::batch::{Batch, BatchSpec};
use conclave_mpc::mascot::setup::Setup;
use conclave_mpc::ot::prg::Prg;
use conclave_mpc::prep::Material;
use conclave_mpc::share::{MacKeyShare, Share};
use conclave_mpc::transport::{MemoryTransport, Transport, TransportError};
use conclave_mpc::wire::{Body, Frame, SessionId};
use conclave_mpc::{Abort, Circuit, CircuitBuilder, Fp, PartyId, Session, SessionConfig};
use tokio::sync::oneshot;

use crate::common::{Cheat, round_of, run_with_cheat};

fn is_reveal(frame: &Bytes) -> bool {
    matches!(
        Frame::decode(frame, usize::MAX).map(|f| f.body),
        Ok(Body::Reveal(_))
    )
}

/// A party's wire that never delivers its MAC-check reveals (a party withholding σ), and that
/// can announce when this party sent one.
struct Wire<T> {
    inner: T,
    withhold_reveals: bool,
    on_reveal: Option<oneshot::Sender<()>>,
}

impl<T: Transport> Wire<T> {
    fn honest(inner: T) -> Self {
        Wire {
            inner,
            withhold_reveals: false,
            on_reveal: None,
        }
    }

    fn withholding(inner: T) -> Self {
        Wire {
            inner,
            withhold_reveals: true,
            on_reveal: None,
        }
    }
}

impl<T: Transport> Transport for Wire<T> {
    fn party(&self) -> PartyId {
        self.inner.party()
    }
    fn parties(&self) -> usize {
        self.inner.parties()
    }
    async fn send(&mut self, to: PartyId, frame: Bytes) -> Result<(), TransportError> {
        if is_reveal(&frame) {
            if let Some(tx) = self.on_reveal.take() {
                let _ = tx.send(());
            }
            if self.withhold_reveals {
                return Ok(());
            }
        }
        self.inner.send(to, frame).await
    }
    async fn recv(&mut self, from: PartyId) -> Result<Bytes, TransportError> {
        self.inner.recv(from).await
    }
}

/// Keeps a cheater's channels open after its own run ended, so honest parties wait on it
/// rather than seeing a closed channel.
async fn stay_connected<T>(wire: T) {
    std::future::pending::<()>().await;
    drop(wire);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .worker_threads(2)
        .build()
        .expect("runtime")
}

/// Opens one random value r; each party's material carries its given share of r.
fn open_random(parties: usize) -> Circuit {
    let mut b = CircuitBuilder::new(parties);
    let r = b.random();
    b.reveal(r);
    b.build()
}

fn material(key: &MacKeyShare, share: Share) -> Material {
    Material {
        key: key.clone(),
        triples: Vec::new(),
        randoms: vec![share],
        input_masks: vec![Vec::new(); 2],
        bits: Vec::new(),
    }
}

const BATCH: SessionId = SessionId([0xb1; 16]);
const ONLINE: SessionId = SessionId([0x0e; 16]);

fn small_batch() -> BatchSpec {
    BatchSpec {
        triples: 2,
        randoms: 1,
        masks: vec![1, 1],
    }
}

/// The attack of "Rushing at SPDZ": party 1 lets the honest party reveal σ in a preprocessing
/// check and withholds its own reveal, so that check never fails; then, knowing α (here given
/// to it outright), it forges the output of an online session under the same key. The honest
/// party must not accept the forged output.
#[test]
fn a_check_left_open_by_a_withheld_reveal_keeps_later_checks_from_passing() {
    let rng = &mut rand::rng();
    let (a0, a1) = (Fp::random(rng), Fp::random(rng));
    let alpha = a0 + a1;
    let (k0, k1) = (MacKeyShare::new(a0), MacKeyShare::new(a1));
    let (r, delta) = (Fp::random(rng), Fp::from_u64(1000));
    let (r0, m0) = (Fp::random(rng), Fp::random(rng));
    let honest_share = Share { value: r0, mac: m0 };
    // The forger shifts the value by δ and its MAC by α·δ: a valid MAC on r + δ.
    let forged_share = Share {
        value: r - r0 + delta,
        mac: alpha * r - m0 + alpha * delta,
    };
    let (batch_result, online_result) = runtime().block_on(async {
        let [bx0, bx1]: [MemoryTransport; 2] = MemoryTransport::mesh(2).try_into().ok().unwrap();
        let [oy0, oy1]: [MemoryTransport; 2] = MemoryTransport::mesh(2).try_into().ok().unwrap();
        let (revealed_tx, revealed_rx) = oneshot::channel();
        let honest_key = k0.clone();
        let honest_batch = tokio::spawn(async move {
            let mut wire = Wire::honest(bx0);
            wire.on_reveal = Some(revealed_tx);
            let mut keys = run(Setup::new(BATCH, 0, 2, honest_key), &mut wire).await?;
            let batch = Batch::new(&mut keys, small_batch()).expect("batch");
            let limits = Limits {
                recv_deadline: Duration::from_millis(400),
            };
            run_with(batch, &mut wire, limits).await.map(|_| ())
        });
        let cheater_key = k1.clone();
        let cheater_batch = tokio::spawn(async move {
            let mut wire = Wire::withholding(bx1);
            let mut keys = run(Setup::new(BATCH, 1, 2, cheater_key), &mut wire)
                .await
                .expect("setup");
            let batch = Batch::new(&mut keys, small_batch()).expect("batch");
            let _ = run(batch, &mut wire).await;
            stay_connected(wire).await
        });
        revealed_rx
            .await
            .expect("the honest party reaches its reveal");
        let circuit = open_random(2);
        let honest = Session::new(
            SessionConfig::new(ONLINE, 0, 2),
            circuit.clone(),
            vec![],
            material(&k0, honest_share),
        )
        .expect("session");
        let cheater = Session::new(
            SessionConfig::new(ONLINE, 1, 2),
            circuit,
            vec![],
            material(&k1, forged_share),
        )
        .expect("session");
        let honest_online = tokio::spawn(async move {
            let mut t = oy0;
            run(honest, &mut t).await
        });
        let cheater_online = tokio::spawn(async move {
            let mut t = oy1;
            let _ = run(cheater, &mut t).await;
            stay_connected(t).await
        });
        let online = honest_online.await.unwrap();
        let batch = honest_batch.await.unwrap();
        cheater_online.abort();
        cheater_batch.abort();
        (batch, online)
    });
    assert_ne!(online_result, Ok(vec![r + delta]), "a forged output passed");
    assert_eq!(online_result, Err(Abort::KeyPoisoned));
    assert!(
        matches!(
            batch_result,
            Err(Abort::Timeout {
                waiting_for: Some(1),
                ..
            })
        ),
        "{batch_result:?}"
    );
    assert!(k0.is_poisoned());
}

/// An honest online session and its withholding peer: the honest run waits at its verdict.
fn withheld_session(key: &MacKeyShare, other: &MacKeyShare) -> (Session, Session) {
    let rng = &mut rand::rng();
    let alpha = key.value() + other.value();
    let (r, v0, m0) = (Fp::random(rng), Fp::random(rng), Fp::random(rng));
    let circuit = open_random(2);
    let make = |party, k: &MacKeyShare, share| {
        Session::new(
            SessionConfig::new(ONLINE, party, 2),
            circuit.clone(),
            vec![],
            material(k, share),
        )
        .expect("session")
    };
    (
        make(0, key, Share { value: v0, mac: m0 }),
        make(
            1,
            other,
            Share {
                value: r - v0,
                mac: alpha * r - m0,
            },
        ),
    )
}

/// Honest parties running a preprocessing batch and an online session under the same key at the
/// same time: the ordering of checks must not stall either.
#[test]
fn concurrent_honest_checks_under_one_key_all_pass() {
    let rng = &mut rand::rng();
    let (k0, k1) = (
        MacKeyShare::new(Fp::random(rng)),
        MacKeyShare::new(Fp::random(rng)),
    );
    let alpha = k0.value() + k1.value();
    let (r, v0, m0) = (Fp::random(rng), Fp::random(rng), Fp::random(rng));
    let shares = [
        Share { value: v0, mac: m0 },
        Share {
            value: r - v0,
            mac: alpha * r - m0,
        },
    ];
    let results = runtime().block_on(async {
        let batches = MemoryTransport::mesh(2);
        let onlines = MemoryTransport::mesh(2);
        let mut tasks = Vec::new();
        for (party, (bt, ot)) in batches.into_iter().zip(onlines).enumerate() {
            let key = [&k0, &k1][party].clone();
            let session = Session::new(
                SessionConfig::new(ONLINE, party, 2),
                open_random(2),
                vec![],
                material(&key, shares[party]),
            )
            .expect("session");
            tasks.push(tokio::spawn(async move {
                let mut bt = bt;
                let mut keys = run(Setup::new(BATCH, party, 2, key), &mut bt).await?;
                for _ in 0..3 {
                    run(Batch::new(&mut keys, small_batch()).unwrap(), &mut bt).await?;
                }
                Ok::<_, Abort>(vec![])
            }));
            tasks.push(tokio::spawn(async move {
                let mut ot = ot;
                run(session, &mut ot).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (k, result) in results.into_iter().enumerate() {
        match k % 2 {
            0 => assert_eq!(result, Ok(vec![]), "batches of party {}", k / 2),
            _ => assert_eq!(result, Ok(vec![r]), "session of party {}", k / 2),
        }
    }
    assert!(!k0.is_poisoned() && !k1.is_poisoned());
}

#[test]
fn a_protocol_dropped_in_the_middle_of_a_check_poisons_its_key_for_every_copy() {
    let rng = &mut rand::rng();
    // An online session.
    let (k0, k1) = (
        MacKeyShare::new(Fp::random(rng)),
        MacKeyShare::new(Fp::random(rng)),
    );
    let (honest, cheater) = withheld_session(&k0, &k1);
    runtime().block_on(async {
        let [t0, t1]: [MemoryTransport; 2] = MemoryTransport::mesh(2).try_into().ok().unwrap();
        let cheater = tokio::spawn(async move {
            let mut wire = Wire::withholding(t1);
            let _ = run(cheater, &mut wire).await;
            stay_connected(wire).await
        });
        let mut t0 = t0;
        let outcome = tokio::time::timeout(Duration::from_millis(300), run(honest, &mut t0)).await;
        assert!(
            outcome.is_err(),
            "the honest run waits for the withheld reveal"
        );
        cheater.abort();
    });
    assert!(
        k0.clone().is_poisoned(),
        "an abandoned online check poisons"
    );

    // A preprocessing batch.
    let (k0, k1) = (
        MacKeyShare::new(Fp::random(rng)),
        MacKeyShare::new(Fp::random(rng)),
    );
    let copy = k0.clone();
    runtime().block_on(async {
        let [t0, t1]: [MemoryTransport; 2] = MemoryTransport::mesh(2).try_into().ok().unwrap();
        let cheater = tokio::spawn(async move {
            let mut wire = Wire::withholding(t1);
            let mut keys = run(Setup::new(BATCH, 1, 2, k1), &mut wire)
                .await
                .expect("setup");
            let _ = run(Batch::new(&mut keys, small_batch()).unwrap(), &mut wire).await;
            stay_connected(wire).await
        });
        let mut wire = Wire::honest(t0);
        let mut keys = run(Setup::new(BATCH, 0, 2, k0), &mut wire)
            .await
            .expect("setup");
        assert!(!copy.is_poisoned());
        // Drop the batch once it has revealed its σ and waits for the withheld one, however
        // long the rounds before take.
        let (revealed, on_reveal) = oneshot::channel();
        wire.on_reveal = Some(revealed);
        let batch = Batch::new(&mut keys, small_batch()).unwrap();
        tokio::select! {
            outcome = run(batch, &mut wire) => {
                panic!("the honest batch waits for the withheld reveal: {outcome:?}")
            }
            _ = async {
                on_reveal.await.expect("the honest batch reveals");
                tokio::time::sleep(Duration::from_millis(50)).await;
            } => {}
        }
        cheater.abort();
    });
    assert!(
        copy.is_poisoned(),
        "an abandoned preprocessing check poisons"
    );
}

#[test]
fn a_silent_peer_ends_a_run_with_a_deadline_abort_and_a_poisoned_key() {
    let rng = &mut rand::rng();
    let (k0, k1) = (
        MacKeyShare::new(Fp::random(rng)),
        MacKeyShare::new(Fp::random(rng)),
    );
    let (honest, cheater) = withheld_session(&k0, &k1);
    let result = runtime().block_on(async {
        let [t0, t1]: [MemoryTransport; 2] = MemoryTransport::mesh(2).try_into().ok().unwrap();
        let cheater = tokio::spawn(async move {
            let mut wire = Wire::withholding(t1);
            let _ = run(cheater, &mut wire).await;
            stay_connected(wire).await
        });
        let limits = Limits {
            recv_deadline: Duration::from_millis(200),
        };
        let mut t0 = t0;
        let result = run_with(honest, &mut t0, limits).await;
        cheater.abort();
        result
    });
    assert_eq!(
        result,
        Err(Abort::Timeout {
            waiting_for: Some(1),
            after: Duration::from_millis(200)
        })
    );
    assert!(k0.is_poisoned());
}

/// A circuit that multiplies and opens nothing: a cheater's wrong Beaver share must still be
/// caught before the session ends.
#[test]
fn a_session_with_no_outputs_still_checks_what_it_opened() {
    for parties in [2, 3] {
        let mut b = CircuitBuilder::new(parties);
        let (x, y) = (b.random(), b.random());
        b.mul(x, y);
        let circuit = b.build();
        assert!(circuit.outputs().is_empty());
        for cheater in 0..parties {
            let cheat = Cheat {
                party: cheater,
                frames: Some(Box::new(|_, bytes: Bytes| {
                    if round_of(&bytes) != 1 {
                        return bytes;
                    }
                    let mut f = Frame::decode(&bytes, usize::MAX).unwrap();
                    if let Body::Values(v) = &mut f.body {
                        v[0] += Fp::ONE;
                    }
                    f.encode()
                })),
                ..Cheat::default()
            };
            let results = run_with_cheat(&circuit, &vec![vec![]; parties], 7, cheat);
            for (party, r) in results.into_iter().enumerate() {
                if party != cheater {
                    assert_eq!(
                        r,
                        Err(Abort::MacCheckFailed(CheckStage::Intermediate)),
                        "honest {party} of {parties}"
                    );
                }
            }
        }
    }
}

/// Two opened values shifted so that their errors cancel for one particular challenge r₀ (the
/// one a coin toss stuck at zero seeds would give): the real, coin-tossed challenge catches it.
#[test]
fn errors_that_cancel_for_one_particular_challenge_are_still_caught() {
    let r0 = Prg::new(&[0; 16], 0).field_elements(1)[0];
    let delta = Fp::from_u64(77);
    let shift = -(delta * r0.inverse().expect("r0 ≠ 0"));
    for parties in [2, 3] {
        let mut b = CircuitBuilder::new(parties);
        let (x, y) = (b.random(), b.random());
        let p = b.mul(x, y);
        b.reveal(p);
        let circuit = b.build();
        for cheater in 0..parties {
            let cheat = Cheat {
                party: cheater,
                frames: Some(Box::new(move |_, bytes: Bytes| {
                    if round_of(&bytes) != 1 {
                        return bytes;
                    }
                    let mut f = Frame::decode(&bytes, usize::MAX).unwrap();
                    if let Body::Values(v) = &mut f.body {
                        // Opened in the order d₀, e₀: the error is δ + r·shift = δ(1 − r/r₀).
                        v[0] += delta;
                        v[1] += shift;
                    }
                    f.encode()
                })),
                ..Cheat::default()
            };
            let results = run_with_cheat(&circuit, &vec![vec![]; parties], 9, cheat);
            for (party, r) in results.into_iter().enumerate() {
                if party != cheater {
                    assert_eq!(
                        r,
                        Err(Abort::MacCheckFailed(CheckStage::Intermediate)),
                        "honest {party} of {parties}"
                    );
                }
            }
        }
    }
}
