//! A seat holder that does not answer before the protocol starts makes the draw unusable (a
//! committee is all of a task's seat holders): the coordinator opens another task, and the work
//! completes with a draw that did not seat the silent node.

use std::time::Duration;

use alloy::primitives::U256;
use conclave_node::client::Client;
use conclave_node::program::Average;
use conclave_sim::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_seat_holder_makes_the_coordinator_draw_again() {
    let mut cluster = Cluster::start(5, |_| {}).await.unwrap();
    // 3 expected seats over 5 × 10 units: a draw leaves the silent node out about half the time
    // and seats the threshold's two among the others about two times in three; 16 draws all
    // failing has odds near 2e-3.
    let project = cluster.private_average_project(3, 2, 4, 120).await.unwrap();
    let silent = cluster.nodes.remove(4);
    let silent_peer = silent.peer_id().to_string();
    silent.shutdown().await;
    // Still in everyone's live view for a few seconds: the coordinator asks it, hears nothing
    // back, and draws again.
    let from = cluster.contracts.chain().block_number().await.unwrap();
    // (Sixteen unusable draws in a row, odds near 2e-3, fail the request; a device asks again.)
    let client = Client::new(cluster.api(0));
    let task = match client.task(project).await {
        Ok(task) => task,
        Err(_) => client.task(project).await.unwrap(),
    };
    assert!(task.committee.iter().all(|m| m.peer_id != silent_peer));
    let seated = cluster
        .contracts
        .committee(U256::from_str_radix(&task.task_id, 16).unwrap())
        .await
        .unwrap()
        .expect("the seed is known once the committee formed");
    assert_eq!(
        seated.len(),
        task.committee.len(),
        "the committee is every seat holder"
    );
    for (i, reading) in [5i64, 6, 7, 8].into_iter().enumerate() {
        Client::new(cluster.api(i))
            .submit_to(&task, reading)
            .await
            .unwrap();
    }
    let published = cluster
        .published(&task.task_id, from, Duration::from_secs(120))
        .await
        .unwrap();
    let avg = Average::decode(&published.event.output).unwrap();
    assert_eq!((avg.sum, avg.count), (26, 4));
    cluster.shutdown().await;
}
