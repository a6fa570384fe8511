//! `byop` and `tee` projects on the mesh (4 real nodes, embedded chain): each seat hands the
//! records to the W3bstream VM service its operator configured, over real gRPC on 127.0.0.1,
//! and the result t seats received alike is published. A seat whose prover lies is outvoted
//! and reported; a `tee` project publishes nothing its provers cannot attest.

use std::io::Write;
use std::time::Duration;

use alloy::primitives::U256;
use conclave_chain::watch::ResultWatcher;
use conclave_node::api::TaskJson;
use conclave_node::byop::{ByopConfig, ByopEndpoint};
use conclave_node::client::Client;
use conclave_node::program::ByopSpec;
use conclave_provers::byop::Protocol;
use conclave_provers::byop::proto::vm::vm_server::{Vm, VmServer};
use conclave_provers::byop::proto::vm::{
    ExecuteTaskRequest, ExecuteTaskResponse, NewProjectRequest, NewProjectResponse,
};
use conclave_sim::{Cluster, ProverProcess, sim_limits};

const SUM_WAT: &str = include_str!("../../../examples/wasm/sum.wat");
/// W3bstream's VM type of wasm provers.
const WASM_VM: u64 = 4;

/// The sum module as W3bstream ships code: zlib-compressed.
fn sum_code() -> Vec<u8> {
    let module = wat::parse_str(SUM_WAT).unwrap();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&module).unwrap();
    z.finish().unwrap()
}

fn endpoint(url: &str) -> ByopConfig {
    ByopConfig {
        endpoints: vec![ByopEndpoint {
            vm_type: WASM_VM,
            url: url.to_string(),
            protocol: Protocol::Auto,
            call_timeout_secs: 20,
            retries: 1,
        }],
        allow_project_endpoints: false,
    }
}

fn spec(tee: Option<conclave_provers::tee::Policy>) -> ByopSpec {
    ByopSpec {
        vm_type: WASM_VM,
        version: "0.1".into(),
        code_param: String::new(),
        endpoint: String::new(),
        tee,
    }
}

fn task_id(task: &TaskJson) -> U256 {
    U256::from_str_radix(&task.task_id, 16).unwrap()
}

async fn send(cluster: &Cluster, task: &TaskJson, records: &[[u8; 8]]) {
    for (i, record) in records.iter().enumerate() {
        Client::new(cluster.api(i % 3))
            .with_chain(cluster.contracts.clone())
            .submit_data_to(task, record)
            .await
            .unwrap();
    }
}

