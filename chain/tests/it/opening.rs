//! Opening tasks: the contract assigns the ids, checks who may open, snapshots the project's
//! configuration and the registry's units, and a project's changes wait `changeDelay` blocks.

use crate::support::{
    self, MIN_STAKE, TestChain, committee_signatures, open_publishable_task, projects_error,
    router_error, send_raw, test_config, view,
};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::sol_types::{SolCall, SolEvent};
use conclave_chain::attest::TaskResult;
use conclave_chain::bindings::ProjectRegistry::{self, ProjectRegistryErrors};
use conclave_chain::bindings::TaskRouter::{self, TaskRouterErrors};
use conclave_chain::contracts::{ProjectSpec, ProverKind, Target, first_event};

fn spec(committee_size: u16, threshold: u16) -> ProjectSpec {
    ProjectSpec {
        program_hash: keccak256(b"program A"),
        program_uri: "ipfs://a".into(),
        prover_kind: ProverKind::Spdz,
        committee_size,
        threshold,
        receiver: Address::repeat_byte(0xA),
        verifier: Address::ZERO,
        output_words: 0,
    }
}

#[tokio::test]
async fn no_task_opens_without_active_stake() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let owner = t.funded_key(1).await;
    let p = c.register_project(&owner, &spec(3, 2)).await.unwrap();
    let e = router_error(c.open_task(&owner, p).await.unwrap_err());
    assert!(matches!(e, TaskRouterErrors::NoActiveStake(_)));
    // With a node it opens; once that node is gone it cannot again.
    let k = support::register(&t, &c, 2, MIN_STAKE).await;
    let (id, _) = c.open_task(&owner, p).await.unwrap();
    assert_eq!(id, U256::from(1));
    c.deactivate_node(&k).await.unwrap();
    let e = router_error(c.open_task(&owner, p).await.unwrap_err());
    assert!(matches!(e, TaskRouterErrors::NoActiveStake(_)));
}

#[tokio::test]
async fn the_contract_assigns_task_ids_in_order() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    support::register(&t, &c, 1, 2 * MIN_STAKE).await;
    support::register(&t, &c, 2, 3 * MIN_STAKE + 999).await;
    let owner = t.funded_key(3).await;
    let anyone = t.funded_key(4).await;
    let p1 = c.register_project(&owner, &spec(3, 2)).await.unwrap();
    let p2 = c.register_project(&owner, &spec(5, 5)).await.unwrap();

    let mut ids = Vec::new();
    for (opener, project) in [(&owner, p1), (&anyone, p2), (&anyone, p1)] {
        let (id, opened_at) = c.open_task(opener, project).await.unwrap();
        let task = c.task(id).await.unwrap();
        assert_eq!(task.projectId, project);
        assert_eq!(task.opener, opener.address());
        assert_eq!(task.openedAt, opened_at);
        assert_eq!(task.deadline, opened_at + test_config().task_window);
        assert_eq!(task.totalUnits, U256::from(5), "2 + 3 units");
        assert_eq!(task.seed, B256::ZERO, "not fixed yet");
        assert!(!task.published);
        ids.push(id);
    }
    assert_eq!(ids, [1, 2, 3].map(U256::from));

    // An id cannot be chosen: openTask takes none, and one appended to the call is ignored.
    let mut data = TaskRouter::openTaskCall { projectId: p1 }.abi_encode();
    data.extend_from_slice(&U256::from(777).to_be_bytes::<32>());
    let receipt = send_raw(&c, &anyone, Target::Router, data).await.unwrap();
    let opened: TaskRouter::TaskOpened = first_event(&receipt.logs).unwrap();
    assert_eq!(opened.taskId, U256::from(4));
    assert_eq!(
        view(&c, c.addresses().task_router, TaskRouter::taskCountCall {}).await,
        U256::from(4)
    );
    // A task not yet opened is unknown, whatever its id.
    for id in [5u64, 777] {
        let e = router_error(c.task(U256::from(id)).await.unwrap_err());
        assert!(matches!(e, TaskRouterErrors::UnknownTask(ref x) if x.taskId == U256::from(id)));
        let e = router_error(c.fix_seed(&anyone, U256::from(id)).await.unwrap_err());
        assert!(matches!(e, TaskRouterErrors::UnknownTask(_)));
    }

    // fixSeed stores the seed from two blocks after the opening on, once.
    let (id, opened_at) = c.open_task(&anyone, p1).await.unwrap();
    let e = router_error(c.fix_seed(&anyone, id).await.unwrap_err());
    assert!(matches!(e, TaskRouterErrors::SeedNotYet(ref x) if x.fromBlock == opened_at + 2));
    let receipt = c.fix_seed(&anyone, id).await.unwrap();
    assert_eq!(receipt.block_number, opened_at + 2);
    let fixed: TaskRouter::SeedFixed = first_event(&receipt.logs).unwrap();
    assert_eq!(fixed.taskId, id);
    assert_eq!(c.task(id).await.unwrap().seed, fixed.seed);
    assert_eq!(c.seed(id).await.unwrap(), Some(fixed.seed));
    let again = c.fix_seed(&anyone, id).await.unwrap();
    assert!(
        first_event::<TaskRouter::SeedFixed>(&again.logs).is_none(),
        "fixed once"
    );
    // Tasks of one block's neighbourhood still get different seeds: the id is hashed in.
    let seed4 = c.seed(U256::from(4)).await.unwrap().unwrap();
    assert_ne!(seed4, fixed.seed);
}

