//! One test per attack of DESIGN.md's trust model, over real nodes (libp2p over loopback, redb,
//! HTTP APIs) and the embedded chain. Each attacker tries, and each test asserts what it got
//! (nothing) and, where honest work is under way, that it still completes.

use std::num::NonZeroU32;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use conclave_chain::Revert;
use conclave_chain::attest::{Attestation, TaskResult};
use conclave_chain::bindings::TaskRouter::TaskRouterErrors;
use conclave_chain::contracts::{ContractError, ProjectSpec, ProverKind};
use conclave_chain::identity::NodeIdentity;
use conclave_chain::sortition::seat_count;
use conclave_chain::watch::ResultWatcher;
use conclave_chain::{Chain, DeployConfig, DevChain};
use conclave_mpc::Fp;
use conclave_mpc::wire::SessionId;
use conclave_node::api::TaskJson;
use conclave_node::client::{Client, ClientError};
use conclave_node::envelope::{self, SecretKey};
use conclave_node::member::input_context;
use conclave_node::messages::{
    self, Member, RefusalKind, Request, Response, SlotTicket, TaskId, TaskInfo,
};
use conclave_node::node::MAX_KNOWN_OPEN;
use conclave_node::program::{Average, Program};
use conclave_node::ratelimit::Limits;
use conclave_p2p::channel::MAX_PARKED_PER_PEER;
use conclave_p2p::config::NetworkConfig;
use conclave_p2p::messages::{GossipMessage, TaskAnnouncement};
use conclave_p2p::network::Network;
use conclave_sim::{Cluster, coin};
use futures::StreamExt;
use libp2p::PeerId;
use libp2p::identity::Keypair;

const NODES: usize = 4;

fn router_error(e: ContractError) -> TaskRouterErrors {
    match e {
        ContractError::Revert(Revert::Router(e)) => e,
        other => panic!("expected a TaskRouter revert, got {other:?}"),
    }
}

fn task_id(task: &TaskJson) -> U256 {
    U256::from_str_radix(&task.task_id, 16).unwrap()
}

/// A cluster, a private-average project (`committee` expected seats, `threshold`, `inputs`
/// inputs), the block before its first task, and that task, opened through node 0's API.
async fn running_task(
    committee: u16,
    threshold: u16,
    inputs: u32,
    window_secs: u64,
) -> (Cluster, u64, u64, TaskJson) {
    let cluster = Cluster::start(NODES, |_| {}).await.unwrap();
    let project = cluster
        .private_average_project(committee, threshold, inputs, window_secs)
        .await
        .unwrap();
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    (cluster, project, from, task)
}

/// A task of `project` opened through node 0's API, every slot filled by a device, and its
/// published result.
async fn honest_task(cluster: &Cluster, project: u64, readings: &[i64]) -> (TaskJson, Average) {
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    fill(cluster, &task, readings, 0).await;
    let average = published(cluster, &task, from).await;
    (task, average)
}

/// Devices submit `readings`, the first through node `first`'s API and the rest through the
/// following nodes'.
async fn fill(cluster: &Cluster, task: &TaskJson, readings: &[i64], first: usize) {
    for (i, &r) in readings.iter().enumerate() {
        Client::new(cluster.api((first + i) % NODES))
            .submit_to(task, r)
            .await
            .unwrap();
    }
}

/// The task's published result (scanning from block `from`).
async fn published(cluster: &Cluster, task: &TaskJson, from: u64) -> Average {
    let published = ResultWatcher::new(cluster.contracts.clone(), from, 0)
        .with_poll_interval(Duration::from_millis(20))
        .wait_for_task(task_id(task), Duration::from_secs(120))
        .await
        .unwrap();
    let Some(published) = published else {
        let status = Client::new(cluster.api(0))
            .status(&task_id(task).to_be_bytes::<32>())
            .await;
        panic!("the honest task did not publish; its coordinator reports {status:?}");
    };
    Average::decode(&published.event.output).unwrap()
}

/// A project registered by the cluster's owner with a program taking `inputs` inputs.
async fn project(cluster: &Cluster, committee: u16, threshold: u16, inputs: u32) -> U256 {
    let source = Program::sum_source(inputs, 120, 32);
    U256::from(
        cluster
            .program_project(&source, committee, threshold)
            .await
            .unwrap(),
    )
}

/// Opens a task from the test (no node coordinates it) and waits for its seats: (id, seat
/// holders with their masks).
async fn open_drawn_task(cluster: &Cluster, project: U256) -> (U256, Vec<(Address, U256)>) {
    open_drawn_task_as(cluster, &cluster.owner, project).await
}

/// [`open_drawn_task`] with `opener` paying for it (its node is then the task's coordinator).
async fn open_drawn_task_as(
    cluster: &Cluster,
    opener: &PrivateKeySigner,
    project: U256,
) -> (U256, Vec<(Address, U256)>) {
    let (task, _) = cluster.contracts.open_task(opener, project).await.unwrap();
    cluster.chain.mine(2).await.unwrap();
    let seated = cluster.contracts.committee(task).await.unwrap().unwrap();
    (task, seated)
}

/// Opens tasks until one's seats satisfy `wanted` (at most 50 tries): (id, seat holders).
async fn drawn_task_where(
    cluster: &Cluster,
    project: U256,
    wanted: impl Fn(&[(Address, U256)]) -> bool,
) -> (U256, Vec<(Address, U256)>) {
    for _ in 0..50 {
        let (task, seated) = open_drawn_task(cluster, project).await;
        if wanted(&seated) {
            return (task, seated);
        }
    }
    panic!("50 draws and none as wanted");
}

fn forged(project: U256, task: U256) -> TaskResult {
    TaskResult {
        project_id: project,
        task_id: task,
        output: Bytes::from_static(b"forged output"),
        proof_hash: B256::ZERO,
    }
}

fn sign(result: &TaskResult, key: &PrivateKeySigner, cluster: &Cluster) -> Attestation {
    let a = cluster.contracts.addresses();
    result.sign(key, a.chain_id, a.task_router).unwrap()
}

/// One signer submits `result` alone, claiming the seats in `mask`: the contract's refusal.
async fn submitted_alone(
    cluster: &Cluster,
    key: &PrivateKeySigner,
    result: &TaskResult,
    mask: U256,
) -> TaskRouterErrors {
    let signature = sign(result, key, cluster).signature;
    router_error(
        cluster
            .contracts
            .submit_signatures(key, result, vec![signature], vec![mask])
            .await
            .unwrap_err(),
    )
}

fn operator_key(cluster: &Cluster, operator: Address) -> &PrivateKeySigner {
    cluster
        .operators
        .iter()
        .find(|k| k.address() == operator)
        .expect("a cluster operator")
}

/// Old code let the opener pick the task id; now the contract assigns it, so ids cannot be
/// ground against the seed, a result for an id nobody opened is refused, and a project that
/// restricts opening keeps strangers from buying draws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grind_task_id() {
    let cluster = Cluster::start(NODES, |_| {}).await.unwrap();
    let project = project(&cluster, 3, 2, 4).await;
    let attacker = &cluster.operators[1];
    let (first, _) = cluster
        .contracts
        .open_task(attacker, project)
        .await
        .unwrap();
    let (second, _) = cluster
        .contracts
        .open_task(&cluster.owner, project)
        .await
        .unwrap();
    assert_eq!(
        second,
        first + U256::from(1),
        "ids are the contract's, in order"
    );

    // A result for an id of the attacker's choosing, signed by every operator it could muster.
    // A result for an id of the attacker's choosing, signed by every operator it could muster,
    // each claiming every unit it has.
    let chosen = U256::from(0xdead_beefu64) << 192;
    let result = forged(project, chosen);
    let mut keys: Vec<&PrivateKeySigner> = cluster.operators.iter().collect();
    keys.sort_by_key(|k| k.address());
    let e = router_error(
        cluster
            .contracts
            .submit_signatures(
                attacker,
                &result,
                keys.iter()
                    .map(|k| sign(&result, k, &cluster).signature)
                    .collect(),
                vec![U256::MAX; keys.len()],
            )
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::UnknownTask(_)), "{e:?}");

    cluster
        .contracts
        .set_restrict_openers(&cluster.owner, project, true)
        .await
        .unwrap();
    let e = router_error(
        cluster
            .contracts
            .open_task(attacker, project)
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::MayNotOpen(_)), "{e:?}");
    let opened = cluster.contracts.task(second).await.unwrap();
    assert_eq!(opened.opener, cluster.owner.address());
    cluster.shutdown().await;
}

