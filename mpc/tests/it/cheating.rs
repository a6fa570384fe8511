//! Each party in turn cheats; every honest party must abort with a typed error naming the failed
//! check, and no honest party is given any output.
//!
//! Circuit: each party inputs one value; outputs are the sum and the product (depth 2). Rounds:
//! 0 inputs, 1–2 multiplication layers, 3–6 first MAC check (coin commit, seed, reveal commit,
//! reveal), 7 output opening, 8–11 output MAC check.

use crate::common;

use crate::common::{Cheat, FrameTamper, round_of, run_with_cheat};
use bytes::Bytes;
use conclave_mpc::dealer::InsecureDealer;
use conclave_mpc::mac_check::{CheckStage, Committed};
use conclave_mpc::prep::Material;
use conclave_mpc::session::SetupError;
use conclave_mpc::share::{KeyError, MacKeyShare};
use conclave_mpc::wire::{Body, DEFAULT_MAX_FRAME, Frame, FrameError, SessionId};
use conclave_mpc::{Abort, Circuit, CircuitBuilder, Fp, PartyId, Session, SessionConfig};

const MUL_ROUND: u32 = 1;
const COIN_COMMIT_ROUND: u32 = 3;
const SEED_ROUND: u32 = 4;
const REVEAL_COMMIT_ROUND: u32 = 5;
const REVEAL_ROUND: u32 = 6;
const OUTPUT_ROUND: u32 = 7;

fn sum_and_product(parties: usize) -> Circuit {
    let mut b = CircuitBuilder::new(parties);
    let x: Vec<_> = (0..parties).map(|p| b.input(p)).collect();
    let mut sum = x[0];
    let mut product = x[0];
    for &w in &x[1..] {
        sum = b.add(sum, w);
    }
    // A balanced-enough product of depth 2 for 2 and 3 parties: (x0·x1)·x2 or (x0·x1)·x0.
    product = b.mul(product, x[1]);
    let last = *x.get(2).unwrap_or(&x[0]);
    product = b.mul(product, last);
    b.reveal(sum);
    b.reveal(product);
    b.build()
}

fn inputs(parties: usize) -> Vec<Vec<Fp>> {
    (0..parties)
        .map(|p| vec![Fp::from_u64(10 + p as u64)])
        .collect()
}

/// Runs with `cheat` for every party count and every cheater, asserting each honest party's error.
fn assert_honest_abort(make: impl Fn(PartyId) -> Cheat, expected: impl Fn(PartyId) -> Abort) {
    for parties in [2, 3] {
        let circuit = sum_and_product(parties);
        for cheater in 0..parties {
            let mut cheat = make(cheater);
            cheat.party = cheater;
            let results = run_with_cheat(&circuit, &inputs(parties), 42 + cheater as u64, cheat);
            for (party, result) in results.into_iter().enumerate() {
                if party != cheater {
                    assert_eq!(
                        result,
                        Err(expected(cheater)),
                        "honest party {party} of {parties}, cheater {cheater}"
                    );
                }
            }
        }
    }
}

fn tamper_material(f: impl FnOnce(&mut Material) + Send + 'static) -> Cheat {
    Cheat {
        material: Some(Box::new(f)),
        ..Cheat::default()
    }
}

/// Rewrites the cheater's frame of `round` (decoded) with `f`, to every recipient alike.
fn tamper_frame_in(round: u32, f: impl Fn(&mut Frame) + Send + 'static) -> Cheat {
    tamper_bytes_in(round, move |bytes| {
        let mut frame = Frame::decode(&bytes, DEFAULT_MAX_FRAME).unwrap();
        f(&mut frame);
        frame.encode()
    })
}

fn tamper_bytes_in(round: u32, f: impl Fn(Bytes) -> Bytes + Send + 'static) -> Cheat {
    let tamper: FrameTamper = Box::new(move |_to, bytes| {
        if round_of(&bytes) == round {
            f(bytes)
        } else {
            bytes
        }
    });
    Cheat {
        frames: Some(tamper),
        ..Cheat::default()
    }
}

fn add_one_to_first_value(frame: &mut Frame) {
    match &mut frame.body {
        Body::Values(v) => v[0] += Fp::ONE,
        other => panic!("expected values, found {other:?}"),
    }
}

fn flip_first_byte(frame: &mut Frame) {
    match &mut frame.body {
        Body::Commit(c) | Body::Seed(c) => c[0] ^= 1,
        Body::Reveal(r) => r.nonce[0] ^= 1,
        other => panic!("expected a commitment or opening, found {other:?}"),
    }
}

