//! Program sources by hash: kept in the store, served to any peer that asks, fetched from peers
//! (or, for a task this node works on, the project's `https` URL) when missing. A source is
//! accepted only if keccak256 of it is the hash the chain pins, so whoever serves it cannot change
//! what runs. Compiling is bounded by the compiler's own limits, runs off the async workers one
//! program at a time, and a program that failed is not tried again for a minute. What anyone may
//! ask through the API (a task's source, its outputs) never compiles anything.

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
/// How often a busy peer is asked, and how long apart.
const BUSY_TRIES: usize = 3;
const BUSY_WAIT: Duration = Duration::from_millis(600);

/// Where a missing source may be fetched from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// Peers only: for requests anyone can make (the API).
    Mesh,
    /// Peers, then the project's URL: for tasks this node opens or computes.
    MeshOrUrl,
}

impl Inner {
    /// The program whose source hashes to `hash`: from memory, the store, the mesh (asking
    /// `first` first: a task's coordinator, which holds it), or `uri`. One load at a time (a
    /// second request for the same program waits and finds it cached).
    pub(crate) async fn program(
        &self,
        hash: B256,
        uri: &str,
        fetch: Fetch,
        first: Option<PeerId>,
    ) -> Result<Arc<Program>, NodeError> {
        if let Some(known) = self.known_program(hash) {
            return known;
        }
        let _one_at_a_time = self.compiling.lock().await;
        if let Some(known) = self.known_program(hash) {
            return known;
        }
        let loaded = match self.store.program_source(&hash.0)? {
            Some(source) => Ok(source),
            None => self.fetch_source(hash, uri, fetch, first).await,
        };
        let loaded = match loaded {
            Ok(source) => self.compile(hash, source).await,
            Err(e) => Err(e),
        };
        self.remember(hash, &loaded);
        loaded
    }

    /// A cached program, or a recent failure to load it.
    fn known_program(&self, hash: B256) -> Option<Result<Arc<Program>, NodeError>> {
        if let Some(p) = self.volatile().programs.get(&hash) {
            return Some(Ok(p.clone()));
        }
        self.recent_failure(hash, "program").map(Err)
    }

    /// Why loading what hashes to `hash` (a program or a module) failed, if it did recently.
    pub(crate) fn recent_failure(&self, hash: B256, what: &str) -> Option<NodeError> {
        self.volatile()
            .program_failures
            .get(&hash)
            .filter(|(when, _)| when.elapsed() < FAILURE_BACKOFF)
            .map(|(_, reason)| NodeError::Unavailable(format!("{what} {hash}: {reason}")))
    }

    /// A refusal if `from` has used up its share of large answers (sources and modules).
    pub(crate) fn large_answer_refused(&self, from: PeerId) -> Option<Response> {
        let mut limiter = self.large_answers.lock().unwrap_or_else(|p| p.into_inner());
        limiter.admit(from, Instant::now()).err().map(|_| {
            Response::refused(
                crate::messages::RefusalKind::Busy,
                "too many programs or modules asked for; ask again",
            )
        })
    }

    /// Remembers a failed load, so that requests cannot make the node retry it at once.
    pub(crate) fn remember_failure(&self, hash: B256, e: &NodeError) {
        crate::node::insert_capped(
            &mut self.volatile().program_failures,
            MAX_REMEMBERED_FAILURES,
            hash,
            (Instant::now(), e.to_string()),
        );
    }

    fn remember(&self, hash: B256, loaded: &Result<Arc<Program>, NodeError>) {
        match loaded {
            Ok(program) => crate::node::insert_capped(
                &mut self.volatile().programs,
                MAX_CACHED_PROGRAMS,
                hash,
                program.clone(),
            ),
            Err(e) => self.remember_failure(hash, e),
        }
    }

    /// Compiles a source checked against `hash` on a blocking thread (the caller holds the
    /// compile lock) and stores it once it compiled.
    async fn compile(&self, hash: B256, source: String) -> Result<Arc<Program>, NodeError> {
        let kept = source.clone();
        let compiled = tokio::task::spawn_blocking(move || Program::from_chain(&source, hash))
            .await
            .map_err(|e| NodeError::Task(format!("compiling: {e}")))?
            .map(Arc::new)
            .map_err(|e| NodeError::Task(e.to_string()))?;
        self.store.put_program_source(&hash.0, &kept)?;
        Ok(compiled)
    }

    /// Keeps a source a project registered (the caller checked its hash on chain): compiled once,
    /// under the same lock and failure memory as every other load.
    pub(crate) async fn keep_source(&self, source: &str) -> Result<B256, NodeError> {
        let hash = keccak256(source.as_bytes());
        if self.store.program_source(&hash.0)?.is_some() {
            return Ok(hash);
        }
        if let Some(Err(e)) = self.known_program(hash) {
            return Err(e);
        }
        let _one_at_a_time = self.compiling.lock().await;
        if let Some(known) = self.known_program(hash) {
            return known.map(|_| hash);
        }
        let loaded = self.compile(hash, source.to_string()).await;
        self.remember(hash, &loaded);
        loaded.map(|_| hash)
    }

