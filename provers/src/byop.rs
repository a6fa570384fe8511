//! `byop`: bring-your-own provers over IoTeX W3bstream's VM gRPC protocols.
//!
//! A W3bstream VM service (risc0, halo2, zkwasm, wasm, or [`server`]'s `conclave-prover`) is
//! handed a project's code once and then runs tasks over their data. Both published versions
//! of the protocol are spoken ([`Protocol`]); with [`Protocol::Auto`] the client asks the newer
//! one first and remembers what the endpoint answered.
//!
//! Every call has a deadline, a transport failure is retried a bounded number of times within an
//! overall deadline ([`EndpointConfig::overall_deadline`]), and messages are size-limited both
//! ways: a prover that hangs, crashes or answers garbage costs a seat at most that deadline and
//! gives a typed [`ByopError`].
//!
//! The prover is told a version that carries the code's hash (and, over the older protocol, which
//! keys code by project alone, a project id derived from it): a prover never runs one code under
//! the name of another, even when a project registers new code while an older task still runs.
//!
//! TLS is not built in: endpoints are `http://`, on the loopback or a private network.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

pub mod server;
#[cfg(test)]
mod tests;

/// Code generated from `proto/` (Conclave's copies of W3bstream's files).
pub mod proto {
    pub mod vm_runtime {
        tonic::include_proto!("vm_runtime");
    }
    pub mod vm {
        tonic::include_proto!("vm");
    }
    pub mod health {
        tonic::include_proto!("grpc.health.v1");
    }
}

use proto::health::health_client::HealthClient;
use proto::vm::vm_client::VmClient;
use proto::vm_runtime::vm_runtime_client::VmRuntimeClient;

/// The gRPC metadata key under which a TEE prover returns its attestation evidence with a
/// result (binary, so `-bin`): the published messages have no field for it, and a prover that
/// does not attest simply leaves it out.
pub const EVIDENCE_METADATA: &str = "conclave-tee-evidence-bin";

/// Largest message either side sends or accepts by default: a project's code travels in one.
pub const DEFAULT_MAX_MESSAGE: usize = 8 << 20;

/// Largest response headers (gRPC metadata) taken: TEE evidence travels there (DCAP evidence
/// with its collateral is about 50 KiB base64), up to [`crate::tee::MAX_EVIDENCE_BYTES`].
const MAX_HEADER_LIST: u32 = 1 << 20;

/// Hand-overs a client remembers.
const MAX_REMEMBERED_CODES: usize = 4096;

/// How long a health check may take: it is asked while the coordinator waits for a Start answer.
const HEALTH_DEADLINE: Duration = Duration::from_secs(3);

/// Which version of W3bstream's VM protocol an endpoint speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Ask `vm.VM` first, fall back to `vm_runtime.VmRuntime` when it is not served.
    Auto,
    /// `package vm; service VM { NewProject; ExecuteTask }`.
    Vm,
    /// `package vm_runtime; service VmRuntime { Create; Execute | ExecuteOperator }`.
    VmRuntime,
}

/// Where a prover is and how long a node waits for it.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// `http://host:port`.
    pub url: String,
    pub protocol: Protocol,
    pub connect_timeout: Duration,
    /// Deadline of one call (a proof may take long: set it to the slowest task expected).
    pub call_timeout: Duration,
    /// How many times a call that failed in transport (not one the prover refused) is tried
    /// again.
    pub retries: u32,
    pub max_message_bytes: usize,
}

impl EndpointConfig {
    /// An endpoint with the defaults: protocol detected, 5 s to connect, 60 s per call, 2
    /// retries, 8 MiB messages.
    pub fn new(url: impl Into<String>) -> EndpointConfig {
        EndpointConfig {
            url: url.into(),
            protocol: Protocol::Auto,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(60),
            retries: 2,
            max_message_bytes: DEFAULT_MAX_MESSAGE,
        }
    }

