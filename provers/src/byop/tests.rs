//! The byop client against `conclave-prover`'s service over real gRPC on 127.0.0.1, and
//! against provers that hang, crash or answer garbage.

use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::server::{Backend, ProverService, inflate_code, serve};
use super::*;
use crate::wasm::{WasmEngine, WasmLimits};

/// Native ABI: the sum of the records, each an i64 (little-endian).
const SUM: &str = include_str!("../../../examples/wasm/sum.wat");

/// A running `conclave-prover` service on 127.0.0.1; stopped when dropped.
struct Served {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn served() -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = ProverService::new(Backend::Wasm(
        WasmEngine::new(WasmLimits::default()).unwrap(),
    ));
    tokio::spawn(serve(service, listener, DEFAULT_MAX_MESSAGE, async {
        let _ = stopped.await;
    }));
    Served { url, _stop: stop }
}

/// The sum module as a W3bstream project file carries it: zlib-compressed.
fn sum_code(project_id: u64) -> ProjectCode {
    let module = wat::parse_str(SUM).unwrap();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&module).unwrap();
    let binary = z.finish().unwrap();
    ProjectCode {
        project_id,
        version: "0.1".into(),
        hash: *blake3::hash(&binary).as_bytes(),
        binary,
        param: String::new(),
    }
}

fn config(url: &str, protocol: Protocol) -> EndpointConfig {
    EndpointConfig {
        protocol,
        call_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        retries: 1,
        ..EndpointConfig::new(url)
    }
}

/// Records the v1 protocol can carry (its `datas` are strings): 8 ASCII bytes each, read by
/// the module as little-endian i64s.
fn text_records() -> (Vec<Vec<u8>>, i64) {
    let records: Vec<Vec<u8>> = ["00000001", "abcdefgh", "zzzzzzzz"]
        .iter()
        .map(|r| r.as_bytes().to_vec())
        .collect();
    let sum = records
        .iter()
        .map(|r| i64::from_le_bytes(r.as_slice().try_into().unwrap()))
        .fold(0i64, |a, b| a.wrapping_add(b));
    (records, sum)
}

/// Both protocol versions (and detection) run tasks, and the code goes over once per client
/// for any number of tasks.
#[tokio::test]
async fn both_protocol_versions_run_tasks_and_code_is_sent_once() {
    let prover = served().await;
    for protocol in [Protocol::Vm, Protocol::VmRuntime, Protocol::Auto] {
        let client = ByopClient::new(config(&prover.url, protocol)).unwrap();
        client.health().await.unwrap();
        let code = sum_code(7);
        let (records, sum) = text_records();
        for n in 0..5u8 {
            let answer = client
                .execute(
                    &code,
                    &TaskCall {
                        task_id: [n; 32],
                        payloads: records.clone(),
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
            assert_eq!(answer.result, sum.to_le_bytes(), "{protocol:?}");
            assert_eq!(answer.evidence, None);
        }
        assert_eq!(client.creates(), 1, "{protocol:?}: code sent once");
    }
}

/// A prover that restarted (and forgot the project) is handed the code again, once.
#[tokio::test]
async fn a_prover_that_forgot_the_project_gets_the_code_again() {
    let first = served().await;
    let client = ByopClient::new(config(&first.url, Protocol::Vm)).unwrap();
    let code = sum_code(8);
    let task = TaskCall {
        task_id: [1; 32],
        payloads: vec![5i64.to_le_bytes().to_vec()],
    };
    client.execute(&code, &task).await.unwrap();
    // Another service at the same address knows nothing of the project.
    let address = first.url.trim_start_matches("http://").to_string();
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listener = TcpListener::bind(&address).await.unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = ProverService::new(Backend::Wasm(
        WasmEngine::new(WasmLimits::default()).unwrap(),
    ));
    tokio::spawn(serve(service, listener, DEFAULT_MAX_MESSAGE, async {
        let _ = stopped.await;
    }));
    let answer = client.execute(&code, &task).await.unwrap();
    assert_eq!(answer.result, 5i64.to_le_bytes());
    assert_eq!(client.creates(), 2);
}

/// Binary payloads cannot go over the v1 protocol (its data are strings): a typed error, not
/// a lossy conversion.
#[tokio::test]
async fn binary_payloads_are_refused_for_the_text_protocol() {
    let prover = served().await;
    let client = ByopClient::new(config(&prover.url, Protocol::VmRuntime)).unwrap();
    let task = TaskCall {
        task_id: [1; 32],
        payloads: vec![vec![0xff, 0xfe]],
    };
    let e = client.execute(&sum_code(9), &task).await.unwrap_err();
    assert_eq!(e, ByopError::NotText);
}

/// Code the service cannot load is refused at hand-over, with the reason.
#[tokio::test]
async fn code_that_is_no_module_is_refused_with_the_reason() {
    let prover = served().await;
    let client = ByopClient::new(config(&prover.url, Protocol::Vm)).unwrap();
    let mut code = sum_code(10);
    code.binary = vec![0x78, 0x9c, 1, 2, 3];
    let e = client
        .execute(
            &code,
            &TaskCall {
                task_id: [1; 32],
                payloads: vec![],
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ByopError::Refused { code: Code::InvalidArgument, message, .. } if message.contains("zlib")),
        "{e}"
    );
}

/// A zlib bomb stops at the limit.
#[test]
fn inflating_stops_at_the_limit() {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![0u8; server::MAX_CODE + 1]).unwrap();
    let bomb = z.finish().unwrap();
    assert_eq!(inflate_code(&bomb), Err(server::CodeError::TooLarge));
    assert_eq!(inflate_code(b"\0asm").unwrap(), b"\0asm");
}

/// Runs `call` with a generous outer bound: a client that hangs fails the test here.
async fn bounded<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the client returned within its deadlines")
}

