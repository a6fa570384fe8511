//! Program sources by hash: kept in the store, served to any peer that asks, fetched from peers
//! (or, for a task this node works on, the project's `https` URL) when missing. A source is
//! accepted only if keccak256 of it is the hash the chain pins, so whoever serves it cannot change
//! what runs. Compiling is bounded by the compiler's own limits, runs off the async workers one
//! program at a time, and a program that failed is not tried again for a minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{B256, keccak256};
use libp2p::PeerId;

use crate::messages::{Request, Response};
use crate::node::{Inner, NodeError};
use crate::program::{MAX_SOURCE, Program};

/// Compiled programs kept in memory.
const MAX_CACHED_PROGRAMS: usize = 64;

/// Programs whose last load failed, remembered so that requests cannot make a node retry them.
const MAX_REMEMBERED_FAILURES: usize = 256;

/// How long a failed load is not retried.
const FAILURE_BACKOFF: Duration = Duration::from_secs(60);

/// How long one peer may take to answer for a source.
const PEER_WAIT: Duration = Duration::from_secs(5);

/// Peers asked for a missing source, at most.
const PEERS_ASKED: usize = 8;

/// Where a missing source may be fetched from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// Peers only: for requests anyone can make (the API).
    Mesh,
    /// Peers, then the project's URL: for tasks this node opens or computes.
    MeshOrUrl,
}

impl Inner {
    /// The program whose source hashes to `hash`: from memory, the store, the mesh, or `uri`.
    pub(crate) async fn program(
        &self,
        hash: B256,
        uri: &str,
        fetch: Fetch,
    ) -> Result<Arc<Program>, NodeError> {
        if let Some(p) = self.volatile().programs.get(&hash) {
            return Ok(p.clone());
        }
        if let Some((when, reason)) = self.volatile().program_failures.get(&hash)
            && when.elapsed() < FAILURE_BACKOFF
        {
            return Err(NodeError::Unavailable(format!("program {hash}: {reason}")));
        }
        let loaded = self.load_program(hash, uri, fetch).await;
        let mut v = self.volatile();
        match &loaded {
            Ok(program) => {
                crate::node::insert_capped(
                    &mut v.programs,
                    MAX_CACHED_PROGRAMS,
                    hash,
                    program.clone(),
                );
            }
            Err(e) => crate::node::insert_capped(
                &mut v.program_failures,
                MAX_REMEMBERED_FAILURES,
                hash,
                (Instant::now(), e.to_string()),
            ),
        }
        loaded
    }

    async fn load_program(
        &self,
        hash: B256,
        uri: &str,
        fetch: Fetch,
    ) -> Result<Arc<Program>, NodeError> {
        let source = match self.store.program_source(&hash.0)? {
            Some(source) => source,
            None => self.fetch_source(hash, uri, fetch).await?,
        };
        let program = self.compile(source.clone(), Some(hash)).await?;
        self.store.put_program_source(&hash.0, &source)?;
        Ok(program)
    }

    /// Compiles on a blocking thread, one program at a time.
    async fn compile(&self, source: String, hash: Option<B256>) -> Result<Arc<Program>, NodeError> {
        let _one_at_a_time = self.compiling.lock().await;
        let compiled = tokio::task::spawn_blocking(move || match hash {
            Some(hash) => Program::from_chain(&source, hash),
            None => Program::from_source(&source),
        })
        .await
        .map_err(|e| NodeError::Task(format!("compiling: {e}")))?;
        compiled
            .map(Arc::new)
            .map_err(|e| NodeError::Task(e.to_string()))
    }

    /// Keeps a source a project registered (the caller checked its hash on chain).
    pub(crate) async fn keep_source(&self, source: &str) -> Result<B256, NodeError> {
        let hash = keccak256(source.as_bytes());
        if self.store.program_source(&hash.0)?.is_some() {
            return Ok(hash);
        }
        self.program_with_source(hash, source.to_string()).await?;
        Ok(hash)
    }

    async fn program_with_source(&self, hash: B256, source: String) -> Result<(), NodeError> {
        let program = self.compile(source.clone(), Some(hash)).await?;
        self.store.put_program_source(&hash.0, &source)?;
        crate::node::insert_capped(
            &mut self.volatile().programs,
            MAX_CACHED_PROGRAMS,
            hash,
            program,
        );
        Ok(())
    }

    /// The program of a task: by the hash its stored record carries, else by the chain's.
    pub(crate) async fn program_of_task(
        &self,
        task: &[u8; 32],
        fetch: Fetch,
    ) -> Result<Arc<Program>, NodeError> {
        if let Some(hash) = self
            .store
            .task(task)?
            .and_then(|r| r.info)
            .map(|i| B256::from(i.program_hash))
        {
            return self.program(hash, "", fetch).await;
        }
        let snapshot = self
            .contracts
            .task(alloy::primitives::U256::from_be_bytes(*task))
            .await?;
        let uri = match fetch {
            Fetch::Mesh => String::new(),
            Fetch::MeshOrUrl => self.contracts.project(snapshot.projectId).await?.programUri,
        };
        self.program(snapshot.programHash, &uri, fetch).await
    }

    /// Answers a peer's request for a source: only sources this node keeps.
    pub(crate) fn serve_source(&self, hash: [u8; 32]) -> Response {
        match self.store.program_source(&hash) {
            Ok(Some(source)) => Response::ProgramSource(source),
            Ok(None) => Response::refused(
                crate::messages::RefusalKind::Unknown,
                "no such program here",
            ),
            Err(e) => Response::refused(crate::messages::RefusalKind::Failed, e.to_string()),
        }
    }

    async fn fetch_source(&self, hash: B256, uri: &str, fetch: Fetch) -> Result<String, NodeError> {
        let peers: Vec<PeerId> = self.network.connected_peers().await?;
        let request = crate::messages::encode(&Request::ProgramSource { hash: hash.0 });
        for peer in peers.into_iter().take(PEERS_ASKED) {
            let asked = self.network.request(peer, request.clone());
            let Ok(Ok(bytes)) = tokio::time::timeout(PEER_WAIT, asked).await else {
                continue;
            };
            if let Ok(Response::ProgramSource(source)) = crate::messages::decode(&bytes)
                && keccak256(source.as_bytes()) == hash
            {
                return Ok(source);
            }
        }
        if fetch == Fetch::MeshOrUrl && uri.starts_with("https://") {
            let source = fetch_url(uri).await?;
            if keccak256(source.as_bytes()) == hash {
                return Ok(source);
            }
            return Err(NodeError::Unavailable(format!(
                "the source at {uri} does not hash to {hash}"
            )));
        }
        Err(NodeError::Unavailable(format!(
            "program {hash} is not on this node or its peers"
        )))
    }
}

/// GETs a source of at most [`MAX_SOURCE`] bytes over https, following no redirects.
async fn fetch_url(uri: &str) -> Result<String, NodeError> {
    let fail = |e: String| NodeError::Unavailable(format!("fetching {uri}: {e}"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut response = client
        .get(uri)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("status {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| fail(e.to_string()))? {
        if body.len() + chunk.len() > MAX_SOURCE {
            return Err(fail(format!("larger than {MAX_SOURCE} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| fail("not UTF-8".into()))
}
