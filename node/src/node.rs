//! A running node: the mesh, the chain, the store and the HTTP API, and the loops that connect
//! them (answering peers' requests, following gossip about tasks).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use conclave_chain::Contracts;
use conclave_p2p::config::NetworkConfig;
use conclave_p2p::messages::GossipMessage;
use conclave_p2p::network::{InboundRequest, Network, NetworkEvent};
use libp2p::PeerId;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::envelope::SecretKey;
use crate::messages::{self, Request, Response, TaskId, TaskInfo};
use crate::metrics::Metrics;
use crate::ratelimit::{Limits, RateLimiter};
use crate::store::{Store, StoreError};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a member's preprocessing for a task is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PrepStatus {
    Running,
    Ready,
    Failed(String),
}

/// Errors starting or running a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("network: {0}")]
    Network(#[from] conclave_p2p::network::NetworkError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("chain: {0}")]
    Chain(#[from] conclave_chain::ContractError),
    #[error("HTTP API: {0}")]
    Http(String),
    #[error("{0}")]
    Task(String),
    #[error("peer {peer} refused: {reason}")]
    Refused {
        peer: PeerId,
        kind: crate::messages::RefusalKind,
        reason: String,
    },
    #[error("unknown task")]
    UnknownTask,
    #[error("the task's draw cannot form a committee: {0}")]
    DrawUnusable(String),
    #[error("{0}")]
    Unavailable(String),
}

/// Everything a node is started with.
pub struct NodeSetup {
    pub network: NetworkConfig,
    pub contracts: Contracts,
    /// The operator's chain key (signs results and transactions).
    pub operator: PrivateKeySigner,
    pub store: Store,
    /// Where the HTTP API listens (port 0: any free port).
    pub http: SocketAddr,
    /// Request rates the HTTP API admits.
    pub rate_limits: crate::ratelimit::Limits,
    /// Blocks on top of a `ResultPublished` before the node reports it.
    pub confirmations: u64,
    /// KZG parameters for `halo2` tasks (read at the first one).
    pub halo2_srs: Option<std::path::PathBuf>,
    /// The W3bstream VM services this node hands `byop` and `tee` tasks to.
    pub byop: crate::byop::ByopConfig,
}

/// Projects whose open task this node remembers (from gossip or its own openings).
pub const MAX_KNOWN_OPEN: usize = 1024;
/// Task infos cached for the devices this node serves.
pub const MAX_CACHED_INFOS: usize = 4096;
/// Tasks this node preprocesses for at once; a `Start` beyond is refused as busy.
pub const MAX_PREPARING: usize = 8;
/// How long [`Node::shutdown`] waits for background work and HTTP connections to end.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// Latest input close time a gossiped task may announce: a day ahead.
const MAX_ANNOUNCED_WINDOW_MS: u64 = 86_400_000;

/// Per-process state that is rebuilt after a restart. Gossip and any device's requests add to
/// it, so every map is capped: a full map forgets an arbitrary entry (these are hints and
/// caches; the chain and the store stay authoritative).
#[derive(Default)]
pub(crate) struct Volatile {
    /// Open task, its coordinator and its input close time, per project.
    pub open: HashMap<u64, (TaskId, PeerId, u64)>,
    pub infos: HashMap<TaskId, TaskInfo>,
    pub prep: HashMap<TaskId, watch::Receiver<PrepStatus>>,
    /// Compiled programs by source hash.
    pub programs: HashMap<alloy::primitives::B256, Arc<crate::program::Program>>,
    /// The slots each sealed-records task was run over here, for the other members to compare.
    pub run_slots: HashMap<TaskId, Vec<u32>>,
    /// Compiled wasm modules by hash.
    pub modules: HashMap<alloy::primitives::B256, conclave_provers::wasm::WasmModule>,
    /// Programs whose last load failed: when, and why.
    pub program_failures: HashMap<alloy::primitives::B256, (std::time::Instant, String)>,
    /// Project owners as the chain records them (ProjectRegistry never changes an owner), for
    /// projects of tasks this node is a member of.
    pub project_owners: HashMap<u64, alloy::primitives::Address>,
}

/// Inserts into a map holding at most `cap` entries, forgetting an arbitrary other one if full.
pub(crate) fn insert_capped<K: std::hash::Hash + Eq + Copy, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    key: K,
    value: V,
) {
    if map.len() >= cap
        && !map.contains_key(&key)
        && let Some(other) = map.keys().next().copied()
    {
        map.remove(&other);
    }
    map.insert(key, value);
}