/// Both protocol versions, which every failure case runs under.
const PROTOCOLS: [Protocol; 2] = [Protocol::Vm, Protocol::VmRuntime];

/// A call with no records to the prover at `url`, which must fail within the deadlines.
async fn failed_call(url: &str, protocol: Protocol) -> ByopError {
    let client = ByopClient::new(config(url, protocol)).unwrap();
    bounded(client.execute(&sum_code(1), &empty_task()))
        .await
        .unwrap_err()
}

fn empty_task() -> TaskCall {
    TaskCall {
        task_id: [1; 32],
        payloads: vec![],
    }
}

/// A prover that accepts the connection and never answers: a timeout, under either protocol.
#[tokio::test]
async fn a_hanging_prover_gives_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hang = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    for protocol in PROTOCOLS {
        let e = failed_call(&url, protocol).await;
        assert!(matches!(e, ByopError::Timeout { .. }), "{protocol:?}: {e}");
    }
    hang.abort();
}

/// A prover that is down, or drops every connection: a typed error within the deadlines.
#[tokio::test]
async fn a_crashed_prover_is_unreachable() {
    // Nothing listens.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    for protocol in PROTOCOLS {
        let e = failed_call(&url, protocol).await;
        assert!(
            matches!(e, ByopError::Unreachable { .. }),
            "{protocol:?}: {e}"
        );
        let client = ByopClient::new(config(&url, protocol)).unwrap();
        assert!(matches!(
            bounded(client.health()).await,
            Err(ByopError::Unreachable { .. })
        ));
    }

    // Accepts, then closes at once.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let crash = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    for protocol in PROTOCOLS {
        let e = failed_call(&url, protocol).await;
        // The channel reconnects until the call's deadline, or gives up earlier.
        assert!(
            matches!(e, ByopError::Unreachable { .. } | ByopError::Timeout { .. }),
            "{protocol:?}: {e}"
        );
    }
    crash.abort();
}

/// A prover process that dies in the middle of a call: the call ends with a typed error
/// within its deadline, under either protocol.
#[tokio::test]
async fn a_prover_dying_mid_call_gives_a_typed_error() {
    for protocol in PROTOCOLS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // Reads the request, then dies (the connection is reset) before answering.
        let dying = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let _ = socket.read(&mut buf).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(socket);
            drop(listener);
        });
        let e = failed_call(&url, protocol).await;
        assert!(
            matches!(e, ByopError::Unreachable { .. } | ByopError::Timeout { .. }),
            "{protocol:?}: {e}"
        );
        dying.abort();
    }
}

/// A peer that answers bytes which are not HTTP/2 at all.
#[tokio::test]
async fn a_prover_answering_noise_gives_a_typed_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let noise = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                .await;
        }
    });
    for protocol in PROTOCOLS {
        let e = failed_call(&url, protocol).await;
        assert!(
            matches!(e, ByopError::Unreachable { .. } | ByopError::Garbage { .. }),
            "{protocol:?}: {e}"
        );
    }
    noise.abort();
}

/// One gRPC frame (uncompressed, 3 bytes) holding no valid protobuf.
const GARBAGE_FRAME: [u8; 8] = [0, 0, 0, 0, 3, 0xff, 0xff, 0xff];

