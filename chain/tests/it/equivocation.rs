//! Slashing: a signer that signed two different outputs of one task loses its stake (a tenth to
//! whoever reports it) and its seats; only the router may slash, and it is named once.

use crate::support::{
    self, MIN_STAKE, TestChain, committee_signatures, key_of, nodes_error, open_task_where,
    router_error, seats, send_raw, signature, view,
};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::sol_types::SolCall;
use conclave_chain::attest::TaskResult;
use conclave_chain::bindings::NodeRegistry::{self, NodeRegistryErrors};
use conclave_chain::bindings::TaskRouter::{self, TaskRouterErrors};
use conclave_chain::contracts::{ProjectSpec, ProverKind, Target, first_event};

const STAKES: [u64; 6] = [1000, 2000, 3000, 4000, 5000, 2500];
const THRESHOLD: u16 = 3;

fn spec() -> ProjectSpec {
    ProjectSpec {
        program_hash: keccak256(b"p"),
        program_uri: String::new(),
        prover_kind: ProverKind::Tee,
        committee_size: 8,
        threshold: THRESHOLD,
        receiver: Address::ZERO,
        verifier: Address::ZERO,
        output_words: 0,
    }
}

async fn total_active_units(c: &conclave_chain::Contracts) -> U256 {
    view(
        c,
        c.addresses().node_registry,
        NodeRegistry::totalActiveUnitsCall {},
    )
    .await
}

#[tokio::test]
async fn signing_two_outputs_of_a_task_costs_the_stake_and_the_seats() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let mut keys = Vec::new();
    for (i, stake) in STAKES.iter().enumerate() {
        keys.push(support::register(&t, &c, i as u8 + 1, *stake).await);
    }
    let owner = t.funded_key(20).await;
    let reporter = t.funded_key(21).await;
    let project = c.register_project(&owner, &spec()).await.unwrap();
    // A task in which some member's seats are not needed to reach the threshold.
    let threshold = u32::from(THRESHOLD);
    let spare = |m: &[(Address, U256)], who: &(Address, U256)| {
        seats(m) - who.1.count_ones() as u32 >= threshold
    };
    let opened = open_task_where(&t, &c, &owner, project, |m| {
        m.len() >= 2 && m.iter().any(|who| spare(m, who))
    })
    .await;
    let committee = opened.committee.clone();
    let cheat_entry = *committee.iter().find(|w| spare(&committee, w)).unwrap();
    let cheat = key_of(&keys, cheat_entry.0).clone();
    let honest = key_of(
        &keys,
        committee.iter().find(|w| w.0 != cheat.address()).unwrap().0,
    )
    .clone();
    let cheat_stake = c.node(cheat.address()).await.unwrap().stake;
    let cheat_units = cheat_stake / U256::from(MIN_STAKE);

    let result = |output: &'static [u8], proof: u8| TaskResult {
        project_id: project,
        task_id: opened.task_id,
        output: Bytes::from_static(output),
        proof_hash: B256::repeat_byte(proof),
    };
    let (a, b) = (result(b"mean=61.7", 1), result(b"mean=99.9", 2));
    let sig_a = signature(&a, &cheat, &c);
    let sig_b = signature(&b, &cheat, &c);

    // Not equivocation: the same output (even with another proof hash), two signers, a bad
    // signature, or signatures for another task.
    let same_output = result(b"mean=61.7", 3);
    let e = router_error(
        c.report_equivocation(
            &reporter,
            opened.task_id,
            (&a, &sig_a),
            (&same_output, &signature(&same_output, &cheat, &c)),
        )
        .await
        .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::SameOutput(_)));
    let e = router_error(
        c.report_equivocation(
            &reporter,
            opened.task_id,
            (&a, &sig_a),
            (&b, &signature(&b, &honest, &c)),
        )
        .await
        .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotEquivocation(_)));
    let garbage = Bytes::from(vec![0u8; 65]);
    let e = router_error(
        c.report_equivocation(&reporter, opened.task_id, (&a, &garbage), (&b, &garbage))
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotEquivocation(_)));
    let (other_task, _) = c.open_task(&owner, project).await.unwrap();
    let e = router_error(
        c.report_equivocation(&reporter, other_task, (&a, &sig_a), (&b, &sig_b))
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotEquivocation(_)));
    let e = router_error(
        c.report_equivocation(&reporter, U256::from(999), (&a, &sig_a), (&b, &sig_b))
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::UnknownTask(_)));
    assert!(!c.node(cheat.address()).await.unwrap().slashed);

    // Equivocation: anyone reports it; the signer is slashed, the reporter gets a tenth of the stake.
    let reporter_before = c.chain().balance(reporter.address()).await.unwrap();
    let stake_before = c.total_active_stake().await.unwrap();
    let units_before = total_active_units(&c).await;
    let registry_before = c
        .chain()
        .balance(c.addresses().node_registry)
        .await
        .unwrap();
    let receipt = c
        .report_equivocation(&reporter, opened.task_id, (&a, &sig_a), (&b, &sig_b))
        .await
        .unwrap();
    let ev: TaskRouter::Equivocation = first_event(&receipt.logs).unwrap();
    assert_eq!(
        (ev.taskId, ev.signer, ev.reporter),
        (opened.task_id, cheat.address(), reporter.address())
    );
    let slashed: NodeRegistry::NodeSlashed = first_event(&receipt.logs).unwrap();
    assert_eq!(
        (slashed.operator, slashed.reporter, slashed.stake),
        (cheat.address(), reporter.address(), cheat_stake)
    );
    let node = c.node(cheat.address()).await.unwrap();
    assert!(node.slashed);
    assert_eq!(node.stake, U256::ZERO);
    assert_eq!(node.deactivatedAt, receipt.block_number);
    assert_eq!(
        c.chain().balance(reporter.address()).await.unwrap(),
        reporter_before + cheat_stake / U256::from(10),
        "the embedded chain charges no gas: the reporter gains exactly a tenth of the stake"
    );
    assert_eq!(
        c.chain()
            .balance(c.addresses().node_registry)
            .await
            .unwrap(),
        registry_before - cheat_stake / U256::from(10),
        "the rest stays locked"
    );
    assert_eq!(
        c.total_active_stake().await.unwrap(),
        stake_before - cheat_stake
    );
    assert_eq!(total_active_units(&c).await, units_before - cheat_units);
    assert!(
        !c.active_nodes()
            .await
            .unwrap()
            .iter()
            .any(|n| n.0 == cheat.address())
    );

    // Once is enough.
    let e = c
        .report_equivocation(&reporter, opened.task_id, (&b, &sig_b), (&a, &sig_a))
        .await
        .unwrap_err();
    assert!(matches!(
        nodes_error(e),
        NodeRegistryErrors::AlreadySlashed(ref x) if x.operator == cheat.address()
    ));

    // Its seats no longer count, in this task or any other.
    assert_eq!(
        c.seats_on_chain(opened.task_id, cheat.address())
            .await
            .unwrap(),
        U256::ZERO
    );
    assert_eq!(c.units_at(cheat.address(), u64::MAX).await.unwrap(), 0);
    let now = c.committee(opened.task_id).await.unwrap().unwrap();
    assert!(!now.iter().any(|m| m.0 == cheat.address()));
    let (sigs, masks) = committee_signatures(&a, &committee, &keys, &c);
    let e = router_error(
        c.submit_signatures(&owner, &a, sigs, masks)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(e, TaskRouterErrors::NotSeatHolder(ref x) if x.signer == cheat.address()),
        "{e:?}"
    );
    // The others still publish (the task keeps its snapshot of the total units).
    let (sigs, masks) = committee_signatures(&a, &now, &keys, &c);
    let receipt = c.submit_signatures(&owner, &a, sigs, masks).await.unwrap();
    let published: TaskRouter::ResultPublished = first_event(&receipt.logs).unwrap();
    assert_eq!(
        published.seats,
        U256::from(seats(&committee) - cheat_entry.1.count_ones() as u32)
    );
    // A slashed node cannot deactivate again.
    assert!(matches!(
        nodes_error(c.deactivate_node(&cheat).await.unwrap_err()),
        NodeRegistryErrors::NotActive(_)
    ));
    // The record stays: no withdrawal (of nothing) that would let the operator register anew.
    t.chain
        .mine(support::test_config().withdraw_delay)
        .await
        .unwrap();
    let e = c.withdraw_stake(&cheat).await.unwrap_err();
    assert!(matches!(
        nodes_error(e),
        NodeRegistryErrors::AlreadySlashed(ref x) if x.operator == cheat.address()
    ));
}

