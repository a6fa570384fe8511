//! The publishing scenario of issue 5, run against a real anvil and against the embedded devnet:
//! register nodes and a project, open an epoch, submit a result signed by the committee, read it
//! back from storage and from the event, and have every kind of bad submission rejected with its
//! decoded error. Both backends must produce the same transcript.

use crate::support::{GasBurningReceiver, RecordingReceiver, RevertingReceiver, TestChain};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use conclave_chain::attest::TaskResult;
use conclave_chain::bindings::TaskRouter::{self, TaskRouterErrors};
use conclave_chain::contracts::{ProjectSpec, ProverKind, first_event, task_id};
use conclave_chain::{ContractError, Contracts, Revert};

const STAKE: u64 = 1_000_000_000_000_000_000;

fn spec(receiver: Address) -> ProjectSpec {
    ProjectSpec {
        program_hash: keccak256(b"private average v1"),
        program_uri: "ipfs://program".into(),
        prover_kind: ProverKind::Spdz,
        committee_size: 3,
        threshold: 2,
        receiver,
    }
}

fn router_error(e: ContractError) -> TaskRouterErrors {
    match e {
        ContractError::Revert(Revert::Router(r)) => r,
        other => panic!("expected a TaskRouter error, got {other:?}"),
    }
}

fn sign(
    result: &TaskResult,
    keys: &[&PrivateKeySigner],
    chain_id: u64,
    router: Address,
) -> Vec<Bytes> {
    let mut atts: Vec<_> = keys
        .iter()
        .map(|k| result.sign(k, chain_id, router).unwrap())
        .collect();
    atts.sort_by_key(|a| a.signer);
    atts.into_iter().map(|a| a.signature).collect()
}