impl Volatile {
    /// Remembers `project`'s open task: always one this node opened (`own`), a gossiped one if
    /// its close time is later than the one known (and not past, nor absurdly far ahead).
    pub fn note_open(
        &mut self,
        project: u64,
        task: TaskId,
        coordinator: PeerId,
        closes: u64,
        own: bool,
    ) {
        let now = now_ms();
        if closes <= now || closes > now + MAX_ANNOUNCED_WINDOW_MS {
            return;
        }
        if !own
            && self
                .open
                .get(&project)
                .is_some_and(|(_, _, c)| *c >= closes)
        {
            return;
        }
        if self.open.len() >= MAX_KNOWN_OPEN {
            self.open.retain(|_, (_, _, c)| *c > now);
        }
        insert_capped(
            &mut self.open,
            MAX_KNOWN_OPEN,
            project,
            (task, coordinator, closes),
        );
    }

    pub fn cache_info(&mut self, info: &TaskInfo) {
        insert_capped(
            &mut self.infos,
            MAX_CACHED_INFOS,
            info.task_id,
            info.clone(),
        );
    }

    /// Preprocessing runs still going.
    pub fn preparing(&self) -> usize {
        self.prep
            .values()
            .filter(|rx| *rx.borrow() == PrepStatus::Running)
            .count()
    }
}

/// How much a node holds in its bounded maps, parked streams and request handlers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    pub known_open: usize,
    pub cached_infos: usize,
    pub preparing: usize,
    pub parked_streams: usize,
    pub requests_in_flight: usize,
}

pub(crate) struct Inner {
    pub network: Network,
    pub contracts: Contracts,
    pub operator: PrivateKeySigner,
    pub input_key: SecretKey,
    /// The node's libp2p identity (signs slot tickets).
    pub keypair: libp2p::identity::Keypair,
    pub store: Store,
    pub metrics: Metrics,
    pub prover: conclave_provers::spdz::SpdzProver,
    /// Runs `wasm` tasks' modules ([`crate::modules`]).
    pub wasm: conclave_provers::wasm::WasmEngine,
    /// Keys and proofs of `halo2` tasks ([`crate::halo2`]).
    pub halo2: crate::halo2::Halo2State,
    /// Prover clients of `byop` and `tee` tasks ([`crate::byop`]).
    pub(crate) byop: crate::byop::ByopState,
    pub chain_id: u64,
    pub router: Address,
    pub confirmations: u64,
    volatile: Mutex<Volatile>,
    /// Permits for peers' requests being handled ([`MAX_REQUESTS_IN_FLIGHT`]).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Serialises task opening per project at this node.
    pub opening: tokio::sync::Mutex<()>,
    /// Serialises compiling programs ([`crate::programs`]).
    pub compiling: tokio::sync::Mutex<()>,
    /// Sources and modules served per peer: a short request buys up to a megabyte.
    pub large_answers: Mutex<RateLimiter<PeerId>>,
    /// Draws (task openings) this node may still pay for.
    pub openings: Mutex<crate::ratelimit::Budget>,
    weak: Weak<Inner>,
    /// Cancelled when the node shuts down: background work ends at its next await.
    pub(crate) stopping: CancellationToken,
    /// Background work (task drivers, preprocessing, request handlers), which
    /// [`Node::shutdown`] waits for so that nothing holds the store once it returns.
    pub(crate) work: TaskTracker,
}