/// A gRPC peer whose answer is not a message of the protocol: garbage, not a result, under
/// either protocol (and for `ExecuteOperator` too).
#[tokio::test]
async fn a_prover_answering_garbage_messages_gives_garbage() {
    let garbage = GARBAGE_FRAME.to_vec();
    let router = axum::Router::new()
        .route("/vm.VM/NewProject", framed(garbage.clone()))
        .route("/vm.VM/ExecuteTask", framed(garbage.clone()))
        .route("/vm_runtime.VmRuntime/Create", framed(garbage.clone()))
        .route("/vm_runtime.VmRuntime/Execute", framed(garbage));
    let (url, _stop) = serve_routes(router).await;
    for protocol in PROTOCOLS {
        let e = failed_call(&url, protocol).await;
        assert!(matches!(e, ByopError::Garbage { .. }), "{protocol:?}: {e}");
    }

    // A v1 service that names its rpc ExecuteOperator and answers it with garbage.
    let router = axum::Router::new()
        .route("/vm_runtime.VmRuntime/Create", framed(empty_frame()))
        .route(
            "/vm_runtime.VmRuntime/ExecuteOperator",
            framed(GARBAGE_FRAME.to_vec()),
        );
    let (url, _stop) = serve_routes(router).await;
    let e = failed_call(&url, Protocol::VmRuntime).await;
    assert!(matches!(e, ByopError::Garbage { .. }), "{e}");
}

/// An empty gRPC message frame (every field at its default).
fn empty_frame() -> Vec<u8> {
    vec![0, 0, 0, 0, 0]
}

/// A v1 service of the older naming (`ExecuteOperator`, no `Execute`) runs tasks: the client
/// falls back once and remembers it; detection (`Auto`) finds v1 on a service without `vm.VM`.
#[tokio::test]
async fn an_execute_operator_service_and_a_v1_only_service_are_found() {
    // ExecuteResponse { result = "42" }: field 1, length 2.
    let answer = vec![0, 0, 0, 0, 4, 0x0a, 2, b'4', b'2'];
    let router = axum::Router::new()
        .route("/vm_runtime.VmRuntime/Create", framed(empty_frame()))
        .route("/vm_runtime.VmRuntime/ExecuteOperator", framed(answer));
    let (url, _stop) = serve_routes(router).await;
    for protocol in [Protocol::VmRuntime, Protocol::Auto] {
        let client = ByopClient::new(config(&url, protocol)).unwrap();
        for n in 0..3u8 {
            let task = TaskCall {
                task_id: [n; 32],
                payloads: vec![b"1".to_vec()],
            };
            let got = bounded(client.execute(&sum_code(1), &task))
                .await
                .unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
            assert_eq!(got.result, b"42", "{protocol:?}");
        }
        assert_eq!(client.creates(), 1, "{protocol:?}: code sent once");
    }
}

/// A gRPC route answering `frame` (a gRPC message frame, status OK) to every call.
fn framed(frame: Vec<u8>) -> axum::routing::MethodRouter {
    axum::routing::post(move || {
        let frame = frame.clone();
        async move {
            axum::response::Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", "0")
                .body(axum::body::Body::from(frame))
                .unwrap()
        }
    })
}

/// Serves `router` (gRPC routes) on 127.0.0.1 until the returned sender is dropped.
async fn serve_routes(router: axum::Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    (url, stop)
}