/// A registered node without a seat in the task signs: its signature alone, or added to the
/// real seat holders', is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_member_signs() {
    let cluster = Cluster::start(NODES, |_| {}).await.unwrap();
    let project = project(&cluster, 3, 1, 4).await;
    // 4 nodes × 10 units and 3 expected seats: a node misses a task's seats about half the time.
    let outside = |seated: &[(Address, U256)]| {
        cluster
            .operators
            .iter()
            .find(|k| seated.iter().all(|(who, _)| *who != k.address()))
            .cloned()
    };
    let (task, seated) =
        drawn_task_where(&cluster, project, |s| !s.is_empty() && outside(s).is_some()).await;
    let outsider = outside(&seated).unwrap();
    let result = forged(project, task);
    for mask in [U256::ZERO, U256::from(1)] {
        let e = submitted_alone(&cluster, &outsider, &result, mask).await;
        assert!(matches!(e, TaskRouterErrors::NotSeatHolder(_)), "{e:?}");
    }
    let alone = sign(&result, &outsider, &cluster);
    // With the genuine seat holders: the outsider's claim spoils the submission.
    let mut signed: Vec<(Address, Bytes, U256)> = seated
        .iter()
        .map(|(who, mask)| {
            let key = operator_key(&cluster, *who);
            (*who, sign(&result, key, &cluster).signature, *mask)
        })
        .collect();
    signed.push((outsider.address(), alone.signature, U256::from(1)));
    signed.sort_by_key(|s| s.0);
    let e = router_error(
        cluster
            .contracts
            .submit_signatures(
                &outsider,
                &result,
                signed.iter().map(|s| s.1.clone()).collect(),
                signed.iter().map(|s| s.2).collect(),
            )
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::NotSeatHolder(_)), "{e:?}");
    assert!(cluster.contracts.result(task).await.unwrap().is_none());
    cluster.shutdown().await;
}

/// Seat holders with fewer than the threshold's seats sign a wrong output: refused, and the
/// honest committee then publishes the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_submits_wrong_output() {
    let (cluster, project_id, from, task) = running_task(3, 2, 3, 120).await;
    let id = task_id(&task);
    let seated = cluster.contracts.committee(id).await.unwrap().unwrap();
    let threshold = cluster.contracts.task(id).await.unwrap().threshold;
    // The largest set of seat holders short of the threshold: one with fewer seats than it.
    let (minority, mask) = seated
        .iter()
        .find(|(_, m)| seat_count(*m) < u32::from(threshold))
        .copied()
        .unwrap_or_else(|| {
            // Every holder has the threshold alone: a single seat of one is still a minority.
            let (who, m) = seated[0];
            (who, m & (!m + U256::from(1)))
        });
    let result = forged(U256::from(project_id), id);
    let e = submitted_alone(&cluster, operator_key(&cluster, minority), &result, mask).await;
    assert!(matches!(e, TaskRouterErrors::TooFewSeats(_)), "{e:?}");

    fill(&cluster, &task, &[10, 20, 30], 0).await;
    let avg = published(&cluster, &task, from).await;
    assert_eq!((avg.sum, avg.count), (60, 3));
    cluster.shutdown().await;
}

/// A member signs two outputs of one task: anyone holding both signatures has it slashed, the
/// reporter earns a tenth of its stake (the rest is locked for good), and its seats stop
/// counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivocating_member_slashed() {
    let cluster = Cluster::start(NODES, |_| {}).await.unwrap();
    let project = project(&cluster, 3, 1, 4).await;
    let (task, seated) = drawn_task_where(&cluster, project, |s| !s.is_empty()).await;
    let (cheat, mask) = seated[0];
    let key = operator_key(&cluster, cheat).clone();
    let one = forged(project, task);
    let two = TaskResult {
        output: Bytes::from_static(b"another output"),
        ..one.clone()
    };
    let (sig_one, sig_two) = (sign(&one, &key, &cluster), sign(&two, &key, &cluster));

    let reporter = PrivateKeySigner::random();
    cluster
        .chain
        .set_balance(reporter.address(), coin())
        .await
        .unwrap();
    let before = cluster.chain.balance(reporter.address()).await.unwrap();
    let stake = cluster.contracts.node(cheat).await.unwrap().stake;
    cluster
        .contracts
        .report_equivocation(
            &reporter,
            task,
            (&one, &sig_one.signature),
            (&two, &sig_two.signature),
        )
        .await
        .unwrap();
    let record = cluster.contracts.node(cheat).await.unwrap();
    assert!(record.slashed);
    assert_eq!(record.stake, U256::ZERO);
    // The embedded chain charges no gas: the reporter's balance grew by exactly a tenth.
    let after = cluster.chain.balance(reporter.address()).await.unwrap();
    assert_eq!(after - before, stake / U256::from(10));

    // Its seats no longer count, even for the output it signed first.
    let e = submitted_alone(&cluster, &key, &one, mask).await;
    assert!(matches!(e, TaskRouterErrors::NotSeatHolder(_)), "{e:?}");
    // The same output twice is no equivocation, and nobody is slashed twice.
    let e = router_error(
        cluster
            .contracts
            .report_equivocation(
                &reporter,
                task,
                (&one, &sig_one.signature),
                (&one, &sig_one.signature),
            )
            .await
            .unwrap_err(),
    );
    assert!(matches!(e, TaskRouterErrors::SameOutput(_)), "{e:?}");
    cluster.shutdown().await;
}

/// The owner changes the project while a task is open: the task keeps the threshold, committee
/// size, receiver and program it was opened with, and the change reaches only tasks opened after
/// the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_changes_live_task() {
    let cluster = Cluster::start(NODES, |_| {}).await.unwrap();
    let project = project(&cluster, 8, 6, 4).await;
    let (task, seated) = drawn_task_where(&cluster, project, |s| !s.is_empty()).await;
    let before = cluster.contracts.task(task).await.unwrap();
    let program = Program::from_source(&Program::sum_source(1, 1, 32)).unwrap();
    let lax = ProjectSpec {
        program_hash: program.hash,
        program_uri: String::new(),
        prover_kind: ProverKind::Spdz,
        committee_size: 1,
        threshold: 1,
        receiver: Address::repeat_byte(0xee),
        verifier: Address::ZERO,
        output_words: 0,
    };
    cluster
        .contracts
        .update_project(&cluster.owner, project, &lax)
        .await
        .unwrap();
    let now = cluster.contracts.project(project).await.unwrap();
    assert_eq!(
        (now.committeeSize, now.threshold),
        (8, 6),
        "not before the delay"
    );
    cluster
        .chain
        .mine(DeployConfig::default().change_delay)
        .await
        .unwrap();
    let now = cluster.contracts.project(project).await.unwrap();
    assert_eq!(
        (now.committeeSize, now.threshold),
        (1, 1),
        "in effect after it"
    );
    let after = cluster.contracts.task(task).await.unwrap();
    assert_eq!(before, after, "the open task's snapshot is untouched");

    // A seat holder with fewer than the snapshot's six seats (about two of the eight expected)
    // cannot publish under the project's new threshold of one.
    let (who, mask) = seated
        .iter()
        .find(|(_, m)| seat_count(*m) < 6)
        .expect("a seat holder with fewer than six seats");
    let result = forged(project, task);
    let e = submitted_alone(&cluster, operator_key(&cluster, *who), &result, *mask).await;
    assert!(matches!(e, TaskRouterErrors::TooFewSeats(_)), "{e:?}");
    // Pausing does not kill the open task either: its seed can still be fixed and it can publish.
    cluster
        .contracts
        .set_project_paused(&cluster.owner, project, true)
        .await
        .unwrap();
    cluster
        .contracts
        .fix_seed(&cluster.owner, task)
        .await
        .unwrap();
    cluster.shutdown().await;
}

/// Someone registers a running node's peer id under its own operator address, ahead of the
/// node's own registration, with the node's proof of possession copied (it cannot make its own),
/// and another registers the node's input key with a peer id of its own: both records fail the
/// identity check, so no node lists them on a committee, the victim keeps its seats, and the
/// honest task publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_peer_id_registration() {
    let cluster = Cluster::start(NODES, |_| {}).await.unwrap();
    let victim_key = cluster.operators[2].clone();
    let victim = victim_key.address();
    let record = cluster.contracts.node(victim).await.unwrap();
    // The victim leaves and comes back, so that the squatter's record is the older one.
    cluster
        .contracts
        .deactivate_node(&victim_key)
        .await
        .unwrap();
    cluster
        .chain
        .mine(DeployConfig::default().withdraw_delay)
        .await
        .unwrap();
    cluster.contracts.withdraw_stake(&victim_key).await.unwrap();
    let squatter = PrivateKeySigner::random();
    cluster
        .chain
        .set_balance(squatter.address(), coin() * U256::from(1000))
        .await
        .unwrap();
    let copied = NodeIdentity {
        peer_id: record.peerId.to_vec(),
        input_key: B256::repeat_byte(0x5a),
        proof_of_possession: record.proofOfPossession.to_vec(),
    };
    // Large stakes for both, so that each holds seats in nearly every task.
    let big = coin() * U256::from(200);
    cluster
        .contracts
        .register_node(&squatter, &copied, big)
        .await
        .unwrap();
    // Another registers a peer id of its own with the victim's input key, and a proof of
    // possession its own key made: the key is not the one its peer id derives.
    let key_squatter = PrivateKeySigner::random();
    cluster
        .chain
        .set_balance(key_squatter.address(), coin() * U256::from(1000))
        .await
        .unwrap();
    let its_peer = Keypair::generate_ed25519();
    let its_peer_id = its_peer.public().to_peer_id().to_bytes();
    let a = cluster.contracts.addresses();
    let binding = conclave_chain::identity::binding_message(
        a.chain_id,
        a.node_registry,
        key_squatter.address(),
        &its_peer_id,
        record.inputKey,
    );
    let squatting = NodeIdentity {
        peer_id: its_peer_id,
        input_key: record.inputKey,
        proof_of_possession: its_peer.sign(&binding).unwrap(),
    };
    cluster
        .contracts
        .register_node(&key_squatter, &squatting, big)
        .await
        .unwrap();
    cluster
        .chain
        .set_balance(victim, coin() * U256::from(1000))
        .await
        .unwrap();
    let own = NodeIdentity {
        peer_id: record.peerId.to_vec(),
        input_key: record.inputKey,
        proof_of_possession: record.proofOfPossession.to_vec(),
    };
    cluster
        .contracts
        .register_node(&victim_key, &own, big)
        .await
        .unwrap();
    cluster.chain.mine(1).await.unwrap();

    // 16 expected seats over 430 units: the victim misses a task's seats with odds about 6e-4.
    let project_id = cluster
        .private_average_project(16, 2, 3, 120)
        .await
        .unwrap();
    let (task, avg) = honest_task(&cluster, project_id, &[1, 2, 3]).await;
    assert_eq!((avg.sum, avg.count), (6, 3));
    let operators: Vec<Address> = task
        .committee
        .iter()
        .map(|m| m.operator.parse().unwrap())
        .collect();
    assert!(!operators.contains(&squatter.address()), "{operators:?}");
    assert!(
        !operators.contains(&key_squatter.address()),
        "{operators:?}"
    );
    let seated = cluster
        .contracts
        .committee(task_id(&task))
        .await
        .unwrap()
        .unwrap();
    if seated.iter().any(|(who, _)| *who == victim) {
        assert!(
            operators.contains(&victim),
            "the victim kept its seats: {operators:?}"
        );
    }
    cluster.shutdown().await;
}

