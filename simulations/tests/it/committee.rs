//! A candidate that does not answer before the protocol starts is replaced by the next in rank,
//! and the task completes with the others.

use std::time::Duration;

use alloy::primitives::U256;
use conclave_chain::watch::ResultWatcher;
use conclave_node::client::Client;
use conclave_node::program::Average;
use conclave_sim::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_candidate_is_replaced_by_the_next_in_rank() {
    let mut cluster = Cluster::start(5, |_| {}).await.unwrap();
    // Four seats for five candidates: every node is drawn, so the silent one ranks somewhere.
    let project = cluster.private_average_project(4, 3, 4, 120).await.unwrap();
    let silent = cluster.nodes.remove(4);
    let silent_peer = silent.peer_id().to_string();
    silent.shutdown().await;
    // Still in everyone's live view for a few seconds: the coordinator asks it, hears nothing
    // back, and moves on down the ranking.
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    assert_eq!(task.committee.len(), 4);
    assert!(task.committee.iter().all(|m| m.peer_id != silent_peer));
    let ranked = cluster
        .contracts
        .committee_on_chain(
            U256::from(project),
            U256::from_str_radix(&task.task_id, 16).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ranked.len(), 5, "all five are candidates on chain");
    for (i, reading) in [5i64, 6, 7, 8].into_iter().enumerate() {
        Client::new(cluster.api(i))
            .submit_to(&task, reading)
            .await
            .unwrap();
    }
    let published = ResultWatcher::new(cluster.contracts.clone(), from, 0)
        .with_poll_interval(Duration::from_millis(20))
        .wait_for_task(
            U256::from_str_radix(&task.task_id, 16).unwrap(),
            Duration::from_secs(120),
        )
        .await
        .unwrap()
        .expect("published");
    let avg = Average::decode(&published.event.output).unwrap();
    assert_eq!((avg.sum, avg.count), (26, 4));
    cluster.shutdown().await;
}