/// The coordinator's status of `task` once it failed (it must not publish meanwhile).
async fn failed(cluster: &Cluster, task: &TaskJson) -> conclave_node::api::StatusJson {
    let client = Client::new(cluster.api(0));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let status = client
            .status(&task_id(task).to_be_bytes::<32>())
            .await
            .unwrap();
        if status.state == "failed" {
            return status;
        }
        assert_ne!(status.state, "published");
        assert!(
            std::time::Instant::now() < deadline,
            "still {}",
            status.state
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nothing was published for `task` since block `from`.
async fn nothing_published(cluster: &Cluster, task: &TaskJson, from: u64) {
    let on_chain = ResultWatcher::new(cluster.contracts.clone(), from, 0)
        .wait_for_task(task_id(task), Duration::from_millis(500))
        .await
        .unwrap();
    assert!(on_chain.is_none(), "nothing is published");
}

/// A `conclave-prover` process serves every node: the task publishes the module's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byop_task_publishes_what_the_seats_provers_computed() {
    let prover = ProverProcess::spawn().unwrap();
    let cluster = Cluster::start_with(4, sim_limits(), |_| endpoint(&prover.url), |_| {})
        .await
        .unwrap();
    let project = cluster
        .byop_project(&sum_code(), spec(None), (3, 120, 8), 3, 2)
        .await
        .unwrap();
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    send(&cluster, &task, &[5i64, -12, 40].map(i64::to_le_bytes)).await;
    let published = cluster
        .published(&task.task_id, from, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(published.event.output.as_ref(), 33i64.to_le_bytes());
    let status = cluster
        .status_once_published(0, &task_id(&task).to_be_bytes(), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(status.dissent.is_empty(), "{:?}", status.dissent);
    // Every seat ran it through its prover, counted as byop runs.
    let mut byop_runs = 0;
    for node in 0..4 {
        let health: serde_json::Value = reqwest::get(format!("{}/health", cluster.api(node)))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        byop_runs += health["provers"]["byop"]["ok"].as_u64().unwrap_or(0);
    }
    assert_eq!(byop_runs, task.committee.len() as u64);
    cluster.shutdown().await;
}

/// A W3bstream VM service that takes any code and answers every task with `answer`, or never
/// answers (`None`).
#[derive(Clone)]
struct FixedProver {
    answer: Option<Vec<u8>>,
}

#[tonic::async_trait]
impl Vm for FixedProver {
    async fn new_project(
        &self,
        _request: tonic::Request<NewProjectRequest>,
    ) -> Result<tonic::Response<NewProjectResponse>, tonic::Status> {
        Ok(tonic::Response::new(NewProjectResponse {}))
    }

    async fn execute_task(
        &self,
        _request: tonic::Request<ExecuteTaskRequest>,
    ) -> Result<tonic::Response<ExecuteTaskResponse>, tonic::Status> {
        match &self.answer {
            Some(result) => Ok(tonic::Response::new(ExecuteTaskResponse {
                result: result.clone(),
            })),
            None => std::future::pending().await,
        }
    }
}

/// Serves `service` on 127.0.0.1 until the returned sender is dropped.
async fn serve_vm(service: impl Vm) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(VmServer::new(service))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    (url, stop)
}

/// Node 3's operator points it at a prover that lies. Where it holds fewer seats than the
/// threshold and the honest seats reach it, the honest result is published and node 3 is
/// reported as dissenting; its prover's result never is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_whose_prover_lies_is_outvoted_and_reported() {
    let honest = ProverProcess::spawn().unwrap();
    let (lying_url, _stop) = serve_vm(FixedProver {
        answer: Some(1_000_000i64.to_le_bytes().to_vec()),
    })
    .await;
    let cluster = Cluster::start_with(
        4,
        sim_limits(),
        |i| endpoint(if i == 3 { &lying_url } else { &honest.url }),
        |_| {},
    )
    .await
    .unwrap();
    let liar = cluster.operators[3].address();
    let mut wanted = None;
    for _ in 0..40 {
        let project = cluster
            .byop_project(&sum_code(), spec(None), (3, 120, 8), 4, 2)
            .await
            .unwrap();
        let task = Client::new(cluster.api(0)).task(project).await.unwrap();
        let (l, h) = cluster.seats_of(task_id(&task), liar).await.unwrap();
        if l > 0 && l < 2 && h >= 2 {
            wanted = Some(task);
            break;
        }
    }
    let task = wanted.expect("a draw seating the liar below the threshold within 40 tries");
    let from = cluster.contracts.chain().block_number().await.unwrap();
    send(&cluster, &task, &[5i64, -12, 40].map(i64::to_le_bytes)).await;
    let published = cluster
        .published(&task.task_id, from, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(published.event.output.as_ref(), 33i64.to_le_bytes());
    let status = cluster
        .status_once_published(0, &task_id(&task).to_be_bytes(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(status.dissent, vec![format!("{liar:#x}")]);
    cluster.shutdown().await;
}

/// A `tee` project whose provers answer without attestation evidence publishes nothing: every
/// seat refuses to sign, and the task fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tee_task_without_evidence_publishes_nothing() {
    let prover = ProverProcess::spawn().unwrap();
    let cluster = Cluster::start_with(4, sim_limits(), |_| endpoint(&prover.url), |_| {})
        .await
        .unwrap();
    let policy: conclave_provers::tee::Policy = serde_json::from_value(serde_json::json!({
        "sgx": ["00".repeat(32)],
        "min_tcb": "UpToDate",
        "max_age_secs": 86400,
    }))
    .unwrap();
    let project = cluster
        .byop_project(&sum_code(), spec(Some(policy)), (3, 30, 8), 3, 2)
        .await
        .unwrap();
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    send(&cluster, &task, &[5i64, -12, 40].map(i64::to_le_bytes)).await;
    let status = failed(&cluster, &task).await;
    assert!(status.reason.is_some(), "{status:?}");
    nothing_published(&cluster, &task, from).await;
    cluster.shutdown().await;
}

/// The W3bstream project file in examples/w3bstream (the AssemblyScript applet, zlib and hex as
/// W3bstream ships code) imports unchanged: as a `wasm` project run by every seat, and as a
/// `byop` project handed to the operators' conclave-prover; both publish the applet's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_w3bstream_project_runs_end_to_end() {
    let file = include_bytes!("../../../examples/w3bstream/project.json");
    let engine =
        conclave_provers::wasm::WasmEngine::new(conclave_node::manifest::wasm_limits()).unwrap();
    let imported = conclave_node::w3bstream::import(file, None, false, &engine).unwrap();
    assert_eq!(
        imported.code,
        include_bytes!("../../../examples/wasm/applet.wasm"),
        "the file's code is the committed applet"
    );
    assert_eq!(imported.runner, conclave_node::program::Runner::Wasm);
    assert!(
        imported.not_carried.iter().any(|n| n.starts_with("output")),
        "{:?}",
        imported.not_carried
    );
    let as_byop = conclave_node::w3bstream::import(file, None, true, &engine).unwrap();
    let conclave_node::program::Runner::Byop(byop) = as_byop.runner.clone() else {
        panic!("byop");
    };

    let prover = ProverProcess::spawn().unwrap();
    let cluster = Cluster::start_with(4, sim_limits(), |_| endpoint(&prover.url), |_| {})
        .await
        .unwrap();
    let as_wasm = cluster
        .wasm_project(&imported.code, (3, 120, 32), 3, 2)
        .await
        .unwrap();
    let as_byop = cluster
        .byop_project(&as_byop.code, byop, (3, 120, 32), 3, 2)
        .await
        .unwrap();
    for project in [as_wasm, as_byop] {
        let from = cluster.contracts.chain().block_number().await.unwrap();
        let task = Client::new(cluster.api(0)).task(project).await.unwrap();
        for (i, record) in [&b"5"[..], b"7", b"-2"].iter().enumerate() {
            Client::new(cluster.api(i % 3))
                .with_chain(cluster.contracts.clone())
                .submit_data_to(&task, record)
                .await
                .unwrap();
        }
        let published = cluster
            .published(&task.task_id, from, Duration::from_secs(120))
            .await
            .unwrap();
        // The applet's last `ws_send_tx`: the running sum 10, as hex calldata.
        let output = String::from_utf8(published.event.output.to_vec()).unwrap();
        assert!(
            output.contains(r#""data": "a""#),
            "project {project}: {output}"
        );
    }
    cluster.shutdown().await;
}

/// Every seat's prover hangs: each seat gives up at its call deadline, and the task fails
/// (to be re-run) instead of waiting forever; nothing is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_provers_hang_fails_instead_of_waiting() {
    let (url, _stop) = serve_vm(FixedProver { answer: None }).await;
    let config = ByopConfig {
        endpoints: vec![ByopEndpoint {
            vm_type: WASM_VM,
            url,
            protocol: Protocol::Vm,
            call_timeout_secs: 2,
            retries: 0,
        }],
        allow_project_endpoints: false,
    };
    let cluster = Cluster::start_with(4, sim_limits(), |_| config.clone(), |_| {})
        .await
        .unwrap();
    let project = cluster
        .byop_project(&sum_code(), spec(None), (3, 30, 8), 3, 2)
        .await
        .unwrap();
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    send(&cluster, &task, &[5i64, -12, 40].map(i64::to_le_bytes)).await;
    let status = failed(&cluster, &task).await;
    assert!(status.reason.is_some(), "{status:?}");
    nothing_published(&cluster, &task, from).await;
    cluster.shutdown().await;
}