/// A peer that did not open a task announces it to a member (`Start` naming itself as
/// coordinator), another announces a task that was never opened on chain, and a task's rightful
/// opener announces it with an honest seat holder left out, or with an input window shorter than
/// the program's: all refused, and the real task still publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_task_announcement() {
    let (cluster, project_id, from, task) = running_task(3, 2, 3, 120).await;

    let coordinator: PeerId = task.coordinator.parse().unwrap();
    let attacker = cluster
        .nodes
        .iter()
        .find(|n| n.peer_id() != coordinator)
        .unwrap();
    let members = info_of(&task).committee;
    let hijacked = TaskInfo {
        project_id,
        task_id: task_id(&task).to_be_bytes(),
        coordinator: attacker.peer_id().to_bytes(),
        committee: members.clone(),
        program_hash: info_of(&task).program_hash,
        max_inputs: 3,
        input_bits: 32,
        owner_bits: 0,
        closes_at_ms: u64::MAX / 2,
        prover_kind: 0,
        record_bytes: 0,
    };
    let made_up = TaskInfo {
        task_id: (U256::from(77u64) << 200usize).to_be_bytes::<32>(),
        ..hijacked.clone()
    };
    // A real task that no node opened (its opener is the project owner's plain account), with
    // its real, complete committee: only the node of the opener may start it.
    let (unowned, seated) =
        drawn_task_where(&cluster, U256::from(project_id), |s| s.len() >= 2).await;
    let mut real_committee = Vec::new();
    for (operator, _) in &seated {
        let record = cluster.contracts.node(*operator).await.unwrap();
        real_committee.push(Member {
            peer: record.peerId.to_vec(),
            operator: operator.0.0,
            key: record.inputKey.0,
        });
    }
    let not_opened_by_attacker = TaskInfo {
        task_id: unowned.to_be_bytes::<32>(),
        committee: real_committee,
        ..hijacked.clone()
    };
    // A task the attacker's own operator opened (so its node is the rightful coordinator),
    // announced with one honest seat holder left out: the rest refuse an incomplete committee.
    let opener_key = operator_key(&cluster, attacker.operator()).clone();
    let mut cut = None;
    for _ in 0..50 {
        let (own, seated) = open_drawn_task_as(&cluster, &opener_key, U256::from(project_id)).await;
        if seated.len() >= 3 {
            cut = Some((own, seated));
            break;
        }
    }
    let (own, seated) = cut.expect("a draw with three seat holders in 50");
    let dropped = seated
        .iter()
        .position(|(who, _)| *who != attacker.operator())
        .unwrap();
    let mut full_committee = Vec::new();
    for (operator, _) in &seated {
        let record = cluster.contracts.node(*operator).await.unwrap();
        full_committee.push(Member {
            peer: record.peerId.to_vec(),
            operator: operator.0.0,
            key: record.inputKey.0,
        });
    }
    let mut cut_committee = full_committee.clone();
    cut_committee.remove(dropped);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let incomplete = TaskInfo {
        task_id: own.to_be_bytes::<32>(),
        committee: cut_committee,
        closes_at_ms: now_ms + 120_000,
        ..hijacked.clone()
    };
    // The same task with its whole committee but an input window of one second instead of the
    // program's 120: a run over the few inputs of the opener's choice would follow.
    let early_close = TaskInfo {
        committee: full_committee,
        closes_at_ms: now_ms + 1_000,
        ..incomplete.clone()
    };
    for info in [
        hijacked,
        made_up,
        not_opened_by_attacker,
        incomplete,
        early_close,
    ] {
        for member in &info.committee {
            let peer = PeerId::from_bytes(&member.peer).unwrap();
            if peer == attacker.peer_id() {
                continue;
            }
            let answer = ask(attacker.network(), peer, &Request::Start(info.clone())).await;
            assert!(
                matches!(answer, Response::Refused { .. }),
                "{peer} accepted a forged Start: {answer:?}"
            );
        }
    }

    fill(&cluster, &task, &[4, 5, 6], 0).await;
    let avg = published(&cluster, &task, from).await;
    assert_eq!((avg.sum, avg.count), (15, 3));
    cluster.shutdown().await;
}

/// The `TaskInfo` (what a coordinator's `Start` carries) that a task's JSON describes.
fn info_of(task: &TaskJson) -> TaskInfo {
    TaskInfo {
        project_id: task.project_id,
        task_id: task_id(task).to_be_bytes(),
        coordinator: task.coordinator.parse::<PeerId>().unwrap().to_bytes(),
        committee: task
            .committee
            .iter()
            .map(|m| Member {
                peer: m.peer_id.parse::<PeerId>().unwrap().to_bytes(),
                operator: m.operator.parse::<Address>().unwrap().0.0,
                key: from_hex(&m.key),
            })
            .collect(),
        program_hash: from_hex(&task.program_hash),
        max_inputs: task.max_inputs,
        input_bits: task.input_bits,
        owner_bits: task.owner_bits,
        closes_at_ms: task.closes_at_ms,
        prover_kind: task.prover_kind,
        record_bytes: task.record_bytes,
    }
}

/// The bits a device sends for `reading` in a task of one `bits`-bit integer field:
/// reading + 2^(bits−1), least significant first.
fn reading_bits(reading: i64, bits: u32) -> Vec<Fp> {
    let offset = (reading + (1i64 << (bits - 1))) as u64;
    (0..bits).map(|j| Fp::from_u64(offset >> j & 1)).collect()
}

fn from_hex(s: &str) -> [u8; 32] {
    let s = s.trim_start_matches("0x");
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// The coordinator (here: a node whose operator turned malicious) asks the members to compute
/// over one victim's slot, over the inputs stored so far while the window is open, and after the
/// honest run, to run again: all refused, so the output covers every agreed input once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_or_subset_run() {
    let (cluster, _, from, task) = running_task(6, 2, 4, 120).await;
    let coordinator: PeerId = task.coordinator.parse().unwrap();
    let node = cluster
        .nodes
        .iter()
        .find(|n| n.peer_id() == coordinator)
        .unwrap();
    let members: Vec<PeerId> = task
        .committee
        .iter()
        .map(|m| m.peer_id.parse().unwrap())
        .filter(|p| *p != coordinator)
        .collect();
    let run = |slots: Vec<u32>| Request::Run {
        task_id: task_id(&task).to_be_bytes(),
        slots,
    };
    let refused_everywhere = |request: Request| {
        let members = members.clone();
        async move {
            for &member in &members {
                let answer = ask(node.network(), member, &request).await;
                assert!(
                    matches!(answer, Response::Refused { .. }),
                    "{member} answered {answer:?}"
                );
            }
        }
    };

    // One input stored: a run over it alone is below the minimum of two.
    fill(&cluster, &task, &[100], 0).await;
    refused_everywhere(run(vec![0])).await;
    // Three stored: a run over two of them leaves out more than a tenth.
    fill(&cluster, &task, &[200, 300], 1).await;
    refused_everywhere(run(vec![0, 1])).await;
    // A run over all three stored while the window is open and a slot is still free: closing
    // early over the inputs of its choice is not the coordinator's to decide.
    refused_everywhere(run(vec![0, 1, 2])).await;
    fill(&cluster, &task, &[400], 3).await;
    let avg = published(&cluster, &task, from).await;
    assert_eq!((avg.sum, avg.count), (1000, 4));
    // After the run: no second one, over all the slots or over one.
    refused_everywhere(run(vec![0, 1, 2, 3])).await;
    refused_everywhere(run(vec![2])).await;
    cluster.shutdown().await;
}

