//! The node's libp2p behaviours, and how a swarm is built from a [`NetworkConfig`].

use std::error::Error;
use std::time::Duration;

use libp2p::gossipsub::{
    self, PeerScoreParams, PeerScoreThresholds, TopicScoreParams, ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, Swarm, autonat, connection_limits, dcutr, identify, kad, mdns, noise, ping,
    relay, tcp, yamux,
};
use serde::{Deserialize, Serialize};

use crate::config::{NetworkConfig, TransportKind};
use crate::messages::{MAX_GOSSIP_MESSAGE, Topic};

pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

/// Small control messages between two nodes (request-response over CBOR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRequest {
    /// What software and capacity the peer has.
    Status,
    /// An application request, answered by the node's request handler ([`crate::Network::requests`]).
    App(Vec<u8>),
}

/// Answers to [`ControlRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlResponse {
    Status {
        version: String,
        free_capacity: u32,
    },
    /// The application's answer to [`ControlRequest::App`].
    App(Vec<u8>),
    /// The peer has no application handler, or it dropped the request.
    Refused(String),
}

pub const CONTROL_PROTOCOL: StreamProtocol = StreamProtocol::new("/conclave/1/control");
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/conclave/1/kad");

/// Everything a Conclave node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub addresses: crate::addresses::AddressBook,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub gossipsub: gossipsub::Behaviour,
    pub control: request_response::cbor::Behaviour<ControlRequest, ControlResponse>,
    pub stream: libp2p_stream::Behaviour,
    /// Off on the memory transport: nothing there is behind a NAT.
    pub autonat: Toggle<autonat::Behaviour>,
    pub relay: relay::client::Behaviour,
    pub dcutr: Toggle<dcutr::Behaviour>,
}

/// How long after a message peers still offer it to those that missed it.
const GOSSIP_RECOVERY_WINDOW: Duration = Duration::from_secs(3);

/// How many whole `beat`s cover `window`.
fn beats(window: Duration, beat: Duration) -> usize {
    window.as_millis().div_ceil(beat.as_millis().max(1)) as usize
}

/// Gossipsub with application validation, size limits and peer scoring: an invalid message costs
/// its sender 30 points per topic (squared per count), so two put it below the graylist line.
fn gossipsub(cfg: &NetworkConfig) -> Result<gossipsub::Behaviour, BoxError> {
    // Gossip about recent messages (IHAVE) lets a peer fetch one it missed: a forward that sat
    // in a busy connection's queue over a second is dropped. Count the window in time, not
    // heartbeats, so fast test heartbeats (200 ms) do not shrink it to 0.6 s.
    let history_gossip = beats(GOSSIP_RECOVERY_WINDOW, cfg.gossip_heartbeat).max(3);
    let config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(cfg.gossip_heartbeat)
        .history_gossip(history_gossip)
        .history_length(history_gossip + 2)
        // libp2p's one second suits latency-bound chains; here a task announcement or a
        // heartbeat a few seconds late is still worth delivering, and a loaded machine (many
        // simulated nodes on two cores) otherwise drops forwards that gossip must then repair.
        .forward_queue_duration(GOSSIP_RECOVERY_WINDOW)
        // Messages are sealed by the application and verified once each, after gossipsub has
        // dropped duplicates by their content-addressed ids (`messages` module doc).
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(content_id)
        .validate_messages()
        // Above the application's own limit, so oversized messages reach validation and are
        // charged to their sender instead of silently failing in the codec.
        .max_transmit_size(4 * MAX_GOSSIP_MESSAGE)
        .build()?;
    let mut behaviour =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)?;
    let mut params = PeerScoreParams::default();
    if !cfg.penalise_ip_colocation {
        params.ip_colocation_factor_weight = 0.0;
    }
    for topic in Topic::ALL {
        params.topics.insert(
            topic.gossip().hash(),
            TopicScoreParams {
                topic_weight: 1.0,
                // Good behaviour earns at most about one point per topic, so it cannot buy
                // credit that hides invalid messages.
                time_in_mesh_weight: 0.01,
                time_in_mesh_quantum: Duration::from_secs(1),
                time_in_mesh_cap: 10.0,
                first_message_deliveries_weight: 0.1,
                first_message_deliveries_decay: 0.5,
                first_message_deliveries_cap: 10.0,
                invalid_message_deliveries_weight: -30.0,
                invalid_message_deliveries_decay: 0.9,
                // Quiet topics must not punish honest peers.
                mesh_message_deliveries_weight: 0.0,
                mesh_failure_penalty_weight: 0.0,
                ..TopicScoreParams::default()
            },
        );
    }
    behaviour.with_peer_score(params, thresholds())?;
    for topic in Topic::ALL {
        behaviour.subscribe(&topic.gossip())?;
    }
    Ok(behaviour)
}