/// Runs the scenario; returns a transcript of everything that must not depend on the backend.
async fn scenario(t: &TestChain) -> Vec<String> {
    let mut log = Vec::new();
    let c: Contracts = t.deploy().await;
    let chain_id = c.addresses().chain_id;
    let router = c.addresses().task_router;

    // Six operators with equal stakes, one with a dust stake (never drawn), one unregistered.
    let mut operators = Vec::new();
    for n in 1..=6u8 {
        let k = t.funded_key(n).await;
        let peer = [n; 38];
        c.register_node(&k, &peer, U256::from(STAKE)).await.unwrap();
        operators.push(k);
    }
    let dust = t.funded_key(7).await;
    c.register_node(&dust, &[7; 38], U256::from(1000))
        .await
        .unwrap();
    let outsider = t.funded_key(8).await;
    let owner = t.funded_key(9).await;

    let active = c.active_nodes().await.unwrap();
    assert_eq!(active.len(), 7);
    let node1 = c.node(operators[0].address()).await.unwrap();
    assert_eq!(node1.peerId.as_ref(), &[1u8; 38]);
    log.push(format!(
        "active {} total {}",
        active.len(),
        c.total_active_stake().await.unwrap()
    ));

    let recorder = t.deploy_receiver(&RecordingReceiver::BYTECODE).await;
    let project = c.register_project(&owner, &spec(recorder)).await.unwrap();
    let paused = c
        .register_project(&owner, &spec(Address::ZERO))
        .await
        .unwrap();
    c.set_project_paused(&owner, paused, true).await.unwrap();
    log.push(format!("projects {project} {paused}"));

    let epoch = c.open_epoch(&owner).await.unwrap();
    let task = task_id(epoch, U256::from(1));
    // A node registered after the epoch opened takes no part in its draws.
    let late = t.funded_key(10).await;
    c.register_node(&late, &[10; 38], U256::from(STAKE))
        .await
        .unwrap();

    // The Rust draw and the contract's agree; the dust node and the late node are not drawn.
    let ranked = c.committee(project, task).await.unwrap();
    assert_eq!(ranked, c.committee_on_chain(project, task).await.unwrap());
    assert_eq!(ranked.len(), 6, "all six equal stakes are candidates");
    assert!(!ranked.contains(&dust.address()) && !ranked.contains(&late.address()));
    log.push(format!("epoch {epoch} candidates {}", ranked.len()));
    let member = |a: &Address| operators.iter().find(|k| k.address() == *a).unwrap();
    let committee: Vec<&PrivateKeySigner> = ranked[..3].iter().map(member).collect();

    let result = TaskResult {
        project_id: project,
        task_id: task,
        output: Bytes::from_static(b"sum=1234;count=20;mean=61.7"),
        proof_hash: keccak256(b"transcript"),
    };
    assert_eq!(
        result.digest(chain_id, router),
        c.result_digest(&result).await.unwrap()
    );
    let good = sign(&result, &committee, chain_id, router);

    // ---- rejections, each with its decoded error ----
    let reject = |e: TaskRouterErrors, what: &str, log: &mut Vec<String>| {
        log.push(format!("{what}: {}", error_name(&e)));
    };
    let e = router_error(
        c.submit_signatures(&owner, &result, good[..1].to_vec())
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(e, TaskRouterErrors::TooFewSignatures(ref x) if x.given == U256::from(1) && x.needed == U256::from(2))
    );
    reject(e, "too few", &mut log);

    let with_dust = sign(&result, &[committee[0], &dust], chain_id, router);
    let e = router_error(
        c.submit_signatures(&owner, &result, with_dust)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotCommitteeMember(ref x) if x.signer == dust.address()));
    reject(e, "registered non-member", &mut log);

    let with_outsider = sign(&result, &[committee[0], &outsider], chain_id, router);
    let e = router_error(
        c.submit_signatures(&owner, &result, with_outsider)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(e, TaskRouterErrors::NotCommitteeMember(ref x) if x.signer == outsider.address())
    );
    reject(e, "unregistered signer", &mut log);

    let with_late = sign(&result, &[committee[0], &late], chain_id, router);
    let e = router_error(
        c.submit_signatures(&owner, &result, with_late)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotCommitteeMember(ref x) if x.signer == late.address()));
    reject(e, "registered after the epoch", &mut log);

    let twice = vec![good[0].clone(), good[0].clone()];
    let e = router_error(
        c.submit_signatures(&owner, &result, twice)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(e, TaskRouterErrors::DuplicateSigner(ref x) if x.signer == committee_sorted(&committee)[0])
    );
    reject(e, "same signer twice", &mut log);

    let mut descending = good.clone();
    descending.reverse();
    let e = router_error(
        c.submit_signatures(&owner, &result, descending)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::SignersNotAscending(_)));
    reject(e, "unordered", &mut log);

    let forged = TaskResult {
        output: Bytes::from_static(b"sum=9999;count=20;mean=499.9"),
        ..result.clone()
    };
    let e = router_error(
        c.submit_signatures(&owner, &forged, good.clone())
            .await
            .unwrap_err(),
    );
    match &e {
        TaskRouterErrors::NotCommitteeMember(x) => assert!(!ranked.contains(&x.signer)),
        other => panic!("signature over another output: {other:?}"),
    }
    reject(e, "signature over a different output", &mut log);

    let mut garbage = good.clone();
    garbage[1] = Bytes::from_static(&[0u8; 64]);
    let e = router_error(
        c.submit_signatures(&owner, &result, garbage)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::InvalidSignature(ref x) if x.index == U256::from(1)));
    reject(e, "malformed signature", &mut log);

    let unknown = TaskResult {
        project_id: U256::from(77),
        ..result.clone()
    };
    let e = router_error(
        c.submit_signatures(&owner, &unknown, good.clone())
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::UnknownProject(ref x) if x.projectId == U256::from(77)));
    reject(e, "unknown project", &mut log);

    let on_paused = TaskResult {
        project_id: paused,
        ..result.clone()
    };
    let sigs = sign(&on_paused, &committee, chain_id, router);
    let e = router_error(
        c.submit_signatures(&owner, &on_paused, sigs)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::ProjectPaused(_)));
    reject(e, "paused project", &mut log);

    let future = TaskResult {
        task_id: task_id(epoch + 1, U256::from(1)),
        ..result.clone()
    };
    let sigs = sign(&future, &committee, chain_id, router);
    let e = router_error(
        c.submit_signatures(&owner, &future, sigs)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::UnknownEpoch(_)));
    reject(e, "epoch not open", &mut log);

    // Nothing was stored by any of those.
    assert!(c.result(project, task).await.unwrap().is_none());

    // ---- the good submission ----
    let from_block = c.chain().block_number().await.unwrap() + 1;
    let receipt = c
        .submit_signatures(&owner, &result, good.clone())
        .await
        .unwrap();
    let stored = c.result(project, task).await.unwrap().expect("stored");
    assert_eq!(stored.output, result.output);
    assert_eq!(stored.proof_hash, result.proof_hash);
    assert_eq!(stored.submitter, owner.address());
    let events = c.published(from_block, receipt.block_number).await.unwrap();
    assert_eq!(events.len(), 1);
    let ev = &events[0].event;
    assert_eq!((ev.projectId, ev.taskId), (project, task));
    assert_eq!(ev.output, result.output);
    assert_eq!(ev.outputHash, keccak256(&result.output));
    assert_eq!(ev.signers, U256::from(3));
    assert_eq!(events[0].tx_hash, receipt.tx_hash);
    log.push(format!(
        "published output={} proof={} submitter={} signers={}",
        ev.output, ev.proofHash, ev.submitter, ev.signers
    ));
    // The receiver was called with the result.
    let calls = view(&c, recorder, RecordingReceiver::callsCall {}).await;
    let last = view(&c, recorder, RecordingReceiver::lastOutputCall {}).await;
    assert_eq!(
        (calls, last.clone()),
        (U256::from(1), result.output.clone())
    );
    log.push(format!("receiver calls={calls} output={last}"));

    // Replays, with the same or other valid signatures, are refused.
    let e = router_error(
        c.submit_signatures(&owner, &result, good.clone())
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::AlreadyPublished(_)));
    reject(e, "replay", &mut log);
    let others = sign(&result, &[committee[1], committee[2]], chain_id, router);
    let e = router_error(
        c.submit_signatures(&owner, &result, others)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::AlreadyPublished(_)));
    reject(e, "resubmission", &mut log);

    // ---- receivers that fail do not lose the result ----
    for (name, bytecode) in [
        ("reverting", &RevertingReceiver::BYTECODE),
        ("gas-burning", &GasBurningReceiver::BYTECODE),
    ] {
        let receiver = t.deploy_receiver(bytecode).await;
        let p = c.register_project(&owner, &spec(receiver)).await.unwrap();
        let r = TaskResult {
            project_id: p,
            ..result.clone()
        };
        let sigs = sign(&r, &committee, chain_id, router);
        let receipt = c.submit_signatures(&owner, &r, sigs).await.unwrap();
        let failed: TaskRouter::ReceiverFailed =
            first_event(&receipt.logs).expect("ReceiverFailed event");
        assert_eq!(failed.receiver, receiver);
        assert_eq!(c.result(p, task).await.unwrap().unwrap().output, r.output);
        log.push(format!("{name} receiver: stored, ReceiverFailed"));
    }

    // ---- late submissions: once the task's epoch is more than max_task_age old ----
    let late_task = task_id(epoch, U256::from(2));
    let late_result = TaskResult {
        task_id: late_task,
        ..result.clone()
    };
    let late_committee: Vec<&PrivateKeySigner> = c.committee(project, late_task).await.unwrap()
        [..3]
        .iter()
        .map(member)
        .collect();
    let sigs = sign(&late_result, &late_committee, chain_id, router);
    for _ in 0..2 {
        t.chain.mine(3).await.unwrap();
        c.open_epoch(&owner).await.unwrap();
    }
    let e = router_error(
        c.submit_signatures(&owner, &late_result, sigs)
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(e, TaskRouterErrors::TaskExpired(ref x) if x.taskEpoch == epoch && x.currentEpoch == epoch + 2)
    );
    reject(e, "late", &mut log);

    // An epoch cannot be opened early.
    let e = router_error(c.open_epoch(&owner).await.unwrap_err());
    assert!(matches!(e, TaskRouterErrors::EpochNotOver(_)));
    reject(e, "early epoch", &mut log);
    log
}