// (a) an opened share
#[test]
fn tampered_beaver_share_fails_the_intermediate_mac_check() {
    assert_honest_abort(
        |_| tamper_frame_in(MUL_ROUND, add_one_to_first_value),
        |_| Abort::MacCheckFailed(CheckStage::Intermediate),
    );
}

#[test]
fn tampered_output_share_fails_the_output_mac_check() {
    assert_honest_abort(
        |_| tamper_frame_in(OUTPUT_ROUND, add_one_to_first_value),
        |_| Abort::MacCheckFailed(CheckStage::Outputs),
    );
}

// (b) a MAC share
#[test]
fn wrong_mac_share_on_opened_value_fails_the_intermediate_check() {
    assert_honest_abort(
        |_| tamper_material(|m| m.triples[0].a.mac += Fp::ONE),
        |_| Abort::MacCheckFailed(CheckStage::Intermediate),
    );
}

#[test]
fn wrong_mac_share_on_output_fails_the_output_check() {
    // The last triple's c feeds only the product, which is opened as an output.
    assert_honest_abort(
        |_| tamper_material(|m| m.triples.last_mut().unwrap().c.mac += Fp::ONE),
        |_| Abort::MacCheckFailed(CheckStage::Outputs),
    );
}

// (c) a MAC-key share
#[test]
fn wrong_mac_key_share_fails_the_mac_check() {
    assert_honest_abort(
        |_| tamper_material(|m| m.key = MacKeyShare::new(m.key.value() + Fp::ONE)),
        |_| Abort::MacCheckFailed(CheckStage::Intermediate),
    );
}

// (d) a commitment or its opening
#[test]
fn tampered_coin_commitment_is_caught_at_its_opening() {
    assert_honest_abort(
        |_| tamper_frame_in(COIN_COMMIT_ROUND, flip_first_byte),
        |c| Abort::CommitmentMismatch {
            party: c,
            what: Committed::CoinSeed,
        },
    );
}

#[test]
fn tampered_coin_seed_does_not_open_the_commitment() {
    assert_honest_abort(
        |_| tamper_frame_in(SEED_ROUND, flip_first_byte),
        |c| Abort::CommitmentMismatch {
            party: c,
            what: Committed::CoinSeed,
        },
    );
}

#[test]
fn tampered_reveal_commitment_is_caught_at_its_opening() {
    assert_honest_abort(
        |_| tamper_frame_in(REVEAL_COMMIT_ROUND, flip_first_byte),
        |c| Abort::CommitmentMismatch {
            party: c,
            what: Committed::CheckReveal,
        },
    );
}

#[test]
fn tampered_reveal_does_not_open_the_commitment() {
    assert_honest_abort(
        |_| tamper_frame_in(REVEAL_ROUND, flip_first_byte),
        |c| Abort::CommitmentMismatch {
            party: c,
            what: Committed::CheckReveal,
        },
    );
    // Changing sigma itself (not only the nonce) is caught the same way.
    assert_honest_abort(
        |_| {
            tamper_frame_in(REVEAL_ROUND, |f| {
                if let Body::Reveal(r) = &mut f.body {
                    r.sigma += Fp::ONE;
                }
            })
        },
        |c| Abort::CommitmentMismatch {
            party: c,
            what: Committed::CheckReveal,
        },
    );
}

// (e) frames
#[test]
fn truncated_frame_is_refused() {
    assert_honest_abort(
        |_| tamper_bytes_in(MUL_ROUND, |b| b.slice(..b.len() - 1)),
        |c| Abort::BadFrame {
            from: c,
            error: FrameError::Truncated,
        },
    );
}

#[test]
fn oversized_frame_is_refused_before_decoding() {
    let len = DEFAULT_MAX_FRAME + 1;
    assert_honest_abort(
        |_| tamper_bytes_in(MUL_ROUND, move |_| Bytes::from(vec![1u8; len])),
        |c| Abort::BadFrame {
            from: c,
            error: FrameError::TooLarge {
                len,
                limit: DEFAULT_MAX_FRAME,
            },
        },
    );
}

#[test]
fn garbage_frame_is_refused() {
    assert_honest_abort(
        |_| tamper_bytes_in(MUL_ROUND, |b| Bytes::from(vec![0xa5u8; b.len()])),
        |c| Abort::BadFrame {
            from: c,
            error: FrameError::UnsupportedVersion(0xa5),
        },
    );
}