/// A gossip message's id: a hash of its topic and bytes, so copies of one message share an id
/// and any change makes a new one. The topic is part of it: gossipsub keeps one duplicate cache
/// for all topics, and a valid message's bytes sent first on another topic (where they fail
/// validation) must not make the real one a rejected duplicate.
fn content_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let topic = message.topic.as_str().as_bytes();
    let mut hasher = blake3::Hasher::new_derive_key("conclave gossip message id v1");
    hasher.update(&(topic.len() as u64).to_le_bytes());
    hasher.update(topic);
    hasher.update(&message.data);
    gossipsub::MessageId::from(&hasher.finalize().as_bytes()[..20])
}

/// Score lines: below `graylist_threshold` a peer's messages are ignored entirely.
pub fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -20.0,
        graylist_threshold: -50.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

fn behaviour(
    key: &Keypair,
    relay: relay::client::Behaviour,
    cfg: &NetworkConfig,
) -> Result<Behaviour, BoxError> {
    let peer_id = key.public().to_peer_id();
    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    kad_config.set_periodic_bootstrap_interval(Some(cfg.random_walk_interval));
    let mut kad =
        kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
    // Loopback and private deployments never get confirmed external addresses; serve anyway.
    kad.set_mode(Some(kad::Mode::Server));
    let kad = cfg.kademlia.then_some(kad);
    let mdns = if cfg.mdns {
        Some(mdns::tokio::Behaviour::new(
            mdns::Config::default(),
            peer_id,
        )?)
    } else {
        None
    };
    // In-process nodes are all reachable: NAT detection and hole punching only cost work.
    let nat = cfg.transport != TransportKind::Memory;
    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_incoming(Some(cfg.max_incoming))
                .with_max_pending_incoming(Some(cfg.max_incoming / 4 + 1))
                .with_max_established_per_peer(Some(cfg.max_per_peer)),
        ),
        addresses: crate::addresses::AddressBook::default(),
        identify: identify::Behaviour::new(
            identify::Config::new("/conclave/1/id".into(), key.public())
                .with_agent_version(format!("conclave/{}", cfg.version)),
        ),
        ping: ping::Behaviour::new(ping::Config::new()),
        kad: Toggle::from(kad),
        mdns: Toggle::from(mdns),
        gossipsub: gossipsub(cfg)?,
        control: request_response::cbor::Behaviour::new(
            [(CONTROL_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(cfg.request_timeout),
        ),
        stream: libp2p_stream::Behaviour::new(),
        autonat: Toggle::from(
            nat.then(|| autonat::Behaviour::new(peer_id, autonat::Config::default())),
        ),
        relay,
        dcutr: Toggle::from(nat.then(|| dcutr::Behaviour::new(peer_id))),
    })
}

type MemoryBoxed =
    libp2p::core::transport::Boxed<(libp2p::PeerId, libp2p::core::muxing::StreamMuxerBox)>;

/// The in-process memory transport, shaped by the simulation's links when `cfg` has them.
fn memory_transport(key: &Keypair, cfg: &NetworkConfig) -> Result<MemoryBoxed, BoxError> {
    let memory = libp2p::core::transport::MemoryTransport::default();
    let me = cfg.listen.iter().find_map(crate::shaped::memory_port);
    Ok(match (&cfg.links, me) {
        (Some(links), Some(me)) => secured(crate::shaped::transport(links.clone(), me), key)?,
        _ => secured(memory, key)?,
    })
}

/// `transport` with Noise and Yamux on top, as every other transport of the swarm.
fn secured<T>(transport: T, key: &Keypair) -> Result<MemoryBoxed, noise::Error>
where
    T: libp2p::Transport + Send + Unpin + 'static,
    T::Output: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
    T::Error: Send + Sync + 'static,
    T::Dial: Send + 'static,
    T::ListenerUpgrade: Send + 'static,
{
    use libp2p::Transport as _;
    Ok(transport
        .upgrade(libp2p::core::upgrade::Version::V1)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(muxer)))
        .boxed())
}

/// Builds the swarm for `cfg` (not yet listening).
pub(crate) fn build_swarm(cfg: &NetworkConfig) -> Result<Swarm<Behaviour>, BoxError> {
    let idle = cfg.idle_timeout;
    let builder = libp2p::SwarmBuilder::with_existing_identity(cfg.keypair.clone()).with_tokio();
    let swarm = match cfg.transport {
        TransportKind::TcpQuic => builder
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_quic()
            .with_dns()?
            .with_relay_client(noise::Config::new, yamux::Config::default)?
            .with_behaviour(|key, relay| behaviour(key, relay, cfg))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build(),
        TransportKind::Memory => builder
            .with_other_transport(|key| memory_transport(key, cfg))?
            .with_relay_client(noise::Config::new, yamux::Config::default)?
            .with_behaviour(|key, relay| behaviour(key, relay, cfg))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build(),
    };
    Ok(swarm)
}
