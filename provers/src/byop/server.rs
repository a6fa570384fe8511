//! `conclave-prover`'s service: both versions of W3bstream's VM protocol (and gRPC health) over
//! one backend, so an operator can host a prover for projects that bring none.
//!
//! A project's code arrives once (`NewProject` / `Create`), is inflated (W3bstream ships it
//! zlib-compressed), loaded and kept, bounded in count; each task then runs over its payloads.
//! Everything the service receives is size-limited and nothing it receives can make it panic.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};

use tonic::{Request, Response, Status};

use super::proto::health::health_check_response::ServingStatus;
use super::proto::health::health_server::{Health, HealthServer};
use super::proto::health::{HealthCheckRequest, HealthCheckResponse};
use super::proto::vm::vm_server::{Vm, VmServer};
use super::proto::vm::{
    ExecuteTaskRequest, ExecuteTaskResponse, NewProjectRequest, NewProjectResponse,
};
use super::proto::vm_runtime::vm_runtime_server::{VmRuntime, VmRuntimeServer};
use super::proto::vm_runtime::{CreateRequest, CreateResponse, ExecuteRequest, ExecuteResponse};
use crate::wasm::{TaskInput, WasmEngine, WasmModule};

/// Projects a service keeps loaded; the oldest goes first.
pub const MAX_PROJECTS: usize = 64;
/// Largest inflated code: a zlib bomb stops here.
pub const MAX_CODE: usize = 16 << 20;
/// Most payloads in one task, and largest payload.
pub const MAX_PAYLOADS: usize = 4096;
pub const MAX_PAYLOAD: usize = 64 << 10;

/// Why a project's code cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("the code is not hex")]
    NotHex,
    #[error("the code is not valid zlib: {0}")]
    BadZlib(String),
    #[error("the code inflates to more than {MAX_CODE} bytes")]
    TooLarge,
}

/// The binary a W3bstream project's `code` holds: hex (with or without `0x`) of the
/// zlib-compressed binary, or (some VM types) the binary itself.
pub fn decode_hex_code(code: &str) -> Result<Vec<u8>, CodeError> {
    hex::decode(code.trim().trim_start_matches("0x")).map_err(|_| CodeError::NotHex)
}

/// Inflates zlib-compressed code (bounded by [`MAX_CODE`]); code without a zlib header is
/// returned as it is (W3bstream's VMs accept both).
pub fn inflate_code(binary: &[u8]) -> Result<Vec<u8>, CodeError> {
    // A zlib stream starts with CMF 0x78 (deflate, 32 KiB window) and a header checksum.
    let zlib = binary.len() >= 2
        && binary[0] == 0x78
        && (u16::from(binary[0]) << 8 | u16::from(binary[1])) % 31 == 0;
    if !zlib {
        if binary.len() > MAX_CODE {
            return Err(CodeError::TooLarge);
        }
        return Ok(binary.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(binary)
        .take(MAX_CODE as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CodeError::BadZlib(e.to_string()))?;
    if out.len() > MAX_CODE {
        return Err(CodeError::TooLarge);
    }
    Ok(out)
}

/// What runs a project's code.
#[derive(Clone)]
pub enum Backend {
    /// WebAssembly modules (Conclave's native ABI or W3bstream applets), under the same
    /// deterministic engine and limits as the `wasm` prover.
    Wasm(WasmEngine),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Wasm(_) => "wasm",
        }
    }
}

#[derive(Clone)]
enum Loaded {
    Wasm(WasmModule),
}

/// The service: the backend and the projects it was handed.
#[derive(Clone)]
pub struct ProverService {
    backend: Backend,
    projects: Arc<Mutex<Projects>>,
}

#[derive(Default)]
struct Projects {
    loaded: HashMap<(String, String), Loaded>,
    order: VecDeque<(String, String)>,
}

impl ProverService {
    pub fn new(backend: Backend) -> ProverService {
        ProverService {
            backend,
            projects: Arc::new(Mutex::new(Projects::default())),
        }
    }