fn committee_sorted(keys: &[&PrivateKeySigner]) -> Vec<Address> {
    let mut v: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    v.sort();
    v
}

fn error_name(e: &TaskRouterErrors) -> String {
    let debug = format!("{e:?}");
    debug.split('(').next().unwrap_or_default().to_string()
}

async fn view<C: alloy::sol_types::SolCall>(c: &Contracts, to: Address, call: C) -> C::Return {
    let data = c.chain().call(to, call.abi_encode().into()).await.unwrap();
    C::abi_decode_returns(&data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_and_embedded_publish_and_reject_alike() {
    let anvil = TestChain::anvil().await;
    let on_anvil = scenario(&anvil).await;
    drop(anvil);
    let embedded = TestChain::embedded();
    let on_embedded = scenario(&embedded).await;
    assert_eq!(on_anvil, on_embedded);
    assert!(on_anvil.len() > 20, "{on_anvil:#?}");
}

#[tokio::test]
async fn result_published_event_carries_the_signed_fields() {
    // The event's hash field is the keccak of its output, on the embedded chain.
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let k = t.funded_key(1).await;
    c.register_node(&k, b"peer", U256::from(STAKE))
        .await
        .unwrap();
    let owner = t.funded_key(2).await;
    let p = c
        .register_project(
            &owner,
            &ProjectSpec {
                committee_size: 1,
                threshold: 1,
                ..spec(Address::ZERO)
            },
        )
        .await
        .unwrap();
    let epoch = c.open_epoch(&owner).await.unwrap();
    let r = TaskResult {
        project_id: p,
        task_id: task_id(epoch, U256::from(5)),
        output: Bytes::from_static(b"42"),
        proof_hash: B256::ZERO,
    };
    let att = r
        .sign(&k, c.addresses().chain_id, c.addresses().task_router)
        .unwrap();
    let receipt = c
        .submit_result(&owner, &r, vec![att.clone(), att])
        .await
        .unwrap();
    let log = receipt
        .logs
        .iter()
        .find(|l| l.topic0() == Some(&TaskRouter::ResultPublished::SIGNATURE_HASH))
        .unwrap();
    assert_eq!(log.topics()[1], B256::from(p));
    let ev: TaskRouter::ResultPublished = first_event(&receipt.logs).unwrap();
    assert_eq!(ev.outputHash, keccak256(b"42"));
    assert_eq!(
        ev.signers,
        U256::from(1),
        "submit_result deduplicates attestations"
    );
}