/// An entry node announces a committee of its own making (its own keys, or a member list cut
/// to the members it controls): a device that reads the chain refuses it before sending
/// anything, and with the real committee it still submits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_committee_to_device() {
    let (cluster, _, _, task) = running_task(6, 2, 3, 120).await;
    let device = Client::new(cluster.api(1)).with_chain(cluster.contracts.clone());

    let mut own_keys = task.clone();
    for m in &mut own_keys.committee {
        m.key = "5a".repeat(32);
    }
    let mut cut = task.clone();
    cut.committee.truncate(1);
    let mut stranger = task.clone();
    stranger.committee[0].peer_id = PeerId::random().to_string();
    let mut other_task = task.clone();
    other_task.task_id = format!("{:064x}", task_id(&task) + U256::from(1000));
    for (what, fake) in [
        ("keys", own_keys),
        ("cut", cut),
        ("stranger", stranger),
        ("task", other_task),
    ] {
        let e = device.submit_to(&fake, 42).await.unwrap_err();
        assert!(
            matches!(e, conclave_node::client::ClientError::Committee(_)),
            "{what}: {e:?}"
        );
    }
    device.submit_to(&task, 42).await.unwrap();
    cluster.shutdown().await;
}

/// Once a task has run, no member keeps its MAC key share, triple shares or masked inputs: a
/// member that turns malicious later (or whose disk is stolen) finds nothing to combine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn material_deleted_after_task() {
    let (cluster, _, from, task) = running_task(6, 2, 3, 120).await;
    let id = task_id(&task).to_be_bytes::<32>();
    let members: Vec<PeerId> = task
        .committee
        .iter()
        .map(|m| m.peer_id.parse().unwrap())
        .collect();
    fill(&cluster, &task, &[7, 8], 0).await;
    // Before the run, every member holds the material (the check below is not vacuous).
    for node in cluster
        .nodes
        .iter()
        .filter(|n| members.contains(&n.peer_id()))
    {
        assert!(node.holds_material(&id).unwrap(), "{}", node.peer_id());
    }
    fill(&cluster, &task, &[9], 2).await;
    let avg = published(&cluster, &task, from).await;
    assert_eq!((avg.sum, avg.count), (24, 3));
    // Every member ran (the result needed their shares); each deletes as its run returns, before
    // it answers, so the material is gone by the time the result is on chain (well before the
    // sweep of finished tasks, every few seconds, would find it).
    for node in cluster
        .nodes
        .iter()
        .filter(|n| members.contains(&n.peer_id()))
    {
        let deadline = std::time::Instant::now() + Duration::from_millis(300);
        while node.holds_material(&id).unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} still holds the task's material",
                node.peer_id()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    cluster.shutdown().await;
}

/// A task whose run never comes (here its window closes over one input, too few for a run)
/// keeps no material either: once the chain passes the task's deadline, every member deletes
/// its MAC key share, triple shares and masked inputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn material_deleted_when_a_task_never_runs() {
    let (cluster, _, _, task) = running_task(6, 2, 3, 40).await;
    let id = task_id(&task);
    let members = committee_peers(&task);
    let member_nodes = || {
        cluster
            .nodes
            .iter()
            .filter(|n| members.contains(&n.peer_id()))
    };
    fill(&cluster, &task, &[7], 0).await;
    // The window closes; the run is refused (one input); the material stays until the deadline.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(
        task.closes_at_ms.saturating_sub(now_ms) + 2000,
    ))
    .await;
    for node in member_nodes() {
        assert!(node.holds_material(&id.to_be_bytes()).unwrap());
    }
    let deadline = cluster.contracts.task(id).await.unwrap().deadline;
    let now = cluster.contracts.chain().block_number().await.unwrap();
    cluster.chain.mine(deadline - now + 1).await.unwrap();
    let patience = std::time::Instant::now() + conclave_node::sweep::SWEEP_INTERVAL * 4;
    for node in member_nodes() {
        while node.holds_material(&id.to_be_bytes()).unwrap() {
            assert!(
                std::time::Instant::now() < patience,
                "{} still holds a finished task's material",
                node.peer_id()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The coordinator starts the finished task again: no member preprocesses for it anew.
    let coordinator: PeerId = task.coordinator.parse().unwrap();
    let c = cluster
        .nodes
        .iter()
        .position(|n| n.peer_id() == coordinator)
        .unwrap();
    let again = Request::Start(info_of(&task));
    for member in members.iter().filter(|m| **m != coordinator) {
        let answer = ask(cluster.nodes[c].network(), *member, &again).await;
        assert!(
            matches!(answer, Response::Refused { .. }),
            "{member} started a finished task again: {answer:?}"
        );
    }
    cluster.shutdown().await;
}

/// The result reaches the chain while the coordinator's own path fails (here: the seat holders'
/// signatures were submitted by someone else first, so its members, seeing the task published,
/// delete its material, and its run or submission fails). It must notice the published result
/// and not re-run the work as a new task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_not_duplicated_after_timeout() {
    let (cluster, project_id, _, task) = running_task(6, 2, 3, 10).await;
    let id = task_id(&task);
    // The result the committee will compute, signed by every seat holder and published early.
    let output = Average { sum: 6, count: 3 }.encode();
    let result = TaskResult {
        project_id: U256::from(project_id),
        task_id: id,
        output: Bytes::from(output),
        proof_hash: B256::ZERO,
    };
    let seated = cluster.contracts.committee(id).await.unwrap().unwrap();
    let attestations = seated
        .iter()
        .map(|(who, _)| sign(&result, operator_key(&cluster, *who), &cluster))
        .collect();
    cluster
        .contracts
        .submit_result(&cluster.owner, &result, attestations)
        .await
        .unwrap();
    // Devices may still try; members that saw the result published have deleted the task's
    // material and refuse them. Either way the coordinator's own path fails.
    for r in [1, 2, 3] {
        let _ = Client::new(cluster.api(0)).submit_to(&task, r).await;
    }

    let coordinator: PeerId = task.coordinator.parse().unwrap();
    let node = cluster
        .nodes
        .iter()
        .find(|n| n.peer_id() == coordinator)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let record = loop {
        let record = node.task(&id.to_be_bytes::<32>()).unwrap().unwrap();
        if record.state.is_final() {
            break record;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", record.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        matches!(
            record.state,
            conclave_node::task::TaskState::Published { .. }
        ),
        "{:?}",
        record.state
    );
    assert_eq!(record.retried_as, None);
    let later = cluster
        .contracts
        .task(id + U256::from(1))
        .await
        .unwrap_err();
    assert!(matches!(
        router_error(later),
        TaskRouterErrors::UnknownTask(_)
    ));
    cluster.shutdown().await;
}

/// The peer ids of a task's committee.
fn committee_peers(task: &TaskJson) -> Vec<PeerId> {
    task.committee
        .iter()
        .map(|m| m.peer_id.parse().unwrap())
        .collect()
}

/// A slot ticket signed by cluster node `signer`'s libp2p key.
fn ticket(cluster: &Cluster, signer: usize, task: &TaskJson, slot: u32, key: [u8; 32]) -> Request {
    let task_id = task_id(task).to_be_bytes::<32>();
    let signature = cluster.keypairs[signer]
        .sign(&SlotTicket::message(&task_id, slot, &key))
        .unwrap();
    Request::TripleShares(SlotTicket {
        task_id,
        slot,
        client_key: key,
        signature,
    })
}

/// `from` (a node's mesh, or a stranger's) asks `to` directly.
async fn ask(from: &Network, to: PeerId, request: &Request) -> Response {
    let answer = from.request(to, messages::encode(request)).await.unwrap();
    messages::decode(&answer).unwrap()
}

/// Node `c` (its own mesh) asks every other member of `task`'s committee (a node cannot dial
/// itself): each member's answer.
async fn ask_other_members(
    cluster: &Cluster,
    c: usize,
    task: &TaskJson,
    request: &Request,
) -> Vec<(PeerId, Response)> {
    let me = cluster.nodes[c].peer_id();
    let mut answers = Vec::new();
    for member in committee_peers(task).into_iter().filter(|m| *m != me) {
        answers.push((
            member,
            ask(cluster.nodes[c].network(), member, request).await,
        ));
    }
    answers
}

/// The task's coordinator issues itself a second ticket for a slot a device already filled
/// and asks every other member for that slot's mask shares: refused everywhere (a slot's shares
/// go to one key), so y + a stays out of its reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_requests_foreign_mask() {
    let (cluster, _, _, task) = running_task(6, 2, 3, 120).await;
    let device = Client::new(cluster.api(1)).with_chain(cluster.contracts.clone());
    let filled = device.submit_to(&task, 42).await.unwrap();
    let coordinator: PeerId = task.coordinator.parse().unwrap();
    let c = cluster
        .nodes
        .iter()
        .position(|n| n.peer_id() == coordinator)
        .unwrap();
    let request = ticket(&cluster, c, &task, filled.slot, [0x66; 32]);
    for (member, answer) in ask_other_members(&cluster, c, &task, &request).await {
        assert!(
            matches!(answer, Response::Refused { .. }),
            "{member} released slot {}'s shares again: {answer:?}",
            filled.slot
        );
    }
    cluster.shutdown().await;
}

