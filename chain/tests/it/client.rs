//! The Rust client beyond the main scenario: stake lifecycle, project updates, confirmed event
//! watching, the addresses file, and transaction retries under nonce races on a real anvil.

use std::time::Duration;

use crate::support::TestChain;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use conclave_chain::attest::TaskResult;
use conclave_chain::bindings::{
    NodeRegistry::NodeRegistryErrors, ProjectRegistry::ProjectRegistryErrors,
};
use conclave_chain::contracts::{ProjectSpec, ProverKind, task_id};
use conclave_chain::watch::ResultWatcher;
use conclave_chain::{Addresses, ContractError, Contracts, Revert};

fn spec(committee_size: u16, threshold: u16) -> ProjectSpec {
    ProjectSpec {
        program_hash: keccak256(b"p"),
        program_uri: String::new(),
        prover_kind: ProverKind::Spdz,
        committee_size,
        threshold,
        receiver: Address::ZERO,
    }
}

fn nodes_error(e: ContractError) -> NodeRegistryErrors {
    match e {
        ContractError::Revert(Revert::Nodes(r)) => r,
        other => panic!("expected a NodeRegistry error, got {other:?}"),
    }
}

fn projects_error(e: ContractError) -> ProjectRegistryErrors {
    match e {
        ContractError::Revert(Revert::Projects(r)) => r,
        other => panic!("expected a ProjectRegistry error, got {other:?}"),
    }
}

#[tokio::test]
async fn stake_is_locked_until_the_delay_then_returned() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let op = t.funded_key(1).await;
    let before = c.chain().balance(op.address()).await.unwrap();
    let stake = U256::from(5u64) * U256::from(10u64).pow(U256::from(18));
    c.register_node(&op, b"peer-1", stake).await.unwrap();
    assert!(matches!(
        nodes_error(c.register_node(&op, b"peer-1", stake).await.unwrap_err()),
        NodeRegistryErrors::AlreadyRegistered(_)
    ));
    assert!(matches!(
        nodes_error(
            c.register_node(&t.funded_key(2).await, &[], stake)
                .await
                .unwrap_err()
        ),
        NodeRegistryErrors::InvalidPeerId(_)
    ));
    assert!(matches!(
        nodes_error(c.withdraw_stake(&op).await.unwrap_err()),
        NodeRegistryErrors::StillActive(_)
    ));
    c.deactivate_node(&op).await.unwrap();
    assert!(c.active_nodes().await.unwrap().is_empty());
    assert_eq!(c.total_active_stake().await.unwrap(), U256::ZERO);
    assert!(matches!(
        nodes_error(c.withdraw_stake(&op).await.unwrap_err()),
        NodeRegistryErrors::WithdrawTooEarly(_)
    ));
    t.chain.mine(20).await.unwrap();
    c.withdraw_stake(&op).await.unwrap();
    assert_eq!(c.chain().balance(op.address()).await.unwrap(), before);
    assert_eq!(c.node(op.address()).await.unwrap().stake, U256::ZERO);
}

#[tokio::test]
async fn projects_are_checked_and_only_their_owner_changes_them() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let owner = t.funded_key(1).await;
    let other = t.funded_key(2).await;
    assert!(matches!(
        projects_error(c.register_project(&owner, &spec(3, 4)).await.unwrap_err()),
        ProjectRegistryErrors::InvalidCommittee(_)
    ));
    assert!(matches!(
        projects_error(c.register_project(&owner, &spec(0, 0)).await.unwrap_err()),
        ProjectRegistryErrors::InvalidCommittee(_)
    ));
    let id = c.register_project(&owner, &spec(3, 2)).await.unwrap();
    assert!(matches!(
        projects_error(c.update_project(&other, id, &spec(5, 3)).await.unwrap_err()),
        ProjectRegistryErrors::NotProjectOwner(_)
    ));
    assert!(matches!(
        projects_error(c.set_project_paused(&other, id, true).await.unwrap_err()),
        ProjectRegistryErrors::NotProjectOwner(_)
    ));
    c.update_project(&owner, id, &spec(5, 3)).await.unwrap();
    let p = c.project(id).await.unwrap();
    assert_eq!(
        (p.committeeSize, p.threshold, p.owner),
        (5, 3, owner.address())
    );
    c.set_project_paused(&owner, id, true).await.unwrap();
    assert!(c.project(id).await.unwrap().paused);
    assert!(matches!(
        projects_error(c.project(U256::from(99)).await.unwrap_err()),
        ProjectRegistryErrors::UnknownProject(_)
    ));
}