impl Inner {
    pub(crate) fn volatile(&self) -> MutexGuard<'_, Volatile> {
        self.volatile.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn me(&self) -> Arc<Inner> {
        self.weak.upgrade().expect("node alive while its tasks run")
    }

    /// Runs `work` in the background until it ends or the node shuts down.
    pub(crate) fn spawn_work(&self, work: impl Future<Output = ()> + Send + 'static) {
        let stopping = self.stopping.clone();
        self.work.spawn(async move {
            tokio::select! {
                () = stopping.cancelled() => {}
                () = work => {}
            }
        });
    }

    /// Sends `request` to `peer` (answering locally when it is this node).
    pub(crate) async fn ask(&self, peer: PeerId, request: Request) -> Result<Response, NodeError> {
        if peer == self.network.peer_id() {
            let response = self.handle(peer, request).await;
            if let Response::Refused { kind, reason } = response {
                return Err(NodeError::Refused { peer, kind, reason });
            }
            return Ok(response);
        }
        self.ask_remote(peer, request).await
    }

    /// Sends `request` to another node (never answered locally: for handlers that ask peers).
    pub(crate) async fn ask_remote(
        &self,
        peer: PeerId,
        request: Request,
    ) -> Result<Response, NodeError> {
        let bytes = self
            .network
            .request(peer, messages::encode(&request))
            .await?;
        let response = messages::decode(&bytes).map_err(|e| NodeError::Refused {
            peer,
            kind: crate::messages::RefusalKind::Invalid,
            reason: e.to_string(),
        })?;
        if let Response::Refused { kind, reason } = response {
            return Err(NodeError::Refused { peer, kind, reason });
        }
        Ok(response)
    }

    /// Answers any request from a peer.
    pub(crate) async fn handle(&self, from: PeerId, request: Request) -> Response {
        match request {
            Request::GetTask { .. } | Request::AllocateSlot { .. } | Request::Status { .. } => {
                self.coordinator_request(request).await
            }
            Request::ProgramSource { hash } => self.serve_source(from, hash),
            Request::Module { hash } => self.serve_module(from, hash),
            other => self.member_request(from, other).await,
        }
    }
}

/// A running node. Dropping it does not stop it; call [`Node::shutdown`].
pub struct Node {
    inner: Arc<Inner>,
    http: SocketAddr,
    /// Loops aborted at shutdown.
    loops: Vec<JoinHandle<()>>,
    /// The HTTP API, which ends by itself at shutdown once its connections are answered.
    api: JoinHandle<()>,
}