    /// The most one [`ByopClient::execute`] takes, retries included: handing the code over and
    /// running the task, each within the call deadline, plus connecting.
    pub fn overall_deadline(&self) -> Duration {
        self.call_timeout * 2 + self.connect_timeout * 2
    }
}

/// A project's code as the prover gets it, once per endpoint.
#[derive(Clone, Debug)]
pub struct ProjectCode {
    pub project_id: u64,
    /// The project version (W3bstream's `projectVersion`).
    pub version: String,
    /// The code as W3bstream's project file holds it after hex decoding: usually the
    /// zlib-compressed binary (the prover inflates it).
    pub binary: Vec<u8>,
    /// W3bstream's `codeExpParam` / `metadata`.
    pub param: String,
    /// keccak256 (or any content hash) of `binary`: what "sent already" is remembered by.
    pub hash: [u8; 32],
}

/// One task for the prover.
#[derive(Clone, Debug)]
pub struct TaskCall {
    pub task_id: [u8; 32],
    /// The devices' records, in slot order.
    pub payloads: Vec<Vec<u8>>,
}

/// What the prover answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub result: Vec<u8>,
    /// Attestation evidence ([`EVIDENCE_METADATA`]), if the prover sent any.
    pub evidence: Option<Vec<u8>>,
}

/// Why a prover call gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByopError {
    #[error(
        "the prover endpoint {0:?} is not a valid http:// URL (TLS is not built in: keep provers on the loopback or a private network)"
    )]
    BadEndpoint(String),
    #[error("the prover at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the prover at {url} did not answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("the prover at {url} refused ({code:?}): {message}")]
    Refused {
        url: String,
        code: Code,
        message: String,
    },
    #[error("the prover at {url} answered what is not its protocol: {reason}")]
    Garbage { url: String, reason: String },
    #[error("the prover at {url} does not serve {service}")]
    NotServing { url: String, service: String },
    #[error("a payload for the prover's v1 protocol must be UTF-8 text (W3bstream sends JSON)")]
    NotText,
}

impl ByopError {
    /// Whether trying the same call again may help: only transport failures.
    fn is_transient(&self) -> bool {
        matches!(self, ByopError::Unreachable { .. })
    }

    /// The failure's kind, without the endpoint: what a seat may tell other nodes (an operator's
    /// prover address is its own business).
    pub fn kind(&self) -> &'static str {
        match self {
            ByopError::BadEndpoint(_) => "bad endpoint",
            ByopError::Unreachable { .. } => "unreachable",
            ByopError::Timeout { .. } => "timed out",
            ByopError::Refused { .. } => "refused the call",
            ByopError::Garbage { .. } => "answered garbage",
            ByopError::NotServing { .. } => "not serving",
            ByopError::NotText => "a payload is not text (vm_runtime protocol)",
        }
    }
}

/// A client for one prover endpoint. Cheap to share: calls run concurrently on one HTTP/2
/// connection, made on first use.
pub struct ByopClient {
    config: EndpointConfig,
    channel: Channel,
    state: Mutex<ClientState>,
}

#[derive(Default)]
struct ClientState {
    /// The protocol the endpoint answered with (for [`Protocol::Auto`]).
    detected: Option<Protocol>,
    /// `vm_runtime` services that answer to `ExecuteOperator` only.
    execute_operator: bool,
    /// (project, version, code hash) handed over already.
    created: HashSet<(u64, String, [u8; 32])>,
    /// How many times code was handed over (a test counts them).
    creates: u64,
}