#[tokio::test]
async fn an_unregistered_equivocator_cannot_be_slashed() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    support::register(&t, &c, 1, MIN_STAKE).await;
    let owner = t.funded_key(2).await;
    let stranger = t.funded_key(3).await;
    let project = c.register_project(&owner, &spec()).await.unwrap();
    let (task, _) = c.open_task(&owner, project).await.unwrap();
    let r = |output: &'static [u8]| TaskResult {
        project_id: project,
        task_id: task,
        output: Bytes::from_static(output),
        proof_hash: B256::ZERO,
    };
    let (a, b) = (r(b"a"), r(b"b"));
    let e = c
        .report_equivocation(
            &owner,
            task,
            (&a, &signature(&a, &stranger, &c)),
            (&b, &signature(&b, &stranger, &c)),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        nodes_error(e),
        NodeRegistryErrors::NotRegistered(ref x) if x.operator == stranger.address()
    ));
}

#[tokio::test]
async fn only_the_router_slashes_and_it_is_named_once() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let victim = support::register(&t, &c, 1, 2 * MIN_STAKE).await;
    let stranger = t.funded_key(2).await;
    let deployer = support::key(0);
    assert_eq!(
        view(
            &c,
            c.addresses().node_registry,
            NodeRegistry::slasherCall {}
        )
        .await,
        c.addresses().task_router
    );
    for caller in [&stranger, &deployer] {
        let call = NodeRegistry::slashCall {
            operator: victim.address(),
            reporter: caller.address(),
        };
        let e = send_raw(&c, caller, Target::Nodes, call.abi_encode())
            .await
            .unwrap_err();
        assert!(matches!(
            nodes_error(e),
            NodeRegistryErrors::NotSlasher(ref x) if x.caller == caller.address()
        ));
    }
    let rename = NodeRegistry::setSlasherCall {
        slasher_: stranger.address(),
    };
    let e = send_raw(&c, &deployer, Target::Nodes, rename.abi_encode())
        .await
        .unwrap_err();
    assert!(matches!(
        nodes_error(e),
        NodeRegistryErrors::SlasherAlreadySet(_)
    ));
    let e = send_raw(&c, &stranger, Target::Nodes, rename.abi_encode())
        .await
        .unwrap_err();
    assert!(matches!(
        nodes_error(e),
        NodeRegistryErrors::NotSlasher(ref x) if x.caller == stranger.address()
    ));
    let node = c.node(victim.address()).await.unwrap();
    assert!(!node.slashed);
    assert_eq!(node.stake, U256::from(2 * MIN_STAKE));
    assert_eq!(
        view(
            &c,
            c.addresses().node_registry,
            NodeRegistry::slasherCall {}
        )
        .await,
        c.addresses().task_router
    );
}
