//! A cheating party in MASCOT preprocessing: each honest party aborts (at the OT-extension check
//! or at the batch's MAC check, which covers the sacrifice and VOLE consistency), and nothing
//! from the aborted batch is output.
//!
//! Rounds: setup: 0–2 base OTs and seed trees, then the base VOLE (digit-VOLE segments from 3, and
//! its check); first batch (one segment of each kind): extend, Gilboa, 2 rounds of coin toss, one
//! silent extension (trees, sums, challenge, confirm), VOLE authentication, 2 rounds of coin
//! toss, open (sacrifice), 4 rounds of MAC check.

use crate::common::{FrameTamper, TamperTransport, round_of};
use bytes::Bytes;
use conclave_mpc::driver::run;
use conclave_mpc::mac_check::CheckStage;
use conclave_mpc::mascot::MascotKeys;
use conclave_mpc::mascot::base_vole;
use conclave_mpc::mascot::batch::{Batch, BatchError, BatchOutput, BatchSpec};
use conclave_mpc::mascot::setup::Setup;
use conclave_mpc::mascot::silent::{self, SilentError};
use conclave_mpc::mascot::vole::{DIGITS, alpha_digits};
use conclave_mpc::share::MacKeyShare;
use conclave_mpc::transport::MemoryTransport;
use conclave_mpc::wire::{Body, Frame, SessionId};
use conclave_mpc::{Abort, Fp, PartyId};

const SESSION: SessionId = SessionId([0x4c; 16]);
const SETUP_SUMS: u32 = 2;
const BASE: u32 = 3;
const EXTEND: u32 = BASE + base_vole::ROUNDS as u32;
const GILBOA: u32 = EXTEND + 1;
const TREES: u32 = GILBOA + 3;
const SUMS: u32 = TREES + 1;
const CONFIRM: u32 = TREES + 3;
const VOLE: u32 = TREES + 4;
const OPEN: u32 = VOLE + 3;

const SPEC_TRIPLES: usize = 4;
/// Values a party authenticates in one batch of [`spec`]: a, b, c, â, ĉ per triple, 2 randoms,
/// 1 own mask, x₀.
const SPEC_VALUES: usize = 5 * SPEC_TRIPLES + 2 + 1 + 1;

/// A setup sized for two batches of [`spec`] ([`Setup::for_values`]): no silent extension runs.
const SIZED: Option<usize> = Some(2 * SPEC_VALUES);

/// The round of the first batch's VOLE authentication after a setup of `values` (`None`: one
/// that extends, so the batch runs a silent extension first).
fn vole_round(values: Option<usize>) -> u32 {
    match values {
        None => VOLE,
        Some(v) => BASE + base_vole::rounds(v) as u32 + 4,
    }
}

fn spec(parties: usize) -> BatchSpec {
    BatchSpec {
        triples: SPEC_TRIPLES,
        randoms: 2,
        masks: vec![1; parties],
    }
}

/// Makes the cheater's frame tamper, given every party's α.
type MakeTamper = Box<dyn Fn(&[Fp]) -> FrameTamper>;

/// How the cheater deviates.
enum Cheat {
    Frames(MakeTamper),
    /// The cheater's MAC key share differs, from its second batch on, from the α its VOLE role
    /// was set up with.
    WrongAlpha,
}

/// Honest setup (of `values` random VOLEs per pair, or one that extends), then one batch with
/// `cheater` deviating; each party's batch result.
fn run_batch(
    parties: usize,
    cheater: PartyId,
    cheat: &Cheat,
    values: Option<usize>,
) -> Vec<Result<BatchOutput, Abort>> {
    run_batch_then_start_another(parties, cheater, cheat, values)
        .into_iter()
        .map(|(result, _)| result)
        .collect()
}

/// Whether a party's keys started another batch (`None` if setup failed).
type NextBatch = Option<Result<(), BatchError>>;

