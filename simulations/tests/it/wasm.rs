//! `wasm` projects on the mesh (4 real nodes, embedded chain): a module registered by hash runs
//! at every seat over the records devices sealed to each member, and the output t seats agree on
//! is published. Only node 0 was handed the manifest and the module; the committee fetched both
//! by hash. Nobody can hand a node another module for the project, and a module importing what
//! Conclave does not provide is refused with the import's name.

use std::time::Duration;

use alloy::primitives::U256;
use conclave_chain::contracts::Published;
use conclave_node::api::TaskJson;
use conclave_node::client::{Client, ClientError};
use conclave_sim::Cluster;

const SUM_WAT: &str = include_str!("../../../examples/wasm/sum.wat");
const APPLET: &[u8] = include_bytes!("../../../examples/wasm/applet.wasm");

/// Devices send `records` into a task of `project` through nodes 1, 2, …, checking the
/// committee against chain: the task and its published result.
async fn run_task(cluster: &Cluster, project: u64, records: &[&[u8]]) -> (TaskJson, Published) {
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    assert!(task.record_bytes > 0, "a wasm task seals records whole");
    for (i, record) in records.iter().enumerate() {
        Client::new(cluster.api(1 + i % 3))
            .with_chain(cluster.contracts.clone())
            .submit_data_to(&task, record)
            .await
            .unwrap();
    }
    let published = cluster
        .published(&task.task_id, from, Duration::from_secs(120))
        .await
        .unwrap();
    (task, published)
}

/// `module` with a custom section (ignored when it runs) making it `size` bytes long.
fn padded(mut module: Vec<u8>, size: usize) -> Vec<u8> {
    let name = b"conclave-test-padding";
    // id 0, the section's length (LEB128 in 5 bytes), the name's length and the name, zeros.
    let length = size - module.len() - 6;
    module.push(0);
    let mut n = length as u32;
    for i in 0..5 {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        module.push(if i < 4 { byte | 0x80 } else { byte });
    }
    module.push(name.len() as u8);
    module.extend(name);
    module.resize(size, 0);
    module
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_task_publishes_what_its_seats_agree_on() {
    let cluster = Cluster::start(4, |_| {}).await.unwrap();
    // Padded near the largest module a node takes, so the committee fetches a big one over the
    // mesh.
    let module = padded(wat::parse_str(SUM_WAT).unwrap(), 1_000_000);
    let project = cluster
        .wasm_project(&module, (3, 120, 8), 3, 2)
        .await
        .unwrap();
    // Another module for the project is refused at every node: only the manifest's hash runs.
    let other = wat::parse_str(SUM_WAT.replace("i64.add", "i64.sub")).unwrap();
    for node in 0..4 {
        let refused = reqwest::Client::new()
            .post(format!(
                "{}/v1/projects/{project}/module",
                cluster.api(node)
            ))
            .body(other.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "node {node} took another module");
    }
    let records = [5i64, -12, 40].map(i64::to_le_bytes);
    let (task, published) =
        run_task(&cluster, project, &[&records[0], &records[1], &records[2]]).await;
    assert_eq!(published.event.output.as_ref(), 33i64.to_le_bytes());
    // A record longer than the manifest's is refused before anything is sent.
    let late = Client::new(cluster.api(0))
        .submit_data_to(&task, &[0; 9])
        .await;
    assert!(matches!(late, Err(ClientError::Program(_))), "{late:?}");
    // Every seat signed the same output: nobody dissented.
    let task_id = U256::from_str_radix(&task.task_id, 16)
        .unwrap()
        .to_be_bytes::<32>();
    let status = cluster
        .status_once_published(0, &task_id, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(status.dissent.is_empty(), "{:?}", status.dissent);
    // The seats count their runs by prover (`/health`, and `/metrics` as prover_runs).
    let mut wasm_runs = 0;
    for node in 0..4 {
        let health: serde_json::Value = reqwest::get(format!("{}/health", cluster.api(node)))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        wasm_runs += health["provers"]["wasm"]["ok"].as_u64().unwrap_or(0);
        assert!(health["provers"].get("spdz").is_none());
    }
    assert_eq!(wasm_runs, task.committee.len() as u64);

    // A module importing what Conclave does not provide cannot be handed to a node.
    let wasi = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                   (memory (export "memory") 1)
                   (func (export "conclave_run") (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let e = cluster
        .wasm_project(&wasi, (3, 120, 8), 3, 2)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("wasi_snapshot_preview1.fd_write"), "{e}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assemblyscript_applet_runs_and_publishes() {
    let cluster = Cluster::start(4, |_| {}).await.unwrap();
    let project = cluster
        .wasm_project(APPLET, (3, 120, 32), 3, 2)
        .await
        .unwrap();
    let (_, published) = run_task(&cluster, project, &[b"5", b"7", b"-2"]).await;
    // The applet's last `ws_send_tx`: the running sum 10, as hex calldata.
    let output = String::from_utf8(published.event.output.to_vec()).unwrap();
    assert!(output.contains(r#""data": "a""#), "{output}");
    cluster.shutdown().await;
}