    /// A task's program hash: from its stored record, else from the chain.
    async fn task_program_hash(&self, task: &[u8; 32]) -> Result<B256, NodeError> {
        if let Some(info) = self.store.task(task)?.and_then(|r| r.info) {
            return Ok(B256::from(info.program_hash));
        }
        let snapshot = self
            .contracts
            .task(alloy::primitives::U256::from_be_bytes(*task))
            .await?;
        Ok(snapshot.programHash)
    }

    /// A task's program source, without compiling it: from the store or, for a source this
    /// node does not keep, from its peers (then kept: it is the hash the chain pins).
    pub(crate) async fn source_of_task(
        &self,
        task: &[u8; 32],
    ) -> Result<(B256, String), NodeError> {
        let hash = self.task_program_hash(task).await?;
        if let Some(source) = self.store.program_source(&hash.0)? {
            return Ok((hash, source));
        }
        if let Some(Err(e)) = self.known_program(hash) {
            return Err(e);
        }
        let _one_at_a_time = self.compiling.lock().await;
        let fetched = self.fetch_source(hash, "", Fetch::Mesh, None).await;
        match fetched {
            Ok(source) => {
                self.store.put_program_source(&hash.0, &source)?;
                Ok((hash, source))
            }
            Err(e) => {
                self.remember_failure(hash, &e);
                Err(e)
            }
        }
    }

    /// A task's program if this node has it compiled already (reading outputs for the API).
    pub(crate) async fn cached_program_of_task(&self, task: &[u8; 32]) -> Option<Arc<Program>> {
        let hash = self.task_program_hash(task).await.ok()?;
        self.volatile().programs.get(&hash).cloned()
    }

    /// Answers a peer's request for a source: only sources this node keeps, within the asker's
    /// share of large answers.
    pub(crate) fn serve_source(&self, from: PeerId, hash: [u8; 32]) -> Response {
        if let Some(busy) = self.large_answer_refused(from) {
            return busy;
        }
        match self.store.program_source(&hash) {
            Ok(Some(source)) => Response::ProgramSource(source),
            Ok(None) => Response::refused(
                crate::messages::RefusalKind::Unknown,
                "no such program here",
            ),
            Err(e) => Response::refused(crate::messages::RefusalKind::Failed, e.to_string()),
        }
    }

    async fn fetch_source(
        &self,
        hash: B256,
        uri: &str,
        fetch: Fetch,
        first: Option<PeerId>,
    ) -> Result<String, NodeError> {
        let source = self
            .fetch_by_hash(
                hash,
                Request::ProgramSource { hash: hash.0 },
                uri,
                fetch,
                MAX_SOURCE,
                first,
            )
            .await?;
        String::from_utf8(source)
            .map_err(|_| NodeError::Unavailable(format!("program {hash} is not UTF-8")))
    }

    /// What hashes to `hash`: asked of peers with `request` (answered with a source or a
    /// module; `first` before the others), then for `MeshOrUrl` fetched from `uri` (https
    /// only, at most `max` bytes).
    pub(crate) async fn fetch_by_hash(
        &self,
        hash: B256,
        request: Request,
        uri: &str,
        fetch: Fetch,
        max: usize,
        first: Option<PeerId>,
    ) -> Result<Vec<u8>, NodeError> {
        let mut peers: Vec<PeerId> = self.network.connected_peers().await?;
        if let Some(first) = first {
            peers.retain(|p| *p != first);
            peers.insert(0, first);
        }
        let request = crate::messages::encode(&request);
        for peer in peers.into_iter().take(PEERS_ASKED) {
            // A peer serves each asker a couple of large answers a second: one that says it is
            // busy is asked again shortly (a seat fetches a task's program and code at once).
            for _ in 0..BUSY_TRIES {
                let asked_at = std::time::Instant::now();
                let asked = self.network.request(peer, request.clone());
                let Ok(Ok(bytes)) = tokio::time::timeout(PEER_WAIT, asked).await else {
                    break;
                };
                let found = match crate::messages::decode(&bytes) {
                    Ok(Response::ProgramSource(source)) => source.into_bytes(),
                    Ok(Response::Module(module)) => module,
                    // Only a prompt "busy" is worth waiting for: a peer that answers it late
                    // would otherwise hold the fetch (and the node's load lock) three times
                    // as long.
                    Ok(Response::Refused {
                        kind: crate::messages::RefusalKind::Busy,
                        ..
                    }) if asked_at.elapsed() < BUSY_WAIT => {
                        tokio::time::sleep(BUSY_WAIT).await;
                        continue;
                    }
                    _ => break,
                };
                if found.len() <= max && keccak256(&found) == hash {
                    return Ok(found);
                }
                break;
            }
        }
        if fetch == Fetch::MeshOrUrl && uri.starts_with("https://") {
            let found = fetch_url(uri, max).await?;
            if keccak256(&found) == hash {
                return Ok(found);
            }
            return Err(NodeError::Unavailable(format!(
                "what {uri} serves does not hash to {hash}"
            )));
        }
        Err(NodeError::Unavailable(format!(
            "{hash} is not on this node or its peers"
        )))
    }
}

/// GETs at most `max` bytes over https, following no redirects.
async fn fetch_url(uri: &str, max: usize) -> Result<Vec<u8>, NodeError> {
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
        if body.len() + chunk.len() > max {
            return Err(fail(format!("larger than {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