impl ByopClient {
    pub fn new(config: EndpointConfig) -> Result<ByopClient, ByopError> {
        let bad = || ByopError::BadEndpoint(config.url.clone());
        if !config.url.starts_with("http://") {
            return Err(bad());
        }
        let channel = Endpoint::from_shared(config.url.clone())
            .map_err(|_| bad())?
            .connect_timeout(config.connect_timeout)
            .timeout(config.call_timeout)
            .http2_max_header_list_size(MAX_HEADER_LIST)
            .connect_lazy();
        Ok(ByopClient {
            config,
            channel,
            state: Mutex::new(ClientState::default()),
        })
    }

    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// How many times this client handed a project's code to the prover.
    pub fn creates(&self) -> u64 {
        self.lock().creates
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the endpoint's gRPC health service whether it serves. A prover without the health
    /// service (W3bstream's own) counts as serving once it answers at all.
    pub async fn health(&self) -> Result<(), ByopError> {
        let mut client = HealthClient::new(self.channel.clone())
            .max_decoding_message_size(4096)
            .max_encoding_message_size(4096);
        let asked = match tokio::time::timeout(
            HEALTH_DEADLINE,
            client.check(proto::health::HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await
        {
            Err(_) => Err(ByopError::Timeout {
                url: self.config.url.clone(),
                secs: HEALTH_DEADLINE.as_secs(),
            }),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(status)) => Err(self.typed(status)),
        };
        match asked {
            Ok(answer) => {
                let serving = proto::health::health_check_response::ServingStatus::Serving as i32;
                if answer.into_inner().status == serving {
                    Ok(())
                } else {
                    Err(ByopError::NotServing {
                        url: self.config.url.clone(),
                        service: "anything (health: not serving)".into(),
                    })
                }
            }
            Err(ByopError::Refused {
                code: Code::Unimplemented,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs `task` for `code`: hands the code over first if this endpoint has not had it (and
    /// again, once, if the prover says it does not know the project, e.g. after a restart),
    /// all within [`EndpointConfig::overall_deadline`].
    pub async fn execute(&self, code: &ProjectCode, task: &TaskCall) -> Result<Answer, ByopError> {
        let deadline = self.config.overall_deadline();
        tokio::time::timeout(deadline, self.execute_unbounded(code, task))
            .await
            .unwrap_or_else(|_| {
                Err(ByopError::Timeout {
                    url: self.config.url.clone(),
                    secs: deadline.as_secs(),
                })
            })
    }

    async fn execute_unbounded(
        &self,
        code: &ProjectCode,
        task: &TaskCall,
    ) -> Result<Answer, ByopError> {
        let key = (code.project_id, code.version.clone(), code.hash);
        let mut handed_over_now = false;
        if !self.lock().created.contains(&key) {
            self.retrying(|| self.create(code)).await?;
            handed_over_now = true;
        }
        match self.retrying(|| self.run(code, task)).await {
            Err(ByopError::Refused {
                code: Code::NotFound | Code::FailedPrecondition,
                ..
            }) if !handed_over_now => {
                self.lock().created.remove(&key);
                self.retrying(|| self.create(code)).await?;
                self.retrying(|| self.run(code, task)).await
            }
            answer => answer,
        }
    }

    /// `call` until it succeeds, fails for a reason other than transport, or the retries are
    /// spent (with a short backoff between tries).
    async fn retrying<T, F, Fut>(&self, call: F) -> Result<T, ByopError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ByopError>>,
    {
        let mut tries = 0;
        loop {
            match call().await {
                Err(e) if e.is_transient() && tries < self.config.retries => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200 << tries.min(4))).await;
                }
                done => return done,
            }
        }
    }

    /// The protocol to use now: the configured one, or what detection found.
    fn protocol(&self) -> Protocol {
        match self.config.protocol {
            Protocol::Auto => self.lock().detected.unwrap_or(Protocol::Auto),
            fixed => fixed,
        }
    }

    async fn create(&self, code: &ProjectCode) -> Result<(), ByopError> {
        let protocol = self.protocol();
        if matches!(protocol, Protocol::Auto | Protocol::Vm) {
            let request = proto::vm::NewProjectRequest {
                project_id: code.project_id.to_string(),
                project_version: versioned(code),
                binary: code.binary.clone(),
                metadata: code.param.as_bytes().to_vec(),
            };
            match self.with_deadline(self.vm().new_project(request)).await {
                Err(ByopError::Refused {
                    code: Code::Unimplemented,
                    ..
                }) if protocol == Protocol::Auto => {}
                done => {
                    self.speaks(&done, Protocol::Vm);
                    return done.map(|_| self.created(code));
                }
            }
        }
        let request = proto::vm_runtime::CreateRequest {
            project_id: v1_project_id(code),
            content: hex::encode(&code.binary),
            exp_param: code.param.clone(),
        };
        let done = self.with_deadline(self.vm_runtime().create(request)).await;
        self.speaks(&done, Protocol::VmRuntime);
        done.map(|_| self.created(code))
    }

    /// Remembers the protocol an answer (or a refusal, which only a speaker of the protocol
    /// gives) came in: a transport failure says nothing about it.
    fn speaks<T>(&self, answer: &Result<T, ByopError>, protocol: Protocol) {
        if matches!(answer, Ok(_) | Err(ByopError::Refused { .. })) {
            self.lock().detected = Some(protocol);
        }
    }

    /// Remembers that `code` was handed over (forgetting all at a cap: the cost is one more
    /// hand-over per project).
    fn created(&self, code: &ProjectCode) {
        let mut state = self.lock();
        if state.created.len() >= MAX_REMEMBERED_CODES {
            state.created.clear();
        }
        state.creates += 1;
        state
            .created
            .insert((code.project_id, code.version.clone(), code.hash));
    }

    async fn run(&self, code: &ProjectCode, task: &TaskCall) -> Result<Answer, ByopError> {
        let (result, metadata) = match self.protocol() {
            Protocol::Vm | Protocol::Auto => {
                let request = proto::vm::ExecuteTaskRequest {
                    project_id: code.project_id.to_string(),
                    project_version: versioned(code),
                    task_id: task.task_id.to_vec(),
                    payloads: task.payloads.clone(),
                };
                let answer = self.with_deadline(self.vm().execute_task(request)).await?;
                let metadata = answer.metadata().clone();
                (answer.into_inner().result, metadata)
            }
            Protocol::VmRuntime => {
                let datas = task
                    .payloads
                    .iter()
                    .map(|p| String::from_utf8(p.clone()).map_err(|_| ByopError::NotText))
                    .collect::<Result<Vec<_>, _>>()?;
                let request = proto::vm_runtime::ExecuteRequest {
                    project_id: v1_project_id(code),
                    task_id: short_task_id(&task.task_id),
                    client_id: String::new(),
                    sequencer_signature: String::new(),
                    datas,
                };
                let answer = self.execute_v1(request).await?;
                let metadata = answer.metadata().clone();
                (answer.into_inner().result, metadata)
            }
        };
        // Checked here too: in a test tonic handed over an answer above its decoding limit.
        if result.len() > self.config.max_message_bytes {
            return Err(ByopError::Garbage {
                url: self.config.url.clone(),
                reason: format!(
                    "an answer of {} bytes, above the {}-byte limit",
                    result.len(),
                    self.config.max_message_bytes
                ),
            });
        }
        let evidence = metadata
            .get_bin(EVIDENCE_METADATA)
            .map(|v| v.to_bytes().map(|b| b.to_vec()))
            .transpose()
            .map_err(|e| ByopError::Garbage {
                url: self.config.url.clone(),
                reason: format!("its evidence metadata: {e}"),
            })?;
        Ok(Answer { result, evidence })
    }

    /// `Execute`, or `ExecuteOperator` on services that name it so.
    async fn execute_v1(
        &self,
        request: proto::vm_runtime::ExecuteRequest,
    ) -> Result<tonic::Response<proto::vm_runtime::ExecuteResponse>, ByopError> {
        if !self.lock().execute_operator {
            match self
                .with_deadline(self.vm_runtime().execute(request.clone()))
                .await
            {
                Err(ByopError::Refused {
                    code: Code::Unimplemented,
                    ..
                }) => self.lock().execute_operator = true,
                done => return done,
            }
        }
        self.with_deadline(self.vm_runtime().execute_operator(request))
            .await
    }

    fn vm(&self) -> VmClient<Channel> {
        VmClient::new(self.channel.clone())
            .max_decoding_message_size(self.config.max_message_bytes)
            .max_encoding_message_size(self.config.max_message_bytes)
    }

    fn vm_runtime(&self) -> VmRuntimeClient<Channel> {
        VmRuntimeClient::new(self.channel.clone())
            .max_decoding_message_size(self.config.max_message_bytes)
            .max_encoding_message_size(self.config.max_message_bytes)
    }

    /// Awaits a call within the call deadline (the channel has one too; this one also covers
    /// connecting) and types its failure.
    async fn with_deadline<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, ByopError> {
        let deadline = self.config.call_timeout + self.config.connect_timeout;
        match tokio::time::timeout(deadline, call).await {
            Err(_) => Err(self.timeout()),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(status)) => Err(self.typed(status)),
        }
    }

    fn timeout(&self) -> ByopError {
        ByopError::Timeout {
            url: self.config.url.clone(),
            secs: self.config.call_timeout.as_secs(),
        }
    }

    fn typed(&self, status: Status) -> ByopError {
        let url = self.config.url.clone();
        let message = status.message().to_string();
        match status.code() {
            Code::DeadlineExceeded | Code::Cancelled => self.timeout(),
            // Tonic reports transport failures (refused connection, reset stream) as
            // Unavailable, and bytes that are not a message of the protocol as Internal.
            _ if is_transport(&status) => ByopError::Unreachable {
                url,
                reason: message,
            },
            Code::Internal | Code::Unknown | Code::ResourceExhausted | Code::OutOfRange
                if is_garbage(&message) =>
            {
                ByopError::Garbage {
                    url,
                    reason: message,
                }
            }
            code => ByopError::Refused { url, code, message },
        }
    }
}

/// Whether tonic's status says the transport failed (rather than the prover refusing): tonic
/// reports a refused connection as Unavailable, and a connection lost in mid-call (a prover
/// that died) as Unknown with the transport's error as its source. (A prover may answer
/// Unavailable itself; it then gets the bounded retries, within the overall deadline.) Other
/// codes with a transport source are the prover's own stream resets: not retried.
fn is_transport(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => return true,
        Code::Unknown => {}
        _ => return false,
    }
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The version the prover is told: the project's, and the code's hash, so that code registered
/// later under the same version never answers for a task of the earlier code.
pub fn versioned(code: &ProjectCode) -> String {
    format!("{}@{}", code.version, hex::encode(&code.hash[..8]))
}

/// The project id the older protocol (which keys code by project id alone) is told: derived
/// from the project and the code's hash, for the same reason as [`versioned`].
pub fn v1_project_id(code: &ProjectCode) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key("conclave byop v1 project id");
    hasher.update(&code.project_id.to_be_bytes());
    hasher.update(code.version.as_bytes());
    hasher.update(&code.hash);
    let mut id = [0u8; 8];
    id.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    // Below 2^63: some W3bstream services read it as a signed integer.
    u64::from_be_bytes(id) >> 1
}

/// Whether tonic's status message says the answer was not a well-formed gRPC message.
fn is_garbage(message: &str) -> bool {
    [
        "decode",
        "protocol",
        "message length",
        "too large",
        "compression",
        "content-type",
    ]
    .iter()
    .any(|m| message.to_ascii_lowercase().contains(m))
}

/// The v1 protocol's 64-bit task id: the last 8 bytes of Conclave's 32-byte id.
pub fn short_task_id(task_id: &[u8; 32]) -> u64 {
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&task_id[24..]);
    u64::from_be_bytes(tail)
}
