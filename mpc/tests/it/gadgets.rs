//! Comparison, equality and truncation under SPDZ: the parties' result equals the plaintext
//! evaluation for 2, 3 and 5 parties, and a party that tampers with a masked opening, a product
//! inside a comparison or its own random bits makes every honest party abort with no output.

use crate::common::{Cheat, FrameTamper, round_of, run_circuit, run_with_cheat};
use conclave_mpc::gadgets::{equals_zero, less_than_zero, truncate};
use conclave_mpc::mac_check::CheckStage;
use conclave_mpc::prep::Material;
use conclave_mpc::wire::{Body, DEFAULT_MAX_FRAME, Frame};
use conclave_mpc::{Abort, Circuit, CircuitBuilder, Fp};
use rand::RngExt;

/// Outputs [x0 < x1], [x0 = x1] and ⌊x0·x1 / 2^16⌋ for 32-bit inputs of parties 0 and 1.
fn compare_and_truncate(parties: usize) -> Circuit {
    let mut b = CircuitBuilder::new(parties);
    let x0 = b.input(0);
    let x1 = b.input(1);
    let diff = b.sub(x0, x1);
    let lt = less_than_zero(&mut b, diff, 33);
    let eq = equals_zero(&mut b, diff, 33);
    let product = b.mul(x0, x1);
    let scaled = truncate(&mut b, product, 64, 16);
    for w in [lt, eq, scaled] {
        b.reveal(w);
    }
    b.build()
}

fn inputs_for(parties: usize, x0: i64, x1: i64) -> Vec<Vec<Fp>> {
    let mut inputs = vec![Vec::new(); parties];
    inputs[0].push(Fp::from_i64(x0));
    inputs[1].push(Fp::from_i64(x1));
    inputs
}

#[test]
fn mpc_agrees_with_the_plaintext_evaluation() {
    let mut rng = rand::rng();
    for parties in [2, 3, 5] {
        let circuit = compare_and_truncate(parties);
        for round in 0..4 {
            let (x0, x1) = if round == 0 {
                let v = rng.random_range(-(1i64 << 31)..(1 << 31));
                (v, v)
            } else {
                (
                    rng.random_range(-(1i64 << 31)..(1 << 31)),
                    rng.random_range(-(1i64 << 31)..(1 << 31)),
                )
            };
            let inputs = inputs_for(parties, x0, x1);
            let expected = circuit.evaluate_plain(&inputs, &[]).unwrap();
            let plain: Vec<i128> = expected.iter().map(|v| v.to_i128().unwrap()).collect();
            assert_eq!(
                plain,
                vec![
                    i128::from(x0 < x1),
                    i128::from(x0 == x1),
                    (i128::from(x0) * i128::from(x1)).div_euclid(1 << 16)
                ]
            );
            for (party, result) in run_circuit(&circuit, &inputs, round)
                .into_iter()
                .enumerate()
            {
                assert_eq!(result.as_ref(), Ok(&expected), "party {party} of {parties}");
            }
        }
    }
}

/// Runs the circuit with each party in turn cheating as `make` says and asserts every honest
/// party aborts with a failed intermediate MAC check (nothing opened reaches an output).
fn assert_every_cheater_caught(make: impl Fn() -> Cheat) {
    for parties in [2, 3] {
        let circuit = compare_and_truncate(parties);
        for cheater in 0..parties {
            let mut cheat = make();
            cheat.party = cheater;
            let results = run_with_cheat(&circuit, &inputs_for(parties, 7, -3), 9, cheat);
            for (party, result) in results.into_iter().enumerate() {
                if party != cheater {
                    assert_eq!(
                        result,
                        Err(Abort::MacCheckFailed(CheckStage::Intermediate)),
                        "honest party {party} of {parties}, cheater {cheater}"
                    );
                }
            }
        }
    }
}

/// Adds one to the last value of the cheater's frame in `round`.
fn tamper_round(round: u32) -> Cheat {
    let tamper: FrameTamper = Box::new(move |_to, bytes| {
        if round_of(&bytes) != round {
            return bytes;
        }
        let mut frame = Frame::decode(&bytes, DEFAULT_MAX_FRAME).unwrap();
        match &mut frame.body {
            Body::Values(v) => *v.last_mut().expect("a value") += Fp::ONE,
            other => panic!("expected values, found {other:?}"),
        }
        frame.encode()
    });
    Cheat {
        frames: Some(tamper),
        ..Cheat::default()
    }
}

/// Round 1 carries the product's Beaver masks, then the comparison's and the equality's masked
/// openings (the last value is the equality's). Round 2 ends with the truncation's masked opening.
#[test]
fn tampered_masked_opening_of_a_comparison_is_caught() {
    assert_every_cheater_caught(|| tamper_round(1));
}

#[test]
fn tampered_masked_opening_of_a_truncation_is_caught() {
    assert_every_cheater_caught(|| tamper_round(2));
}

/// Round 3 carries the products of the comparison's carry tree.
#[test]
fn tampered_product_inside_a_comparison_is_caught() {
    assert_every_cheater_caught(|| tamper_round(3));
}

#[test]
fn tampered_random_bit_share_is_caught() {
    assert_every_cheater_caught(|| Cheat {
        material: Some(Box::new(|m: &mut Material| {
            for bit in &mut m.bits {
                bit.value += Fp::ONE;
            }
        })),
        ..Cheat::default()
    });
}

/// The cheater shifts its share of a high mask bit of the first comparison (bit 40 of 73: only
/// the masked opening reads it, and only the opening's high part, which no result depends on).
/// Every later value stays consistent, so only the MAC check of the opening itself can catch it.
#[test]
fn a_consistently_shifted_masked_opening_is_caught_by_its_own_mac_check() {
    assert_every_cheater_caught(|| Cheat {
        material: Some(Box::new(|m: &mut Material| m.bits[40].value += Fp::ONE)),
        ..Cheat::default()
    });
}
