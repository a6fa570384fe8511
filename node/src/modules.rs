//! WebAssembly modules of `wasm` projects (and the code of `byop` projects), by keccak256 hash:
//! kept in the store, served to any peer that asks, fetched from peers (or the manifest's
//! `module_uri`) when missing and accepted only if they hash to what the manifest names. A
//! module is compiled (and its imports checked) once, off the async workers, under the same
//! lock and failure memory as programs; byop code is kept as it is (the prover reads it).

use alloy::primitives::{B256, keccak256};
use conclave_provers::wasm::WasmModule;

use crate::manifest::{MAX_MODULE, WasmSpec};
use crate::messages::{RefusalKind, Request, Response};
use crate::node::{Inner, NodeError};
use crate::programs::Fetch;

/// Compiled modules kept in memory.
const MAX_CACHED_MODULES: usize = 16;

impl Inner {
    /// The module `spec` names, compiled: from memory, the store, the mesh (`first` asked
    /// before any other peer: the coordinator, which loaded it to open the task) or
    /// `module_uri`.
    pub(crate) async fn module(
        &self,
        spec: &WasmSpec,
        fetch: Fetch,
        first: Option<libp2p::PeerId>,
    ) -> Result<WasmModule, NodeError> {
        let hash = spec.module;
        if let Some(module) = self.volatile().modules.get(&hash) {
            return Ok(module.clone());
        }
        if let Some(e) = self.recent_failure(hash, "module") {
            return Err(e);
        }
        let _one_at_a_time = self.compiling.lock().await;
        if let Some(module) = self.volatile().modules.get(&hash) {
            return Ok(module.clone());
        }
        let bytes = self.stored_or_fetched(spec, fetch, first).await;
        let loaded = match bytes {
            Ok(bytes) => self.compile_module(hash, bytes).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &loaded {
            self.remember_failure(hash, e);
        }
        loaded
    }

    /// The code a `byop` manifest names, as bytes: from the store, the mesh or `module_uri`.
    pub(crate) async fn code(
        &self,
        spec: &WasmSpec,
        fetch: Fetch,
        first: Option<libp2p::PeerId>,
    ) -> Result<Vec<u8>, NodeError> {
        let hash = spec.module;
        if let Some(bytes) = self.store.module(&hash.0)? {
            return Ok(bytes);
        }
        if let Some(e) = self.recent_failure(hash, "module") {
            return Err(e);
        }
        let _one_at_a_time = self.compiling.lock().await;
        let fetched = self.stored_or_fetched(spec, fetch, first).await;
        match &fetched {
            Ok(bytes) => self.store.put_module(&hash.0, bytes)?,
            Err(e) => self.remember_failure(hash, e),
        }
        fetched
    }

    /// The bytes `spec` names from the store, else from peers or `module_uri` (checked against
    /// the hash there).
    async fn stored_or_fetched(
        &self,
        spec: &WasmSpec,
        fetch: Fetch,
        first: Option<libp2p::PeerId>,
    ) -> Result<Vec<u8>, NodeError> {
        let hash = spec.module;
        match self.store.module(&hash.0)? {
            Some(bytes) => Ok(bytes),
            None => {
                self.fetch_by_hash(
                    hash,
                    Request::Module { hash: hash.0 },
                    &spec.module_uri,
                    fetch,
                    MAX_MODULE,
                    first,
                )
                .await
            }
        }
    }

    /// Keeps the code a `byop` manifest names (the caller checked the hash): stored as it is.
    pub(crate) fn keep_code(&self, bytes: &[u8]) -> Result<B256, NodeError> {
        if bytes.len() > MAX_MODULE {
            return Err(NodeError::Task(format!(
                "code is at most {MAX_MODULE} bytes"
            )));
        }
        let hash = keccak256(bytes);
        if self.store.module(&hash.0)?.is_none() {
            self.store.put_module(&hash.0, bytes)?;
        }
        Ok(hash)
    }

    /// Keeps a module a project's manifest names (the caller checked that): compiled first, so
    /// that one with imports Conclave does not provide is refused with their names. Sent again
    /// (anyone may), it is neither compiled again nor, after a failure, retried for a minute.
    pub(crate) async fn keep_module(&self, bytes: Vec<u8>) -> Result<B256, NodeError> {
        let hash = keccak256(&bytes);
        if let Some(e) = self.recent_failure(hash, "module") {
            return Err(e);
        }
        let _one_at_a_time = self.compiling.lock().await;
        if self.volatile().modules.contains_key(&hash) || self.store.module(&hash.0)?.is_some() {
            return Ok(hash);
        }
        let compiled = self.compile_module(hash, bytes).await;
        if let Err(e) = &compiled {
            self.remember_failure(hash, e);
        }
        compiled.map(|_| hash)
    }

    /// Compiles `bytes` (which hash to `hash`) on a blocking thread, stores and caches it.
    async fn compile_module(&self, hash: B256, bytes: Vec<u8>) -> Result<WasmModule, NodeError> {
        if keccak256(&bytes) != hash {
            return Err(NodeError::Unavailable(format!(
                "the stored module does not hash to {hash}"
            )));
        }
        let engine = self.wasm.clone();
        let (module, bytes) = tokio::task::spawn_blocking(move || (engine.load(&bytes), bytes))
            .await
            .map_err(|e| NodeError::Task(format!("compiling the module: {e}")))?;
        let module = module.map_err(|e| NodeError::Task(format!("module {hash}: {e}")))?;
        self.store.put_module(&hash.0, &bytes)?;
        crate::node::insert_capped(
            &mut self.volatile().modules,
            MAX_CACHED_MODULES,
            hash,
            module.clone(),
        );
        Ok(module)
    }

    /// Answers a peer's request for a module: only modules this node keeps, and within the
    /// asker's share of large answers (a short request must not buy a megabyte at will).
    pub(crate) fn serve_module(&self, from: libp2p::PeerId, hash: [u8; 32]) -> Response {
        if let Some(busy) = self.large_answer_refused(from) {
            return busy;
        }
        match self.store.module(&hash) {
            Ok(Some(module)) => Response::Module(module),
            Ok(None) => Response::refused(RefusalKind::Unknown, "no such module here"),
            Err(e) => Response::refused(RefusalKind::Failed, e.to_string()),
        }
    }
}