/// A peer that is not the coordinator tries to take slots: the shares of a slot under a ticket
/// it signed itself, an input into a slot granted to a device's key (sealed by its own key, or
/// with no sender), an input into a slot nobody was granted. Every member refuses each, and the
/// devices' task publishes their average alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_squatting() {
    let (cluster, _, from, task) = running_task(6, 2, 3, 120).await;
    let id = task_id(&task).to_be_bytes::<32>();
    let coordinator: PeerId = task.coordinator.parse().unwrap();
    let a = cluster
        .nodes
        .iter()
        .position(|n| n.peer_id() != coordinator)
        .unwrap();
    let attacker = &cluster.nodes[a];
    // A device holds slot 0 and has not sent its input yet.
    let device = Client::new(cluster.api(1));
    let granted = device.take_slot(&task).await.unwrap();
    let squatter = SecretKey::generate();
    let y = vec![0u8; 32 * task.input_bits as usize];
    for member in &task.committee {
        let peer: PeerId = member.peer_id.parse().unwrap();
        if peer == attacker.peer_id() {
            continue;
        }
        let key = from_hex(&member.key);
        let input = |slot: u32, sealed| Request::Input {
            task_id: id,
            slot,
            sealed,
        };
        let attempts = [
            (
                "an input sealed by another key into the device's slot",
                input(
                    granted.slot,
                    envelope::seal_from(&squatter, &key, &input_context(&id, granted.slot), &y)
                        .unwrap(),
                ),
            ),
            (
                "an input with no sender into the device's slot",
                input(
                    granted.slot,
                    envelope::seal(&key, &input_context(&id, granted.slot), &y).unwrap(),
                ),
            ),
            (
                "an input into a slot nobody was granted",
                input(
                    2,
                    envelope::seal_from(&squatter, &key, &input_context(&id, 2), &y).unwrap(),
                ),
            ),
            (
                "shares under a ticket the attacker signed",
                ticket(&cluster, a, &task, 1, squatter.public()),
            ),
        ];
        for (what, request) in attempts {
            let answer = ask(attacker.network(), peer, &request).await;
            assert!(
                matches!(answer, Response::Refused { .. }),
                "{peer} accepted {what}: {answer:?}"
            );
        }
    }
    let bits = reading_bits(10, task.input_bits);
    device.send_bits(&task, &granted, &bits).await.unwrap();
    fill(&cluster, &task, &[20, 30], 2).await;
    assert_eq!(
        published(&cluster, &task, from).await,
        Average { sum: 60, count: 3 }
    );
    cluster.shutdown().await;
}

/// A device sends values that are not bits in its slot (a huge field element and a 2): once
/// such an input overflowed the sum and sank the task and its re-runs. Now the members leave it
/// out, and the task publishes the average of the honest inputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_input_excluded() {
    let (cluster, _, from, task) = running_task(6, 2, 3, 120).await;
    fill(&cluster, &task, &[10, -4], 1).await;
    let cheat = Client::new(cluster.api(0));
    let slot = cheat.take_slot(&task).await.unwrap();
    let mut bits = vec![Fp::ZERO; task.input_bits as usize];
    bits[0] = Fp::from_u64(1 << 62);
    bits[5] = Fp::from_u64(2);
    cheat.send_bits(&task, &slot, &bits).await.unwrap();
    assert_eq!(
        published(&cluster, &task, from).await,
        Average { sum: 6, count: 2 }
    );
    cluster.shutdown().await;
}

/// A peer no registry knows (a fresh libp2p identity), connected to every node.
async fn stranger(cluster: &Cluster) -> Network {
    endpoint(cluster, Keypair::generate_ed25519(), [0; 20]).await
}

/// A bare mesh endpoint with `keypair`, announcing `chain_address`, connected to every node.
async fn endpoint(cluster: &Cluster, keypair: Keypair, chain_address: [u8; 20]) -> Network {
    let mut config = NetworkConfig::local(keypair);
    config.mdns = false;
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.chain_address = chain_address;
    for node in &cluster.nodes {
        config
            .bootstrap
            .extend(node.network().listen_addrs().await.unwrap());
    }
    let network = Network::start(config).await.unwrap();
    network.wait_listening().await.unwrap();
    network
}

