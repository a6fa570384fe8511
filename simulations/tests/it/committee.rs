//! A seat holder that does not answer before the protocol starts is left out (its seats are
//! lost), and the task completes with the others when their seats reach the threshold.

use std::time::Duration;

use alloy::primitives::U256;
use conclave_chain::watch::ResultWatcher;
use conclave_node::client::Client;
use conclave_node::program::Average;
use conclave_sim::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_seat_holder_is_left_out_and_the_others_publish() {
    let mut cluster = Cluster::start(5, |_| {}).await.unwrap();
    // 32 expected seats over 5 × 10 units: every node holds seats (each misses with odds 0.36^10),
    // about 6 each; the four that answer hold about 26, far above the threshold of 12.
    let project = cluster
        .private_average_project(32, 12, 4, 120)
        .await
        .unwrap();
    let silent = cluster.nodes.remove(4);
    let silent_peer = silent.peer_id().to_string();
    silent.shutdown().await;
    // Still in everyone's live view for a few seconds: the coordinator asks it, hears nothing
    // back, and goes on without it.
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    assert_eq!(task.committee.len(), 4);
    assert!(task.committee.iter().all(|m| m.peer_id != silent_peer));
    let seated = cluster
        .contracts
        .committee(U256::from_str_radix(&task.task_id, 16).unwrap())
        .await
        .unwrap()
        .expect("the seed is known once the committee formed");
    assert_eq!(seated.len(), 5, "all five hold seats on chain");
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
