//! The publishing scenario, run against a real anvil and against the embedded devnet: register
//! nodes and a project, open a task, wait for its seed, compute its committee in Rust and check it
//! against the contract, submit the result signed by the committee's seats, read it back from
//! storage and from the event, and have every kind of bad submission rejected with its decoded
//! error. The draws differ between the backends (the seed is a block hash), so the test picks a
//! task whose committee suits it on each, and both backends must produce the same transcript.

use std::collections::HashMap;

use crate::support::{
    self, GasBurningReceiver, MIN_STAKE, Opened, RecordingReceiver, RevertingReceiver, TestChain,
    committee_signatures, error_name, key_of, open_publishable_task, open_task_where, router_error,
    seats, signature, view,
};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use conclave_chain::attest::TaskResult;
use conclave_chain::bindings::NodeRegistry::{self, NodeRegistryErrors};
use conclave_chain::bindings::TaskRouter::{self, TaskRouterErrors};
use conclave_chain::contracts::{ProjectSpec, ProverKind, first_event};
use conclave_chain::{Contracts, Revert};

/// Six operators' stakes: 1, 2, 3, 4, 5 and 2 units (2,500 wei is two whole units).
const STAKES: [u64; 6] = [1000, 2000, 3000, 4000, 5000, 2500];
const COMMITTEE: u16 = 8;
const THRESHOLD: u16 = 4;

fn spec(receiver: Address) -> ProjectSpec {
    ProjectSpec {
        program_hash: keccak256(b"private average v1"),
        program_uri: "ipfs://program".into(),
        prover_kind: ProverKind::Spdz,
        committee_size: COMMITTEE,
        threshold: THRESHOLD,
        receiver,
        verifier: Address::ZERO,
        output_words: 0,
    }
}

/// Signatures and masks, sorted by signer.
fn ordered(mut entries: Vec<(Address, Bytes, U256)>) -> (Vec<Bytes>, Vec<U256>) {
    entries.sort_by_key(|e| e.0);
    entries.into_iter().map(|(_, s, m)| (s, m)).unzip()
}

/// The malleable twin of a signature: (r, n − s, v flipped) recovers the same signer.
fn high_s(signature: &Bytes) -> Bytes {
    const ORDER: U256 = U256::from_be_bytes(alloy::primitives::hex!(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
    ));
    let mut b = signature.to_vec();
    let s = U256::from_be_slice(&b[32..64]);
    b[32..64].copy_from_slice(&(ORDER - s).to_be_bytes::<32>());
    b[64] = if b[64] == 27 { 28 } else { 27 };
    Bytes::from(b)
}

fn reject(log: &mut Vec<String>, e: &TaskRouterErrors, what: &str) {
    log.push(format!("{what}: {}", error_name(e)));
}

