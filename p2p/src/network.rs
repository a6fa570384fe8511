//! The [`Network`] handle and the swarm task behind it.
//!
//! The swarm runs in its own tokio task; the handle talks to it over a command channel and hears
//! from it through a broadcast of [`NetworkEvent`]s. Every gossip message is decoded, validated
//! and its signature checked ([`GossipMessage::open`]) before gossipsub may forward it; invalid
//! ones are rejected, which lowers the score of the peer that passed them on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use libp2p::core::transport::ListenerId;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns, request_response};
use prometheus_client::registry::Registry;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::addresses::{MAX_ADDR_BYTES, MAX_HEARTBEAT_ADDRS, reachable_addresses};
use crate::behaviour::{Behaviour, BehaviourEvent, ControlRequest, ControlResponse, build_swarm};
use crate::channel::MpcChannels;
use crate::config::NetworkConfig;
use crate::liveview::{LivePeer, LiveView, Observed};
use crate::messages::{GossipMessage, Heartbeat, Topic};
use crate::upkeep::{Connections, Watermarks};

/// Why a network operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("could not start the swarm: {0}")]
    Start(String),
    #[error("could not listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("could not publish: {0}")]
    Publish(String),
    #[error("could not dial {addr}: {reason}")]
    Dial { addr: String, reason: String },
    #[error("control request to {peer} failed: {reason}")]
    Request { peer: String, reason: String },
    #[error("the network task has stopped")]
    Stopped,
}

/// What the network tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkEvent {
    /// A validated gossip message from another node.
    Gossip {
        from: PeerId,
        message: GossipMessage,
    },
    /// A peer's first heartbeat since it was last live.
    PeerLive(PeerId),
    /// A peer's heartbeats stopped for longer than the ttl.
    PeerExpired(PeerId),
    /// A gossip message failed validation and was rejected; `from` is the peer that passed it on.
    Rejected { from: PeerId, reason: String },
}