    /// The gRPC services to mount: `vm.VM`, `vm_runtime.VmRuntime` and `grpc.health.v1.Health`,
    /// each taking messages up to `max_message` bytes.
    pub fn router(self, max_message: usize) -> tonic::service::Routes {
        let vm = VmServer::new(self.clone())
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        let runtime = VmRuntimeServer::new(self.clone())
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        let health = HealthServer::new(self)
            .max_decoding_message_size(4096)
            .max_encoding_message_size(4096);
        tonic::service::Routes::new(vm)
            .add_service(runtime)
            .add_service(health)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Projects> {
        self.projects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads `binary` (compressed or not) for (project, version), off the async workers.
    async fn load(&self, project: String, version: String, binary: Vec<u8>) -> Result<(), Status> {
        let backend = self.backend.clone();
        let loaded = tokio::task::spawn_blocking(move || -> Result<Loaded, Status> {
            let code =
                inflate_code(&binary).map_err(|e| Status::invalid_argument(e.to_string()))?;
            match backend {
                Backend::Wasm(engine) => engine
                    .load(&code)
                    .map(Loaded::Wasm)
                    .map_err(|e| Status::invalid_argument(e.to_string())),
            }
        })
        .await
        .map_err(|e| Status::internal(format!("loading the code: {e}")))??;
        tracing::info!(%project, %version, backend = self.backend.name(), "project code loaded");
        let mut projects = self.lock();
        let key = (project, version);
        if projects.loaded.insert(key.clone(), loaded).is_none() {
            projects.order.push_back(key);
        }
        while projects.order.len() > MAX_PROJECTS {
            if let Some(oldest) = projects.order.pop_front() {
                projects.loaded.remove(&oldest);
            }
        }
        Ok(())
    }

    /// Runs a task of a loaded project over its payloads: the result bytes.
    async fn execute(
        &self,
        project: String,
        version: String,
        task_id: [u8; 32],
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, Status> {
        if payloads.len() > MAX_PAYLOADS || payloads.iter().any(|p| p.len() > MAX_PAYLOAD) {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_PAYLOADS} payloads of {MAX_PAYLOAD} bytes"
            )));
        }
        let loaded = self
            .lock()
            .loaded
            .get(&(project.clone(), version.clone()))
            .cloned()
            .ok_or_else(|| {
                Status::not_found(format!(
                    "project {project} version {version:?} was not created here"
                ))
            })?;
        let project_id = project.parse::<u64>().unwrap_or(0);
        let Loaded::Wasm(module) = loaded;
        let Backend::Wasm(engine) = self.backend.clone();
        let input = TaskInput {
            project_id,
            task_id,
            chain_id: 0,
            records: payloads,
        };
        let run = tokio::task::spawn_blocking(move || engine.run(&module, input))
            .await
            .map_err(|e| Status::internal(format!("running the task: {e}")))?
            .map_err(|e| Status::aborted(e.to_string()))?;
        tracing::info!(%project, %version, task = %hex::encode(task_id), fuel = run.fuel_used, "task ran");
        Ok(run.output)
    }
}

#[tonic::async_trait]
impl Vm for ProverService {
    async fn new_project(
        &self,
        request: Request<NewProjectRequest>,
    ) -> Result<Response<NewProjectResponse>, Status> {
        let r = request.into_inner();
        self.load(r.project_id, r.project_version, r.binary).await?;
        Ok(Response::new(NewProjectResponse {}))
    }

    async fn execute_task(
        &self,
        request: Request<ExecuteTaskRequest>,
    ) -> Result<Response<ExecuteTaskResponse>, Status> {
        let r = request.into_inner();
        let task_id: [u8; 32] = r
            .task_id
            .as_slice()
            .try_into()
            .map_err(|_| Status::invalid_argument("taskID must be 32 bytes"))?;
        let result = self
            .execute(r.project_id, r.project_version, task_id, r.payloads)
            .await?;
        Ok(Response::new(ExecuteTaskResponse { result }))
    }
}

#[tonic::async_trait]
impl VmRuntime for ProverService {
    async fn create(
        &self,
        request: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        let r = request.into_inner();
        let binary =
            decode_hex_code(&r.content).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.load(r.project_id.to_string(), String::new(), binary)
            .await?;
        Ok(Response::new(CreateResponse {}))
    }

    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let r = request.into_inner();
        let mut task_id = [0u8; 32];
        task_id[24..].copy_from_slice(&r.task_id.to_be_bytes());
        let payloads = r.datas.into_iter().map(String::into_bytes).collect();
        let result = self
            .execute(r.project_id.to_string(), String::new(), task_id, payloads)
            .await?;
        Ok(Response::new(ExecuteResponse { result }))
    }

    async fn execute_operator(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        VmRuntime::execute(self, request).await
    }
}

#[tonic::async_trait]
impl Health for ProverService {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }
}

/// Serves `service` on `listener` until `shutdown` resolves.
pub async fn serve(
    service: ProverService,
    listener: tokio::net::TcpListener,
    max_message: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .add_routes(service.router(max_message))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
