//! The example programs of `examples/programs/`: each compiles, its plaintext evaluation matches
//! a direct Rust computation of what it means, and SPDZ among 2, 3 and 5 parties gives exactly
//! the plaintext result on random inputs in and out of the declared ranges (every run has at
//! least one record out of range). Among 2, 3 and 5 parties, a party that tampers with its
//! random bits (which every comparison and truncation masks with) makes every honest party
//! abort.

use crate::common::{Cheat, run_keeping_shares, run_with_cheat};
use conclave_mpc::lang::{FieldSpec, InputValues, Program};
use conclave_mpc::mac_check::CheckStage;
use conclave_mpc::prep::Material;
use conclave_mpc::{Abort, Fp};
use rand::RngExt;
use rand::rngs::ThreadRng;

fn source(name: &str) -> String {
    let path = format!(
        "{}/../examples/programs/{name}.tally",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn compile(name: &str, parties: usize, slots: usize) -> Program {
    Program::compile(&source(name), parties, Some(slots))
        .unwrap_or_else(|d| panic!("{}", d.render(name, &source(name))))
}

/// A value of the field's type, in its declared range three times out of four.
fn draw(rng: &mut ThreadRng, lo: i128, hi: i128, bits: u32) -> i128 {
    if rng.random_range(0..4) < 3 {
        rng.random_range(lo..=hi)
    } else {
        let half = 1i128 << (bits - 1);
        rng.random_range(-half..half)
    }
}

/// A value of the field's type outside its declared range.
fn out_of_range(rng: &mut ThreadRng, f: &FieldSpec) -> i128 {
    let half = 1i128 << (f.bits - 1);
    let below = (-half < f.lo).then(|| rng.random_range(-half..f.lo));
    let above = (f.hi < half - 1).then(|| rng.random_range(f.hi + 1..half));
    match (below, above) {
        (Some(b), Some(a)) => [b, a][rng.random_range(0..2)],
        (b, a) => b.or(a).expect("a declared range narrower than its type"),
    }
}

/// Random records; the last device slot always has a field out of its range (so it is
/// excluded), the others are drawn by [`draw`].
fn random_inputs(p: &Program, rng: &mut ThreadRng) -> InputValues {
    let l = &p.lowered;
    let record = |rng: &mut ThreadRng, fields: &[FieldSpec]| {
        fields
            .iter()
            .map(|f| draw(rng, f.lo, f.hi, f.bits))
            .collect::<Vec<_>>()
    };
    let mut devices: Vec<Vec<i128>> = (0..l.slots)
        .map(|_| record(rng, &l.device_fields))
        .collect();
    let field = rng.random_range(0..l.device_fields.len());
    let last = devices.last_mut().expect("a program with device slots");
    last[field] = out_of_range(rng, &l.device_fields[field]);
    InputValues {
        devices,
        owner: record(rng, &l.owner_fields),
    }
}

/// MPC equals the plaintext evaluation for 2, 3 and 5 parties; a private output is read as
/// its receiver would: the opened value minus the sum of the parties' mask shares.
fn mpc_matches_plaintext(name: &str, slots: usize, runs: usize) {
    let mut rng = rand::rng();
    for parties in [2, 3, 5] {
        let program = compile(name, parties, slots);
        let keep = program.mask_wires();
        for run in 0..runs {
            let values = random_inputs(&program, &mut rng);
            let expected = program.evaluate(&values).unwrap();
            let inputs = program.party_inputs(&values).unwrap();
            let circuit = &program.lowered.circuit;
            let results = run_keeping_shares(circuit, &inputs, run as u64, &keep);
            let mut masks = vec![Fp::ZERO; keep.len()];
            let mut opened = Vec::new();
            for (party, result) in results.into_iter().enumerate() {
                let (outputs, shares) = result.unwrap_or_else(|e| panic!("party {party}: {e}"));
                for (m, s) in masks.iter_mut().zip(&shares) {
                    *m += s.value;
                }
                if party > 0 {
                    assert_eq!(outputs, opened, "every party opens the same outputs");
                }
                opened = outputs;
            }
            assert_eq!(
                program.decode(&opened, Some(&masks)).unwrap(),
                expected,
                "{name}, {parties} parties, inputs {values:?}"
            );
        }
    }
}

/// Among 2, 3 and 5 parties, every cheater that shifts its shares of the random bits is caught
/// before any output.
fn cheating_aborts(name: &str, slots: usize) {
    for parties in [2, 3, 5] {
        cheating_aborts_among(name, slots, parties);
    }
}

fn cheating_aborts_among(name: &str, slots: usize, parties: usize) {
    let mut rng = rand::rng();
    let program = compile(name, parties, slots);
    let inputs = program
        .party_inputs(&random_inputs(&program, &mut rng))
        .unwrap();
    for cheater in 0..parties {
        let cheat = Cheat {
            party: cheater,
            material: Some(Box::new(|m: &mut Material| {
                for bit in &mut m.bits {
                    bit.value += Fp::ONE;
                }
            })),
            ..Cheat::default()
        };
        for (party, result) in run_with_cheat(&program.lowered.circuit, &inputs, 5, cheat)
            .into_iter()
            .enumerate()
        {
            if party != cheater {
                assert_eq!(
                    result,
                    Err(Abort::MacCheckFailed(CheckStage::Intermediate)),
                    "{name}: {parties} parties, honest party {party}, cheater {cheater}"
                );
            }
        }
    }
}

fn values(program: &Program, devices: &[&[i128]], owner: &[i128]) -> Vec<String> {
    let v = InputValues {
        devices: devices.iter().map(|d| d.to_vec()).collect(),
        owner: owner.to_vec(),
    };
    program
        .evaluate(&v)
        .unwrap()
        .iter()
        .map(|o| format!("{}={o}", o.name))
        .collect()
}

#[test]
fn auction_picks_the_highest_valid_bid_at_the_second_price() {
    let p = compile("auction", 2, 4);
    // Bid 0 is below the range (excluded), 2 000 000 above it.
    assert_eq!(
        values(&p, &[&[300], &[0], &[700], &[2_000_000]], &[]),
        ["winner=2", "price=300", "excluded=2"]
    );
    mpc_matches_plaintext("auction", 5, 2);
    cheating_aborts("auction", 3);
}

#[test]
fn threshold_count_counts_valid_readings_above_the_limit() {
    let p = compile("threshold-count", 2, 4);
    assert_eq!(
        values(&p, &[&[501], &[500], &[20_000], &[9_999]], &[]),
        ["above=2", "counted=3"]
    );
    mpc_matches_plaintext("threshold-count", 6, 2);
    cheating_aborts("threshold-count", 3);
}

#[test]
fn histogram_counts_per_bucket() {
    let p = compile("histogram", 2, 5);
    assert_eq!(
        values(&p, &[&[0], &[9], &[10], &[99], &[100]], &[]),
        ["counts[0]=2", "counts[1]=1", "counts[2]=0", "counts[3]=1"]
    );
    mpc_matches_plaintext("histogram", 4, 2);
    cheating_aborts("histogram", 3);
}

#[test]
fn score_is_a_private_piecewise_linear_sigmoid_of_the_owners_model() {
    let p = compile("score", 2, 2);
    let one = 1 << 12;
    // z = bias + Σ w·x: 0 → 0.5; 2 → 0.75; 100 → 1.
    assert_eq!(
        values(&p, &[&[0, 0, 0], &[one, one, 0]], &[one, one, 0, 0]),
        [
            "scores[0]=0.5",
            "scores[1]=0.75",
            "scores[2]=0",
            "scores[3]=0",
            "scored=2"
        ]
    );
    mpc_matches_plaintext("score", 3, 2);
    cheating_aborts("score", 2);
}

#[test]
fn average_is_the_mean_of_the_valid_readings() {
    let p = compile("average", 2, 4);
    assert_eq!(
        values(&p, &[&[10], &[-3], &[200_000], &[4]], &[]),
        ["mean=3.666656494140625", "counted=3"]
    );
    assert_eq!(
        values(&p, &[&[200_000], &[200_000], &[-200_000], &[300_000]], &[]),
        ["mean=0", "counted=0"]
    );
    mpc_matches_plaintext("average", 4, 2);
    cheating_aborts("average", 3);
}

#[test]
fn variance_gives_mean_and_standard_deviation() {
    let p = compile("variance", 2, 4);
    let at = |x: i128| x << 8;
    // Readings 2, 4, 4, 6: mean 4, variance 2, deviation √2 ≈ 1.41421.
    let out = values(&p, &[&[at(2)], &[at(4)], &[at(4)], &[at(6)]], &[]);
    assert_eq!(out[0], "mean=4");
    let deviation: f64 = out[1].trim_start_matches("deviation=").parse().unwrap();
    assert!((deviation - 2f64.sqrt()).abs() < 2.0 / 256.0, "{out:?}");
    assert_eq!(out[2], "counted=4");
    mpc_matches_plaintext("variance", 3, 1);
    cheating_aborts("variance", 2);
}