impl Node {
    /// Starts the mesh, the request and gossip loops and the HTTP API, and resumes stored tasks.
    pub async fn start(setup: NodeSetup) -> Result<Node, NodeError> {
        let keypair = setup.network.keypair.clone();
        // The key devices seal inputs for: derived from the libp2p key, as registered.
        let input_key = crate::identity::input_key_of(&keypair)
            .map_err(|e| NodeError::Task(format!("the node's input key: {e}")))?;
        let byop = crate::byop::ByopState::new(&setup.byop)
            .map_err(|e| NodeError::Task(format!("[[provers.byop]]: {e}")))?;
        let network = Network::start(setup.network).await?;
        let requests = network
            .requests()
            .ok_or_else(|| NodeError::Task("request stream already taken".into()))?;
        let chain_id = setup.contracts.addresses().chain_id;
        let router = setup.contracts.addresses().task_router;
        let prover = conclave_provers::spdz::SpdzProver {
            channels: network.mpc().clone(),
        };
        let wasm = conclave_provers::wasm::WasmEngine::new(crate::manifest::wasm_limits())
            .map_err(|e| NodeError::Task(format!("the wasm engine: {e}")))?;
        let inner = Arc::new_cyclic(|weak| Inner {
            wasm,
            halo2: crate::halo2::Halo2State::new(setup.halo2_srs),
            byop,
            network,
            contracts: setup.contracts,
            operator: setup.operator,
            input_key,
            keypair,
            store: setup.store,
            metrics: Metrics::new(),
            prover,
            chain_id,
            router,
            confirmations: setup.confirmations,
            volatile: Mutex::new(Volatile::default()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_REQUESTS_IN_FLIGHT)),
            opening: tokio::sync::Mutex::new(()),
            compiling: tokio::sync::Mutex::new(()),
            large_answers: Mutex::new(RateLimiter::new(
                Limits::large_answers(),
                std::time::Instant::now(),
            )),
            openings: Mutex::new(crate::ratelimit::Budget::per_minute(
                setup.rate_limits.openings_per_minute,
                std::time::Instant::now(),
            )),
            weak: weak.clone(),
            stopping: CancellationToken::new(),
            work: TaskTracker::new(),
        });
        let listener = tokio::net::TcpListener::bind(setup.http)
            .await
            .map_err(|e| NodeError::Http(format!("binding {}: {e}", setup.http)))?;
        let http = listener
            .local_addr()
            .map_err(|e| NodeError::Http(e.to_string()))?;
        let mut loops = vec![
            tokio::spawn(serve_requests(inner.clone(), requests)),
            tokio::spawn(follow_gossip(inner.clone())),
            tokio::spawn(crate::sweep::sweep_loop(inner.clone())),
        ];
        let api = tokio::spawn(crate::api::serve(
            inner.clone(),
            listener,
            setup.rate_limits,
        ));
        inner.resume()?;
        let node = inner.clone();
        loops.push(tokio::spawn(async move { node.halo2.warm_up().await }));
        Ok(Node {
            inner,
            http,
            loops,
            api,
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.network.peer_id()
    }

    pub fn operator(&self) -> Address {
        self.inner.operator.address()
    }

    pub fn network(&self) -> &Network {
        &self.inner.network
    }

    /// The HTTP API's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// Opens a task for `project` with this node as coordinator (what an entry node does when a
    /// device asks for a project that has no open task).
    pub async fn open_task(&self, project: u64) -> Result<TaskInfo, NodeError> {
        self.inner.open_task(project).await
    }

    /// The stored record of a task.
    pub fn task(&self, task: &TaskId) -> Result<Option<crate::store::TaskRecord>, NodeError> {
        Ok(self.inner.store.task(task)?)
    }

    /// Whether this node still stores any secret material of a task: its MAC key share, a
    /// triple share or a masked input.
    pub fn holds_material(&self, task: &TaskId) -> Result<bool, NodeError> {
        Ok(self.inner.store.holds_material(task)?)
    }

    /// What the node holds now in its capped maps, parked streams and request handlers.
    pub fn memory_use(&self) -> MemoryUse {
        let v = self.inner.volatile();
        MemoryUse {
            known_open: v.open.len(),
            cached_infos: v.infos.len(),
            preparing: v.preparing(),
            parked_streams: self.inner.network.mpc().parked(),
            requests_in_flight: MAX_REQUESTS_IN_FLIGHT - self.inner.in_flight.available_permits(),
        }
    }

    /// Prometheus text: the node's metrics and libp2p's.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics_text()
    }

    /// Stops taking work, ends the loops and every task step in flight (waiting up to
    /// [`SHUTDOWN_WAIT`] for them), then the mesh. Once the node is dropped after this, nothing
    /// of it holds the store (a restart in the same process can open it again).
    pub async fn shutdown(self) {
        self.inner.stopping.cancel();
        self.inner.work.close();
        for l in &self.loops {
            l.abort();
        }
        let api = self.api.abort_handle();
        let ended = async {
            for l in self.loops {
                let _ = l.await;
            }
            let _ = self.api.await;
            self.inner.work.wait().await;
        };
        if tokio::time::timeout(SHUTDOWN_WAIT, ended).await.is_err() {
            tracing::warn!("background work did not end within {SHUTDOWN_WAIT:?}");
            api.abort();
        }
        self.inner.network.shutdown().await;
    }
}