#[tokio::test]
async fn pausing_and_restricting_decide_who_may_open() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    support::register(&t, &c, 1, MIN_STAKE).await;
    let owner = t.funded_key(2).await;
    let stranger = t.funded_key(3).await;
    let opener = t.funded_key(4).await;
    let p = c.register_project(&owner, &spec(3, 2)).await.unwrap();
    let may_open = |who: Address| {
        let c = c.clone();
        async move {
            view(
                &c,
                c.addresses().project_registry,
                ProjectRegistry::mayOpenCall { projectId: p, who },
            )
            .await
        }
    };

    // Open to anyone by default.
    c.open_task(&stranger, p).await.unwrap();
    assert!(may_open(stranger.address()).await);

    // Paused: nobody, not even the owner.
    c.set_project_paused(&owner, p, true).await.unwrap();
    assert!(c.project(p).await.unwrap().paused);
    for who in [&owner, &stranger] {
        let e = router_error(c.open_task(who, p).await.unwrap_err());
        assert!(
            matches!(e, TaskRouterErrors::MayNotOpen(ref x) if x.projectId == p && x.caller == who.address())
        );
    }
    c.set_project_paused(&owner, p, false).await.unwrap();

    // Restricted: the owner and its openers only.
    assert!(matches!(
        projects_error(
            c.set_restrict_openers(&stranger, p, true)
                .await
                .unwrap_err()
        ),
        ProjectRegistryErrors::NotProjectOwner(_)
    ));
    assert!(matches!(
        projects_error(
            c.set_opener(&stranger, p, stranger.address(), true)
                .await
                .unwrap_err()
        ),
        ProjectRegistryErrors::NotProjectOwner(_)
    ));
    c.set_restrict_openers(&owner, p, true).await.unwrap();
    c.set_opener(&owner, p, opener.address(), true)
        .await
        .unwrap();
    assert!(c.project(p).await.unwrap().restrictOpeners);
    let e = router_error(c.open_task(&stranger, p).await.unwrap_err());
    assert!(matches!(e, TaskRouterErrors::MayNotOpen(ref x) if x.caller == stranger.address()));
    assert!(!may_open(stranger.address()).await);
    let (a, _) = c.open_task(&owner, p).await.unwrap();
    let (b, _) = c.open_task(&opener, p).await.unwrap();
    assert_eq!(c.task(b).await.unwrap().opener, opener.address());
    assert_eq!(b, a + U256::from(1));

    // A revoked opener is refused again; lifting the restriction lets everyone in.
    c.set_opener(&owner, p, opener.address(), false)
        .await
        .unwrap();
    let e = router_error(c.open_task(&opener, p).await.unwrap_err());
    assert!(matches!(e, TaskRouterErrors::MayNotOpen(_)));
    c.set_restrict_openers(&owner, p, false).await.unwrap();
    c.open_task(&stranger, p).await.unwrap();

    // An unknown project cannot be opened.
    let e = router_error(c.open_task(&owner, U256::from(99)).await.unwrap_err());
    assert!(matches!(e, TaskRouterErrors::MayNotOpen(ref x) if x.projectId == U256::from(99)));
}

