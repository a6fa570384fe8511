//! The MPC engine over p2p channels: a 3-party SPDZ computation gives the same result as over the
//! in-memory transport, and MASCOT preprocessing runs over the network too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use conclave_mpc::dealer::InsecureDealer;
use conclave_mpc::driver::run;
use conclave_mpc::mascot::pool::{Pool, PoolConfig};
use conclave_mpc::prep::Material;
use conclave_mpc::share::MacKeyShare;
use conclave_mpc::transport::MemoryTransport;
use conclave_mpc::wire::SessionId;
use conclave_mpc::{Circuit, CircuitBuilder, Fp, Session, SessionConfig};
use conclave_p2p::config::NetworkConfig;
use conclave_p2p::network::Network;
use libp2p::PeerId;
use libp2p::identity::Keypair;

fn ports(n: u64) -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    200_000 + (std::process::id() as u64 % 1000) * 10_000 + NEXT.fetch_add(n, Ordering::SeqCst)
}

/// Three memory-transport nodes, all connected to each other.
async fn three_nodes() -> Vec<Network> {
    connected_nodes(3).await
}

/// `n` memory-transport nodes, all connected to each other.
async fn connected_nodes(n: u64) -> Vec<Network> {
    let base = ports(n);
    let mut nodes: Vec<Network> = Vec::new();
    for i in 0..n {
        let mut cfg = NetworkConfig::memory(Keypair::generate_ed25519(), base + i);
        for n in &nodes {
            cfg.bootstrap
                .push(n.wait_listening().await.unwrap()[0].clone());
        }
        nodes.push(Network::start(cfg).await.unwrap());
    }
    for _ in 0..100 {
        let mut all = true;
        for n in &nodes {
            all &= n.connected_peers().await.unwrap().len() == nodes.len() - 1;
        }
        if all {
            return nodes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nodes did not connect");
}

fn circuit() -> Circuit {
    let mut b = CircuitBuilder::new(3);
    let x: Vec<_> = (0..3).map(|p| b.input(p)).collect();
    let s = b.add(x[0], x[1]);
    let s = b.add(s, x[2]);
    let p = b.mul(x[0], x[1]);
    let p = b.mul(p, x[2]);
    let q = b.mul(p, s);
    b.reveal(s);
    b.reveal(q);
    b.build()
}

const INPUTS: [u64; 3] = [11, 22, 33];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spdz_over_p2p_matches_the_in_memory_run() {
    let circuit = circuit();
    let session = SessionId([4; 16]);
    let sessions = |seed: u64| -> Vec<Session> {
        InsecureDealer::new(3, seed)
            .deal(&circuit.requirements())
            .into_iter()
            .enumerate()
            .map(|(p, m)| {
                let cfg = SessionConfig::new(session, p, 3);
                Session::new(cfg, circuit.clone(), vec![Fp::from_u64(INPUTS[p])], m).unwrap()
            })
            .collect()
    };

    let mut in_memory = Vec::new();
    let tasks: Vec<_> = sessions(1)
        .into_iter()
        .zip(MemoryTransport::mesh(3))
        .map(|(s, mut t)| tokio::spawn(async move { run(s, &mut t).await }))
        .collect();
    for t in tasks {
        in_memory.push(t.await.unwrap().unwrap());
    }

    let nodes = three_nodes().await;
    let ids: Vec<PeerId> = nodes.iter().map(Network::peer_id).collect();
    let tasks: Vec<_> = sessions(1)
        .into_iter()
        .zip(nodes.iter().cloned())
        .map(|(s, node)| {
            let ids = ids.clone();
            tokio::spawn(async move {
                let mut t = node.mpc().connect(session, &ids, 1 << 20).await.unwrap();
                run(s, &mut t).await
            })
        })
        .collect();
    let mut over_p2p = Vec::new();
    for t in tasks {
        over_p2p.push(t.await.unwrap().unwrap());
    }
    let plain: Vec<Vec<Fp>> = INPUTS.iter().map(|v| vec![Fp::from_u64(*v)]).collect();
    let expected = circuit.evaluate_plain(&plain, &[]).unwrap();
    assert_eq!(in_memory, vec![expected.clone(); 3]);
    assert_eq!(over_p2p, in_memory);
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mascot_and_spdz_both_run_over_p2p() {
    let circuit = circuit();
    let nodes = three_nodes().await;
    let ids: Vec<PeerId> = nodes.iter().map(Network::peer_id).collect();
    let (prep_session, online_session) = (SessionId([5; 16]), SessionId([6; 16]));
    let tasks: Vec<_> = nodes
        .iter()
        .cloned()
        .enumerate()
        .map(|(party, node)| {
            let (ids, circuit) = (ids.clone(), circuit.clone());
            tokio::spawn(async move {
                let prep = node
                    .mpc()
                    .connect(prep_session, &ids, 64 << 20)
                    .await
                    .unwrap();
                let key = MacKeyShare::new(Fp::random(&mut rand::rng()));
                let mut pool =
                    Pool::start(prep_session, key, prep, PoolConfig::for_triples(3, 8, 8))
                        .await
                        .unwrap();
                let req = circuit.requirements();
                pool.ready(&req).await.unwrap();
                // Stopped while idle (its stock is at target), before taking drops the stock
                // below it: a refill's MAC check would otherwise run beside the session's on
                // the same key, and one of them would find it busy (KeyPoisoned).
                pool.stop().await;
                let material = Material::take(&mut pool, &req).unwrap();
                let cfg = SessionConfig::new(online_session, party, 3);
                let s = Session::new(cfg, circuit, vec![Fp::from_u64(INPUTS[party])], material)
                    .unwrap();
                let mut online = node
                    .mpc()
                    .connect(online_session, &ids, 1 << 20)
                    .await
                    .unwrap();
                run(s, &mut online).await.unwrap()
            })
        })
        .collect();
    let plain: Vec<Vec<Fp>> = INPUTS.iter().map(|v| vec![Fp::from_u64(*v)]).collect();
    let expected = circuit.evaluate_plain(&plain, &[]).unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), expected);
    }
    for n in &nodes {
        n.shutdown().await;
    }
}