/// Runs the scenario; returns a transcript of everything that must not depend on the backend.
async fn scenario(t: &TestChain) -> Vec<String> {
    let mut log = Vec::new();
    let c: Contracts = t.deploy().await;
    let chain_id = c.addresses().chain_id;
    let router = c.addresses().task_router;

    // ---- nodes: six with 1–5 units; dust below the minimum stake is refused ----
    let mut operators = Vec::new();
    let mut units = HashMap::new();
    for (i, stake) in STAKES.iter().enumerate() {
        let k = support::register(t, &c, i as u8 + 1, *stake).await;
        units.insert(k.address(), stake / MIN_STAKE);
        operators.push(k);
    }
    let dust = t.funded_key(7).await;
    let e = support::nodes_error(
        c.register_node(&dust, &support::identity(7), U256::from(MIN_STAKE - 1))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(e, NodeRegistryErrors::StakeTooLow(ref x) if x.given == U256::from(999) && x.minimum == U256::from(MIN_STAKE))
    );
    log.push(format!("dust stake: {}", error_name(&e)));
    let outsider = t.funded_key(8).await;
    let owner = t.funded_key(9).await;

    let active = c.active_nodes().await.unwrap();
    assert_eq!(active.len(), 6);
    let node1 = c.node(operators[0].address()).await.unwrap();
    assert_eq!(node1.peerId.as_ref(), &[1u8; 38]);
    assert_eq!(node1.inputKey, B256::repeat_byte(1));
    assert_eq!(node1.proofOfPossession.as_ref(), &[0u8; 64]);
    let total_units = view(
        &c,
        c.addresses().node_registry,
        NodeRegistry::totalActiveUnitsCall {},
    )
    .await;
    assert_eq!(total_units, U256::from(17));
    log.push(format!(
        "active {} stake {} units {total_units}",
        active.len(),
        c.total_active_stake().await.unwrap()
    ));

    let recorder = t.deploy_receiver(&RecordingReceiver::BYTECODE).await;
    let project = c.register_project(&owner, &spec(recorder)).await.unwrap();
    log.push(format!("project {project}"));

    // ---- a task has no seed, and takes no result, until the block after next ----
    let (early, opened) = c.open_task(&owner, project).await.unwrap();
    assert_eq!(c.seed(early).await.unwrap(), None);
    let e = router_error(
        c.submit_signatures(
            &owner,
            &TaskResult {
                project_id: project,
                task_id: early,
                output: Bytes::from_static(b"too early"),
                proof_hash: B256::ZERO,
            },
            vec![],
            vec![],
        )
        .await
        .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::SeedNotYet(ref x) if x.fromBlock == opened + 2));
    log.push(format!("before the seed block: {}", error_name(&e)));

    // ---- the task: its committee has a small member, a member with a losing unit, 3+ members ----
    let threshold = u32::from(THRESHOLD);
    let Opened {
        task_id: task,
        task: snapshot,
        committee,
    } = open_task_where(t, &c, &owner, project, |m| {
        m.len() >= 3
            && seats(m) >= threshold
            && m.iter()
                .any(|(_, mask)| mask.count_ones() < threshold as usize)
            && m.iter()
                .any(|(who, mask)| (mask.count_ones() as u64) < units[who])
    })
    .await;
    assert_eq!(snapshot.totalUnits, U256::from(17));
    assert_eq!(
        (snapshot.committeeSize, snapshot.threshold),
        (COMMITTEE, THRESHOLD)
    );
    assert_eq!(snapshot.deadline, snapshot.openedAt + 40);
    let seed = c.seed(task).await.unwrap().expect("seed");
    // The seed is keccak256(abi.encode(blockhash(openedAt + 1), taskId)), and the draw uses it.
    let probe = support::deploy_probe(t).await;
    let (_, seed_block_hash) = support::probe(&c, probe, snapshot.openedAt + 1).await;
    assert_ne!(seed_block_hash, B256::ZERO);
    assert_eq!(
        seed,
        keccak256([seed_block_hash.as_slice(), &task.to_be_bytes::<32>()].concat())
    );
    assert_eq!(c.draw(task).await.unwrap().unwrap().0.seed, seed);

    // A node registered after the opening has no units in it (nor one registered in the opening
    // block: units count only for nodes registered before it).
    let late = t.funded_key(10).await;
    let receipt = c
        .register_node(&late, &support::identity(10), U256::from(3 * MIN_STAKE))
        .await
        .unwrap();
    assert_eq!(
        c.units_at(late.address(), snapshot.openedAt).await.unwrap(),
        0
    );
    assert_eq!(
        c.units_at(late.address(), receipt.block_number)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        c.units_at(late.address(), receipt.block_number + 1)
            .await
            .unwrap(),
        3
    );

    // The Rust committee and the contract's seats agree, node by node.
    let mut summed = 0;
    for who in operators
        .iter()
        .chain([&late, &outsider, &dust])
        .map(|k| k.address())
    {
        let mask = committee
            .iter()
            .find(|(a, _)| *a == who)
            .map_or(U256::ZERO, |s| s.1);
        assert_eq!(c.seats_on_chain(task, who).await.unwrap(), mask, "{who}");
        summed += c.units_at(who, snapshot.openedAt).await.unwrap();
    }
    assert_eq!(U256::from(summed), snapshot.totalUnits);
    assert_eq!(c.committee(task).await.unwrap().unwrap(), committee);
    assert!(!committee.iter().any(|(a, _)| *a == late.address()));
    log.push("committee: Rust and contract agree".into());

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
    let (good, masks) = committee_signatures(&result, &committee, &operators, &c);
    let member = |i: usize| key_of(&operators, committee[i].0);
    let sig_of = |k: &PrivateKeySigner| signature(&result, k, &c);

    // ---- rejections, each with its decoded error ----

    // Too few seats: the member with the fewest seats alone.
    let (small, small_mask) = *committee
        .iter()
        .min_by_key(|(_, m)| m.count_ones())
        .unwrap();
    let e = router_error(
        c.submit_signatures(
            &owner,
            &result,
            vec![sig_of(key_of(&operators, small))],
            vec![small_mask],
        )
        .await
        .unwrap_err(),
    );
    assert!(
        matches!(e, TaskRouterErrors::TooFewSeats(ref x) if x.given == U256::from(small_mask.count_ones()) && x.needed == U256::from(THRESHOLD))
    );
    reject(&mut log, &e, "too few seats");

    // A signer with no units claiming a seat.
    let e = router_error(
        c.submit_signatures(
            &owner,
            &result,
            vec![sig_of(&outsider)],
            vec![U256::from(1)],
        )
        .await
        .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotSeatHolder(ref x) if x.signer == outsider.address()));
    reject(&mut log, &e, "unregistered signer");

    // The whole committee, but one member claims no seat.
    let mut zero = masks.clone();
    zero[1] = U256::ZERO;
    let e = router_error(
        c.submit_signatures(&owner, &result, good.clone(), zero)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotSeatHolder(ref x) if x.signer == committee[1].0));
    reject(&mut log, &e, "member with an empty mask");

    // The whole committee, but one member also claims a unit of its own that did not win.
    let (i, lost) = committee
        .iter()
        .enumerate()
        .find_map(|(i, (who, mask))| {
            (0..units[who] as usize)
                .find(|u| !mask.bit(*u))
                .map(|u| (i, u))
        })
        .unwrap();
    let mut greedy = masks.clone();
    greedy[i] |= U256::from(1) << lost;
    let e = router_error(
        c.submit_signatures(&owner, &result, good.clone(), greedy)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotSeatHolder(ref x) if x.signer == committee[i].0));
    reject(&mut log, &e, "mask claims a unit that did not win");

    // ... or a unit beyond its stake whose ticket would win (as if the node had 256 units).
    let (draw, _) = c.draw(task).await.unwrap().unwrap();
    let had_it_all = draw.seats(committee[0].0, 256);
    let extra = (units[&committee[0].0] as usize..256)
        .find(|u| had_it_all.bit(*u))
        .expect("a winning ticket beyond the stake");
    let mut beyond = masks.clone();
    beyond[0] |= U256::from(1) << extra;
    let e = router_error(
        c.submit_signatures(&owner, &result, good.clone(), beyond)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotSeatHolder(ref x) if x.signer == committee[0].0));
    reject(&mut log, &e, "mask claims a unit beyond the stake");

    // The committee plus the node registered after the opening.
    let mut entries: Vec<(Address, Bytes, U256)> = committee
        .iter()
        .zip(&good)
        .map(|((who, mask), sig)| (*who, sig.clone(), *mask))
        .collect();
    entries.push((late.address(), sig_of(&late), U256::from(1)));
    let (sigs, ms) = ordered(entries);
    let e = router_error(
        c.submit_signatures(&owner, &result, sigs, ms)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotSeatHolder(ref x) if x.signer == late.address()));
    reject(&mut log, &e, "registered after the opening");

    // Signers out of order, or twice.
    let e = router_error(
        c.submit_signatures(
            &owner,
            &result,
            vec![good[1].clone(), good[0].clone()],
            vec![masks[1], masks[0]],
        )
        .await
        .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::SignersNotAscending(ref x) if x.index == U256::from(1)));
    reject(&mut log, &e, "descending signers");
    let e = router_error(
        c.submit_signatures(
            &owner,
            &result,
            vec![good[0].clone(), good[0].clone()],
            vec![masks[0], masks[0]],
        )
        .await
        .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::SignersNotAscending(ref x) if x.index == U256::from(1)));
    reject(&mut log, &e, "same signer twice");

    // A member's signature over another output (or naming another project) recovers to someone
    // without a seat.
    for (what, other) in [
        (
            "signature over a different output",
            TaskResult {
                output: Bytes::from_static(b"sum=9999;count=20;mean=499.9"),
                ..result.clone()
            },
        ),
        (
            "signature naming another project",
            TaskResult {
                project_id: project + U256::from(1),
                ..result.clone()
            },
        ),
    ] {
        let forged = signature(&other, member(0), &c);
        let e = router_error(
            c.submit_signatures(&owner, &result, vec![forged], vec![masks[0]])
                .await
                .unwrap_err(),
        );
        match &e {
            TaskRouterErrors::NotSeatHolder(x) => {
                assert!(x.signer != committee[0].0 && !units.contains_key(&x.signer))
            }
            other => panic!("{what}: {other:?}"),
        }
        reject(&mut log, &e, what);
    }

    // Malformed and malleable signatures.
    let mut garbage = good.clone();
    garbage[1] = Bytes::from_static(&[0u8; 64]);
    let e = router_error(
        c.submit_signatures(&owner, &result, garbage, masks.clone())
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::InvalidSignature(ref x) if x.index == U256::from(1)));
    reject(&mut log, &e, "64-byte signature");
    let mut malleable = good.clone();
    malleable[0] = high_s(&good[0]);
    assert_eq!(
        alloy::primitives::Signature::try_from(malleable[0].as_ref())
            .unwrap()
            .recover_address_from_prehash(&result.digest(chain_id, router))
            .unwrap(),
        committee[0].0,
        "the high-s twin is a valid ECDSA signature"
    );
    let e = router_error(
        c.submit_signatures(&owner, &result, malleable, masks.clone())
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::InvalidSignature(ref x) if x.index == U256::ZERO));
    reject(&mut log, &e, "high-s signature");

    let e = router_error(
        c.submit_signatures(&owner, &result, good.clone(), masks[1..].to_vec())
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::SignatureCount(_)));
    reject(&mut log, &e, "fewer masks than signatures");

    let unknown = TaskResult {
        task_id: U256::from(999),
        ..result.clone()
    };
    let e = router_error(
        c.submit_signatures(&owner, &unknown, good.clone(), masks.clone())
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::UnknownTask(ref x) if x.taskId == U256::from(999)));
    reject(&mut log, &e, "unknown task");

    // Nothing was stored by any of those.
    assert!(c.result(task).await.unwrap().is_none());
    assert!(!c.task(task).await.unwrap().published);

    // ---- the good submission: attestations of non-members and duplicates are left out ----
    let mut attestations: Vec<_> = committee
        .iter()
        .map(|(who, _)| {
            result
                .sign(key_of(&operators, *who), chain_id, router)
                .unwrap()
        })
        .collect();
    attestations.push(result.sign(&late, chain_id, router).unwrap());
    attestations.push(result.sign(&outsider, chain_id, router).unwrap());
    attestations.push(attestations[0].clone());
    attestations.reverse();
    let from_block = t.head().await + 1;
    let receipt = c
        .submit_result(&owner, &result, attestations)
        .await
        .unwrap();
    let stored = c.result(task).await.unwrap().expect("stored");
    assert_eq!(stored.output, result.output);
    assert_eq!(stored.proof_hash, result.proof_hash);
    assert_eq!(stored.submitter, owner.address());
    assert_eq!(stored.published_block, receipt.block_number);
    let after = c.task(task).await.unwrap();
    assert!(after.published);
    assert_eq!(after.seed, seed, "the submission stored the seed");
    let events = c.published(from_block, receipt.block_number).await.unwrap();
    assert_eq!(events.len(), 1);
    let ev = &events[0].event;
    assert_eq!((ev.projectId, ev.taskId), (project, task));
    assert_eq!(ev.output, result.output);
    assert_eq!(ev.outputHash, keccak256(&result.output));
    assert_eq!(ev.proofHash, result.proof_hash);
    assert_eq!(ev.seats, U256::from(seats(&committee)));
    assert_eq!(events[0].tx_hash, receipt.tx_hash);
    log.push(format!(
        "published output={} proof={} submitter={} seats=committee's",
        ev.output, ev.proofHash, ev.submitter
    ));
    // The receiver was called with the result.
    let calls = view(&c, recorder, RecordingReceiver::callsCall {}).await;
    let last_task = view(&c, recorder, RecordingReceiver::lastTaskIdCall {}).await;
    let last = view(&c, recorder, RecordingReceiver::lastOutputCall {}).await;
    assert_eq!(
        (calls, last_task, last.clone()),
        (U256::from(1), task, result.output.clone())
    );
    log.push(format!("receiver calls={calls} output={last}"));

    // Replays, with the same or with other valid signatures, are refused.
    let e = router_error(
        c.submit_signatures(&owner, &result, good.clone(), masks.clone())
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::AlreadyPublished(ref x) if x.taskId == task));
    reject(&mut log, &e, "replay");
    let other = TaskResult {
        output: Bytes::from_static(b"another output"),
        ..result.clone()
    };
    let (sigs, ms) = committee_signatures(&other, &committee, &operators, &c);
    let e = router_error(
        c.submit_signatures(&owner, &other, sigs, ms)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::AlreadyPublished(_)));
    reject(&mut log, &e, "another output after publication");

    // Later tasks may draw the late node too.
    let signers: Vec<PrivateKeySigner> = operators.iter().chain([&late]).cloned().collect();

    // ---- receivers that fail do not lose the result ----
    for (name, bytecode) in [
        ("reverting", &RevertingReceiver::BYTECODE),
        ("gas-burning", &GasBurningReceiver::BYTECODE),
    ] {
        let receiver = t.deploy_receiver(bytecode).await;
        let p = c.register_project(&owner, &spec(receiver)).await.unwrap();
        let o = open_publishable_task(t, &c, &owner, p).await;
        let r = TaskResult {
            project_id: p,
            task_id: o.task_id,
            ..result.clone()
        };
        let (sigs, ms) = committee_signatures(&r, &o.committee, &signers, &c);
        let receipt = c.submit_signatures(&owner, &r, sigs, ms).await.unwrap();
        let failed: TaskRouter::ReceiverFailed =
            first_event(&receipt.logs).expect("ReceiverFailed event");
        assert_eq!(
            (failed.receiver, failed.taskId, failed.projectId),
            (receiver, o.task_id, p)
        );
        assert_eq!(c.result(o.task_id).await.unwrap().unwrap().output, r.output);
        log.push(format!("{name} receiver: stored, ReceiverFailed"));
    }

    // ---- the deadline: accepted in its block, refused after ----
    for (what, last_block) in [
        ("in the deadline block", true),
        ("after the deadline", false),
    ] {
        let o = open_publishable_task(t, &c, &owner, project).await;
        let r = TaskResult {
            task_id: o.task_id,
            ..result.clone()
        };
        let (sigs, ms) = committee_signatures(&r, &o.committee, &signers, &c);
        // The submission is mined in the block after the head.
        let deadline = o.task.deadline;
        t.mine_to(if last_block { deadline - 1 } else { deadline })
            .await;
        let outcome = c.submit_signatures(&owner, &r, sigs, ms).await;
        if last_block {
            assert_eq!(outcome.unwrap().block_number, deadline);
            log.push(format!("{what}: published"));
        } else {
            let e = router_error(outcome.unwrap_err());
            assert!(
                matches!(e, TaskRouterErrors::TaskExpired(ref x) if x.taskId == o.task_id && x.deadline == deadline)
            );
            reject(&mut log, &e, what);
            assert!(c.result(o.task_id).await.unwrap().is_none());
        }
    }
    log
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
    // One node of one unit and a committee of one seat: the draw is certain.
    let t = TestChain::embedded();
    let c = t.deploy().await;
    let k = support::register(&t, &c, 1, MIN_STAKE).await;
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
    let (task, _) = c.open_task(&owner, p).await.unwrap();
    t.chain.mine(2).await.unwrap();
    assert_eq!(
        c.committee(task).await.unwrap().unwrap(),
        vec![(k.address(), U256::from(1))]
    );
    let r = TaskResult {
        project_id: p,
        task_id: task,
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
    assert_eq!(log.topics()[2], B256::from(task));
    let ev: TaskRouter::ResultPublished = first_event(&receipt.logs).unwrap();
    assert_eq!(ev.outputHash, keccak256(b"42"));
    assert_eq!(
        ev.seats,
        U256::from(1),
        "submit_result deduplicates attestations"
    );
    // `Revert` decoding of the other contracts' errors still works through the router.
    let e = c
        .submit_result(
            &owner,
            &r,
            vec![
                r.sign(&k, c.addresses().chain_id, c.addresses().task_router)
                    .unwrap(),
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(
        e.revert(),
        Some(Revert::Router(TaskRouterErrors::AlreadyPublished(_)))
    ));
}
