//! Program sources by hash: kept in the store, served to any peer that asks, fetched from peers
//! (or the project's `http(s)` URL) when missing. A source is accepted only if keccak256 of it is
//! the hash the chain pins, so whoever serves it cannot change what runs.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{B256, keccak256};
use libp2p::PeerId;

use crate::messages::{Request, Response};
use crate::node::{Inner, NodeError};
use crate::program::{MAX_SOURCE, Program};

/// Compiled programs kept in memory.
const MAX_CACHED_PROGRAMS: usize = 64;

/// How long one peer may take to answer for a source.
const PEER_WAIT: Duration = Duration::from_secs(5);

/// Peers asked for a missing source, at most.
const PEERS_ASKED: usize = 8;

impl Inner {
    /// The program whose source hashes to `hash`: from memory, the store, the mesh, or `uri`.
    pub(crate) async fn program(&self, hash: B256, uri: &str) -> Result<Arc<Program>, NodeError> {
        if let Some(p) = self.volatile().programs.get(&hash) {
            return Ok(p.clone());
        }
        let source = match self.store.program_source(&hash.0)? {
            Some(source) => source,
            None => self.fetch_source(hash, uri).await?,
        };
        let program = Arc::new(
            Program::from_chain(&source, hash).map_err(|e| NodeError::Task(e.to_string()))?,
        );
        self.store.put_program_source(&hash.0, &source)?;
        crate::node::insert_capped(
            &mut self.volatile().programs,
            MAX_CACHED_PROGRAMS,
            hash,
            program.clone(),
        );
        Ok(program)
    }

    /// The program of a task opened on chain (its project's URL as a fallback source).
    pub(crate) async fn program_of_task(&self, task: &[u8; 32]) -> Result<Arc<Program>, NodeError> {
        let snapshot = self
            .contracts
            .task(alloy::primitives::U256::from_be_bytes(*task))
            .await?;
        let project = self.contracts.project(snapshot.projectId).await?;
        self.program(snapshot.programHash, &project.programUri)
            .await
    }

    /// Stores a source a project registered (checked against its hash on chain by the caller).
    pub(crate) fn keep_source(&self, source: &str) -> Result<Arc<Program>, NodeError> {
        let program =
            Arc::new(Program::from_source(source).map_err(|e| NodeError::Task(e.to_string()))?);
        self.store.put_program_source(&program.hash.0, source)?;
        Ok(program)
    }

    /// Answers a peer's request for a source: only sources this node keeps, under the size limit.
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

    async fn fetch_source(&self, hash: B256, uri: &str) -> Result<String, NodeError> {
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
        if uri.starts_with("http://") || uri.starts_with("https://") {
            let source = fetch_url(uri).await?;
            if keccak256(source.as_bytes()) == hash {
                return Ok(source);
            }
            return Err(NodeError::Task(format!(
                "the source at {uri} does not hash to {hash}"
            )));
        }
        Err(NodeError::Unavailable(format!(
            "program {hash} is not on this node, its peers or at {uri:?}"
        )))
    }
}

/// GETs a source of at most [`MAX_SOURCE`] bytes.
async fn fetch_url(uri: &str) -> Result<String, NodeError> {
    let fail = |e: String| NodeError::Unavailable(format!("fetching {uri}: {e}"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut response = client
        .get(uri)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| fail(e.to_string()))? {
        if body.len() + chunk.len() > MAX_SOURCE {
            return Err(fail(format!("larger than {MAX_SOURCE} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| fail("not UTF-8".into()))
}
