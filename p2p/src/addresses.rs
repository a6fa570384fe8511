//! Where live peers listen, from their own heartbeats, offered to every dial.
//!
//! A node keeps connections to a bounded number of peers (`NetworkConfig::target_peers`) rather
//! than to every peer it hears of, so it must be able to reach any other live peer on demand (a
//! committee member, a program's holder). Kademlia's routing table holds only some peers' addresses;
//! a heartbeat carries its sender's, signed by the sender, so each peer can speak only for
//! itself. This behaviour answers the swarm's "which addresses for this peer?" when any behaviour
//! (request-response, MPC streams, gossipsub) dials a peer by id.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Addresses a heartbeat may carry.
pub const MAX_HEARTBEAT_ADDRS: usize = 4;
/// Longest address (encoded) a heartbeat may carry.
pub const MAX_ADDR_BYTES: usize = 128;

/// The addresses of `addrs` worth dialing: all with `private` (one machine, a private network,
/// the in-process memory transport), else only public IP addresses — no loopback, private,
/// link-local, shared, documentation, multicast or unspecified address, no DNS name (whose lookup
/// a peer would choose), nothing relayed.
pub fn reachable_addresses(addrs: Vec<Multiaddr>, private: bool) -> Vec<Multiaddr> {
    if private {
        return addrs;
    }
    addrs
        .into_iter()
        .filter(|a| match a.iter().next() {
            Some(Protocol::Ip4(ip)) => is_public_v4(ip),
            Some(Protocol::Ip6(ip)) => is_public_v6(ip),
            _ => false,
        })
        .collect()
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let shared = ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64;
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || shared
        || ip.octets()[0] == 0)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = (first & 0xfe00) == 0xfc00;
    let link_local = (first & 0xffc0) == 0xfe80;
    let mapped = ip.to_ipv4_mapped().is_some();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || unique_local
        || link_local
        || mapped)
}

/// The announced addresses of live peers (entries leave with the peer's liveness).
#[derive(Default)]
pub struct AddressBook {
    peers: HashMap<PeerId, Vec<Multiaddr>>,
}

impl AddressBook {
    /// Records what `peer` announced, replacing what it announced before.
    pub fn set(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if addrs.is_empty() {
            self.peers.remove(&peer);
        } else {
            self.peers.insert(peer, addrs);
        }
    }

    pub fn remove(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    pub fn get(&self, peer: &PeerId) -> Option<&[Multiaddr]> {
        self.peers.get(peer).map(Vec::as_slice)
    }
}

impl NetworkBehaviour for AddressBook {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(peer
            .and_then(|p| self.get(&p))
            .map(<[Multiaddr]>::to_vec)
            .unwrap_or_default())
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dial by peer id is offered what the peer announced, and nothing once it is gone.
    #[test]
    fn dials_get_the_announced_addresses() {
        let mut book = AddressBook::default();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let addr: Multiaddr = "/memory/42".parse().unwrap();
        book.set(peer, vec![addr.clone()]);
        let offered = |book: &mut AddressBook, p| {
            book.handle_pending_outbound_connection(
                ConnectionId::new_unchecked(0),
                Some(p),
                &[],
                Endpoint::Dialer,
            )
            .unwrap()
        };
        assert_eq!(offered(&mut book, peer), vec![addr]);
        assert!(offered(&mut book, other).is_empty());
        book.remove(&peer);
        assert!(offered(&mut book, peer).is_empty());
    }

    /// Outside one machine or a private network, only public IP addresses are dialled.
    #[test]
    fn only_public_addresses_unless_private_ones_are_allowed() {
        let addrs: Vec<Multiaddr> = [
            "/ip4/8.8.8.8/tcp/4001",
            "/ip6/2001:4860::1/udp/4001/quic-v1",
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/10.1.2.3/tcp/1",
            "/ip4/192.168.1.1/tcp/1",
            "/ip4/169.254.169.254/tcp/80",
            "/ip4/100.64.0.1/tcp/1",
            "/ip4/0.0.0.0/tcp/1",
            "/ip6/::1/tcp/1",
            "/ip6/fd00::1/tcp/1",
            "/ip6/fe80::1/tcp/1",
            "/ip6/::ffff:10.0.0.1/tcp/1",
            "/dns4/attacker.example/tcp/1",
            "/memory/5",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(
            reachable_addresses(addrs.clone(), false),
            addrs[..2].to_vec()
        );
        assert_eq!(reachable_addresses(addrs.clone(), true), addrs);
    }
}