#[tokio::test]
async fn a_live_task_keeps_its_configuration_and_changes_wait_for_the_delay() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let mut keys = Vec::new();
    for n in 1..=5u8 {
        keys.push(support::register(&t, &c, n, MIN_STAKE * u64::from(n)).await);
    }
    let owner = t.funded_key(20).await;
    let old = ProjectSpec {
        receiver: Address::ZERO,
        verifier: Address::ZERO,
        output_words: 0,
        ..spec(6, 3)
    };
    let new = ProjectSpec {
        program_hash: keccak256(b"program B"),
        program_uri: "ipfs://b".into(),
        prover_kind: ProverKind::Halo2,
        committee_size: 12,
        threshold: 10,
        receiver: Address::repeat_byte(0xB),
        // Any contract: this test proves nothing, and a halo2 project needs code there.
        verifier: c.addresses().node_registry,
        output_words: 2,
    };
    // A halo2 project without a verifier or its output's size, or another kind with either, is
    // refused.
    for bad in [
        ProjectSpec {
            verifier: Address::ZERO,
            ..new.clone()
        },
        ProjectSpec {
            verifier: Address::repeat_byte(0x77),
            ..new.clone()
        },
        ProjectSpec {
            output_words: 0,
            ..new.clone()
        },
        ProjectSpec {
            output_words: 129,
            ..new.clone()
        },
        ProjectSpec {
            verifier: c.addresses().node_registry,
            ..old.clone()
        },
        ProjectSpec {
            output_words: 1,
            ..old.clone()
        },
    ] {
        let e = projects_error(c.register_project(&owner, &bad).await.unwrap_err());
        assert!(
            matches!(e, ProjectRegistryErrors::InvalidVerifier(_)),
            "{e:?}"
        );
    }
    let p = c.register_project(&owner, &old).await.unwrap();
    let live = open_publishable_task(&t, &c, &owner, p).await;
    let before = live.task.clone();
    assert_eq!(
        (before.committeeSize, before.threshold, before.programHash),
        (6, 3, old.program_hash)
    );

    // The owner changes everything and pauses the project.
    let receipt = c.update_project(&owner, p, &new).await.unwrap();
    let updated: ProjectRegistry::ProjectUpdated = first_event(&receipt.logs).unwrap();
    let effective = receipt.block_number + test_config().change_delay;
    assert_eq!(updated.effectiveFrom, effective);
    let pending = view(
        &c,
        c.addresses().project_registry,
        ProjectRegistry::pendingChangeCall { projectId: p },
    )
    .await;
    assert_eq!(
        (pending.config, pending.pendingFrom),
        (new.config(), effective)
    );

    // The live task's snapshot is untouched.
    assert_eq!(c.task(live.task_id).await.unwrap(), before);
    let (draw, _) = c.draw(live.task_id).await.unwrap().unwrap();
    assert_eq!(draw.expected, U256::from(6));

    // Until the delay is over, the project and newly opened tasks keep the old configuration; the
    // last block before it still does.
    let p_now = c.project(p).await.unwrap();
    assert_eq!(
        (
            p_now.committeeSize,
            p_now.threshold,
            p_now.programHash,
            p_now.receiver
        ),
        (6, 3, old.program_hash, Address::ZERO)
    );
    t.mine_to(effective - 2).await;
    let (last_old, opened_at) = c.open_task(&owner, p).await.unwrap();
    assert_eq!(opened_at, effective - 1);
    let task = c.task(last_old).await.unwrap();
    assert_eq!(
        (
            task.committeeSize,
            task.threshold,
            task.programHash,
            task.receiver
        ),
        (6, 3, old.program_hash, Address::ZERO)
    );
    assert_eq!(c.project(p).await.unwrap().threshold, 3);
    // From the change's block on, the new one.
    let (first_new, opened_at) = c.open_task(&owner, p).await.unwrap();
    assert_eq!(opened_at, effective);
    let task = c.task(first_new).await.unwrap();
    assert_eq!(
        (
            task.committeeSize,
            task.threshold,
            task.programHash,
            task.receiver,
            task.proverKind,
            task.verifier
        ),
        (
            12,
            10,
            new.program_hash,
            new.receiver,
            ProverKind::Halo2 as u8,
            new.verifier
        )
    );
    let p_now = c.project(p).await.unwrap();
    assert_eq!(
        (p_now.committeeSize, p_now.programUri.as_str()),
        (12, "ipfs://b")
    );
    let pending = view(
        &c,
        c.addresses().project_registry,
        ProjectRegistry::pendingChangeCall { projectId: p },
    )
    .await;
    assert_eq!(pending.pendingFrom, 0, "nothing pending any more");
    assert_eq!(c.task(live.task_id).await.unwrap(), before);

    // Pausing stops opening, not the live task: it still publishes under its old threshold and
    // without the new receiver.
    c.set_project_paused(&owner, p, true).await.unwrap();
    assert!(matches!(
        router_error(c.open_task(&owner, p).await.unwrap_err()),
        TaskRouterErrors::MayNotOpen(_)
    ));
    let result = TaskResult {
        project_id: p,
        task_id: live.task_id,
        output: Bytes::from_static(b"old config"),
        proof_hash: B256::ZERO,
    };
    let (sigs, masks) = committee_signatures(&result, &live.committee, &keys, &c);
    let receipt = c
        .submit_signatures(&owner, &result, sigs, masks)
        .await
        .unwrap();
    let ev: TaskRouter::ResultPublished = first_event(&receipt.logs).unwrap();
    assert_eq!(ev.taskId, live.task_id);
    assert!(
        ev.seats >= U256::from(3),
        "published with the task's threshold of 3"
    );
    assert!(
        !receipt
            .logs
            .iter()
            .any(|l| l.topic0() == Some(&TaskRouter::ReceiverFailed::SIGNATURE_HASH)),
        "no receiver was called: the task was opened without one"
    );
}

