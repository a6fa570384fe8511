//! Tally programs on the mesh (5 real nodes, embedded chain): the auction example with bids in
//! and out of its declared range publishes the winner and the second price the plaintext
//! evaluator computes over the same records; the source reached the committee over the mesh (only
//! node 0 was given it, and no node takes a source other than the one the chain pins). The score
//! example takes the project owner's private weights (only the owner's key fills that slot) and
//! publishes private scores that only the receiver's key opens.

use std::time::Duration;

use alloy::primitives::U256;
use conclave_chain::watch::ResultWatcher;
use conclave_mpc::lang::{InputValues, OutputValue};
use conclave_node::client::{Client, ClientError};
use conclave_node::envelope::SecretKey;
use conclave_node::program::Program;
use conclave_sim::Cluster;

const AUCTION_EXAMPLE: &str = include_str!("../../../examples/programs/auction.tally");
const SCORE: &str = include_str!("../../../examples/programs/score.tally");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auction_publishes_winner_and_price_over_valid_bids() {
    // The example with a window that a loaded CI machine cannot outrun.
    let auction = AUCTION_EXAMPLE.replace("window 30;", "window 180;");
    let auction = auction.as_str();
    let cluster = Cluster::start(5, |_| {}).await.unwrap();
    let project = cluster.program_project(auction, 3, 2).await.unwrap();
    let program = Program::from_source(auction).unwrap();
    // Nobody can hand a node another source for the project: only the one the chain pins.
    let forged = auction.replace(
        "second = select(higher, best, max(second, bid[i]));",
        "second = 0;",
    );
    for node in 0..5 {
        let refused = reqwest::Client::new()
            .post(format!(
                "{}/v1/projects/{project}/program",
                cluster.api(node)
            ))
            .json(&serde_json::json!({ "hash": "", "source": forged }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "node {node} took a forged source");
    }
    // 10 slots; two bids are outside [1, 1 000 000] and must not win or set the price.
    let bids: Vec<i64> = vec![120, 5_000_000, 640, 0, 639, 410, 77, 2_999_999, 638, 300];
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(1)).task(project).await.unwrap();
    let submits = bids.iter().enumerate().map(|(i, &bid)| {
        let client = Client::new(cluster.api(i % 5)).with_chain(cluster.contracts.clone());
        let task = task.clone();
        async move { (bid, client.submit_to(&task, bid).await.unwrap().slot) }
    });
    let mut by_slot = vec![0i64; bids.len()];
    for (bid, slot) in futures::future::join_all(submits).await {
        by_slot[slot as usize] = bid;
    }
    let mut watcher = ResultWatcher::new(cluster.contracts.clone(), from, 0)
        .with_poll_interval(Duration::from_millis(20));
    let wanted = U256::from_str_radix(&task.task_id, 16).unwrap();
    let published = watcher
        .wait_for_task(wanted, Duration::from_secs(240))
        .await
        .unwrap()
        .expect("published in time");
    let outputs = program.decode_outputs(&published.event.output).unwrap();
    let reference = conclave_mpc::lang::Program::compile(auction, 2, Some(bids.len()))
        .unwrap()
        .evaluate(&InputValues {
            devices: by_slot.iter().map(|b| vec![i128::from(*b)]).collect(),
            owner: Vec::new(),
        })
        .unwrap();
    let outputs: Vec<OutputValue> = outputs.iter().filter_map(|o| o.value().cloned()).collect();
    assert_eq!(outputs, reference);
    let winner = by_slot.iter().position(|b| *b == 640).unwrap() as i128;
    let shown: Vec<(String, i128)> = outputs.iter().map(|o| (o.name.clone(), o.scaled)).collect();
    assert_eq!(
        shown,
        [
            ("winner".to_string(), winner),
            ("price".to_string(), 639),
            ("excluded".to_string(), 3)
        ]
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_takes_the_owners_weights_and_only_the_receiver_reads_the_scores() {
    // The example sealed to a fresh receiver key, with a window a loaded machine cannot outrun.
    let receiver = SecretKey::generate();
    let demo_line = SCORE
        .lines()
        .find(|l| l.starts_with("receiver "))
        .expect("the example declares a receiver");
    let score = SCORE
        .replace(
            demo_line,
            &format!("receiver \"{}\";", hex::encode(receiver.public())),
        )
        .replace("window 30;", "window 180;");
    let cluster = Cluster::start(5, |_| {}).await.unwrap();
    let project = cluster.program_project(&score, 3, 2).await.unwrap();
    let program = Program::from_source(&score).unwrap();
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(1)).task(project).await.unwrap();
    let client = |node: usize| Client::new(cluster.api(node)).with_chain(cluster.contracts.clone());

    // Someone who is not the project owner cannot fill (or squat) the owner slot.
    let weights = [0.5, -1.25, 2.0, 0.75];
    let stranger = alloy::signers::local::PrivateKeySigner::random();
    let refused = client(3)
        .submit_owner_record_to(&task, &weights, &stranger)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("not signed by the project owner"),
        "{refused}"
    );
    client(2)
        .submit_owner_record_to(&task, &weights, &cluster.owner)
        .await
        .unwrap();
    // A retry (say, after an entry node failed midway) finds the slot bound to the same key.
    client(4)
        .submit_owner_record_to(&task, &weights, &cluster.owner)
        .await
        .unwrap();

    // Four devices; one feature of the last is outside [-100, 100], so its score is 0 and it is
    // not counted.
    let features = [
        [1.0, 2.0, -0.5],
        [-3.0, 0.25, 1.5],
        [10.0, -10.0, 4.0],
        [1.0, 150.0, 0.0],
    ];
    let submits = features.iter().enumerate().map(|(i, f)| {
        let client = client(i % 5);
        let task = task.clone();
        async move { (*f, client.submit_record_to(&task, f).await.unwrap().slot) }
    });
    let mut by_slot = vec![[0.0; 3]; features.len()];
    for (f, slot) in futures::future::join_all(submits).await {
        by_slot[slot as usize] = f;
    }
    let mut watcher = ResultWatcher::new(cluster.contracts.clone(), from, 0)
        .with_poll_interval(Duration::from_millis(20));
    let wanted = U256::from_str_radix(&task.task_id, 16).unwrap();
    let published = watcher
        .wait_for_task(wanted, Duration::from_secs(300))
        .await
        .unwrap()
        .expect("published in time");

    let scale = |x: f64| (x * 4096.0).round() as i128;
    let reference = conclave_mpc::lang::Program::compile(&score, 2, Some(4))
        .unwrap()
        .evaluate(&InputValues {
            devices: by_slot
                .iter()
                .map(|f| f.iter().map(|x| scale(*x)).collect())
                .collect(),
            owner: weights.iter().map(|x| scale(*x)).collect(),
        })
        .unwrap();
    let task_id: [u8; 32] = wanted.to_be_bytes();
    let opened = client(4)
        .receiver_outputs(task_id, &receiver)
        .await
        .unwrap();
    assert_eq!(opened, reference);
    assert_eq!(
        opened.last().map(|o| o.scaled),
        Some(3),
        "three records counted"
    );
    assert!(opened[..4].iter().all(|o| o.private));

    // The chain holds the scores masked: what anyone reads there is not the values.
    let public = program.decode_outputs(&published.event.output).unwrap();
    assert!(public[..4].iter().all(|o| o.value().is_none()));
    for (word, value) in published.event.output.chunks(32).zip(&reference[..4]) {
        assert_ne!(
            i128::from_be_bytes(word[16..].try_into().unwrap()),
            value.scaled
        );
    }
    // Any other key opens nothing.
    let other = client(0)
        .receiver_outputs(task_id, &SecretKey::generate())
        .await
        .unwrap_err();
    assert!(matches!(other, ClientError::Receiver(_)), "{other}");
    cluster.shutdown().await;
}
