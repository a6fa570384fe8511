//! The seat draw gives the same masks in Solidity (`TaskRouter.draw`, run by the embedded EVM) and
//! in Rust (`Draw::seats`) for 500 random cases, and the contract's own view of a node's seats in
//! a task (`seatsOf`) agrees with the Rust committee.

use crate::support::{self, TestChain};
use alloy::primitives::{Address, B256, U256};
use conclave_chain::sortition::{Draw, MAX_UNITS, seat_count};
use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};

fn random_u256(rng: &mut StdRng) -> U256 {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    U256::from_be_bytes(bytes)
}

/// A task id: small like the contract's, or any 256-bit word.
fn random_task_id(rng: &mut StdRng) -> U256 {
    if rng.random_bool(0.5) {
        U256::from(rng.random_range(1u64..10_000))
    } else {
        random_u256(rng)
    }
}

#[tokio::test]
async fn solidity_and_rust_draw_the_same_seats() {
    let t = TestChain::embedded();
    let contracts = t.deploy().await;
    let mut rng = StdRng::seed_from_u64(0xC0C1A7E);
    let (mut strict, mut everyone, mut no_one, mut capped) = (0, 0, 0, 0);
    const CASES: usize = 500;
    for case in 0..CASES {
        let mut a = [0u8; 20];
        rng.fill_bytes(&mut a);
        let operator = Address::from(a);
        // Units from none to beyond the cap (300 > 256).
        let units: u64 = rng.random_range(0..=300);
        // The task's total: usually at least this node's units, sometimes anything (even 0).
        let total = match rng.random_range(0..10) {
            0 => rng.random_range(0..=400u64),
            1 => units.min(MAX_UNITS),
            _ => units.clamp(1, MAX_UNITS) + rng.random_range(0..2000u64),
        };
        let expected = match rng.random_range(0..10) {
            0 => rng.random_range(1..=500u64),
            _ => rng.random_range(1..=64u64),
        };
        let draw = Draw {
            seed: B256::from(random_u256(&mut rng)),
            task_id: random_task_id(&mut rng),
            total_units: U256::from(total),
            expected: U256::from(expected),
        };
        let in_rust = draw.seats(operator, units);
        let in_solidity = contracts
            .draw_on_chain(&draw, operator, units)
            .await
            .unwrap();
        assert_eq!(
            in_rust, in_solidity,
            "case {case}: {draw:?} operator {operator} units {units}"
        );
        // Seats never go beyond the node's (capped) units.
        let counted = units.min(MAX_UNITS);
        if counted < 256 {
            assert!(in_rust >> counted as usize == U256::ZERO, "case {case}");
        }
        let won = u64::from(seat_count(in_rust));
        match won {
            0 => no_one += 1,
            w if w == counted => everyone += 1,
            _ => strict += 1,
        }
        capped += usize::from(units > MAX_UNITS && won > 0);
    }
    eprintln!(
        "draw cases: {strict} strict nonempty subsets, {everyone} every unit, {no_one} none, \
         {capped} over the cap with seats"
    );
    // The cases exercise real selection, not only "every unit" or "no unit".
    assert!(
        strict > CASES * 2 / 5,
        "only {strict} cases selected a strict nonempty subset of the units"
    );
    assert!(everyone > 0 && no_one > 0 && capped > 0);
}

#[test]
fn a_unit_wins_with_the_expected_probability() {
    // The cutoff is total-relative: over many draws a node with u of T units holds about
    // u · expected / T seats, in Rust and (by the equivalence above) in Solidity.
    let operator = Address::repeat_byte(0x11);
    let mut won = 0u64;
    for task in 0..2000u64 {
        let draw = Draw {
            seed: B256::repeat_byte(0x5e),
            task_id: U256::from(task),
            total_units: U256::from(100),
            expected: U256::from(10),
        };
        won += u64::from(seat_count(draw.seats(operator, 20)));
    }
    // 2000 draws × 20 units × 10/100: 4000 on average (standard deviation about 60).
    assert!((3700..4300).contains(&won), "won {won} seats");
}

#[tokio::test]
async fn contract_seats_of_a_task_match_the_rust_committee() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let mut keys = Vec::new();
    for n in 1..=12u8 {
        // 1 to 4 units, and one node above the 256-unit cap.
        let stake = if n == 12 {
            300 * support::MIN_STAKE
        } else {
            support::MIN_STAKE * u64::from(n % 4 + 1) + u64::from(n)
        };
        keys.push(support::register(&t, &c, n, stake).await);
    }
    let owner = t.funded_key(50).await;
    let project = c
        .register_project(
            &owner,
            &conclave_chain::contracts::ProjectSpec {
                program_hash: B256::repeat_byte(1),
                program_uri: String::new(),
                prover_kind: conclave_chain::contracts::ProverKind::Wasm,
                committee_size: 32,
                threshold: 1,
                receiver: Address::ZERO,
                verifier: Address::ZERO,
                output_words: 0,
            },
        )
        .await
        .unwrap();
    let mut units_seen = 0;
    for _ in 0..3 {
        let (task_id, opened_at) = c.open_task(&owner, project).await.unwrap();
        assert_eq!(c.committee(task_id).await.unwrap(), None, "no seed yet");
        t.chain.mine(2).await.unwrap();
        let committee = c.committee(task_id).await.unwrap().unwrap();
        let task = c.task(task_id).await.unwrap();
        let mut total = 0;
        for k in &keys {
            let units = c.units_at(k.address(), opened_at).await.unwrap();
            total += units;
            let on_chain = c.seats_on_chain(task_id, k.address()).await.unwrap();
            let in_rust = committee
                .iter()
                .find(|(who, _)| *who == k.address())
                .map_or(U256::ZERO, |s| s.1);
            assert_eq!(on_chain, in_rust, "task {task_id} node {}", k.address());
            units_seen += usize::from(units > 0);
        }
        assert_eq!(task.totalUnits, U256::from(total), "snapshot of the units");
        assert!(committee.windows(2).all(|w| w[0].0 < w[1].0), "ascending");
        assert!(
            committee.iter().all(|(_, m)| !m.is_zero()),
            "only seat holders"
        );
    }
    assert_eq!(units_seen, 36);
    // The node above the cap counts 256 units.
    assert_eq!(c.units_at(keys[11].address(), u64::MAX).await.unwrap(), 256);
}