enum Command {
    Publish(
        Topic,
        GossipMessage,
        oneshot::Sender<Result<(), NetworkError>>,
    ),
    #[cfg(feature = "test-support")]
    PublishRaw(Topic, Vec<u8>, oneshot::Sender<Result<(), NetworkError>>),
    Dial(Multiaddr, oneshot::Sender<Result<(), NetworkError>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Connected(oneshot::Sender<Vec<PeerId>>),
    GossipPeers(Topic, oneshot::Sender<Vec<PeerId>>),
    Live(oneshot::Sender<Vec<LivePeer>>),
    Score(PeerId, oneshot::Sender<Option<f64>>),
    Status(
        PeerId,
        oneshot::Sender<Result<ControlResponse, NetworkError>>,
    ),
    App(
        PeerId,
        Vec<u8>,
        oneshot::Sender<Result<ControlResponse, NetworkError>>,
    ),
    Shutdown(oneshot::Sender<()>),
}

/// An application request from a peer. Answer it by sending the reply bytes on `reply`; dropping
/// `reply` refuses the request.
#[derive(Debug)]
pub struct InboundRequest {
    pub from: PeerId,
    pub body: Vec<u8>,
    pub reply: oneshot::Sender<Vec<u8>>,
}

/// A running node's handle to the mesh. Cheap to clone.
#[derive(Clone)]
pub struct Network {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NetworkEvent>,
    mpc: MpcChannels,
    registry: Arc<Mutex<Registry>>,
    inbound: Arc<Mutex<Option<mpsc::Receiver<InboundRequest>>>>,
}

impl Network {
    /// Builds the swarm, starts listening and joining through the bootstrap peers, and runs it
    /// in its own task.
    pub async fn start(cfg: NetworkConfig) -> Result<Network, NetworkError> {
        let mut registry = Registry::default();
        let metrics = libp2p::metrics::Metrics::new(&mut registry);
        let mut swarm = build_swarm(&cfg).map_err(|e| NetworkError::Start(e.to_string()))?;
        let mut listeners = Vec::with_capacity(cfg.listen.len());
        let started = listen_and_dial(&mut swarm, &cfg, &mut listeners);
        if let Err(e) = started {
            stop_listening(&mut swarm, &listeners);
            return Err(e);
        }
        let peer_id = *swarm.local_peer_id();
        let dial_seed = crate::upkeep::dial_seed(&cfg.keypair);
        let (connect, connects) = mpsc::channel(256);
        let mpc = MpcChannels::start(
            swarm.behaviour().stream.new_control(),
            peer_id,
            cfg.tamper.clone(),
            connect,
        );
        let (commands, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(4096);
        let (inbound_tx, inbound_rx) = mpsc::channel(1024);
        let task = SwarmTask {
            inbound: inbound_tx,
            replies: FuturesUnordered::new(),
            live: LiveView::new(cfg.heartbeat_ttl),
            swarm,
            commands: rx,
            events: events.clone(),
            metrics,
            cfg,
            requests: HashMap::new(),
            listeners,
            top_ups: 0,
            dial_seed,
            connects,
            sessions: mpc.sessions(),
            connections: Connections::default(),
        };
        tokio::spawn(task.run());
        Ok(Network {
            peer_id,
            commands,
            events,
            mpc,
            registry: Arc::new(Mutex::new(registry)),
            inbound: Arc::new(Mutex::new(Some(inbound_rx))),
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    /// Direct per-session MPC channels to other nodes.
    pub fn mpc(&self) -> &MpcChannels {
        &self.mpc
    }

    /// libp2p metrics in the OpenMetrics text format.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode_registry(&mut out, &registry)
            .expect("writing to a String");
        out
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetworkError::Stopped)?;
        rx.await.map_err(|_| NetworkError::Stopped)
    }

    /// Publishes a message on its topic.
    pub async fn publish(&self, message: GossipMessage) -> Result<(), NetworkError> {
        self.ask(|tx| Command::Publish(message.topic(), message, tx))
            .await?
    }

    /// Test-only: publishes a message, sealed by this node, on any topic (its own or another).
    #[cfg(feature = "test-support")]
    pub async fn publish_on(
        &self,
        topic: Topic,
        message: GossipMessage,
    ) -> Result<(), NetworkError> {
        self.ask(|tx| Command::Publish(topic, message, tx)).await?
    }

    /// Test-only: publishes bytes without encoding or checking them, as a misbehaving peer would.
    #[cfg(feature = "test-support")]
    pub async fn publish_raw(&self, topic: Topic, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.ask(|tx| Command::PublishRaw(topic, bytes, tx)).await?
    }

    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetworkError> {
        self.ask(|tx| Command::Dial(addr, tx)).await?
    }

    /// The addresses this node listens on, each with its `/p2p/<peer id>` suffix.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Waits until the node listens somewhere and returns its addresses.
    pub async fn wait_listening(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        loop {
            let addrs = self.listen_addrs().await?;
            if !addrs.is_empty() {
                return Ok(addrs);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetworkError> {
        self.ask(Command::Connected).await
    }

    /// Peers this node exchanges gossip with on `topic`.
    pub async fn gossip_peers(&self, topic: Topic) -> Result<Vec<PeerId>, NetworkError> {
        self.ask(|tx| Command::GossipPeers(topic, tx)).await
    }

    /// Peers with a recent heartbeat.
    pub async fn live_peers(&self) -> Result<Vec<LivePeer>, NetworkError> {
        self.ask(Command::Live).await
    }

    /// The gossip score this node gives `peer`.
    pub async fn peer_score(&self, peer: PeerId) -> Result<Option<f64>, NetworkError> {
        self.ask(|tx| Command::Score(peer, tx)).await
    }

    /// Asks `peer` for its status over the control protocol (request-response, CBOR).
    pub async fn status(&self, peer: PeerId) -> Result<ControlResponse, NetworkError> {
        self.ask(|tx| Command::Status(peer, tx)).await?
    }

    /// Sends an application request to `peer` and waits for its answer (or the request timeout).
    pub async fn request(&self, peer: PeerId, body: Vec<u8>) -> Result<Vec<u8>, NetworkError> {
        match self.ask(|tx| Command::App(peer, body, tx)).await?? {
            ControlResponse::App(bytes) => Ok(bytes),
            ControlResponse::Refused(reason) => Err(NetworkError::Request {
                peer: peer.to_string(),
                reason,
            }),
            other => Err(NetworkError::Request {
                peer: peer.to_string(),
                reason: format!("unexpected answer {other:?}"),
            }),
        }
    }

    /// The stream of application requests from peers; the first caller gets it, later callers
    /// `None`. Until it is taken, and after it is dropped, requests are refused.
    pub fn requests(&self) -> Option<mpsc::Receiver<InboundRequest>> {
        self.inbound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Stops the swarm task (its connections close).
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}

/// Listens on the configured addresses (recording each listener) and dials the bootstrap peers.
fn listen_and_dial(
    swarm: &mut Swarm<Behaviour>,
    cfg: &NetworkConfig,
    listeners: &mut Vec<ListenerId>,
) -> Result<(), NetworkError> {
    for addr in &cfg.listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        listeners.push(id);
    }
    for addr in &cfg.bootstrap {
        if let Some(peer) = peer_of(addr)
            && let Some(kad) = swarm.behaviour_mut().kad.as_mut()
        {
            kad.add_address(&peer, addr.clone());
        }
        swarm.dial(addr.clone()).map_err(|e| NetworkError::Dial {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// Closes the swarm's listeners. Dropping a swarm is not enough: libp2p's memory transport
/// frees a listening port only when the listener is removed (a dropped one stays taken).
fn stop_listening(swarm: &mut Swarm<Behaviour>, listeners: &[ListenerId]) {
    for &id in listeners {
        swarm.remove_listener(id);
    }
}

/// The peer id at the end of an address, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<NetworkEvent>,
    live: LiveView,
    metrics: libp2p::metrics::Metrics,
    cfg: NetworkConfig,
    requests: HashMap<OutboundRequestId, oneshot::Sender<Result<ControlResponse, NetworkError>>>,
    inbound: mpsc::Sender<InboundRequest>,
    /// Application answers being prepared, each with the channel to send it on.
    replies: FuturesUnordered<PendingReply>,
    /// What the swarm listens on, closed explicitly at shutdown.
    listeners: Vec<ListenerId>,
    /// Top-up rounds so far (varies which live peers are dialled).
    top_ups: u64,
    /// This node's secret order of candidates to dial ([`crate::upkeep::spread_picks`]).
    dial_seed: [u8; 32],
    /// Peers the MPC channels are about to open streams to.
    connects: mpsc::Receiver<PeerId>,
    /// Open MPC sessions per peer.
    sessions: crate::channel::PeerCounts,
    /// Which connections this node dialed and which are in use.
    connections: Connections,
}

/// How often idle connections above the limit are closed.
const UPKEEP: Duration = Duration::from_secs(10);

/// Most dials one top-up round starts.
const TOP_UP_DIALS: usize = 4;

type PendingReply = futures::future::BoxFuture<
    'static,
    (
        PeerId,
        request_response::ResponseChannel<ControlResponse>,
        ControlResponse,
    ),
>;

impl SwarmTask {
    async fn run(mut self) {
        let mut heartbeat = tokio::time::interval(self.cfg.heartbeat_interval);
        let mut upkeep = tokio::time::interval(UPKEEP);
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(done)) => {
                        // The listeners go first: once shutdown returns, the node's addresses are
                        // free for a restart in the same process.
                        stop_listening(&mut self.swarm, &self.listeners);
                        drop(self);
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => self.command(command),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.event(event),
                Some((peer, channel, response)) = self.replies.next(), if !self.replies.is_empty() => {
                    self.connections.answered(&peer);
                    let _ = self.swarm.behaviour_mut().control.send_response(channel, response);
                }
                Some(peer) = self.connects.recv() => self.connect(peer),
                _ = heartbeat.tick() => self.heartbeat(),
                _ = upkeep.tick() => self.close_idle_connections(),
            }
        }
    }

    fn emit(&self, event: NetworkEvent) {
        let _ = self.events.send(event);
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Publish(topic, message, reply) => {
                let _ = reply.send(self.publish(topic, &message));
            }
            #[cfg(feature = "test-support")]
            Command::PublishRaw(topic, bytes, reply) => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic.gossip(), bytes);
                let _ = reply.send(
                    result
                        .map(|_| ())
                        .map_err(|e| NetworkError::Publish(e.to_string())),
                );
            }
            Command::Dial(addr, reply) => {
                let result = self
                    .swarm
                    .dial(addr.clone())
                    .map_err(|e| NetworkError::Dial {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    });
                let _ = reply.send(result);
            }
            Command::ListenAddrs(reply) => {
                let me = *self.swarm.local_peer_id();
                let addrs = self
                    .swarm
                    .listeners()
                    .map(|a| a.clone().with(Protocol::P2p(me)))
                    .collect();
                let _ = reply.send(addrs);
            }
            Command::Connected(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::GossipPeers(topic, reply) => {
                let hash = topic.gossip().hash();
                let peers = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(p, _)| *p)
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Live(reply) => {
                let _ = reply.send(self.live.peers());
            }
            Command::Score(peer, reply) => {
                let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::Status(peer, reply) => {
                self.connections.asked(peer, Instant::now());
                let id = self
                    .swarm
                    .behaviour_mut()
                    .control
                    .send_request(&peer, ControlRequest::Status);
                self.requests.insert(id, reply);
            }
            Command::App(peer, body, reply) => {
                self.connections.asked(peer, Instant::now());
                let id = self
                    .swarm
                    .behaviour_mut()
                    .control
                    .send_request(&peer, ControlRequest::App(body));
                self.requests.insert(id, reply);
            }
            Command::Shutdown(_) => unreachable!("handled by the loop"),
        }
    }

    fn heartbeat(&mut self) {
        let now = Instant::now();
        for peer in self.live.expire(now) {
            self.swarm.behaviour_mut().addresses.remove(&peer);
            self.emit(NetworkEvent::PeerExpired(peer));
        }
        self.top_up_connections();
        let sent_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let hb = GossipMessage::Heartbeat(Heartbeat {
            peer_id: self.swarm.local_peer_id().to_bytes(),
            chain_address: self.cfg.chain_address,
            version: self.cfg.version.clone(),
            free_capacity: self.cfg.free_capacity,
            sent_at_ms,
            addresses: self.announced_addresses(),
        });
        // Before the first peer joins there is nobody to tell: not an error worth reporting.
        let _ = self.publish(Topic::Heartbeats, &hb);
    }

    /// Seals `message` with this node's key and publishes it on `topic`.
    fn publish(&mut self, topic: Topic, message: &GossipMessage) -> Result<(), NetworkError> {
        let sealed = message
            .seal(topic, &self.cfg.keypair)
            .map_err(|e| NetworkError::Publish(e.to_string()))?;
        self.swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.gossip(), sealed)
            .map(|_| ())
            .map_err(|e| NetworkError::Publish(e.to_string()))
    }

    /// Where this node can be reached: confirmed external addresses first, then what it listens
    /// on, as many as a heartbeat carries.
    fn announced_addresses(&self) -> Vec<Vec<u8>> {
        let mine = self
            .swarm
            .external_addresses()
            .chain(self.swarm.listeners())
            .filter(|a| !a.iter().any(|p| matches!(p, Protocol::P2p(_))))
            .cloned()
            .collect();
        reachable_addresses(mine, self.cfg.private_addresses)
            .into_iter()
            .map(|a| a.to_vec())
            .filter(|a| a.len() <= MAX_ADDR_BYTES)
            .take(MAX_HEARTBEAT_ADDRS)
            .collect()
    }

    /// Whether this node should dial a peer it discovered: only while it has dialed fewer
    /// peers than its target.
    fn wants_more_peers(&self) -> bool {
        self.dialed_or_dialing() < self.cfg.target_peers
    }

    /// Above three times the target, closes connections nothing uses down to twice the target
    /// ([`crate::upkeep`]): gossipsub holds a stream open on every connection, so without this
    /// each peer a Kademlia walk or a request ever touched would stay connected for good (at 180
    /// nodes in one process, a median of 118 connections per node). Gossip mesh peers and MPC
    /// session peers are kept.
    fn close_idle_connections(&mut self) {
        let mesh: HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_mesh_peers()
            .copied()
            .collect();
        let closing = {
            let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            self.connections.to_close(
                Watermarks::for_target(self.cfg.target_peers),
                Instant::now(),
                self.cfg.request_timeout,
                |p| mesh.contains(p) || sessions.contains_key(p),
            )
        };
        for peer in closing {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Dials a few live peers it is not connected to while below the target (peers leave; a
    /// node that joined through one bootstrap peer spreads out).
    fn top_up_connections(&mut self) {
        let missing = self
            .cfg
            .target_peers
            .saturating_sub(self.dialed_or_dialing());
        if missing == 0 {
            return;
        }
        let candidates: Vec<PeerId> = self
            .live
            .peers()
            .into_iter()
            .map(|p| p.peer)
            .filter(|p| !self.swarm.is_connected(p))
            .collect();
        self.top_ups = self.top_ups.wrapping_add(1);
        for peer in crate::upkeep::spread_picks(
            &self.dial_seed,
            self.top_ups,
            candidates,
            missing.min(TOP_UP_DIALS),
        ) {
            self.connect(peer);
        }
    }

    /// Dials `peer` unless connected or dialing already.
    fn connect(&mut self, peer: PeerId) {
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        let _ = self.swarm.dial(opts);
    }

    /// Peers this node dialed, counting dials still under way: a burst of discoveries must not
    /// each dial while the first dials connect (every node then overshoots its target, trims the
    /// others' connections, and they dial again: at 200 nodes, three new connections a second
    /// per node, each a Noise handshake and an identify exchange).
    fn dialed_or_dialing(&self) -> usize {
        self.connections.dialed()
            + self
                .swarm
                .network_info()
                .connection_counters()
                .num_pending_outgoing() as usize
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder as _;
        self.metrics.record(&event);
        let event = match event {
            SwarmEvent::Behaviour(event) => event,
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                self.connections
                    .opened(peer_id, endpoint.is_dialer(), Instant::now());
                return;
            }
            SwarmEvent::ConnectionClosed {
                peer_id, endpoint, ..
            } => {
                self.connections.closed(&peer_id, endpoint.is_dialer());
                return;
            }
            _ => return,
        };
        match event {
            BehaviourEvent::Gossipsub(e) => {
                self.metrics.record(&e);
                self.gossip(e);
            }
            BehaviourEvent::Identify(e) => {
                self.metrics.record(&e);
                if let identify::Event::Received { peer_id, info, .. } = e
                    && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                {
                    // The same filter as heartbeat addresses: a peer must not point dials by
                    // id at hosts inside this node's network.
                    for addr in reachable_addresses(info.listen_addrs, self.cfg.private_addresses) {
                        kad.add_address(&peer_id, addr);
                    }
                }
            }
            BehaviourEvent::Kad(e) => {
                self.metrics.record(&e);
                if let kad::Event::RoutingUpdated {
                    peer, addresses, ..
                } = e
                    && !self.swarm.is_connected(&peer)
                    && self.wants_more_peers()
                {
                    let _ = self.swarm.dial(addresses.first().clone());
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                let known: HashSet<PeerId> = self.swarm.connected_peers().copied().collect();
                for (peer, addr) in found {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        kad.add_address(&peer, addr.clone());
                    }
                    if !known.contains(&peer) && self.wants_more_peers() {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            BehaviourEvent::Control(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) => {
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            BehaviourEvent::Control(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Err(NetworkError::Request {
                        peer: peer.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            BehaviourEvent::Control(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) => match request {
                ControlRequest::App(body) => {
                    let (reply, answer) = oneshot::channel();
                    let request = InboundRequest {
                        from: peer,
                        body,
                        reply,
                    };
                    if let Err(e) = self.inbound.try_send(request) {
                        let reason = match e {
                            mpsc::error::TrySendError::Full(_) => "busy",
                            mpsc::error::TrySendError::Closed(_) => "no handler",
                        };
                        let refused = ControlResponse::Refused(reason.into());
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .control
                            .send_response(channel, refused);
                        return;
                    }
                    self.connections.answering(peer);
                    self.replies.push(Box::pin(async move {
                        let response = match answer.await {
                            Ok(bytes) => ControlResponse::App(bytes),
                            Err(_) => ControlResponse::Refused("request dropped".into()),
                        };
                        (peer, channel, response)
                    }));
                }
                ControlRequest::Status => {
                    let response = ControlResponse::Status {
                        version: self.cfg.version.clone(),
                        free_capacity: self.cfg.free_capacity,
                    };
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .control
                        .send_response(channel, response);
                }
            },
            BehaviourEvent::Ping(e) => self.metrics.record(&e),
            BehaviourEvent::Dcutr(e) => self.metrics.record(&e),
            _ => {}
        }
    }

    fn gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let decoded = match Topic::from_hash(&message.topic) {
            Some(topic) => GossipMessage::open(topic, &message.data).map_err(|e| e.to_string()),
            None => Err("unknown topic".to_string()),
        };
        // Gossipsub cannot tell this node's own messages from others' when they are anonymous:
        // one echoed back is neither forwarded again nor taken as news.
        let own = matches!(&decoded, Ok((from, _)) if *from == *self.swarm.local_peer_id());
        let acceptance = match &decoded {
            Ok(_) if own => MessageAcceptance::Ignore,
            Ok(_) => MessageAcceptance::Accept,
            Err(_) => MessageAcceptance::Reject,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
        if own {
            return;
        }
        match decoded {
            Ok((from, GossipMessage::Heartbeat(hb))) => {
                let observed = self.live.observe(from, &hb, Instant::now());
                if observed == Observed::Ignored {
                    return;
                }
                let reachable = reachable_addresses(hb.listen_addrs(), self.cfg.private_addresses);
                self.swarm.behaviour_mut().addresses.set(from, reachable);
                if observed == Observed::New {
                    self.emit(NetworkEvent::PeerLive(from));
                }
                self.emit(NetworkEvent::Gossip {
                    from,
                    message: GossipMessage::Heartbeat(hb),
                });
            }
            Ok((from, message)) => self.emit(NetworkEvent::Gossip { from, message }),
            // The signer of an invalid message is unknown: the peer that passed it on answers
            // for it (and loses score for it).
            Err(reason) => {
                let from = propagation_source;
                tracing::debug!(%from, %reason, "rejected gossip message");
                self.emit(NetworkEvent::Rejected { from, reason });
            }
        }
    }
}