#[tokio::test]
async fn an_update_replaces_a_pending_one_and_restarts_the_delay() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let owner = t.funded_key(1).await;
    let p = c.register_project(&owner, &spec(3, 2)).await.unwrap();
    c.update_project(&owner, p, &spec(5, 4)).await.unwrap();
    t.chain.mine(5).await.unwrap();
    let second = c.update_project(&owner, p, &spec(7, 6)).await.unwrap();
    // The first change never applies; the second applies `changeDelay` blocks after it.
    t.mine_to(second.block_number + test_config().change_delay - 1)
        .await;
    assert_eq!(c.project(p).await.unwrap().committeeSize, 3);
    t.chain.mine(1).await.unwrap();
    assert_eq!(c.project(p).await.unwrap().committeeSize, 7);
}

#[tokio::test]
async fn project_configurations_are_checked() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let owner = t.funded_key(1).await;
    let long_uri = ProjectSpec {
        program_uri: "x".repeat(257),
        ..spec(3, 2)
    };
    assert!(matches!(
        projects_error(c.register_project(&owner, &long_uri).await.unwrap_err()),
        ProjectRegistryErrors::UriTooLong(_)
    ));
    assert!(matches!(
        projects_error(c.register_project(&owner, &spec(33, 2)).await.unwrap_err()),
        ProjectRegistryErrors::InvalidCommittee(_)
    ));
    assert!(matches!(
        projects_error(c.register_project(&owner, &spec(3, 0)).await.unwrap_err()),
        ProjectRegistryErrors::InvalidCommittee(_)
    ));
    let mut bad_kind = spec(3, 2).config();
    bad_kind.proverKind = 5;
    let e = send_raw(
        &c,
        &owner,
        Target::Projects,
        ProjectRegistry::registerCall { config: bad_kind }.abi_encode(),
    )
    .await
    .unwrap_err();
    assert!(matches!(
        projects_error(e),
        ProjectRegistryErrors::UnknownProverKind(_)
    ));
    let p = c.register_project(&owner, &spec(32, 32)).await.unwrap();
    assert!(matches!(
        projects_error(c.update_project(&owner, p, &spec(4, 5)).await.unwrap_err()),
        ProjectRegistryErrors::InvalidCommittee(_)
    ));
}