/// [`run_batch`], and for each party that got through setup, whether its keys then start
/// another batch.
fn run_batch_then_start_another(
    parties: usize,
    cheater: PartyId,
    cheat: &Cheat,
    values: Option<usize>,
) -> Vec<(Result<BatchOutput, Abort>, NextBatch)> {
    let alphas: Vec<Fp> = (0..parties).map(|_| Fp::random(&mut rand::rng())).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let two_batches = matches!(cheat, Cheat::WrongAlpha);
    rt.block_on(async {
        let tasks: Vec<_> = MemoryTransport::mesh(parties)
            .into_iter()
            .enumerate()
            .map(|(party, t)| {
                let key = MacKeyShare::new(alphas[party]);
                let spec = spec(parties);
                let (tamper, wrong_alpha) = match cheat {
                    Cheat::Frames(make) if party == cheater => (Some(make(&alphas)), false),
                    Cheat::WrongAlpha => (None, party == cheater),
                    _ => (None, false),
                };
                tokio::spawn(async move {
                    let mut t =
                        TamperTransport::new(t, tamper.unwrap_or_else(|| Box::new(|_, b| b)));
                    let setup = match values {
                        Some(v) => Setup::for_values(SESSION, party, parties, key, v),
                        None => Setup::new(SESSION, party, parties, key),
                    };
                    let mut keys: MascotKeys = match run(setup, &mut t).await {
                        Ok(keys) => keys,
                        Err(e) => return (Err(e), None),
                    };
                    if two_batches {
                        let first = Batch::new(&mut keys, spec.clone()).expect("batch");
                        if let Err(e) = run(first, &mut t).await {
                            return (Err(e), None);
                        }
                    }
                    if wrong_alpha {
                        let other = keys.mac_key().value() + Fp::ONE;
                        keys.replace_mac_key_insecure(MacKeyShare::new(other));
                    }
                    let batch = Batch::new(&mut keys, spec.clone()).expect("batch");
                    let result = run(batch, &mut t).await;
                    let next = Batch::new(&mut keys, spec).map(|_| ());
                    (result, Some(next))
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
}

fn assert_honest_abort(cheat: Cheat, expected: impl Fn(PartyId) -> Abort) {
    assert_honest_abort_after(None, cheat, expected);
}

/// [`assert_honest_abort`] after a setup of `values` random VOLEs per pair.
fn assert_honest_abort_after(
    values: Option<usize>,
    cheat: Cheat,
    expected: impl Fn(PartyId) -> Abort,
) {
    for parties in [2, 3] {
        for cheater in 0..parties {
            let results = run_batch(parties, cheater, &cheat, values);
            for (party, r) in results.into_iter().enumerate() {
                if party != cheater {
                    assert_eq!(
                        r.err(),
                        Some(expected(cheater)),
                        "honest {party} of {parties}, cheater {cheater}"
                    );
                }
            }
        }
    }
}

/// A cheater that changes the byte body of its frames of `round`.
fn bytes_in_round(round: u32, change: fn(&mut Vec<u8>)) -> Cheat {
    Cheat::Frames(Box::new(move |_| {
        in_round(round, move |_, mut f| {
            if let Body::Bytes(b) = &mut f.body {
                change(b);
            }
            f
        })
    }))
}

/// A cheater that changes the field elements of its frames of `round`.
fn values_in_round(round: u32, change: fn(&mut Vec<Fp>)) -> Cheat {
    Cheat::Frames(Box::new(move |_| {
        in_round(round, move |_, mut f| {
            if let Body::Values(v) = &mut f.body {
                change(v);
            }
            f
        })
    }))
}

fn in_round(round: u32, f: impl Fn(PartyId, Frame) -> Frame + Send + 'static) -> FrameTamper {
    Box::new(move |to, bytes: Bytes| {
        if round_of(&bytes) != round {
            return bytes;
        }
        f(to, Frame::decode(&bytes, usize::MAX).unwrap()).encode()
    })
}

#[test]
fn flipped_bit_in_an_ot_extension_message_fails_the_ot_extension_check() {
    assert_honest_abort(
        bytes_in_round(EXTEND, |b| {
            let last = b.len() - 1;
            b[last] ^= 1;
        }),
        |c| Abort::OtCheckFailed { party: c },
    );
}

#[test]
fn tampered_gilboa_corrections_fail_the_sacrifice() {
    assert_honest_abort(
        values_in_round(GILBOA, |v| {
            v.iter_mut().for_each(|d| *d += Fp::ONE);
        }),
        |_| Abort::MacCheckFailed(CheckStage::Preprocessing),
    );
}

/// One element of the cheater's VOLE message (x − u), for a value whose MAC only the batch's
/// random combination y covers (no sacrifice touches it): a random value, the cheater's own input
/// mask, and x₀. The receiver's MAC share q + α·(x − u) moves by α, the value's does not.
#[test]
fn a_changed_element_in_a_vole_message_fails_the_mac_check() {
    // Values: a, b, c, â, ĉ (4 each), 2 randoms, 1 own mask, x₀.
    let (random_value, own_mask, x0) =
        (5 * SPEC_TRIPLES, 5 * SPEC_TRIPLES + 2, 5 * SPEC_TRIPLES + 3);
    // With a setup that extends (the values come from a silent extension) and with one sized
    // for the batch (they come from the digit VOLE directly).
    for (values, value) in [None, SIZED]
        .into_iter()
        .flat_map(|v| [random_value, own_mask, x0].map(|x| (v, x)))
    {
        let round = vole_round(values);
        assert_honest_abort_after(
            values,
            Cheat::Frames(Box::new(move |_| {
                // Toward one peer only: changes toward two could cancel in the summed MAC.
                let done = std::sync::atomic::AtomicBool::new(false);
                in_round(round, move |_, mut f| {
                    if done.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        return f;
                    }
                    if let Body::Values(e) = &mut f.body {
                        assert_eq!(e.len(), x0 + 1, "the cheater's values");
                        e[value] += Fp::ONE;
                    }
                    f
                })
            })),
            |_| Abort::MacCheckFailed(CheckStage::Preprocessing),
        );
    }
}

/// One element of the cheater's digit-VOLE message for its base values, in a digit where the
/// receiver's α digit is not zero (where it is zero, the receiver's q does not depend on it):
/// the base check catches it before any extension uses the base.
#[test]
fn a_changed_element_in_a_base_vole_message_fails_the_base_check() {
    for values in [None, SIZED] {
        assert_honest_abort_after(values, base_vole_tamper(), |c| Abort::SilentVole {
            party: c,
            error: SilentError::BaseCheckFailed,
        });
    }
}

fn base_vole_tamper() -> Cheat {
    Cheat::Frames(Box::new(|alphas: &[Fp]| {
        let alphas = alphas.to_vec();
        in_round(BASE, move |to, mut f| {
            let d = alpha_digits(&alphas[to])
                .iter()
                .position(|&g| g != 0)
                .expect("α ≠ 0");
            if let Body::Values(e) = &mut f.body {
                let len = e.len() / DIGITS;
                e[d * len + 7] += Fp::ONE;
            }
            f
        })
    }))
}

/// A key holder whose g for a noise tree is off: the owner's consistency check fails, whatever
/// the owner's noise position.
#[test]
fn a_wrong_tree_correction_fails_the_silent_vole_check() {
    assert_honest_abort(
        bytes_in_round(SUMS, |b| {
            let g0 = silent::TREES * 32 * silent::TREE_DEPTH;
            b[g0] ^= 1;
        }),
        |c| Abort::SilentVole {
            party: c,
            error: SilentError::CheckFailed,
        },
    );
}

/// A key holder whose check digest is wrong: the owner's check fails.
#[test]
fn a_wrong_check_digest_fails_the_silent_vole_check() {
    assert_honest_abort(
        bytes_in_round(CONFIRM, |b| {
            b[0] ^= 1;
        }),
        |c| Abort::SilentVole {
            party: c,
            error: SilentError::CheckFailed,
        },
    );
}

/// A short message in a refill round is a typed error.
#[test]
fn a_short_tree_message_is_a_typed_error() {
    assert_honest_abort(
        bytes_in_round(SUMS, |b| {
            b.truncate(100);
        }),
        |c| Abort::SilentVole {
            party: c,
            error: SilentError::BadLength {
                expected: silent::SUMS_BYTES,
                got: 100,
            },
        },
    );
}

/// After a key holder failed the silent check, the owner never uses that pair again; after a
/// batch failed its MAC check, the stocks are out of step and no further batch starts.
#[test]
fn after_a_failed_check_the_keys_start_no_further_batch() {
    let wrong_g = Cheat::Frames(Box::new(|_| {
        in_round(SUMS, |_, mut f| {
            if let Body::Bytes(b) = &mut f.body {
                b[silent::TREES * 32 * silent::TREE_DEPTH] ^= 1;
            }
            f
        })
    }));
    let flipped_opening = Cheat::Frames(Box::new(|_| {
        in_round(OPEN, |_, mut f| {
            if let Body::Values(v) = &mut f.body {
                v[0] += Fp::ONE;
            }
            f
        })
    }));
    let cheater = 1;
    for (party, (_, next)) in run_batch_then_start_another(3, cheater, &wrong_g, None)
        .into_iter()
        .enumerate()
        .filter(|(p, _)| *p != cheater)
    {
        let next = next.expect("setup passed").err();
        assert_eq!(
            next,
            Some(BatchError::PairDestroyed(cheater)),
            "party {party}"
        );
    }
    for (party, (_, next)) in run_batch_then_start_another(3, cheater, &flipped_opening, None)
        .into_iter()
        .enumerate()
        .filter(|(p, _)| *p != cheater)
    {
        let next = next.expect("setup passed").err();
        assert_eq!(next, Some(BatchError::VoleOutOfStep), "party {party}");
    }
}

/// An owner whose OT extension for the noise trees is inconsistent fails the OT check, and the
/// pair is not used again.
#[test]
fn a_flipped_bit_in_the_noise_tree_ot_extension_fails_its_check() {
    assert_honest_abort(
        bytes_in_round(TREES, |b| {
            let last = b.len() - 1;
            b[last] ^= 1;
        }),
        |c| Abort::OtCheckFailed { party: c },
    );
}

/// The setup's last round carries the dealer's masked GGM level sums, 128 bytes per tree: trees
/// 0–31 seed the peer's OT-extension sender, trees 32–95 its VOLE receiver.
fn corrupt_tree(tree: usize) -> Cheat {
    Cheat::Frames(Box::new(move |_| {
        in_round(SETUP_SUMS, move |_, mut f| {
            if let Body::Bytes(b) = &mut f.body {
                // Both level-1 sums, so the peer reads a wrong one whatever its digit.
                b[128 * tree] ^= 1;
                b[128 * tree + 16] ^= 1;
            }
            f
        })
    }))
}

#[test]
fn a_corrupted_seed_tree_of_the_ot_extension_fails_its_check() {
    assert_honest_abort(corrupt_tree(0), |c| Abort::OtCheckFailed { party: c });
}

#[test]
fn a_corrupted_seed_tree_of_the_vole_fails_the_base_check() {
    assert_honest_abort(corrupt_tree(32 + 5), |c| Abort::SilentVole {
        party: c,
        error: SilentError::BaseCheckFailed,
    });
}

#[test]
fn flipped_sacrificed_value_fails_the_mac_check() {
    assert_honest_abort(
        values_in_round(OPEN, |v| {
            v[0] += Fp::ONE;
        }),
        |_| Abort::MacCheckFailed(CheckStage::Preprocessing),
    );
}

#[test]
fn wrong_alpha_share_in_vole_fails_the_mac_check() {
    for values in [None, SIZED] {
        assert_honest_abort_after(values, Cheat::WrongAlpha, |_| {
            Abort::MacCheckFailed(CheckStage::Preprocessing)
        });
    }
}

#[test]
fn garbage_frames_are_typed_errors() {
    for parties in [2, 3] {
        let cheat = Cheat::Frames(Box::new(|_| {
            Box::new(|_, b: Bytes| {
                if round_of(&b) == GILBOA {
                    Bytes::from(vec![0x77; b.len()])
                } else {
                    b
                }
            })
        }));
        let results = run_batch(parties, 0, &cheat, None);
        for r in &results[1..] {
            assert!(matches!(r, Err(Abort::BadFrame { from: 0, .. })), "{r:?}");
        }
    }
}

#[test]
fn a_pool_never_stocks_material_from_an_aborted_batch() {
    use conclave_mpc::mascot::pool::{Pool, PoolConfig};
    use conclave_mpc::prep::Preprocessing;
    use std::sync::atomic::{AtomicBool, Ordering};

    let parties = 3;
    let cheater = 1;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .worker_threads(2)
        .build()
        .unwrap();
    let results = rt.block_on(async {
        let tasks: Vec<_> = MemoryTransport::mesh(parties)
            .into_iter()
            .enumerate()
            .map(|(party, t)| {
                let done = AtomicBool::new(false);
                let tamper: FrameTamper = if party == cheater {
                    Box::new(move |_, b: Bytes| {
                        if round_of(&b) != OPEN || done.swap(true, Ordering::SeqCst) {
                            return b;
                        }
                        let mut f = Frame::decode(&b, usize::MAX).unwrap();
                        if let Body::Values(v) = &mut f.body {
                            v[0] += Fp::ONE;
                        }
                        f.encode()
                    })
                } else {
                    Box::new(|_, b| b)
                };
                let key = MacKeyShare::new(Fp::random(&mut rand::rng()));
                tokio::spawn(async move {
                    let t = TamperTransport::new(t, tamper);
                    let mut pool = Pool::start(
                        SESSION,
                        key.clone(),
                        t,
                        PoolConfig::for_triples(parties, 8, 8),
                    )
                    .await
                    .expect("setup is honest");
                    let req = conclave_mpc::prep::Requirements {
                        triples: 1,
                        randoms: 0,
                        input_masks: vec![0; parties],
                        bits: 0,
                    };
                    let ready = pool.ready(&req).await;
                    (
                        ready,
                        pool.levels(),
                        pool.triples(1).is_err(),
                        key.is_poisoned(),
                    )
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (party, (ready, levels, take_failed, poisoned)) in results.into_iter().enumerate() {
        if party == cheater {
            continue;
        }
        assert_eq!(
            ready,
            Err(Abort::MacCheckFailed(CheckStage::Preprocessing)),
            "party {party}"
        );
        assert_eq!((levels.triples, levels.randoms, levels.bits), (0, 0, 0));
        assert!(levels.masks.iter().all(|&m| m == 0));
        assert!(take_failed);
        assert!(poisoned, "a failed preprocessing check poisons the key");
    }
}