#[tokio::test]
async fn watcher_reports_results_after_the_confirmation_depth() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let op = t.funded_key(1).await;
    c.register_node(&op, b"peer", U256::from(1000))
        .await
        .unwrap();
    let owner = t.funded_key(2).await;
    let project = c.register_project(&owner, &spec(1, 1)).await.unwrap();
    let epoch = c.open_epoch(&owner).await.unwrap();
    let mut watcher = ResultWatcher::new(c.clone(), c.addresses().deployed_at, 3)
        .with_poll_interval(Duration::from_millis(5));
    let result = TaskResult {
        project_id: project,
        task_id: task_id(epoch, U256::from(1)),
        output: Bytes::from_static(b"7"),
        proof_hash: B256::ZERO,
    };
    let att = result
        .sign(&op, c.addresses().chain_id, c.addresses().task_router)
        .unwrap();
    c.submit_result(&owner, &result, vec![att]).await.unwrap();
    assert!(
        watcher.poll().await.unwrap().is_empty(),
        "not confirmed yet"
    );
    t.chain.mine(2).await.unwrap();
    assert!(
        watcher.poll().await.unwrap().is_empty(),
        "two confirmations of three"
    );
    t.chain.mine(1).await.unwrap();
    let events = watcher.next_batch().await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.output, result.output);
    t.chain.mine(5).await.unwrap();
    assert!(
        watcher.poll().await.unwrap().is_empty(),
        "each event is reported once"
    );
}

#[tokio::test]
async fn addresses_file_round_trips_and_rejects_garbage() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("addresses.json");
    c.addresses().write(&path).unwrap();
    assert_eq!(&Addresses::read(&path).unwrap(), c.addresses());
    std::fs::write(&path, b"{\"chain_id\": 1}").unwrap();
    assert!(Addresses::read(&path).is_err());
    std::fs::write(&path, vec![b' '; 70_000]).unwrap();
    assert!(Addresses::read(&path).is_err());
    assert!(Addresses::read(&dir.path().join("missing.json")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_from_one_key_all_land_on_anvil() {
    // Eight transactions from one key at once race for nonces; retries sort them out.
    let t = TestChain::anvil().await;
    let c: Contracts = t.deploy().await;
    let owner = t.funded_key(1).await;
    let sends = (0..8).map(|_| {
        let c = c.clone();
        let owner = owner.clone();
        tokio::spawn(async move { c.register_project(&owner, &spec(3, 2)).await })
    });
    let mut ids = Vec::new();
    for s in sends {
        ids.push(s.await.unwrap().expect("every send lands"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8);
}

/// Registers `n` equal-stake nodes, opens an epoch and publishes one result signed by the first
/// three candidates; returns the gas the submission used.
async fn submit_gas_with_registry_of(n: u8) -> u64 {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let mut keys = Vec::new();
    for i in 1..=n {
        let k = t.funded_key(i).await;
        c.register_node(&k, &[i; 38], U256::from(1_000_000u64))
            .await
            .unwrap();
        keys.push(k);
    }
    let owner = t.funded_key(0).await;
    let project = c.register_project(&owner, &spec(3, 3)).await.unwrap();
    let epoch = c.open_epoch(&owner).await.unwrap();
    let task = task_id(epoch, U256::from(1));
    let ranked = c.committee(project, task).await.unwrap();
    let result = TaskResult {
        project_id: project,
        task_id: task,
        output: Bytes::from(vec![0xAB; 64]),
        proof_hash: B256::repeat_byte(1),
    };
    let (chain_id, router) = (c.addresses().chain_id, c.addresses().task_router);
    let attestations = ranked[..3]
        .iter()
        .map(|a| keys.iter().find(|k| k.address() == *a).unwrap())
        .map(|k| result.sign(k, chain_id, router).unwrap())
        .collect();
    c.submit_result(&owner, &result, attestations)
        .await
        .unwrap()
        .gas_used
}

#[tokio::test]
async fn checking_signers_costs_the_same_gas_for_any_registry_size() {
    let small = submit_gas_with_registry_of(5).await;
    let large = submit_gas_with_registry_of(80).await;
    eprintln!("submit with 3 signatures: {small} gas (5 nodes), {large} gas (80 nodes)");
    // Only calldata bytes of the signatures differ (a few gas each).
    assert!(
        small.abs_diff(large) < 1_000,
        "5 nodes: {small} gas, 80 nodes: {large} gas"
    );
    assert!(small < 250_000, "submit with 3 signatures used {small} gas");
}
