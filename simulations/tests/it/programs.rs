//! Tally programs on the mesh (5 real nodes, embedded chain): the auction example with bids in
//! and out of its declared range publishes the winner and the second price the plaintext
//! evaluator computes over the same records; the source reached the committee over the mesh (only
//! node 0 was given it, and no node takes a source other than the one the chain pins); a program
//! the mesh cannot run yet is refused at registration.

use std::time::Duration;

use alloy::primitives::U256;
use conclave_chain::watch::ResultWatcher;
use conclave_mpc::lang::InputValues;
use conclave_node::client::Client;
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
    assert!(
        cluster.program_project(SCORE, 3, 2).await.is_err(),
        "owner inputs and private outputs are not run on the mesh yet"
    );
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