#[tokio::test]
async fn the_units_of_a_task_are_those_at_its_opening() {
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let gone = support::register(&t, &c, 1, 4 * MIN_STAKE).await;
    let leaving = support::register(&t, &c, 2, 2 * MIN_STAKE).await;
    let staying = support::register(&t, &c, 3, 3 * MIN_STAKE).await;
    let owner = t.funded_key(4).await;
    // A committee as large as the units: every unit of a node with units wins.
    let p = c.register_project(&owner, &spec(32, 1)).await.unwrap();
    c.deactivate_node(&gone).await.unwrap();
    let (task, opened_at) = c.open_task(&owner, p).await.unwrap();
    c.deactivate_node(&leaving).await.unwrap();
    let late = support::register(&t, &c, 5, 5 * MIN_STAKE).await;
    t.chain.mine(2).await.unwrap();

    assert_eq!(c.task(task).await.unwrap().totalUnits, U256::from(5));
    // A node deactivated in a task's opening block still counts for it (as in the snapshot of
    // the units at the block's start); one deactivated before does not.
    let gone_at = c.node(gone.address()).await.unwrap().deactivatedAt;
    assert_eq!(c.units_at(gone.address(), gone_at).await.unwrap(), 4);
    assert_eq!(c.units_at(gone.address(), gone_at + 1).await.unwrap(), 0);
    let expect = [(&gone, 0u64), (&leaving, 2), (&staying, 3), (&late, 0)];
    for (k, units) in expect {
        assert_eq!(c.units_at(k.address(), opened_at).await.unwrap(), units);
        assert_eq!(
            c.seats_on_chain(task, k.address()).await.unwrap(),
            (U256::from(1) << units as usize) - U256::from(1)
        );
    }
    let committee = c.committee(task).await.unwrap().unwrap();
    let mut members: Vec<Address> = committee.iter().map(|m| m.0).collect();
    members.sort();
    let mut want = vec![leaving.address(), staying.address()];
    want.sort();
    assert_eq!(members, want);
    // A task opened now counts the late node and not the one that left.
    let (next, _) = c.open_task(&owner, p).await.unwrap();
    assert_eq!(c.task(next).await.unwrap().totalUnits, U256::from(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_in_the_opening_block_before_the_opening_are_not_in_the_draw() {
    // On anvil with automine off, one block holds: a registration, a deactivation, then the
    // opening. The task must count the deactivated node and not the new one, in its total and
    // in each node's units, as the block's start did.
    let t = TestChain::anvil().await;
    let c = t.deploy().await;
    let staying = support::register(&t, &c, 1, MIN_STAKE).await;
    let leaving = support::register(&t, &c, 2, 2 * MIN_STAKE).await;
    let newcomer = t.funded_key(3).await;
    let owner = t.funded_key(4).await;
    let p = c.register_project(&owner, &spec(32, 1)).await.unwrap();

    t.rpc("evm_setAutomine", serde_json::json!([false])).await;
    let pending = |n: u64| {
        let t = &t;
        async move {
            for _ in 0..500 {
                let status = t.rpc("txpool_status", serde_json::json!([])).await;
                let count = status["pending"]
                    .as_str()
                    .map(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).unwrap())
                    .or_else(|| status["pending"].as_u64())
                    .unwrap();
                if count >= n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("transaction {n} never reached the pool");
        }
    };
    let register = tokio::spawn({
        let (c, k) = (c.clone(), newcomer.clone());
        async move {
            c.register_node(&k, &support::identity(3), U256::from(3 * MIN_STAKE))
                .await
        }
    });
    pending(1).await;
    let deactivate = tokio::spawn({
        let (c, k) = (c.clone(), leaving.clone());
        async move { c.deactivate_node(&k).await }
    });
    pending(2).await;
    let open = tokio::spawn({
        let (c, k) = (c.clone(), owner.clone());
        async move { c.open_task(&k, p).await }
    });
    pending(3).await;
    t.rpc("evm_mine", serde_json::json!([])).await;
    t.rpc("evm_setAutomine", serde_json::json!([true])).await;
    let registered = register.await.unwrap().unwrap();
    let deactivated = deactivate.await.unwrap().unwrap();
    let (task, opened_at) = open.await.unwrap().unwrap();
    assert_eq!(registered.block_number, opened_at);
    assert_eq!(deactivated.block_number, opened_at);
    let index = |r: &conclave_chain::backend::Receipt| r.logs[0].transaction_index.unwrap();
    let logs = c
        .chain()
        .logs(conclave_chain::backend::LogQuery {
            addresses: vec![c.addresses().task_router],
            from_block: opened_at,
            to_block: opened_at,
        })
        .await
        .unwrap();
    let opening = logs[0].transaction_index.unwrap();
    assert!(
        index(&registered) < index(&deactivated) && index(&deactivated) < opening,
        "the pool kept the order"
    );

    assert_eq!(
        c.task(task).await.unwrap().totalUnits,
        U256::from(3),
        "1 + 2"
    );
    assert_eq!(c.units_at(staying.address(), opened_at).await.unwrap(), 1);
    assert_eq!(c.units_at(leaving.address(), opened_at).await.unwrap(), 2);
    assert_eq!(c.units_at(newcomer.address(), opened_at).await.unwrap(), 0);
    t.chain.mine(2).await.unwrap();
    let committee = c.committee(task).await.unwrap().unwrap();
    assert_eq!(committee.len(), 2);
    assert!(!committee.iter().any(|m| m.0 == newcomer.address()));
    assert_eq!(
        c.seats_on_chain(task, newcomer.address()).await.unwrap(),
        U256::ZERO
    );
    let result = TaskResult {
        project_id: p,
        task_id: task,
        output: Bytes::from_static(b"x"),
        proof_hash: B256::ZERO,
    };
    let e = router_error(
        c.submit_signatures(
            &owner,
            &result,
            vec![support::signature(&result, &newcomer, &c)],
            vec![U256::from(1)],
        )
        .await
        .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotSeatHolder(ref x) if x.signer == newcomer.address()));
    // The one that left in the opening block still signs for the task.
    c.submit_signatures(
        &owner,
        &result,
        vec![support::signature(&result, &leaving, &c)],
        vec![U256::from(3)],
    )
    .await
    .unwrap();
}
