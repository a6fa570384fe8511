//! A private average end to end in one process (5 real nodes, embedded chain): the published
//! result equals the plaintext computation, and no node's database or logs contain any device's
//! plaintext reading.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::U256;
use conclave_chain::watch::ResultWatcher;
use conclave_mpc::Fp;
use conclave_node::client::Client;
use conclave_node::program::Average;
use conclave_sim::Cluster;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_correct_and_no_node_keeps_a_plaintext_input() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .init();

    let cluster = Cluster::start(5, |_| {}).await.unwrap();
    let readings: Vec<i64> = (0..12).map(|i| 1_987_654_321 + i * 1_111).collect();
    let project = cluster
        .private_average_project(3, 2, readings.len() as u32, 120)
        .await
        .unwrap();
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    for (i, &r) in readings.iter().enumerate() {
        Client::new(cluster.api(i % 5))
            .submit_to(&task, r)
            .await
            .unwrap();
    }
    let mut watcher = ResultWatcher::new(cluster.contracts.clone(), from, 0)
        .with_poll_interval(Duration::from_millis(20));
    let wanted = U256::from_str_radix(&task.task_id, 16).unwrap();
    let event = watcher
        .wait_for_task(wanted, Duration::from_secs(120))
        .await
        .unwrap()
        .expect("published in time");
    let avg = Average::decode(&event.event.output).unwrap();
    assert_eq!(avg.sum, readings.iter().sum::<i64>());
    assert_eq!(avg.count, readings.len() as u64);
    // The status endpoint of the coordinator agrees.
    let status = cluster
        .status_once_published(
            0,
            &event.event.taskId.to_be_bytes(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let outputs = status
        .outputs
        .expect("outputs read with the task's program");
    assert_eq!(outputs[0].name, "sum");
    assert_eq!(outputs[0].value, avg.sum.to_string());

    let dbs: Vec<Vec<u8>> = (0..5)
        .map(|i| std::fs::read(cluster.data_dir().join(format!("node{i}.redb"))).unwrap())
        .collect();
    cluster.shutdown().await;
    let logs = logs.0.lock().unwrap().clone();
    assert!(
        contains(&logs, b"result published"),
        "debug logs were captured"
    );
    for (i, db) in dbs.iter().enumerate() {
        assert!(db.len() > 1000);
        for &r in &readings {
            for needle in [
                r.to_le_bytes().to_vec(),
                r.to_be_bytes().to_vec(),
                r.to_string().into_bytes(),
                Fp::from_i64(r).to_bytes().to_vec(),
            ] {
                assert!(!contains(db, &needle), "node {i} stores reading {r}");
                assert!(!contains(&logs, &needle), "logs contain reading {r}");
            }
        }
    }
}