#[test]
fn frame_replayed_from_an_earlier_round_is_refused() {
    // The cheater re-sends its input-round frame in the first multiplication round.
    assert_honest_abort(
        |_| {
            let mut first: Option<Bytes> = None;
            let tamper: FrameTamper = Box::new(move |_to, bytes| match round_of(&bytes) {
                0 => {
                    first = Some(bytes.clone());
                    bytes
                }
                MUL_ROUND => first.clone().unwrap(),
                _ => bytes,
            });
            Cheat {
                frames: Some(tamper),
                ..Cheat::default()
            }
        },
        |c| Abort::WrongRound {
            from: c,
            expected: MUL_ROUND,
            got: 0,
        },
    );
}

#[test]
fn frame_from_another_session_is_refused() {
    assert_honest_abort(
        |_| tamper_frame_in(SEED_ROUND, |f| f.session = SessionId([1; 16])),
        |c| Abort::WrongSession { from: c },
    );
}

#[test]
fn wrong_kind_of_message_is_refused() {
    assert_honest_abort(
        |_| tamper_frame_in(SEED_ROUND, |f| f.body = Body::Values(vec![])),
        |c| Abort::UnexpectedBody {
            from: c,
            expected: "coin seed",
            got: "values",
        },
    );
    assert_honest_abort(
        |_| tamper_frame_in(MUL_ROUND, |f| f.body = Body::Values(vec![Fp::ONE])),
        |c| Abort::WrongLength {
            from: c,
            expected: 2,
            got: 1,
        },
    );
}

#[test]
fn inconsistent_input_broadcast_is_caught_before_outputs_open() {
    // Three parties; the cheater's input is unused, so no MAC depends on it, but it sends a
    // different masked input to one honest party than to the other.
    let parties = 3;
    for cheater in 0..parties {
        let mut b = CircuitBuilder::new(parties);
        let x: Vec<_> = (0..parties).map(|p| b.input(p)).collect();
        let honest: Vec<_> = (0..parties).filter(|&p| p != cheater).collect();
        let out = b.add(x[honest[0]], x[honest[1]]);
        b.reveal(out);
        let circuit = b.build();
        let victim = honest[1];
        let tamper: FrameTamper = Box::new(move |to, bytes| {
            if round_of(&bytes) != 0 || to != victim {
                return bytes;
            }
            let mut f = Frame::decode(&bytes, DEFAULT_MAX_FRAME).unwrap();
            add_one_to_first_value(&mut f);
            f.encode()
        });
        let cheat = Cheat {
            party: cheater,
            frames: Some(tamper),
            ..Cheat::default()
        };
        let results = run_with_cheat(&circuit, &inputs(parties), 7, cheat);
        for &h in &honest {
            assert!(
                matches!(results[h], Err(Abort::InconsistentBroadcast { .. })),
                "honest party {h}, cheater {cheater}: {:?}",
                results[h]
            );
        }
    }
}

#[test]
fn a_failed_mac_check_poisons_the_key_for_good() {
    let circuit = sum_and_product(3);
    let cheat = tamper_material(|m| m.triples[0].a.mac += Fp::ONE);
    let (results, keys) = common::run_keeping_keys(&circuit, &inputs(3), 5, cheat);
    assert!(results.iter().all(Result::is_err));
    for key in &keys {
        assert!(key.is_poisoned());
    }
    // No new session can start under a poisoned key.
    let mut material = InsecureDealer::new(3, 6)
        .deal(&circuit.requirements())
        .remove(1);
    material.key = keys[1].clone();
    let cfg = SessionConfig::new(SessionId([3; 16]), 1, 3);
    assert_eq!(
        Session::new(cfg, circuit, inputs(3).remove(1), material).err(),
        Some(SetupError::Key(KeyError::Poisoned))
    );
}

#[test]
fn a_frame_error_before_any_check_leaves_the_key_usable() {
    let circuit = sum_and_product(2);
    let cheat = tamper_bytes_in(MUL_ROUND, |b| b.slice(..1));
    let (results, keys) = common::run_keeping_keys(&circuit, &inputs(2), 5, cheat);
    assert!(results[1].is_err());
    assert!(!keys[1].is_poisoned());
}

#[test]
fn honest_run_of_the_same_circuit_succeeds() {
    for parties in [2, 3] {
        let circuit = sum_and_product(parties);
        let inputs = inputs(parties);
        let expected = circuit.evaluate_plain(&inputs, &[]).unwrap();
        for r in common::run_circuit(&circuit, &inputs, 1) {
            assert_eq!(r, Ok(expected.clone()));
        }
    }
}
