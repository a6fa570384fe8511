//! The Rust client beyond the main scenario: stake lifecycle, project updates, confirmed event
//! watching, the addresses file, and transaction retries under nonce races on a real anvil.

use std::time::Duration;

use crate::support::{self, MIN_STAKE, TestChain, identity, nodes_error, projects_error};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use conclave_chain::attest::TaskResult;
use conclave_chain::bindings::{
    NodeRegistry::NodeRegistryErrors, ProjectRegistry::ProjectRegistryErrors,
};
use conclave_chain::contracts::{ProjectSpec, ProverKind};
use conclave_chain::identity::NodeIdentity;
use conclave_chain::watch::ResultWatcher;
use conclave_chain::{Addresses, Contracts};

fn spec(committee_size: u16, threshold: u16) -> ProjectSpec {
    ProjectSpec {
        program_hash: keccak256(b"p"),
        program_uri: String::new(),
        prover_kind: ProverKind::Spdz,
        committee_size,
        threshold,
        receiver: Address::ZERO,
        verifier: Address::ZERO,
        output_words: 0,
    }
}

#[tokio::test]
async fn stake_is_locked_until_the_delay_then_returned() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let delay = support::test_config().withdraw_delay;
    let op = t.funded_key(1).await;
    let before = c.chain().balance(op.address()).await.unwrap();
    let stake = U256::from(5 * MIN_STAKE + 123);
    let receipt = c.register_node(&op, &identity(1), stake).await.unwrap();
    let node = c.node(op.address()).await.unwrap();
    assert_eq!(
        (
            node.stake,
            node.registeredAt,
            node.deactivatedAt,
            node.slashed
        ),
        (stake, receipt.block_number, 0, false)
    );
    assert_eq!(c.units_at(op.address(), u64::MAX).await.unwrap(), 5);
    assert!(matches!(
        nodes_error(c.register_node(&op, &identity(1), stake).await.unwrap_err()),
        NodeRegistryErrors::AlreadyRegistered(_)
    ));
    let other = t.funded_key(2).await;
    let bad = |f: fn(&mut NodeIdentity)| {
        let mut id = identity(2);
        f(&mut id);
        id
    };
    for (id, want) in [
        (bad(|id| id.peer_id.clear()), "InvalidPeerId"),
        (bad(|id| id.peer_id = vec![1; 65]), "InvalidPeerId"),
        (
            bad(|id| {
                id.proof_of_possession.pop();
            }),
            "InvalidProofOfPossession",
        ),
        (
            bad(|id| id.proof_of_possession = vec![0; 128]),
            "InvalidProofOfPossession",
        ),
    ] {
        let e = nodes_error(c.register_node(&other, &id, stake).await.unwrap_err());
        assert_eq!(support::error_name(&e), want);
    }
    assert!(matches!(
        nodes_error(
            c.register_node(&other, &identity(2), U256::from(MIN_STAKE - 1))
                .await
                .unwrap_err()
        ),
        NodeRegistryErrors::StakeTooLow(_)
    ));
    // A 64-byte peer id is accepted.
    c.register_node(
        &other,
        &bad(|id| id.peer_id = vec![2; 64]),
        U256::from(MIN_STAKE),
    )
    .await
    .unwrap();

    assert!(matches!(
        nodes_error(c.withdraw_stake(&op).await.unwrap_err()),
        NodeRegistryErrors::StillActive(_)
    ));
    let deactivated = c.deactivate_node(&op).await.unwrap().block_number;
    assert_eq!(c.active_nodes().await.unwrap().len(), 1);
    assert_eq!(c.total_active_stake().await.unwrap(), U256::from(MIN_STAKE));
    assert!(matches!(
        nodes_error(c.deactivate_node(&op).await.unwrap_err()),
        NodeRegistryErrors::NotActive(_)
    ));
    // The last block before the delay is over still refuses (the embedded chain mines a block
    // for a failed transaction too), the next one pays out.
    t.mine_to(deactivated + delay - 2).await;
    let e = nodes_error(c.withdraw_stake(&op).await.unwrap_err());
    assert!(
        matches!(e, NodeRegistryErrors::WithdrawTooEarly(ref x) if x.availableAt == deactivated + delay)
    );
    assert_eq!(t.head().await, deactivated + delay - 1);
    c.withdraw_stake(&op).await.unwrap();
    assert_eq!(c.chain().balance(op.address()).await.unwrap(), before);
    assert_eq!(c.node(op.address()).await.unwrap().stake, U256::ZERO);
    assert!(matches!(
        nodes_error(c.withdraw_stake(&op).await.unwrap_err()),
        NodeRegistryErrors::NotRegistered(_)
    ));
    // Withdrawn, it may register again.
    c.register_node(&op, &identity(1), U256::from(MIN_STAKE))
        .await
        .unwrap();
    let mut operators: Vec<Address> = c
        .active_nodes()
        .await
        .unwrap()
        .iter()
        .map(|n| n.0)
        .collect();
    operators.sort();
    let mut want = vec![op.address(), other.address()];
    want.sort();
    assert_eq!(operators, want);
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
    assert_eq!((p.committeeSize, p.threshold), (3, 2), "not yet in effect");
    t.chain
        .mine(support::test_config().change_delay)
        .await
        .unwrap();
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
    c.register_node(&op, &identity(1), U256::from(MIN_STAKE))
        .await
        .unwrap();
    let owner = t.funded_key(2).await;
    let project = c.register_project(&owner, &spec(1, 1)).await.unwrap();
    let (task, _) = c.open_task(&owner, project).await.unwrap();
    t.chain.mine(2).await.unwrap();
    let mut watcher = ResultWatcher::new(c.clone(), c.addresses().deployed_at, 3)
        .with_poll_interval(Duration::from_millis(5));
    let result = TaskResult {
        project_id: project,
        task_id: task,
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
