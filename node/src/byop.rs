//! `byop` and `tee` tasks at a member. Records reach every seat sealed whole (like `wasm`); each
//! seat hands them to the W3bstream VM service its operator configured for the manifest's VM
//! type (or, where the operator allows it, the project's own endpoint), and signs what that
//! prover answered. t seats that received the same result publish it: one operator's prover
//! cannot publish alone. A `tee` seat signs only if the answer carries evidence that verifies
//! against the manifest's policy and binds the task and this output.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_provers::byop::{ByopClient, EndpointConfig, ProjectCode, Protocol, TaskCall};
use conclave_provers::tee;
use serde::{Deserialize, Serialize};

use crate::manifest::{ByopSpec, WasmSpec};
use crate::messages::{Response, TaskInfo};
use crate::node::Inner;
use crate::store::MaskedInput;

/// Largest result a prover may answer: what `TaskRouter` takes as an output.
pub const MAX_RESULT: usize = 4096;
/// Project endpoints a node keeps clients for.
const MAX_PROJECT_ENDPOINTS: usize = 64;

/// One prover endpoint in node.toml (`[[provers.byop]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByopEndpoint {
    /// The W3bstream VM type this prover serves (1 risc0, 2 halo2, 3 zkwasm, 4 wasm, ...).
    pub vm_type: u64,
    /// `http://host:port`.
    pub url: String,
    /// "auto" (default), "vm" or "vm_runtime".
    #[serde(default = "auto")]
    pub protocol: Protocol,
    /// Deadline of one call, in seconds (the slowest proof expected).
    #[serde(default = "default_call_timeout")]
    pub call_timeout_secs: u64,
    /// Tries after a transport failure.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn auto() -> Protocol {
    Protocol::Auto
}
fn default_call_timeout() -> u64 {
    60
}
fn default_retries() -> u32 {
    2
}

/// What a node's operator configured for byop tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ByopConfig {
    pub endpoints: Vec<ByopEndpoint>,
    /// Whether a project's own `endpoint` may be called when no endpoint serves its VM type.
    /// Off by default: a project owner could otherwise make every seat call an address of its
    /// choosing from inside the seat's network.
    pub allow_project_endpoints: bool,
}

impl ByopEndpoint {
    fn config(&self) -> EndpointConfig {
        EndpointConfig {
            protocol: self.protocol,
            call_timeout: Duration::from_secs(self.call_timeout_secs.clamp(1, 3600)),
            retries: self.retries.min(5),
            ..EndpointConfig::new(&self.url)
        }
    }
}

/// The node's prover clients: one per configured VM type, and (if allowed) per project
/// endpoint.
pub(crate) struct ByopState {
    by_type: HashMap<u64, Arc<ByopClient>>,
    allow_project_endpoints: bool,
    project: Mutex<HashMap<String, Arc<ByopClient>>>,
}

impl ByopState {
    /// Clients for `config`'s endpoints; a malformed URL is refused here, at start.
    pub(crate) fn new(config: &ByopConfig) -> Result<ByopState, String> {
        let mut by_type = HashMap::new();
        for endpoint in &config.endpoints {
            let client = ByopClient::new(endpoint.config()).map_err(|e| e.to_string())?;
            if by_type.insert(endpoint.vm_type, Arc::new(client)).is_some() {
                return Err(format!(
                    "[[provers.byop]] names vm_type {} twice",
                    endpoint.vm_type
                ));
            }
        }
        Ok(ByopState {
            by_type,
            allow_project_endpoints: config.allow_project_endpoints,
            project: Mutex::new(HashMap::new()),
        })
    }

