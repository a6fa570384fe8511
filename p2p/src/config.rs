//! All of a node's network settings in one struct, with sane defaults.

use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::identity::Keypair;

/// Which transports the swarm runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// TCP and QUIC (with DNS), for real deployments and multi-process tests.
    TcpQuic,
    /// libp2p's in-process memory transport, for simulations and tests of many nodes.
    Memory,
}

/// Network configuration.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The node's libp2p identity (ed25519).
    pub keypair: Keypair,
    pub transport: TransportKind,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Known peers to join through, with their `/p2p/<peer id>` suffix.
    pub bootstrap: Vec<Multiaddr>,
    /// Local-network discovery; on by default only for local runs.
    pub mdns: bool,
    /// Penalise many peers behind one IP address in gossip scoring (off for local runs, where
    /// every peer is 127.0.0.1).
    pub penalise_ip_colocation: bool,
    /// How often this node announces itself.
    pub heartbeat_interval: Duration,
    /// How long a peer stays in the live view after its last heartbeat.
    pub heartbeat_ttl: Duration,
    /// Gossipsub's own heartbeat (mesh maintenance).
    pub gossip_heartbeat: Duration,
    /// How often Kademlia looks up a random key to discover peers.
    pub random_walk_interval: Duration,
    /// Run Kademlia. Off, a node finds peers only through its bootstrap peers and the
    /// heartbeats gossip brings (which carry addresses): enough inside one simulated process,
    /// where each walk's new connections (a first walk asks about 300 peers) cost more CPU than
    /// two cores have at 200 nodes. Every real node runs it.
    pub kademlia: bool,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
    /// How long a request-response request may wait for its answer: longer than the longest a
    /// handler may work (a task's run, up to two minutes); callers bound their own waits.
    pub request_timeout: Duration,
    /// What this node's heartbeats announce.
    pub chain_address: [u8; 20],
    pub version: String,
    pub free_capacity: u32,
    /// Incoming connections established at once, and per peer (libp2p's connection limits):
    /// a crowd of strangers cannot take every socket.
    pub max_incoming: u32,
    pub max_per_peer: u32,
    /// Peers this node dials on its own (from discovery) and keeps topping up to: gossip needs a
    /// few, and a connection to every peer heard of costs every node work that grows with the
    /// mesh. Other peers are reached on demand at the addresses their heartbeats announce.
    pub target_peers: usize,
    /// Take loopback, private and link-local addresses (and DNS names) from heartbeats, and
    /// announce them: only on one machine or a private network. Otherwise a peer could point
    /// every node at hosts inside its network.
    pub private_addresses: bool,
    /// Simulated links for the memory transport (latency, bandwidth, partitions); `None` is
    /// an ideal in-process link. Only simulations set it.
    pub links: Option<std::sync::Arc<crate::shaped::Links>>,
    /// A simulated adversary's hand on the MPC frames this node sends; `None` on every real
    /// node (the `conclave` binary never sets it; `conclave-sim` does for adversarial nodes).
    pub tamper: Option<std::sync::Arc<dyn crate::channel::FrameTamper>>,
}

impl NetworkConfig {
    /// Production defaults: TCP and QUIC on all interfaces, no mDNS.
    pub fn new(keypair: Keypair) -> Self {
        NetworkConfig {
            keypair,
            transport: TransportKind::TcpQuic,
            listen: vec![
                "/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr"),
                "/ip4/0.0.0.0/udp/0/quic-v1"
                    .parse()
                    .expect("valid multiaddr"),
            ],
            bootstrap: Vec::new(),
            mdns: false,
            penalise_ip_colocation: true,
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_ttl: Duration::from_secs(20),
            gossip_heartbeat: Duration::from_secs(1),
            // libp2p's own default: a walk (Kademlia's bootstrap) touches dozens of peers.
            random_walk_interval: Duration::from_secs(300),
            kademlia: true,
            idle_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(150),
            chain_address: [0; 20],
            version: env!("CARGO_PKG_VERSION").to_string(),
            free_capacity: 1,
            max_incoming: 1024,
            max_per_peer: 4,
            target_peers: 12,
            private_addresses: false,
            links: None,
            tamper: None,
        }
    }

    /// A node on this machine: loopback TCP and QUIC, mDNS on, fast timers.
    pub fn local(keypair: Keypair) -> Self {
        NetworkConfig {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr"),
                "/ip4/127.0.0.1/udp/0/quic-v1"
                    .parse()
                    .expect("valid multiaddr"),
            ],
            mdns: true,
            penalise_ip_colocation: false,
            private_addresses: true,
            heartbeat_interval: Duration::from_millis(500),
            heartbeat_ttl: Duration::from_secs(3),
            gossip_heartbeat: Duration::from_millis(200),
            random_walk_interval: Duration::from_secs(2),
            ..NetworkConfig::new(keypair)
        }
    }

    /// A node on the in-process memory transport, listening on `/memory/<port>`.
    pub fn memory(keypair: Keypair, port: u64) -> Self {
        NetworkConfig {
            transport: TransportKind::Memory,
            listen: vec![format!("/memory/{port}").parse().expect("valid multiaddr")],
            mdns: false,
            ..NetworkConfig::local(keypair)
        }
    }
}