/// Many sessions set up at once between the same six nodes: every node takes a burst of streams
/// together, and each stream reaches its own session (the frames say which).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sessions_all_connect_and_carry_frames() {
    const SESSIONS: u8 = 60;
    let nodes = connected_nodes(6).await;
    let ids: Vec<PeerId> = nodes.iter().map(Network::peer_id).collect();
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        for (party, node) in nodes.iter().cloned().enumerate() {
            let ids = ids.clone();
            tasks.push(tokio::spawn(async move {
                use conclave_mpc::transport::Transport as _;
                let mut t = node
                    .mpc()
                    .connect(SessionId([s; 16]), &ids, 1 << 10)
                    .await
                    .map_err(|e| format!("session {s}, party {party}: {e}"))?;
                for to in (0..ids.len()).filter(|&j| j != party) {
                    t.send(to, bytes::Bytes::from(vec![s, party as u8]))
                        .await
                        .unwrap();
                }
                for from in (0..ids.len()).filter(|&j| j != party) {
                    let frame = t
                        .recv(from)
                        .await
                        .map_err(|e| format!("session {s}, party {party}: {e}"))?;
                    assert_eq!(frame.as_ref(), &[s, from as u8]);
                }
                Ok::<_, String>(())
            }));
        }
    }
    let mut failed = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failed.push(e);
        }
    }
    for n in &nodes {
        n.shutdown().await;
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// A stream the acceptor drops unread (here: its opener already holds every handshake slot the
/// acceptor gives one peer) is noticed by the missing acknowledgement and opened again, so the
/// session still connects once the slots are free. Without the acknowledgement the opener thought
/// its stream delivered and the other party waited out its patience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_unread_is_opened_again() {
    use conclave_mpc::transport::Transport as _;
    let nodes = connected_nodes(2).await;
    let ids: Vec<PeerId> = nodes.iter().map(Network::peer_id).collect();
    let mut silent = Vec::new();
    for _ in 0..conclave_p2p::channel::MAX_HANDSHAKES_PER_PEER {
        silent.push(nodes[0].mpc().open_silent(ids[1]).await.unwrap());
        // One at a time: libp2p's acceptor would drop a second stream arriving meanwhile.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the acceptor take them all in before the session's stream arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let session = SessionId([9; 16]);
    let connect = |i: usize| {
        let (node, ids) = (nodes[i].clone(), ids.clone());
        tokio::spawn(async move { node.mpc().connect(session, &ids, 1024).await })
    };
    let (opener, claimer) = (connect(0), connect(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(silent);
    let (mut opener, mut claimer) = (
        opener.await.unwrap().unwrap(),
        claimer.await.unwrap().unwrap(),
    );
    opener
        .send(1, bytes::Bytes::from_static(b"hi"))
        .await
        .unwrap();
    claimer
        .send(0, bytes::Bytes::from_static(b"ho"))
        .await
        .unwrap();
    assert_eq!(claimer.recv(0).await.unwrap().as_ref(), b"hi");
    assert_eq!(opener.recv(1).await.unwrap().as_ref(), b"ho");
    for n in &nodes {
        n.shutdown().await;
    }
}

/// A party that joins its session after the opener's stream was parked past its time still
/// connects: the expired stream is closed, and the opener, not acknowledged, opens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_late_past_the_parking_time_still_connects() {
    use conclave_mpc::transport::Transport as _;
    let nodes = connected_nodes(2).await;
    let ids: Vec<PeerId> = nodes.iter().map(Network::peer_id).collect();
    let session = SessionId([10; 16]);
    let opener = {
        let (node, ids) = (nodes[0].clone(), ids.clone());
        tokio::spawn(async move { node.mpc().connect(session, &ids, 1024).await })
    };
    // Longer than a parked stream waits for its session.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut claimer = nodes[1].mpc().connect(session, &ids, 1024).await.unwrap();
    let mut opener = opener.await.unwrap().unwrap();
    opener
        .send(1, bytes::Bytes::from_static(b"late"))
        .await
        .unwrap();
    assert_eq!(claimer.recv(0).await.unwrap().as_ref(), b"late");
    for n in &nodes {
        n.shutdown().await;
    }
}

/// A node opening streams to two peers it is not connected to, at once, reaches both at its
/// first attempt. libp2p-stream dials an unconnected peer itself but drops a second dial request
/// that comes while the first is queued (that open then hung until its timeout); the node now
/// connects first. Every node is connected only to a hub and learns the others' addresses from
/// their heartbeats; no node tops up its connections or walks Kademlia.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reaches_two_unconnected_peers_at_once() {
    let base = ports(4);
    let config = |i: u64| {
        let mut cfg = NetworkConfig::memory(Keypair::generate_ed25519(), base + i);
        cfg.target_peers = 1;
        cfg.kademlia = false;
        cfg
    };
    let hub = Network::start(config(0)).await.unwrap();
    let hub_addr = hub.wait_listening().await.unwrap()[0].clone();
    let mut parties = Vec::new();
    for i in 1..4 {
        let mut cfg = config(i);
        cfg.bootstrap.push(hub_addr.clone());
        parties.push(Network::start(cfg).await.unwrap());
    }
    let ids: Vec<PeerId> = parties.iter().map(Network::peer_id).collect();
    // Every party hears the others' heartbeats (through the hub), and is connected to the hub
    // alone.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut ready = true;
        for p in &parties {
            let live = p.live_peers().await.unwrap();
            ready &= ids
                .iter()
                .all(|id| *id == p.peer_id() || live.iter().any(|l| l.peer == *id));
        }
        if ready {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "heartbeats did not spread"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in &parties {
        let connected = p.connected_peers().await.unwrap();
        assert!(
            !ids.iter().any(|id| connected.contains(id)),
            "the parties must start unconnected"
        );
    }
    // Two sessions, each between node 0 and one other: node 0 opens both streams at once.
    let sessions = [(SessionId([11; 16]), 1), (SessionId([12; 16]), 2)];
    let claims: Vec<_> = sessions
        .iter()
        .map(|&(session, other)| {
            let (node, pair) = (parties[other].clone(), vec![ids[0], ids[other]]);
            tokio::spawn(async move { node.mpc().connect(session, &pair, 1024).await })
        })
        .collect();
    let [first, second] =
        sessions.map(|(session, other)| parties[0].mpc().open_one_attempt(session, ids[other]));
    let (first, second) = futures::join!(first, second);
    assert_eq!((first, second), (Ok(()), Ok(())));
    for claim in claims {
        claim.await.unwrap().unwrap();
    }
    for n in parties.iter().chain([&hub]) {
        n.shutdown().await;
    }
}