    /// The client that serves `spec` at this node, or why none does.
    pub(crate) fn client_for(&self, spec: &ByopSpec) -> Result<Arc<ByopClient>, String> {
        if let Some(client) = self.by_type.get(&spec.vm_type) {
            return Ok(client.clone());
        }
        if spec.endpoint.is_empty() || !self.allow_project_endpoints {
            return Err(format!(
                "this node has no prover for W3bstream VM type {} ([[provers.byop]] in node.toml)",
                spec.vm_type
            ));
        }
        let mut project = self.project.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = project.get(&spec.endpoint) {
            return Ok(client.clone());
        }
        let client = Arc::new(
            ByopClient::new(EndpointConfig::new(&spec.endpoint)).map_err(|e| e.to_string())?,
        );
        // Bounded: a full map starts again (these are cheap, lazily connected clients).
        if project.len() >= MAX_PROJECT_ENDPOINTS {
            project.clear();
        }
        project.insert(spec.endpoint.clone(), client.clone());
        Ok(client)
    }
}

fn refuse(reason: impl Into<String>) -> Response {
    Response::refused(crate::messages::RefusalKind::Failed, reason)
}

impl Inner {
    /// Whether this seat can run `spec`'s tasks: its code is here (or fetched now) and a prover
    /// serves its VM type and answers a health check. Asked at Start, before devices send.
    pub(crate) async fn byop_ready(
        &self,
        spec: &WasmSpec,
        byop: &ByopSpec,
        first: libp2p::PeerId,
    ) -> Result<(), String> {
        self.code(spec, crate::programs::Fetch::MeshOrUrl, Some(first))
            .await
            .map_err(|e| format!("the task's code: {e}"))?;
        let client = self.byop.client_for(byop)?;
        client.health().await.map_err(|e| {
            tracing::warn!(vm_type = byop.vm_type, error = %e, "a byop prover failed its health check");
            format!("this seat's prover for VM type {} {}", byop.vm_type, e.kind())
        })
    }

    /// Hands the records of `device_slots` (in slot order) to this seat's prover: its result,
    /// and a proof hash committing to the code and the slots run over (as `wasm`).
    pub(crate) async fn run_byop(
        &self,
        info: &TaskInfo,
        device_slots: &[u32],
        stored: &BTreeMap<u32, MaskedInput>,
        spec: &WasmSpec,
        byop: &ByopSpec,
    ) -> Result<(Vec<u8>, [u8; 32]), Response> {
        let task = info.task_id;
        let (records, commitment) = self
            .agreed_records(info, device_slots, stored, spec, b"conclave byop run v1")
            .await?;
        let binary = self
            .code(spec, crate::programs::Fetch::MeshOrUrl, None)
            .await
            .map_err(|e| refuse(format!("the task's code: {e}")))?;
        let client = self.byop.client_for(byop).map_err(refuse)?;
        let code = ProjectCode {
            project_id: info.project_id,
            version: byop.version.clone(),
            binary,
            param: byop.code_param.clone(),
            hash: spec.module.0,
        };
        let call = TaskCall {
            task_id: task,
            payloads: records,
        };
        // The reason other nodes hear names what failed, not where this operator's prover is.
        let answer = client.execute(&code, &call).await.map_err(|e| {
            tracing::warn!(task = %hex::encode(task), error = %e, "the byop prover failed");
            refuse(format!("this seat's prover {}", e.kind()))
        })?;
        if answer.result.len() > MAX_RESULT {
            return Err(refuse(format!(
                "the prover answered {} bytes; a result is at most {MAX_RESULT}",
                answer.result.len()
            )));
        }
        if let Some(policy) = &byop.tee {
            let evidence = answer
                .evidence
                .as_deref()
                .ok_or_else(|| refuse("the prover sent no attestation evidence"))?;
            let evidence = tee::Evidence::decode(evidence)
                .map_err(|e| refuse(format!("the prover's evidence: {e}")))?;
            let context = tee::TaskContext {
                chain_id: self.chain_id,
                router: self.router.0.0,
                project_id: info.project_id,
                task_id: task,
                code_hash: spec.module.0,
                payloads: &call.payloads,
            };
            let binding = tee::report_data_for(&context.digest(), &answer.result);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            tee::verify(&evidence, policy, &binding, now)
                .map_err(|e| refuse(format!("the prover's evidence is refused: {e}")))?;
        }
        tracing::info!(
            task = %hex::encode(task),
            prover = client.url(),
            output_bytes = answer.result.len(),
            "byop prover answered"
        );
        Ok((answer.result, commitment))
    }
}
