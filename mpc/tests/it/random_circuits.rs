//! Random circuits (multiplicative depth ≥ 8, ≥ 200 gates) evaluated by 2, 3 and 5 parties give
//! exactly the plaintext result.

use crate::common;

use conclave_mpc::circuit::Gate;
use conclave_mpc::schedule::Plan;
use conclave_mpc::{Circuit, CircuitBuilder, Fp, Wire};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random circuit with a chain of `depth` multiplications of secrets and `gates` gates in all
/// (products with constants among them, which are local).
fn random_circuit(parties: usize, seed: u64, depth: usize, gates: usize) -> Circuit {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = CircuitBuilder::new(parties);
    let mut wires: Vec<Wire> = Vec::new();
    for p in 0..parties {
        for _ in 0..rng.random_range(1..4) {
            wires.push(b.input(p));
        }
    }
    let secrets = wires.len();
    wires.push(b.constant(Fp::from_i64(rng.random_range(-5..6))));
    let mut spine = wires[0];
    let mut built = wires.len();
    for _ in 0..depth {
        // A secret factor: a product with a public one is local and adds no depth.
        let other = wires[rng.random_range(0..secrets)];
        spine = b.mul(spine, other);
        wires.push(spine);
        built += 1;
    }
    while built < gates {
        let a = wires[rng.random_range(0..wires.len())];
        let c = wires[rng.random_range(0..wires.len())];
        let w = match rng.random_range(0..7) {
            0 => b.add(a, c),
            1 => b.sub(a, c),
            2 => b.neg(a),
            3 | 4 => b.mul(a, c),
            5 => b.mul_const(a, Fp::from_i64(rng.random_range(-9..10))),
            _ => b.constant(Fp::from_u64(rng.random())),
        };
        wires.push(w);
        built += 1;
    }
    b.reveal(spine);
    for _ in 0..5 {
        b.reveal(wires[rng.random_range(0..wires.len())]);
    }
    b.build()
}

fn random_inputs(circuit: &Circuit, seed: u64) -> Vec<Vec<Fp>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xabcdef);
    circuit
        .input_counts()
        .iter()
        .map(|&n| (0..n).map(|_| Fp::random(&mut rng)).collect())
        .collect()
}

fn check(parties: usize, seed: u64) {
    let circuit = random_circuit(parties, seed, 8, 220);
    assert!(circuit.gates().len() >= 200);
    assert!(Plan::new(&circuit).depth() >= 8);
    assert!(circuit.gates().iter().any(|g| matches!(g, Gate::Mul(..))));
    let inputs = random_inputs(&circuit, seed);
    let expected = circuit.evaluate_plain(&inputs, &[]).unwrap();
    for (party, result) in common::run_circuit(&circuit, &inputs, seed)
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            result.as_ref(),
            Ok(&expected),
            "party {party} of {parties}, seed {seed}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn two_parties_match_plaintext(seed in any::<u64>()) {
        check(2, seed);
    }

    #[test]
    fn three_parties_match_plaintext(seed in any::<u64>()) {
        check(3, seed);
    }

    #[test]
    fn five_parties_match_plaintext(seed in any::<u64>()) {
        check(5, seed);
    }
}

#[test]
fn random_gates_open_to_the_same_value_for_everyone() {
    let mut b = CircuitBuilder::new(3);
    let r = b.random();
    let x = b.input(1);
    let rx = b.mul(r, x);
    b.reveal(r);
    b.reveal(rx);
    let circuit = b.build();
    let inputs = vec![vec![], vec![Fp::from_u64(3)], vec![]];
    let results: Vec<Vec<Fp>> = common::run_circuit(&circuit, &inputs, 9)
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(results.iter().all(|r| r == &results[0]));
    assert_eq!(results[0][1], results[0][0] * Fp::from_u64(3));
}

#[test]
fn circuit_without_outputs_finishes_with_none() {
    let mut b = CircuitBuilder::new(2);
    let x = b.input(0);
    let y = b.input(1);
    b.mul(x, y);
    let circuit = b.build();
    let inputs = vec![vec![Fp::ONE], vec![Fp::ONE]];
    for r in common::run_circuit(&circuit, &inputs, 1) {
        assert_eq!(r, Ok(vec![]));
    }
}