/// A stranger (a peer in no registry) asks a member, again and again, to start the live task
/// with itself as coordinator and floods the task's coordinator with requests; a device asks an
/// entry node for project after project with no open task. The member starts no preprocessing
/// and spends no gas; the flood is answered "busy" beyond a peer's rate; the entry node opens no
/// more tasks than its budget. The honest task still publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_work_is_bounded() {
    let limits = Limits {
        openings_per_minute: NonZeroU32::new(2).unwrap(),
        ..conclave_sim::sim_limits()
    };
    let cluster = Cluster::start_with_limits(NODES, limits, |_| {})
        .await
        .unwrap();
    let project = cluster.private_average_project(6, 2, 3, 120).await.unwrap();
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    let id = task_id(&task).to_be_bytes::<32>();
    let stranger = stranger(&cluster).await;
    // One device's input: its shares come once the members' preprocessing has finished.
    fill(&cluster, &task, &[1], 0).await;

    let member = committee_peers(&task)[0];
    let m = cluster
        .nodes
        .iter()
        .position(|n| n.peer_id() == member)
        .unwrap();
    let operator = cluster.operators[m].address();
    let balance = cluster.chain.balance(operator).await.unwrap();
    let made_up = TaskInfo {
        coordinator: stranger.peer_id().to_bytes(),
        closes_at_ms: u64::MAX / 2,
        ..info_of(&task)
    };
    for _ in 0..50 {
        let answer = ask(&stranger, member, &Request::Start(made_up.clone())).await;
        assert!(matches!(answer, Response::Refused { .. }), "{answer:?}");
    }
    assert_eq!(cluster.nodes[m].memory_use().preparing, 0);
    assert_eq!(cluster.chain.balance(operator).await.unwrap(), balance);

    let coordinator: PeerId = task.coordinator.parse().unwrap();
    let status = Request::Status { task_id: id };
    let started = std::time::Instant::now();
    let answers: Vec<Response> = futures::stream::iter(0..1500)
        .map(|_| ask(&stranger, coordinator, &status))
        .buffer_unordered(50)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let served = answers
        .iter()
        .filter(|a| matches!(a, Response::Status { .. }))
        .count();
    let busy = answers
        .iter()
        .filter(|a| {
            matches!(
                a,
                Response::Refused {
                    kind: RefusalKind::Busy,
                    ..
                }
            )
        })
        .count();
    assert_eq!(served + busy, answers.len());
    assert!(busy > 0, "1,500 requests at once outrun any peer's rate");
    let rate = f64::from(Limits::peers().per_client.get());
    assert!(
        (served as f64) <= rate * (1.0 + elapsed) + 1.0,
        "{served} served in {elapsed:.2} s"
    );

    // The task above took one opening of node 0's budget of two; node 1's is whole.
    let device = Client::new(cluster.api(1));
    let mut opened = 0;
    let mut refused = 0;
    for _ in 0..4 {
        let other = cluster.private_average_project(6, 2, 3, 120).await.unwrap();
        match device.task(other).await {
            Ok(_) => opened += 1,
            Err(ClientError::Status { status: 429, .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        opened <= 2 && refused >= 2,
        "{opened} opened, {refused} refused"
    );

    fill(&cluster, &task, &[2, 3], 1).await;
    assert_eq!(
        published(&cluster, &task, from).await,
        Average { sum: 6, count: 3 }
    );
    stranger.shutdown().await;
    cluster.shutdown().await;
}

/// A stranger floods a node with task announcements for thousands of made-up projects and MPC
/// streams for sessions nobody runs. The node's maps and parked streams stay within their caps,
/// and an honest task still publishes afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_caps_hold_under_spam() {
    let (cluster, _, from, task) = running_task(6, 2, 3, 120).await;
    let stranger = stranger(&cluster).await;
    let target = &cluster.nodes[0];
    // Give gossipsub a heartbeat to take the stranger in.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closes = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 600_000;
    let announcements = MAX_KNOWN_OPEN as u64 * 2;
    for i in 0..announcements {
        let mut task_id = [7u8; 32];
        task_id[..8].copy_from_slice(&i.to_be_bytes());
        stranger
            .publish(GossipMessage::Task(TaskAnnouncement {
                project_id: 1_000_000 + i,
                task_id,
                inputs_closed_at_ms: closes,
            }))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while target.memory_use().known_open < MAX_KNOWN_OPEN && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Saturated, never above the cap.
    assert_eq!(target.memory_use().known_open, MAX_KNOWN_OPEN);

    // Streams for three times as many sessions as a peer may park, none of which the target
    // joins: the stranger keeps opening them again while no acknowledgement comes.
    let parties = [stranger.peer_id(), target.peer_id()];
    let openers: Vec<_> = (0..(MAX_PARKED_PER_PEER as u8) * 3)
        .map(|i| {
            let stranger = stranger.clone();
            tokio::spawn(async move {
                let _ = stranger
                    .mpc()
                    .connect(SessionId([i; 16]), &parties, 1024)
                    .await;
            })
        })
        .collect();
    let mut most = 0;
    let watch = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < watch {
        most = most.max(target.memory_use().parked_streams);
        assert!(most <= MAX_PARKED_PER_PEER, "{most} streams parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(most > 0, "no stream was parked: the spam did not arrive");
    for opener in openers {
        opener.abort();
    }

    fill(&cluster, &task, &[4, 5, 6], 0).await;
    assert_eq!(
        published(&cluster, &task, from).await,
        Average { sum: 15, count: 3 }
    );
    stranger.shutdown().await;
    cluster.shutdown().await;
}

/// The owner slot of a program that reads the project owner's parameters: nobody but the owner
/// gets it — not the coordinator with a ticket of its own, not a stranger, not the owner's
/// signature made for another deployment or another key — and a coordinator cannot run the task
/// without the owner's parameters: members refuse such a run (and one naming the owner slot
/// before it holds anything) without spending the task's one run, so the task still publishes
/// once the owner sends them; a task whose owner never does fails with that reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_slot_only_for_the_owner() {
    let cluster = Cluster::start(NODES, |_| {}).await.unwrap();
    let source = "devices 3;\nwindow 40;\ninput x: int16 from devices;\ninput w: int8 from owner;\noutput s = sum(x) * w;\n";
    let project = cluster.program_project(source, 6, 2).await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    let id = task_id(&task).to_be_bytes::<32>();
    let owner_slot = task.max_inputs;
    let key = SecretKey::generate().public();
    let coordinator: PeerId = task.coordinator.parse().unwrap();
    let c = cluster
        .nodes
        .iter()
        .position(|n| n.peer_id() == coordinator)
        .unwrap();
    let a = cluster.contracts.addresses();
    let owner_signed = |signer: &PrivateKeySigner, chain_id: u64, signed_key: [u8; 32]| {
        let mut t = conclave_node::identity::issue_owner_ticket(
            signer,
            chain_id,
            a.task_router,
            id,
            owner_slot,
            signed_key,
        )
        .unwrap();
        t.client_key = key;
        Request::TripleShares(t)
    };
    for (request, who) in [
        (
            ticket(&cluster, c, &task, owner_slot, key),
            "the coordinator",
        ),
        (
            owner_signed(&PrivateKeySigner::random(), a.chain_id, key),
            "a stranger",
        ),
        (
            owner_signed(&cluster.owner, a.chain_id + 1, key),
            "the owner, for another chain",
        ),
        (
            owner_signed(&cluster.owner, a.chain_id, [0x55; 32]),
            "the owner, for another key",
        ),
    ] {
        for (member, answer) in ask_other_members(&cluster, c, &task, &request).await {
            assert!(
                matches!(answer, Response::Refused { .. }),
                "{member} gave the owner slot to {who}: {answer:?}"
            );
        }
    }
    // Every device slot filled, the owner not yet: a run without the owner slot, or naming it
    // before it holds anything, is refused, and spends nothing.
    let from = cluster.contracts.chain().block_number().await.unwrap();
    fill(&cluster, &task, &[1, 2, 3], 0).await;
    let run = |slots: Vec<u32>| Request::Run { task_id: id, slots };
    for (request, why) in [
        (run(vec![0, 1, 2]), "owner slot"),
        (run(vec![0, 1, 2, owner_slot]), "no input for slot"),
    ] {
        for (member, answer) in ask_other_members(&cluster, c, &task, &request).await {
            assert!(
                matches!(&answer, Response::Refused { reason, .. } if reason.contains(why)),
                "{member} answered {answer:?}"
            );
        }
    }
    Client::new(cluster.api(1))
        .with_chain(cluster.contracts.clone())
        .submit_owner_record_to(&task, &[-3.0], &cluster.owner)
        .await
        .unwrap();
    let published = ResultWatcher::new(cluster.contracts.clone(), from, 0)
        .with_poll_interval(Duration::from_millis(20))
        .wait_for_task(task_id(&task), Duration::from_secs(120))
        .await
        .unwrap()
        .expect("published once the owner's parameters are in");
    let program = Program::from_source(source).unwrap();
    let outputs = program.decode_outputs(&published.event.output).unwrap();
    assert_eq!(outputs[0].value().map(|v| v.scaled), Some(-18));

    // The next task: the owner stays silent, so it fails, saying why, and publishes nothing.
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    let id = task_id(&task).to_be_bytes::<32>();
    fill(&cluster, &task, &[4, 5, 6], 0).await;
    let mut state = Client::new(cluster.api(0)).status(&id).await.unwrap();
    for _ in 0..600 {
        if state.state == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = Client::new(cluster.api(0)).status(&id).await.unwrap();
    }
    assert_eq!(state.state, "failed");
    assert!(
        state
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("owner's parameters"),
        "{:?}",
        state.reason
    );
    assert!(
        cluster
            .contracts
            .result(task_id(&task))
            .await
            .unwrap()
            .is_none()
    );
    cluster.shutdown().await;
}

/// Node `k` of the cluster shut down and its identity (libp2p key, operator) taken over by a
/// bare mesh endpoint the test drives, once node 0 sees it live.
async fn impostor(cluster: &mut Cluster, k: usize) -> Network {
    cluster.nodes.remove(k).shutdown().await;
    let chain_address = cluster.operators[k].address().0.0;
    let network = endpoint(cluster, cluster.keypairs[k].clone(), chain_address).await;
    while !cluster.nodes[0]
        .network()
        .live_peers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.peer == network.peer_id())
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    network
}

/// What a lying member computes for a run: from the task, the slots and each slot's padded
/// record (salt, length, record), the output it signs, its proof hash, and a halo2 proof (input
/// commitment, bytes) it hands to the seats that ask.
type LyingRun = Box<dyn FnMut(&TaskInfo, &[u32], Vec<Vec<u8>>) -> LyingAnswer + Send>;
type LyingAnswer = (Vec<u8>, [u8; 32], Option<([u8; 32], Vec<u8>)>);

/// Node `k` of the cluster replaced by an operator who runs another module than the project's
/// (and so signs another output) while following the protocol in every other step.
async fn lying_member(
    cluster: &mut Cluster,
    k: usize,
    module: Vec<u8>,
) -> tokio::task::JoinHandle<()> {
    let chain_id = cluster.contracts.addresses().chain_id;
    let engine =
        conclave_provers::wasm::WasmEngine::new(conclave_node::manifest::wasm_limits()).unwrap();
    let module = engine.load(&module).unwrap();
    let run: LyingRun = Box::new(move |info, _slots, padded| {
        let records = padded
            .iter()
            .map(|p| conclave_node::manifest::unpad_record(p, info.record_bytes).unwrap())
            .collect();
        let ran = engine
            .run(
                &module,
                conclave_provers::wasm::TaskInput {
                    project_id: info.project_id,
                    task_id: info.task_id,
                    chain_id,
                    records,
                },
            )
            .unwrap();
        (ran.output, [0; 32], None)
    });
    dishonest_member(cluster, k, run).await
}

/// Node `k` of the cluster replaced by an operator who computes its runs with `run` while
/// following the protocol in every other step: it takes Starts, hands out slot envelopes,
/// accepts and reports records like an honest member, signs what `run` gives and hands out its
/// proof. It never submits.
async fn dishonest_member(
    cluster: &mut Cluster,
    k: usize,
    mut run: LyingRun,
) -> tokio::task::JoinHandle<()> {
    let network = impostor(cluster, k).await;
    let keypair = cluster.keypairs[k].clone();
    let operator = cluster.operators[k].clone();
    let coordinator = cluster.nodes[0].peer_id();
    let input_key = conclave_node::identity::input_key_of(&keypair).unwrap();
    let a = cluster.contracts.addresses();
    let (chain_id, router) = (a.chain_id, a.task_router);
    let mut requests = network.requests().unwrap();
    tokio::spawn(async move {
        let me = network.peer_id();
        // Per task: slot → the key its envelope went to, and slot → the record's stored words.
        let mut keys: std::collections::HashMap<(TaskId, u32), [u8; 32]> = Default::default();
        let mut records: std::collections::BTreeMap<(TaskId, u32), Vec<[u8; 32]>> =
            Default::default();
        let mut infos: std::collections::HashMap<TaskId, TaskInfo> = Default::default();
        let mut runs: std::collections::HashMap<TaskId, Vec<u32>> = Default::default();
        let mut proofs: std::collections::HashMap<TaskId, ([u8; 32], Vec<u8>)> = Default::default();
        while let Some(r) = requests.recv().await {
            let response = match messages::decode::<Request>(&r.body).unwrap() {
                Request::Prepare { .. } => Response::Prepared {
                    key: input_key.public(),
                },
                Request::Start(info) if r.from == coordinator => {
                    infos.insert(info.task_id, info);
                    Response::Started
                }
                Request::TripleShares(ticket) => {
                    keys.insert((ticket.task_id, ticket.slot), ticket.client_key);
                    let context =
                        conclave_node::member::shares_context(&ticket.task_id, ticket.slot, &me);
                    let sealed =
                        envelope::seal_from(&input_key, &ticket.client_key, &context, &[]).unwrap();
                    Response::Shares(sealed)
                }
                Request::Input {
                    task_id,
                    slot,
                    sealed,
                } => {
                    let device = keys[&(task_id, slot)];
                    let plain = envelope::open_from(
                        &input_key,
                        &device,
                        &input_context(&task_id, slot),
                        &sealed,
                    )
                    .unwrap();
                    let words = conclave_node::manifest::record_words(&plain);
                    records.insert((task_id, slot), words);
                    Response::Accepted
                }
                Request::Digest { task_id } => Response::Digest(
                    records
                        .iter()
                        .filter(|((t, _), _)| *t == task_id)
                        .map(|((_, slot), w)| (*slot, *blake3::hash(&w.concat()).as_bytes()))
                        .collect(),
                ),
                Request::RunSlots { task_id } => match runs.get(&task_id) {
                    Some(slots) => Response::RunSlots(slots.clone()),
                    None => Response::refused(RefusalKind::Unknown, "not yet"),
                },
                Request::Run { task_id, slots } => {
                    runs.insert(task_id, slots.clone());
                    let info = &infos[&task_id];
                    let padded = slots
                        .iter()
                        .map(|s| {
                            conclave_node::manifest::words_record(&records[&(task_id, *s)]).unwrap()
                        })
                        .collect();
                    let (output, proof_hash, proof) = run(info, &slots, padded);
                    if let Some(proof) = proof {
                        proofs.insert(task_id, proof);
                    }
                    let result = TaskResult {
                        project_id: U256::from(info.project_id),
                        task_id: U256::from_be_bytes(task_id),
                        output: Bytes::from(output.clone()),
                        proof_hash: B256::from(proof_hash),
                    };
                    let signature = result.sign(&operator, chain_id, router).unwrap();
                    Response::Ran {
                        output,
                        proof_hash,
                        signature: signature.signature.to_vec(),
                    }
                }
                Request::Proof { task_id } => match proofs.get(&task_id) {
                    Some((input_commitment, proof)) => Response::Proof {
                        input_commitment: *input_commitment,
                        proof: proof.clone(),
                    },
                    None => Response::refused(RefusalKind::Unknown, "not yet"),
                },
                _ => Response::refused(RefusalKind::Failed, "not today"),
            };
            let _ = r.reply.send(messages::encode(&response));
        }
    })
}

/// Waits for `task` to fail with its members disagreeing (no output had the threshold's seats)
/// and checks that nothing was published since block `from`: the coordinator's status.
async fn fails_with_members_disagreeing(
    cluster: &Cluster,
    task: &TaskJson,
    from: u64,
) -> conclave_node::api::StatusJson {
    let client = Client::new(cluster.api(0));
    let status = loop {
        let status = client
            .status(&task_id(task).to_be_bytes::<32>())
            .await
            .unwrap();
        if status.state == "failed" {
            break status;
        }
        assert_ne!(status.state, "published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = status.reason.clone().unwrap_or_default();
    assert!(reason.contains("members disagree"), "{reason}");
    let on_chain = ResultWatcher::new(cluster.contracts.clone(), from, 0)
        .wait_for_task(task_id(task), Duration::from_millis(500))
        .await
        .unwrap();
    assert!(on_chain.is_none(), "nothing is published");
    status
}

/// The seats of `liar` and of everyone else in `task`'s draw.
async fn seats_of(cluster: &Cluster, task: &TaskJson, liar: Address) -> (u32, u32) {
    cluster.seats_of(task_id(task), liar).await.unwrap()
}

/// A `wasm` project's task opened through node 0 whose draw `wanted` accepts (given the liar's
/// seats, the others' seats and the threshold), on a fresh project each try: the task and
/// whether the draw seated the liar.
async fn wasm_task_where(
    cluster: &Cluster,
    module: &[u8],
    liar: Address,
    threshold: u16,
    wanted: impl Fn(u32, u32, u32) -> bool,
) -> TaskJson {
    for _ in 0..40 {
        let project = cluster
            .wasm_project(module, (3, 120, 8), 4, threshold)
            .await
            .unwrap();
        let task = Client::new(cluster.api(0)).task(project).await.unwrap();
        let (liar_seats, honest_seats) = seats_of(cluster, &task, liar).await;
        if wanted(liar_seats, honest_seats, u32::from(threshold)) {
            return task;
        }
    }
    panic!("40 draws and none as wanted");
}

/// One seat of a `wasm` task runs another module than the project's (it subtracts where the
/// module adds) and signs its output. Where the honest seats reach the threshold, the honest
/// output is published and the liar is reported in the task's record; where they do not,
/// nothing is published and the task fails saying the members disagree. A stranger cannot
/// make a node send it the module over and over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_seat_with_another_module() {
    const SUM_WAT: &str = include_str!("../../examples/wasm/sum.wat");
    let honest_module = wat::parse_str(SUM_WAT).unwrap();
    let other_module = wat::parse_str(SUM_WAT.replace("i64.add", "i64.sub")).unwrap();
    let mut cluster = Cluster::start(NODES, |_| {}).await.unwrap();
    let liar = cluster.operators[3].address();
    let _liar = lying_member(&mut cluster, 3, other_module).await;
    let records = [5i64, -12, 40].map(i64::to_le_bytes);
    let send = async |cluster: &Cluster, task: &TaskJson| {
        for (i, record) in records.iter().enumerate() {
            Client::new(cluster.api(i % 3))
                .submit_data_to(task, record)
                .await
                .unwrap();
        }
    };

    // Outvoted: the liar holds a seat but fewer than the threshold (with as many it could publish
    // alone: the trust model's limit), the honest seats alone reach it.
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = wasm_task_where(&cluster, &honest_module, liar, 2, |l, h, t| {
        l > 0 && l < t && h >= t
    })
    .await;
    send(&cluster, &task).await;
    let published = ResultWatcher::new(cluster.contracts.clone(), from, 0)
        .with_poll_interval(Duration::from_millis(20))
        .wait_for_task(task_id(&task), Duration::from_secs(120))
        .await
        .unwrap()
        .expect("the honest output publishes");
    assert_eq!(published.event.output.as_ref(), 33i64.to_le_bytes());
    let status = Client::new(cluster.api(0))
        .status(&task_id(&task).to_be_bytes::<32>())
        .await
        .unwrap();
    assert_eq!(status.dissent, vec![format!("{liar:#x}")]);

    // Short: the honest seats alone do not reach the threshold, the liar's output has fewer.
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = wasm_task_where(&cluster, &honest_module, liar, 4, |l, h, t| {
        l > 0 && l < h && h < t && l + h >= t
    })
    .await;
    send(&cluster, &task).await;
    let status = fails_with_members_disagreeing(&cluster, &task, from).await;
    assert_eq!(status.dissent, vec![format!("{liar:#x}")]);

    // A stranger asking a node for the module again and again (a 40-byte request buys the
    // module) is served a couple of times, then told to wait.
    let stranger = stranger(&cluster).await;
    let hash = alloy::primitives::keccak256(&honest_module).0;
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(
            ask(
                &stranger,
                cluster.nodes[0].peer_id(),
                &Request::Module { hash },
            )
            .await,
        );
    }
    assert_eq!(answers[0], Response::Module(honest_module.clone()));
    assert!(
        answers.iter().any(|a| matches!(
            a,
            Response::Refused {
                kind: RefusalKind::Busy,
                ..
            }
        )),
        "{:?}",
        answers
            .iter()
            .map(std::mem::discriminant)
            .collect::<Vec<_>>()
    );
    stranger.shutdown().await;
    cluster.shutdown().await;
}

/// A coordinator holding no seat of a `wasm` task (its opener's node, here an impostor the test
/// drives) fills the ten slots itself and asks every member to run over all ten but one member
/// over the first nine: the difference of the outputs would be the tenth device's record. That
/// member refuses (a majority of seats confirms the other list), the others run over all ten.
/// Before that, Starts that make the task another prover's or change its record size are
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_coordinator_splits_the_run() {
    const SUM_WAT: &str = include_str!("../../examples/wasm/sum.wat");
    let module = wat::parse_str(SUM_WAT).unwrap();
    let mut cluster = Cluster::start(NODES, |_| {}).await.unwrap();
    let project = cluster
        .wasm_project(&module, (10, 120, 8), 3, 1)
        .await
        .unwrap();
    let k = 3;
    let attacker = cluster.operators[k].clone();
    let keypair = cluster.keypairs[k].clone();
    let network = impostor(&mut cluster, k).await;
    // A draw without the attacker in which the member with the fewest seats has less than a
    // majority and the others at least one.
    let (task, holders, lone) = 'draw: {
        for _ in 0..30 {
            let (task, _) = open_drawn_task_as(&cluster, &attacker, U256::from(project)).await;
            let holders = conclave_node::committee::seat_holders(&cluster.contracts, task)
                .await
                .unwrap()
                .unwrap();
            let total: u32 = holders.iter().map(|h| h.seats).sum();
            let needed = total / 2 + 1;
            let lone = holders.iter().min_by_key(|h| h.seats).map(|h| h.peer);
            if let Some(lone) = lone
                && holders.iter().all(|h| h.operator != attacker.address())
                && holders.len() >= 2
                && total - holders.iter().find(|h| h.peer == lone).unwrap().seats >= needed
            {
                break 'draw (task, holders, lone);
            }
        }
        panic!("30 draws and none as wanted");
    };
    let task_id: TaskId = task.to_be_bytes();
    let snapshot = cluster.contracts.task(task).await.unwrap();
    let info = TaskInfo {
        project_id: project,
        task_id,
        coordinator: network.peer_id().to_bytes(),
        committee: holders
            .iter()
            .map(|h| Member {
                peer: h.peer.to_bytes(),
                operator: h.operator.0.0,
                key: h.input_key,
            })
            .collect(),
        program_hash: snapshot.programHash.0,
        max_inputs: 10,
        input_bits: 0,
        owner_bits: 0,
        closes_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 120_000,
        prover_kind: ProverKind::Wasm as u8,
        record_bytes: 8,
    };
    // A Start that makes the task another prover's, or its records another size, is refused:
    // members take the task's shape from the manifest the chain pins.
    let as_spdz = TaskInfo {
        prover_kind: ProverKind::Spdz as u8,
        ..info.clone()
    };
    let wider = TaskInfo {
        record_bytes: 16,
        ..info.clone()
    };
    for forged in [as_spdz, wider] {
        for h in &holders {
            let answer = ask(&network, h.peer, &Request::Start(forged.clone())).await;
            assert!(
                matches!(&answer, Response::Refused { reason, .. } if reason.contains("does not match")),
                "{answer:?}"
            );
        }
    }
    for h in &holders {
        let answer = ask(&network, h.peer, &Request::Start(info.clone())).await;
        assert_eq!(answer, Response::Started, "{answer:?}");
    }
    // The attacker fills every slot as ten devices would, records 1, 2, 4, …, 512.
    for slot in 0..10u32 {
        let device = SecretKey::generate();
        let message = SlotTicket::message(&task_id, slot, &device.public());
        let ticket = SlotTicket {
            task_id,
            slot,
            client_key: device.public(),
            signature: keypair.sign(&message).unwrap(),
        };
        let record = (1i64 << slot).to_le_bytes();
        let padded = conclave_node::manifest::pad_record(&record, 8, [slot as u8; 32]).unwrap();
        for h in &holders {
            let shares = ask(&network, h.peer, &Request::TripleShares(ticket.clone())).await;
            assert!(matches!(shares, Response::Shares(_)), "{shares:?}");
            let sealed = envelope::seal_from(
                &device,
                &h.input_key,
                &input_context(&task_id, slot),
                &padded,
            )
            .unwrap();
            let input = Request::Input {
                task_id,
                slot,
                sealed,
            };
            assert_eq!(ask(&network, h.peer, &input).await, Response::Accepted);
        }
    }
    let runs = holders.iter().map(|h| {
        let slots: Vec<u32> = if h.peer == lone {
            (0..9).collect()
        } else {
            (0..10).collect()
        };
        let network = network.clone();
        async move {
            let run = Request::Run { task_id, slots };
            (h.peer, ask(&network, h.peer, &run).await)
        }
    });
    for (peer, answer) in futures::future::join_all(runs).await {
        if peer == lone {
            match answer {
                Response::Refused { reason, .. } => {
                    assert!(reason.contains("did not confirm"), "{reason}")
                }
                other => panic!("the member asked over nine slots answered {other:?}"),
            }
        } else {
            match answer {
                Response::Ran { output, .. } => assert_eq!(output, 1023i64.to_le_bytes()),
                other => panic!("a member asked over all ten answered {other:?}"),
            }
        }
    }
    network.shutdown().await;
    cluster.shutdown().await;
}

/// The proving seat of a `halo2` task lies: it hands the other seats the commitment to the
/// devices' real records but a proof (valid under the program's key) over other records, with
/// another output, and signs that output. The honest seats check the proof against their own
/// records before signing and refuse it, so the liar's signature stands alone: nothing is
/// published and the task fails with the members disagreeing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halo2_proving_seat_proves_other_records() {
    const SOURCE: &str = "devices 3;\nwindow 120;\ninput reading: int16 in -1000..=1000 from devices;\noutput sum = sum(reading);\n";
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools");
    let mut cluster = Cluster::start(NODES, |_| {}).await.unwrap();
    let verifier = cluster.halo2_verifier(SOURCE, &tools).await.unwrap();
    let k = 3;
    let liar = cluster.operators[k].address();
    let srs_path = cluster.insecure_srs();
    let a = cluster.contracts.addresses();
    let (chain_id, router) = (a.chain_id, a.task_router);
    let mut prover: Option<conclave_provers::halo2::ProgramProver> = None;
    let program = Program::from_source(SOURCE).unwrap();
    let run: LyingRun = Box::new(move |info, slots, padded| {
        use conclave_provers::halo2::{ProgramProver, Srs, fr_from_be, fr_to_be};
        let prover = prover.get_or_insert_with(|| {
            ProgramProver::new(&Srs::read(&srs_path).unwrap(), SOURCE, 3).unwrap()
        });
        // The salt and binding every seat derives, as the node does.
        let mut salts = alloy::primitives::Keccak256::new();
        salts.update(b"conclave halo2 salt v1");
        for p in &padded {
            salts.update(&p[..32]);
        }
        let field = |v: U256| fr_from_be(v.to_be_bytes()).unwrap();
        let salt = field(U256::from_be_bytes(salts.finalize().0) >> 8);
        let task = U256::from_be_bytes(info.task_id);
        let binding = field(conclave_chain::attest::task_binding(chain_id, router, task));
        // Per slot of the program, the record run over (a slot not run over is absent).
        let mut records: Vec<Option<Vec<i128>>> = vec![None; 3];
        for (slot, p) in slots.iter().zip(&padded) {
            let record = conclave_node::manifest::unpad_record(p, info.record_bytes).unwrap();
            records[*slot as usize] = program.unpack_record(&record);
        }
        let honest = prover.statement(records.clone(), salt, binding).unwrap();
        let mut other = records;
        other[slots[0] as usize].as_mut().unwrap()[0] += 100;
        let lie = prover.statement(other, salt, binding).unwrap();
        let proof = conclave_chain::attest::HaloProof {
            input_commitment: U256::from_be_bytes(fr_to_be(honest.input_commitment())),
            proof: Bytes::from(prover.prove(&lie).unwrap()),
        };
        let output = conclave_node::program::encode_outputs(
            &lie.outputs
                .into_iter()
                .map(conclave_node::program::Opened::Public)
                .collect::<Vec<_>>(),
        );
        let handed = (proof.input_commitment.to_be_bytes(), proof.proof.to_vec());
        (output, proof.proof_hash().0, Some(handed))
    });
    let _liar = dishonest_member(&mut cluster, k, run).await;

    // A task whose proving seat (drawn from its seed) is the liar's, where the liar alone cannot
    // publish and the honest seats could.
    let mut found = None;
    // (About one draw in ten qualifies: 150 all failing has odds near 1e-6.)
    for _ in 0..150 {
        let project = cluster
            .halo2_project_with(SOURCE, 4, 2, verifier)
            .await
            .unwrap();
        let task = Client::new(cluster.api(0)).task(project).await.unwrap();
        let (liar_seats, honest_seats) = seats_of(&cluster, &task, liar).await;
        let seed = cluster
            .contracts
            .seed(task_id(&task))
            .await
            .unwrap()
            .unwrap();
        let members: Vec<Member> = task
            .committee
            .iter()
            .map(|m| Member {
                peer: Vec::new(),
                operator: m.operator.parse::<Address>().unwrap().0.0,
                key: [0; 32],
            })
            .collect();
        let prover =
            conclave_node::halo2::proving_seat(&members, seed, task_id(&task).to_be_bytes())
                .unwrap();
        if prover.operator == liar.0.0 && liar_seats < 2 && honest_seats >= 2 {
            found = Some(task);
            break;
        }
    }
    let task = found.expect("150 draws and none with the liar proving");
    let from = cluster.contracts.chain().block_number().await.unwrap();
    for (i, reading) in [5.0, -12.0, 40.0].iter().enumerate() {
        Client::new(cluster.api(i % 3))
            .submit_record_to(&task, &[*reading])
            .await
            .unwrap();
    }
    fails_with_members_disagreeing(&cluster, &task, from).await;

    // A stranger asking the task's members for its proof (or how it failed) hears nothing of it.
    let stranger = stranger(&cluster).await;
    let members: Vec<&conclave_node::api::MemberJson> = task.committee.iter().collect();
    let mut asked = 0;
    for node in &cluster.nodes {
        if !members
            .iter()
            .any(|m| m.peer_id == node.peer_id().to_string())
        {
            continue;
        }
        let answer = ask(
            &stranger,
            node.peer_id(),
            &Request::Proof {
                task_id: task_id(&task).to_be_bytes(),
            },
        )
        .await;
        assert!(
            matches!(&answer, Response::Refused { kind: RefusalKind::Unknown, reason }
                if reason.contains("only the task's members and coordinator")),
            "{answer:?}"
        );
        asked += 1;
    }
    assert!(asked > 0, "no honest member to ask");
    stranger.shutdown().await;
    cluster.shutdown().await;
}