/// A prover answering more than the client's message limit: refused, not buffered.
#[tokio::test]
async fn an_oversized_answer_is_refused() {
    // An empty NewProjectResponse, then an ExecuteTaskResponse of 100 kB.
    let result = vec![7u8; 100_000];
    let mut message = vec![0x0a];
    let mut len = result.len();
    while len >= 0x80 {
        message.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    message.push(len as u8);
    message.extend(&result);
    let mut big = vec![0u8];
    big.extend((message.len() as u32).to_be_bytes());
    big.extend(message);
    let router = axum::Router::new()
        .route("/vm.VM/NewProject", framed(vec![0, 0, 0, 0, 0]))
        .route("/vm.VM/ExecuteTask", framed(big));
    let (url, _stop) = serve_routes(router).await;
    let client = ByopClient::new(EndpointConfig {
        max_message_bytes: 4096,
        ..config(&url, Protocol::Vm)
    })
    .unwrap();
    let task = TaskCall {
        task_id: [1; 32],
        payloads: vec![],
    };
    let e = bounded(client.execute(&sum_code(1), &task))
        .await
        .unwrap_err();
    assert!(matches!(&e, ByopError::Garbage { .. }), "{e}");
}

/// A W3bstream VM answering with TEE evidence in its response metadata, as a TEE prover does.
#[derive(Clone)]
struct AttestingProver {
    evidence: Vec<u8>,
}

#[tonic::async_trait]
impl proto::vm::vm_server::Vm for AttestingProver {
    async fn new_project(
        &self,
        _request: tonic::Request<proto::vm::NewProjectRequest>,
    ) -> Result<tonic::Response<proto::vm::NewProjectResponse>, Status> {
        Ok(tonic::Response::new(proto::vm::NewProjectResponse {}))
    }

    async fn execute_task(
        &self,
        _request: tonic::Request<proto::vm::ExecuteTaskRequest>,
    ) -> Result<tonic::Response<proto::vm::ExecuteTaskResponse>, Status> {
        let mut answer = tonic::Response::new(proto::vm::ExecuteTaskResponse {
            result: b"42".to_vec(),
        });
        answer.metadata_mut().insert_bin(
            EVIDENCE_METADATA,
            tonic::metadata::MetadataValue::from_bytes(&self.evidence),
        );
        Ok(answer)
    }
}

/// Real DCAP evidence (the SGX sample quote and its collateral, about 37 kB encoded) travels
/// whole in the answer's metadata, and verifies as genuine evidence that is not bound to this
/// task: refused for its binding (or its age), not lost in transport.
#[tokio::test]
async fn dcap_evidence_travels_in_the_answer_and_is_checked() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tee/");
    let evidence = crate::tee::Evidence {
        kind: crate::tee::EvidenceKind::Dcap,
        evidence: std::fs::read(format!("{data}sgx_quote")).unwrap(),
        collateral: std::fs::read(format!("{data}sgx_quote_collateral.json")).unwrap(),
    }
    .encode();
    assert!(evidence.len() > 30_000);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(proto::vm::vm_server::VmServer::new(AttestingProver {
                evidence: evidence.clone(),
            }))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    let client = ByopClient::new(config(&url, Protocol::Vm)).unwrap();
    let task = TaskCall {
        task_id: [1; 32],
        payloads: vec![],
    };
    let answer = bounded(client.execute(&sum_code(1), &task)).await.unwrap();
    assert_eq!(answer.evidence.as_deref(), Some(evidence.as_slice()));
    let decoded = crate::tee::Evidence::decode(&evidence).unwrap();
    let policy: crate::tee::Policy = serde_json::from_value(serde_json::json!({
        "sgx": ["00".repeat(32)],
        "min_tcb": "OutOfDate",
        "max_age_secs": 86400,
    }))
    .unwrap();
    let binding = crate::tee::report_data_for(&[1; 32], &answer.result);
    // Inside the sample's collateral window it is genuine but from elsewhere; today its
    // collateral has expired. Either way it is refused, never accepted.
    let inside_window = 1_751_328_000;
    assert!(crate::tee::verify(&decoded, &policy, &binding, inside_window).is_err());
    assert!(crate::tee::verify_evidence(&decoded, inside_window).is_ok());
}

/// Code registered later under the same project and version never answers for the earlier
/// code's tasks, over either protocol: the prover is told ids that carry the code's hash.
#[tokio::test]
async fn two_codes_under_one_version_each_run_as_registered() {
    let prover = served().await;
    let adding = sum_code(20);
    let subtracting = {
        let module = wat::parse_str(SUM.replace("i64.add", "i64.sub")).unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&module).unwrap();
        let binary = z.finish().unwrap();
        ProjectCode {
            hash: *blake3::hash(&binary).as_bytes(),
            binary,
            ..adding.clone()
        }
    };
    let (records, sum) = text_records();
    let difference = records
        .iter()
        .map(|r| i64::from_le_bytes(r.as_slice().try_into().unwrap()))
        .fold(0i64, |a, b| a.wrapping_sub(b));
    for protocol in [Protocol::Vm, Protocol::VmRuntime] {
        // Two seats' clients sharing one prover, interleaved.
        let first = ByopClient::new(config(&prover.url, protocol)).unwrap();
        let second = ByopClient::new(config(&prover.url, protocol)).unwrap();
        let task = TaskCall {
            task_id: [3; 32],
            payloads: records.clone(),
        };
        let a = first.execute(&adding, &task).await.unwrap();
        let b = second.execute(&subtracting, &task).await.unwrap();
        let again = first.execute(&adding, &task).await.unwrap();
        assert_eq!(a.result, sum.to_le_bytes(), "{protocol:?}");
        assert_eq!(b.result, difference.to_le_bytes(), "{protocol:?}");
        assert_eq!(again.result, sum.to_le_bytes(), "{protocol:?}");
    }
}
