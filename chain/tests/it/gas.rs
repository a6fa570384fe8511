//! What opening a task and publishing its result cost, and that checking a signer's seats costs
//! the same whatever the size of the registry (one `unitsAt` call and one hash per claimed seat).

use crate::support::{self, MIN_STAKE, TestChain, committee_signatures, open_task_where, send_raw};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::sol_types::SolCall;
use conclave_chain::attest::TaskResult;
use conclave_chain::bindings::TaskRouter;
use conclave_chain::contracts::{ProjectSpec, ProverKind, Target};

/// Gas of one `openTask` and of one `submit` carrying exactly `threshold` signatures of one seat
/// each, with `registry` nodes of one unit each and a committee of `committee` expected seats.
#[derive(Debug, Clone, Copy)]
struct Costs {
    open: u64,
    submit: u64,
    signers: u64,
}

impl Costs {
    fn per_signer(&self) -> f64 {
        self.submit as f64 / self.signers as f64
    }
}

async fn costs(registry: u8, committee: u16, threshold: u16) -> Costs {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let mut keys = Vec::new();
    for n in 1..=registry {
        keys.push(support::register(&t, &c, n, MIN_STAKE).await);
    }
    let owner = t.funded_key(200).await;
    let project = c
        .register_project(
            &owner,
            &ProjectSpec {
                program_hash: keccak256(b"gas"),
                program_uri: "ipfs://gas".into(),
                prover_kind: ProverKind::Spdz,
                committee_size: committee,
                threshold,
                receiver: Address::ZERO,
                verifier: Address::ZERO,
                output_words: 0,
            },
        )
        .await
        .unwrap();
    // One unit per node: each member holds exactly one seat.
    let opened = open_task_where(&t, &c, &owner, project, |m| {
        m.len() >= usize::from(threshold)
    })
    .await;
    assert!(opened.committee.iter().all(|(_, m)| *m == U256::from(1)));
    // Opening another task (not the first: that one also sets taskCount from zero).
    let open = send_raw(
        &c,
        &owner,
        Target::Router,
        TaskRouter::openTaskCall { projectId: project }.abi_encode(),
    )
    .await
    .unwrap()
    .gas_used;

    let result = TaskResult {
        project_id: project,
        task_id: opened.task_id,
        output: Bytes::from(vec![0xAB; 64]),
        proof_hash: B256::repeat_byte(1),
    };
    let signers = &opened.committee[..usize::from(threshold)];
    let (sigs, masks) = committee_signatures(&result, signers, &keys, &c);
    let receipt = c
        .submit_signatures(&owner, &result, sigs, masks)
        .await
        .unwrap();
    Costs {
        open,
        submit: receipt.gas_used,
        signers: u64::from(threshold),
    }
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.min(b)
}

#[tokio::test]
async fn submit_gas_per_signer_does_not_grow_with_the_registry() {
    let small_3 = costs(5, 5, 3).await;
    let large_3 = costs(80, 5, 3).await;
    let small_9 = costs(16, 16, 9).await;
    let large_9 = costs(80, 16, 9).await;
    for (what, x) in [
        ("t=3 of c=5, 5 nodes", small_3),
        ("t=3 of c=5, 80 nodes", large_3),
        ("t=9 of c=16, 16 nodes", small_9),
        ("t=9 of c=16, 80 nodes", large_9),
    ] {
        eprintln!(
            "{what}: openTask {} gas, submit {} gas, {:.0} gas per signer",
            x.open,
            x.submit,
            x.per_signer()
        );
    }
    let marginal =
        |a: Costs, b: Costs| (b.submit - a.submit) as f64 / (b.signers - a.signers) as f64;
    eprintln!(
        "each further signer (one seat): {:.0} gas (5/16 nodes), {:.0} gas (80 nodes)",
        marginal(small_3, small_9),
        marginal(large_3, large_9)
    );

    // The registry's size changes neither opening nor the check of a signer.
    for (small, large) in [(small_3, large_3), (small_9, large_9)] {
        assert!(
            relative(small.per_signer(), large.per_signer()) < 0.02,
            "{small:?} vs {large:?}"
        );
        assert!(
            relative(small.open as f64, large.open as f64) < 0.01,
            "{small:?} vs {large:?}"
        );
    }
    assert!(
        relative(marginal(small_3, small_9), marginal(large_3, large_9)) < 0.02,
        "marginal signer cost depends on the registry"
    );
    // Bounds with room to spare, so that a regression (say, a loop over the registry) shows.
    assert!(marginal(large_3, large_9) < 20_000.0);
    assert!(large_3.submit < 300_000, "{large_3:?}");
    assert!(large_9.submit < 400_000, "{large_9:?}");
    assert!(large_3.open < 200_000, "{large_3:?}");
}