impl Inner {
    pub(crate) fn metrics_text(&self) -> String {
        // Derived from the store at each scrape, so they stay right across restarts.
        if let Ok(tasks) = self.store.tasks() {
            // Counted first, then set: two scrapes at once must not add up their counts.
            let mut by_state: std::collections::BTreeMap<&'static str, i64> = Default::default();
            let mut triples = 0;
            for t in tasks {
                *by_state.entry(t.state.name()).or_default() += 1;
                // A collecting member with complete material holds a triple per bit per slot.
                if t.member
                    && t.state == crate::task::TaskState::Committee
                    && let Some(info) = &t.info
                    && matches!(self.store.alpha(&t.task_id), Ok(Some(_)))
                {
                    triples += i64::from(info.max_inputs) * i64::from(info.input_bits);
                }
            }
            self.metrics.pool_triples.set(triples);
            self.metrics.tasks.clear();
            for (state, count) in by_state {
                self.metrics
                    .tasks
                    .get_or_create(&crate::metrics::StateLabel {
                        state: state.into(),
                    })
                    .set(count);
            }
        }
        // One exposition: both registries' families, then the single `# EOF` OpenMetrics ends with.
        let mut text = self.metrics.encode();
        text.push_str(&self.network.metrics_text());
        let _ = prometheus_client::encoding::text::encode_eof(&mut text);
        text
    }
}

/// Requests from peers handled at once; more are refused as busy until one finishes (a request
/// may wait on preprocessing, so each holds memory and a task while it runs).
pub const MAX_REQUESTS_IN_FLIGHT: usize = 512;

/// Answers peers' requests: each peer within its rate ([`crate::ratelimit::Limits::peers`]),
/// all of them within the node's rate and [`MAX_REQUESTS_IN_FLIGHT`]; the rest are refused as
/// busy at once, before any decoding or work.
async fn serve_requests(
    inner: Arc<Inner>,
    mut requests: tokio::sync::mpsc::Receiver<InboundRequest>,
) {
    let mut limiter = RateLimiter::<PeerId>::new(Limits::peers(), std::time::Instant::now());
    while let Some(r) = requests.recv().await {
        let admitted = limiter.admit(r.from, std::time::Instant::now());
        let permit = inner.in_flight.clone().try_acquire_owned();
        let (Ok(()), Ok(permit)) = (admitted, permit) else {
            inner.metrics.requests_refused_busy.inc();
            let busy = Response::refused(messages::RefusalKind::Busy, "at the request limit");
            let _ = r.reply.send(messages::encode(&busy));
            continue;
        };
        let handler = inner.clone();
        inner.spawn_work(async move {
            let inner = handler;
            let response = match messages::decode::<Request>(&r.body) {
                Ok(request) => inner.handle(r.from, request).await,
                Err(e) => Response::refused(messages::RefusalKind::Invalid, e.to_string()),
            };
            let _ = r.reply.send(messages::encode(&response));
            drop(permit);
        });
    }
}

/// Learns of tasks other nodes opened, so devices at this node join them.
async fn follow_gossip(inner: Arc<Inner>) {
    let mut events = inner.network.events();
    loop {
        match events.recv().await {
            Ok(NetworkEvent::Gossip {
                from,
                message: GossipMessage::Task(t),
            }) => {
                inner.volatile().note_open(
                    t.project_id,
                    t.task_id,
                    from,
                    t.inputs_closed_at_ms,
                    false,
                );
            }
            Ok(NetworkEvent::PeerLive(_)) | Ok(NetworkEvent::PeerExpired(_)) => {
                if let Ok(live) = inner.network.live_peers().await {
                    inner.metrics.live_peers.set(live.len() as i64);
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(_) => return,
        }
    }
}

/// How long to wait for a peer's answer before treating it as gone.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(10);
