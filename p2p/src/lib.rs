//! conclave-p2p: the Conclave mesh.
//!
//! Not built yet (issue 4). It will hold the libp2p swarm (TCP/QUIC, Noise, Yamux, identify,
//! Kademlia, mDNS, AutoNAT, relay + DCUtR), the versioned gossipsub topics with strict validation,
//! heartbeats and the live mesh view, and direct per-session streams that implement
//! [`conclave_mpc::transport::Transport`] so the same MPC code runs over the network.
