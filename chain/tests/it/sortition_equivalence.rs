//! The committee draw gives the same ranked candidates in Solidity (`TaskRouter.draw`, run by the
//! embedded EVM) and in Rust (`Draw::rank`) for 1,000 random cases.

use crate::support::TestChain;
use alloy::primitives::{Address, B256, U256};
use conclave_chain::sortition::Draw;
use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};

fn random_u256(rng: &mut StdRng) -> U256 {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    U256::from_be_bytes(bytes)
}

/// Stakes from dust to whales, with zeros and ties.
fn random_stake(rng: &mut StdRng) -> U256 {
    match rng.random_range(0..6) {
        0 => U256::ZERO,
        1 => U256::from(rng.random_range(1u64..1000)),
        2 => U256::from(10u64).pow(U256::from(18)),
        3 => U256::from(rng.random::<u64>()) * U256::from(10u64).pow(U256::from(9)),
        4 => U256::from(rng.random::<u128>()),
        _ => U256::from(rng.random_range(1u64..4)) * U256::from(10u64).pow(U256::from(21)),
    }
}

#[tokio::test]
async fn solidity_and_rust_draw_the_same_committees() {
    let t = TestChain::embedded();
    let contracts = t.deploy().await;
    let mut rng = StdRng::seed_from_u64(0xC0C1A7E);
    let mut nonempty = 0;
    for case in 0..1000 {
        let n = rng.random_range(0..40usize);
        let nodes: Vec<(Address, U256)> = (0..n)
            .map(|_| {
                let mut a = [0u8; 20];
                rng.fill_bytes(&mut a);
                (Address::from(a), random_stake(&mut rng))
            })
            .collect();
        let sum = nodes.iter().fold(U256::ZERO, |acc, n| acc + n.1);
        // The epoch's total may exceed the listed nodes' (others not listed); never 0.
        let extra = if rng.random_bool(0.5) {
            U256::ZERO
        } else {
            random_stake(&mut rng)
        };
        let total = (sum + extra).max(U256::from(1));
        let draw = Draw {
            seed: B256::from(random_u256(&mut rng)),
            total_stake: total,
            expected: U256::from(rng.random_range(1u64..100)),
            project_id: U256::from(rng.random_range(1u64..1000)),
            task_id: random_u256(&mut rng),
        };
        let in_rust = draw.rank(&nodes);
        let in_solidity = contracts.draw_on_chain(&draw, &nodes).await.unwrap();
        assert_eq!(in_rust, in_solidity, "case {case}: {draw:?} {nodes:?}");
        nonempty += usize::from(!in_rust.is_empty() && in_rust.len() < n);
    }
    // The cases exercise real selection, not only "everyone" or "no one".
    assert!(
        nonempty > 300,
        "only {nonempty} cases selected a strict subset"
    );
}
