//! conclave-p2p: the Conclave mesh.
//!
//! A libp2p swarm (TCP/QUIC or in-process memory, Noise, Yamux, identify, ping, Kademlia, mDNS,
//! AutoNAT, relay client + DCUtR) with versioned gossip topics whose every message the application
//! validates before it is forwarded, heartbeats and a live view of the mesh, and direct streams.
//!
//! - [`config`]: all settings in one struct.
//! - [`messages`]: gossip topics, message types and their strict validation.
//! - [`liveview`]: who is alive, from heartbeats (sans-IO).
//! - [`addresses`]: where live peers listen, from their heartbeats, for dials by peer id.
//! - [`upkeep`]: which connections a node dials and keeps (sans-IO).
//! - [`behaviour`]: the libp2p behaviours and the swarm builder.
//! - [`network`]: the [`network::Network`] handle and the swarm task behind it.
//! - [`channel`]: per-session MPC streams implementing the MPC crate's `Transport`.

pub mod addresses;
pub mod behaviour;
pub mod channel;
pub mod config;
pub mod liveview;
pub mod messages;
pub mod network;
pub mod shaped;
pub mod upkeep;
