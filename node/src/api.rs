//! The HTTP API devices and operators use (axum). JSON in and out; every error is a 4xx/5xx with
//! `{"error": code, "message": text}`; bodies over 256 KiB are refused, and a client (by address)
//! or the node over its request rate gets 429 with `Retry-After`.
//!
//! - `GET  /health`, `GET /metrics` (Prometheus text)
//! - `GET  /v1/projects/{project}/task`: the project's open task (opening one if needed)
//! - `POST /v1/tasks/{task}/slots` `{client_key}`: a slot and the members' sealed triple shares
//! - `POST /v1/tasks/{task}/inputs` `{slot, sealed}`: the device's sealed masked input per member
//! - `GET  /v1/tasks/{task}`: state and, once published, the result

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::envelope::Sealed;
use crate::messages::{TaskId, TaskInfo};
use crate::node::{Inner, NodeError};
use crate::ratelimit::{Limits, RateLimiter, Refusal};
use crate::task::{TaskReport, TaskState};

/// Largest request body.
pub const MAX_BODY: usize = 256 * 1024;

/// An envelope in JSON: hex fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SealedJson {
    pub ephemeral: String,
    pub nonce: String,
    pub ciphertext: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberJson {
    pub peer_id: String,
    pub operator: String,
    pub key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskJson {
    pub task_id: String,
    pub project_id: u64,
    /// The node coordinating the task (entry nodes that do not know the task ask it).
    pub coordinator: String,
    pub committee: Vec<MemberJson>,
    /// keccak256 of the program source (`GET /v1/tasks/{task}/program` serves it).
    pub program_hash: String,
    pub max_inputs: u32,
    /// Bits of one device record (the program's device input fields).
    pub input_bits: u32,
    /// Bits of the project owner's parameters (0: the program reads none); the owner slot is
    /// numbered `max_inputs`.
    #[serde(default)]
    pub owner_bits: u32,
    pub closes_at_ms: u64,
    /// The project's prover kind (0 `spdz`, 2 `wasm`).
    #[serde(default)]
    pub prover_kind: u8,
    /// Largest record a device seals whole to each member (`wasm`); 0 when records are
    /// secret-shared bit by bit.
    #[serde(default)]
    pub record_bytes: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlotRequest {
    pub client_key: String,
    /// The task's coordinator, as `GET /v1/projects/{id}/task` reported it.
    #[serde(default)]
    pub coordinator: Option<String>,
    /// For the owner slot: the project owner's EIP-191 signature (hex) of the slot's key
    /// (`SlotTicket::owner_message`); the coordinator grants every other slot.
    #[serde(default)]
    pub owner_signature: Option<String>,
}

/// A task's committee and each member's sealed shares of its private outputs' masks, in
/// committee order: only the program's receiver can open them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SealedOutputsJson {
    pub task: TaskJson,
    pub shares: Vec<SealedJson>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlotJson {
    pub slot: u32,
    pub shares: Vec<SealedJson>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputRequest {
    pub slot: u32,
    pub sealed: Vec<SealedJson>,
    #[serde(default)]
    pub coordinator: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusJson {
    pub task_id: String,
    pub state: String,
    pub reason: Option<String>,
    /// The published output bytes (hex): one ABI word per public output.
    pub output: Option<String>,
    /// The outputs by name, read with the task's program.
    pub outputs: Option<Vec<OutputJson>>,
    pub tx_hash: Option<String>,
    pub block: Option<u64>,
    /// The task that re-runs this one, if it failed and was re-run.
    pub retried_as: Option<String>,
    /// Operators of committee members whose signed output differed from the one published.
    #[serde(default)]
    pub dissent: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutputJson {
    pub name: String,
    /// The value as a decimal: an integer, `true`/`false`, or a fixed-point number exactly.
    pub value: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgramJson {
    pub hash: String,
    pub source: String,
}

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, Json(body)).into_response();
        // The committee or the mesh may answer again in a moment: say when to retry.
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_json"
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        use crate::messages::RefusalKind;
        use conclave_chain::bindings::ProjectRegistry::ProjectRegistryErrors;
        let (status, code) = match &e {
            NodeError::UnknownTask
            | NodeError::Refused {
                kind: RefusalKind::Unknown,
                ..
            }
            | NodeError::Chain(conclave_chain::ContractError::Revert(
                conclave_chain::Revert::Projects(ProjectRegistryErrors::UnknownProject(_)),
            )) => (StatusCode::NOT_FOUND, "not_found"),
            NodeError::Refused {
                kind: RefusalKind::Closed,
                ..
            } => (StatusCode::CONFLICT, "closed"),
            NodeError::Refused {
                kind: RefusalKind::Invalid,
                ..
            } => (StatusCode::BAD_REQUEST, "refused"),
            NodeError::Refused {
                kind: RefusalKind::Busy,
                ..
            } => (StatusCode::TOO_MANY_REQUESTS, "busy"),
            // The task cannot run any more; its re-run is the project's next task.
            NodeError::Refused {
                kind: RefusalKind::Aborted,
                ..
            } => (StatusCode::CONFLICT, "aborted"),
            NodeError::DrawUnusable(_) => (StatusCode::CONFLICT, "no_committee"),
            NodeError::Unavailable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unavailable"),
            // A member or the mesh did not answer, or a member could not do its part: the
            // same request may succeed in a moment (503 with Retry-After).
            NodeError::Network(_)
            | NodeError::Task(_)
            | NodeError::Refused {
                kind: RefusalKind::Failed,
                ..
            } => (StatusCode::SERVICE_UNAVAILABLE, "committee_unavailable"),
            // Said in the node's log, not to the caller: the text may name the RPC endpoint
            // (with its key) or local paths.
            NodeError::Chain(_) => {
                tracing::warn!(error = %e, "a request failed on the chain");
                return ApiError::new(StatusCode::BAD_GATEWAY, "chain", "the chain failed");
            }
            NodeError::Store(_) | NodeError::Http(_) => {
                tracing::warn!(error = %e, "a request failed in this node");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "this node failed; see its log",
                );
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

pub fn hex32(s: &str, what: &str) -> Result<[u8; 32], ApiError> {
    let bytes = hex::decode(s.trim_start_matches("0x"))
        .map_err(|_| ApiError::bad(format!("{what} is not hex")))?;
    bytes
        .try_into()
        .map_err(|_| ApiError::bad(format!("{what} must be 32 bytes")))
}

impl SealedJson {
    pub fn from_sealed(s: &Sealed) -> Self {
        SealedJson {
            ephemeral: hex::encode(s.ephemeral),
            nonce: hex::encode(s.nonce),
            ciphertext: hex::encode(&s.ciphertext),
        }
    }

    pub fn to_sealed(&self) -> Result<Sealed, ApiError> {
        let nonce = hex::decode(&self.nonce).map_err(|_| ApiError::bad("nonce is not hex"))?;
        let ciphertext =
            hex::decode(&self.ciphertext).map_err(|_| ApiError::bad("ciphertext is not hex"))?;
        if ciphertext.len() > crate::envelope::MAX_PLAINTEXT + 16 {
            return Err(ApiError::bad("ciphertext too long"));
        }
        Ok(Sealed {
            ephemeral: hex32(&self.ephemeral, "ephemeral")?,
            nonce: nonce
                .try_into()
                .map_err(|_| ApiError::bad("nonce must be 12 bytes"))?,
            ciphertext,
        })
    }
}

impl TaskJson {
    pub fn from_info(info: &TaskInfo) -> Self {
        TaskJson {
            task_id: hex::encode(info.task_id),
            project_id: info.project_id,
            coordinator: libp2p::PeerId::from_bytes(&info.coordinator)
                .map(|p| p.to_string())
                .unwrap_or_default(),
            committee: info
                .committee
                .iter()
                .map(|m| MemberJson {
                    peer_id: libp2p::PeerId::from_bytes(&m.peer)
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    operator: format!("0x{}", hex::encode(m.operator)),
                    key: hex::encode(m.key),
                })
                .collect(),
            program_hash: hex::encode(info.program_hash),
            max_inputs: info.max_inputs,
            input_bits: info.input_bits,
            owner_bits: info.owner_bits,
            closes_at_ms: info.closes_at_ms,
            prover_kind: info.prover_kind,
            record_bytes: info.record_bytes,
        }
    }
}

#[derive(Clone)]
struct Api {
    inner: Arc<Inner>,
}

/// Admits a `/v1` request if neither its client's nor the node's rate is exhausted.
async fn admit(
    State(limiter): State<Arc<Mutex<RateLimiter>>>,
    request: Request,
    next: Next,
) -> Response {
    // Without connection info (a router driven in-process) all callers share one bucket.
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let verdict = limiter
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .admit(client, Instant::now());
    let message = match verdict {
        Ok(()) => return next.run(request).await,
        Err(Refusal::Client) => "too many requests from this client; retry shortly",
        Err(Refusal::Node) => "the node is at its request limit; retry shortly",
    };
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

pub(crate) fn router(inner: Arc<Inner>, limits: Limits) -> Router {
    let limiter = Arc::new(Mutex::new(RateLimiter::new(limits, Instant::now())));
    let v1 = Router::new()
        .route("/v1/projects/{project}/task", get(project_task))
        .route("/v1/projects/{project}/program", post(project_program))
        .route(
            "/v1/projects/{project}/module",
            post(project_module).layer(DefaultBodyLimit::max(crate::manifest::MAX_MODULE)),
        )
        .route("/v1/tasks/{task}/slots", post(slots))
        .route("/v1/tasks/{task}/inputs", post(inputs))
        .route("/v1/tasks/{task}", get(status))
        .route("/v1/tasks/{task}/program", get(task_program))
        .route("/v1/tasks/{task}/sealed-outputs", get(sealed_outputs))
        .route_layer(middleware::from_fn_with_state(limiter, admit));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Api { inner })
}

pub(crate) async fn serve(inner: Arc<Inner>, listener: tokio::net::TcpListener, limits: Limits) {
    // On shutdown: no new connections, and the open ones end once their request is answered.
    let stopping = inner.stopping.clone().cancelled_owned();
    let app = router(inner, limits).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopping)
        .await
    {
        tracing::error!(error = %e, "HTTP API stopped");
    }
}

async fn health(State(api): State<Api>) -> Json<serde_json::Value> {
    let live = api
        .inner
        .network
        .live_peers()
        .await
        .map(|p| p.len())
        .unwrap_or(0);
    Json(serde_json::json!({
        "status": "ok",
        "peer_id": api.inner.network.peer_id().to_string(),
        "operator": api.inner.operator.address().to_string(),
        "live_peers": live,
        "provers": api.inner.metrics.prover_runs(),
    }))
}

async fn metrics(State(api): State<Api>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        api.inner.metrics_text(),
    )
}

fn task_param(task: &str) -> Result<TaskId, ApiError> {
    hex32(task, "task id")
}

fn coordinator_hint(hint: Option<&str>) -> Result<Option<libp2p::PeerId>, ApiError> {
    hint.map(|h| {
        h.parse()
            .map_err(|_| ApiError::bad("coordinator is not a peer id"))
    })
    .transpose()
}

async fn project_task(
    State(api): State<Api>,
    Path(project): Path<String>,
) -> Result<Json<TaskJson>, ApiError> {
    let project: u64 = project
        .parse()
        .map_err(|_| ApiError::bad("project id must be a number"))?;
    let info = api.inner.current_task(project).await?;
    Ok(Json(TaskJson::from_info(&info)))
}

/// Keeps a registered project's program source so that this node serves it to the mesh: only the
/// source whose keccak256 is the project's program hash on chain, so nobody stores anything else.
async fn project_program(
    State(api): State<Api>,
    Path(project): Path<String>,
    body: Result<Json<ProgramJson>, JsonRejection>,
) -> Result<Json<ProgramJson>, ApiError> {
    let Json(body) = body?;
    let on_chain = project_on_chain(&api, &project).await?;
    if alloy::primitives::keccak256(body.source.as_bytes()) != on_chain.programHash {
        return Err(ApiError::bad(
            "the source does not hash to the project's program hash",
        ));
    }
    let hash = api
        .inner
        .keep_source(&body.source)
        .await
        .map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(Json(ProgramJson {
        hash: hex::encode(hash),
        source: String::new(),
    }))
}

/// The project a path names, as the chain records it.
async fn project_on_chain(
    api: &Api,
    project: &str,
) -> Result<conclave_chain::bindings::ProjectRegistry::Project, ApiError> {
    let project: u64 = project
        .parse()
        .map_err(|_| ApiError::bad("project id must be a number"))?;
    Ok(api
        .inner
        .contracts
        .project(alloy::primitives::U256::from(project))
        .await
        .map_err(NodeError::from)?)
}

/// Keeps the module a `wasm` project's manifest names: accepted only if it hashes to that
/// name (so anyone may send it, and nobody can change it), and refused with the imports
/// Conclave does not provide. The manifest must be on this node already (`…/program` first):
/// an upload never makes a node fetch or compile a program.
async fn project_module(
    State(api): State<Api>,
    Path(project): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ProgramJson>, ApiError> {
    let hash = alloy::primitives::keccak256(&body);
    let on_chain = project_on_chain(&api, &project).await?;
    let manifest = api
        .inner
        .store
        .program_source(&on_chain.programHash.0)
        .map_err(NodeError::from)?
        .ok_or_else(|| {
            ApiError::bad("this node does not keep the project's program: send it first")
        })?;
    let spec = match crate::program::WasmSpec::parse(&manifest) {
        Some(Ok(spec)) => spec,
        _ => {
            return Err(ApiError::bad(
                "the project's program is not a wasm or byop manifest",
            ));
        }
    };
    if hash != spec.module {
        return Err(ApiError::bad(
            "the module does not hash to the one the project's manifest names",
        ));
    }
    if spec.byop().is_some() {
        api.inner
            .keep_code(&body)
            .map_err(|e| ApiError::bad(e.to_string()))?;
    } else {
        api.inner
            .keep_module(body.to_vec())
            .await
            .map_err(|e| ApiError::bad(e.to_string()))?;
    }
    Ok(Json(ProgramJson {
        hash: hex::encode(hash),
        source: String::new(),
    }))
}

async fn slots(
    State(api): State<Api>,
    Path(task): Path<String>,
    body: Result<Json<SlotRequest>, JsonRejection>,
) -> Result<Json<SlotJson>, ApiError> {
    let Json(body) = body?;
    let task = task_param(&task)?;
    let key = hex32(&body.client_key, "client_key")?;
    let hint = coordinator_hint(body.coordinator.as_deref())?;
    let owner_signature = match &body.owner_signature {
        Some(hex) => Some(
            hex::decode(hex.trim_start_matches("0x"))
                .ok()
                .filter(|s| s.len() == 65)
                .ok_or_else(|| ApiError::bad("owner_signature must be 65 bytes of hex"))?,
        ),
        None => None,
    };
    let grant = api
        .inner
        .grant_slot(task, key, owner_signature, hint)
        .await?;
    Ok(Json(SlotJson {
        slot: grant.slot,
        shares: grant.shares.iter().map(SealedJson::from_sealed).collect(),
    }))
}

async fn inputs(
    State(api): State<Api>,
    Path(task): Path<String>,
    body: Result<Json<InputRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body?;
    let task = task_param(&task)?;
    let sealed = body
        .sealed
        .iter()
        .map(SealedJson::to_sealed)
        .collect::<Result<Vec<_>, _>>()?;
    let hint = coordinator_hint(body.coordinator.as_deref())?;
    api.inner
        .deliver_input(task, body.slot, sealed, hint)
        .await?;
    Ok(Json(
        serde_json::json!({ "accepted": true, "slot": body.slot }),
    ))
}

/// Every member's sealed shares of the task's private outputs, for the receiver.
async fn sealed_outputs(
    State(api): State<Api>,
    Path(task): Path<String>,
) -> Result<Json<SealedOutputsJson>, ApiError> {
    let task = task_param(&task)?;
    let (info, shares) = api.inner.sealed_outputs(task).await?;
    Ok(Json(SealedOutputsJson {
        task: TaskJson::from_info(&info),
        shares: shares.iter().map(SealedJson::from_sealed).collect(),
    }))
}

/// The task's program source, checked against the hash its chain record pins.
async fn task_program(
    State(api): State<Api>,
    Path(task): Path<String>,
) -> Result<Json<ProgramJson>, ApiError> {
    let task = task_param(&task)?;
    // Why a program is missing stays in this node's logs: the answer says only that it is.
    let (hash, source) = api.inner.source_of_task(&task).await.map_err(|e| {
        tracing::debug!(error = %e, "a task's program for the API");
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the task's program is not available here",
        )
    })?;
    Ok(Json(ProgramJson {
        hash: hex::encode(hash),
        source,
    }))
}

async fn status(
    State(api): State<Api>,
    Path(task): Path<String>,
) -> Result<Json<StatusJson>, ApiError> {
    let task = task_param(&task)?;
    let storage = |e: crate::store::StoreError| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
    };
    let local = api.inner.store.task(&task).map_err(storage)?;
    let report = match local {
        Some(r) if r.coordinating => TaskReport::of(r),
        other => match api.inner.remote_status(task).await {
            Ok(report) => report,
            Err(_) => match other {
                Some(r) => TaskReport::of(r),
                None => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "unknown task",
                    ));
                }
            },
        },
    };
    let TaskReport {
        state,
        output,
        retried_as,
        dissent,
    } = report;
    let outputs = match &output {
        Some(bytes) => api
            .inner
            .cached_program_of_task(&task)
            .await
            .and_then(|p| p.decode_outputs(bytes))
            .map(|values| {
                values
                    .iter()
                    .map(|v| OutputJson {
                        name: v.name().to_string(),
                        value: v.to_string(),
                    })
                    .collect()
            }),
        None => None,
    };
    let (tx_hash, block, reason) = match &state {
        TaskState::Published { tx_hash, block } => (
            Some(format!("0x{}", hex::encode(tx_hash))),
            Some(*block),
            None,
        ),
        TaskState::Failed(r) => (None, None, Some(r.clone())),
        _ => (None, None, None),
    };
    Ok(Json(StatusJson {
        task_id: hex::encode(task),
        state: state.name().into(),
        reason,
        output: output.as_ref().map(|o| format!("0x{}", hex::encode(o))),
        outputs,
        tx_hash,
        block,
        retried_as: retried_as.map(hex::encode),
        dissent: dissent
            .iter()
            .map(|a| format!("0x{}", hex::encode(a)))
            .collect(),
    }))
}
