//! In-process meshes over libp2p's memory transport: gossip reaches everyone, invalid messages
//! are rejected and cost their sender its score, and dead nodes leave the live view.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use conclave_p2p::behaviour::thresholds;
use conclave_p2p::config::NetworkConfig;
use conclave_p2p::messages::{GossipMessage, Sealed, TaskAnnouncement, Topic};
use conclave_p2p::network::{Network, NetworkEvent};
use libp2p::PeerId;
use libp2p::identity::Keypair;
use tokio::sync::broadcast;
use tokio::time::{Instant, sleep, timeout};

/// Memory-transport ports are global to the process; each test takes its own range.
fn ports(n: u64) -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = 100_000 + (std::process::id() as u64 % 1000) * 10_000;
    base + NEXT.fetch_add(n, Ordering::SeqCst)
}

/// Held by the thirty-node tests so they do not run at once: sixty nodes beside the other tests
/// on two cores delay forwards past gossipsub's queue deadline, and a message is then lost
/// (gossipsub delivers at most once; what it measures here is delivery, not overload).
static THIRTY_NODES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts `n` nodes; node i joins through node `bootstrap(i)`.
async fn mesh(n: usize, bootstrap: impl Fn(usize) -> Vec<usize>) -> Vec<Network> {
    mesh_with(n, bootstrap, |_| {}).await
}

/// [`mesh`] with each node's configuration changed by `tweak`.
async fn mesh_with(
    n: usize,
    bootstrap: impl Fn(usize) -> Vec<usize>,
    tweak: impl Fn(&mut NetworkConfig),
) -> Vec<Network> {
    let base = ports(n as u64);
    let mut nodes: Vec<Network> = Vec::new();
    for i in 0..n {
        let mut cfg = NetworkConfig::memory(Keypair::generate_ed25519(), base + i as u64);
        tweak(&mut cfg);
        for j in bootstrap(i) {
            cfg.bootstrap
                .push(nodes[j].wait_listening().await.unwrap()[0].clone());
        }
        nodes.push(Network::start(cfg).await.unwrap());
    }
    nodes
}

fn task(k: u8) -> GossipMessage {
    GossipMessage::Task(TaskAnnouncement {
        project_id: 1,
        task_id: [k; 32],
        inputs_closed_at_ms: 0,
    })
}

async fn wait_for(what: &str, limit: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !ok().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until a node has been told about every task id in `want`.
fn collect_tasks(
    mut rx: broadcast::Receiver<NetworkEvent>,
    want: HashSet<u8>,
) -> tokio::task::JoinHandle<HashSet<u8>> {
    tokio::spawn(async move {
        let mut seen = HashSet::new();
        while !want.is_subset(&seen) {
            match rx.recv().await {
                Ok(NetworkEvent::Gossip {
                    message: GossipMessage::Task(t),
                    ..
                }) => {
                    seen.insert(t.task_id[0]);
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_nodes_each_receive_all_twenty_messages() {
    let _alone = THIRTY_NODES.lock().await;
    let nodes = mesh(30, |i| if i == 0 { vec![] } else { vec![0, i - 1] }).await;
    // Two mesh peers each (its bootstrap peers at least): with one, a node whose only peer
    // was busy grafting elsewhere missed a message on a loaded machine.
    wait_for("gossip peers", Duration::from_secs(60), async || {
        for n in &nodes {
            if n.gossip_peers(Topic::Tasks).await.unwrap().len() < 2 {
                return false;
            }
        }
        true
    })
    .await;
    // Let gossipsub build its meshes for a few heartbeats.
    sleep(Duration::from_secs(2)).await;
    // Message k comes from node 7k mod 30; a node never hears its own messages back.
    let origin = |k: u8| (k as usize * 7) % nodes.len();
    let collectors: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| collect_tasks(n.events(), (0..20).filter(|&k| origin(k) != i).collect()))
        .collect();
    for k in 0..20u8 {
        nodes[origin(k)].publish(task(k)).await.unwrap();
    }
    for (i, c) in collectors.into_iter().enumerate() {
        let seen = timeout(Duration::from_secs(30), c)
            .await
            .unwrap_or_else(|_| panic!("node {i} did not receive every message in time"))
            .unwrap();
        let own: HashSet<u8> = (0..20).filter(|&k| origin(k) == i).collect();
        assert_eq!(seen.union(&own).count(), 20, "node {i}");
    }
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_are_rejected_and_graylist_their_sender() {
    // A line: spammer - a - b - c.
    let nodes = mesh(4, |i| if i == 0 { vec![] } else { vec![i - 1] }).await;
    let (spammer, a) = (&nodes[0], &nodes[1]);
    wait_for("gossip peers", Duration::from_secs(30), async || {
        !a.gossip_peers(Topic::Tasks).await.unwrap().is_empty()
            && !nodes[3]
                .gossip_peers(Topic::Tasks)
                .await
                .unwrap()
                .is_empty()
    })
    .await;
    sleep(Duration::from_secs(1)).await;
    let mut events: Vec<_> = nodes[1..].iter().map(|n| n.events()).collect();

    // First (two invalid messages graylist the spammer, and later ones are ignored unread): a
    // task announcement credited to c: c's public key (an ed25519 peer id carries it), a
    // signature c never made.
    let forged = Sealed {
        signer: nodes[3].peer_id().as_ref().digest().to_vec(),
        signature: vec![7; 64],
        body: task(8).encode(),
    };
    spammer
        .publish_raw(Topic::Tasks, forged.encode())
        .await
        .unwrap();
    spammer
        .publish_raw(Topic::Tasks, vec![0xde, 0xad, 0xbe, 0xef])
        .await
        .unwrap();
    spammer
        .publish_raw(
            Topic::Tasks,
            vec![7; conclave_p2p::messages::MAX_GOSSIP_MESSAGE + 1],
        )
        .await
        .unwrap();
    spammer
        .publish_on(Topic::Heartbeats, task(9))
        .await
        .unwrap();

    let limit = thresholds().graylist_threshold;
    wait_for(
        "the spammer's score to fall",
        Duration::from_secs(20),
        async || {
            a.peer_score(spammer.peer_id())
                .await
                .unwrap()
                .is_some_and(|s| s < limit)
        },
    )
    .await;

    // The rest keep working: an honest message from c reaches a and b.
    nodes[3].publish(task(1)).await.unwrap();
    sleep(Duration::from_secs(2)).await;
    let mut rejected_at_a = 0;
    for (k, rx) in events.iter_mut().enumerate() {
        let mut honest = false;
        while let Ok(e) = rx.try_recv() {
            match e {
                NetworkEvent::Gossip { from, message } => {
                    // The spammer's own heartbeats are valid; nothing else it sent is.
                    let invalid = (from == spammer.peer_id()
                        && !matches!(message, GossipMessage::Heartbeat(_)))
                        || message == task(8);
                    assert!(
                        !invalid,
                        "invalid message delivered at node {}: {message:?}",
                        k + 1
                    );
                    honest |= message == task(1);
                }
                NetworkEvent::Rejected { from, .. } if k == 0 => {
                    assert_eq!(from, spammer.peer_id());
                    rejected_at_a += 1;
                }
                _ => {}
            }
        }
        assert!(honest || k == 2, "node {} missed the honest message", k + 1);
    }
    assert!(rejected_at_a >= 2, "a rejected {rejected_at_a} messages");
    for n in &nodes {
        n.shutdown().await;
    }
}

/// A valid message's bytes sent first on another topic, where they fail validation, do not
/// make the real one a duplicate: gossip ids cover the topic (gossipsub keeps one duplicate cache
/// for every topic, so an attacker could otherwise suppress any message it saw or made).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_first_sent_on_another_topic_still_arrives() {
    let keys = std::sync::Mutex::new(Vec::new());
    let nodes = mesh_with(
        2,
        |i| if i == 0 { vec![] } else { vec![0] },
        |cfg| keys.lock().unwrap().push(cfg.keypair.clone()),
    )
    .await;
    let sender_key = keys.lock().unwrap()[0].clone();
    let (sender, receiver) = (&nodes[0], &nodes[1]);
    wait_for("gossip peers", Duration::from_secs(30), async || {
        !receiver
            .gossip_peers(Topic::Tasks)
            .await
            .unwrap()
            .is_empty()
            && !receiver
                .gossip_peers(Topic::Results)
                .await
                .unwrap()
                .is_empty()
    })
    .await;
    let mut events = receiver.events();
    let bytes = task(5).seal(Topic::Tasks, &sender_key).unwrap();
    sender
        .publish_raw(Topic::Results, bytes.clone())
        .await
        .unwrap();
    sleep(Duration::from_millis(500)).await;
    sender.publish_raw(Topic::Tasks, bytes).await.unwrap();
    let arrived = timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(NetworkEvent::Gossip { from, message }) = events.recv().await
                && message == task(5)
            {
                return from;
            }
        }
    })
    .await;
    assert_eq!(arrived.ok(), Some(sender.peer_id()));
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_the_live_view_and_the_rest_keep_working() {
    let nodes = mesh(4, |i| if i == 0 { vec![] } else { vec![0] }).await;
    let ids: Vec<PeerId> = nodes.iter().map(Network::peer_id).collect();
    wait_for(
        "everyone live everywhere",
        Duration::from_secs(30),
        async || {
            for n in &nodes {
                if n.live_peers().await.unwrap().len() != 3 {
                    return false;
                }
            }
            true
        },
    )
    .await;
    // Control requests (request-response) and metrics work between live nodes.
    let status = timeout(Duration::from_secs(20), nodes[1].status(ids[0])).await;
    match status.expect("status in time").unwrap() {
        conclave_p2p::behaviour::ControlResponse::Status { version, .. } => {
            assert_eq!(version, env!("CARGO_PKG_VERSION"));
        }
        other => panic!("status answered with {other:?}"),
    }
    // Application requests reach the handler that took them, and its answer comes back; a node
    // whose handler is gone refuses.
    let mut handler = nodes[0].requests().expect("first taker gets the requests");
    assert!(nodes[0].requests().is_none());
    let echo = tokio::spawn(async move {
        while let Some(r) = handler.recv().await {
            let mut body = r.body;
            body.reverse();
            let _ = r.reply.send(body);
        }
    });
    let answer = timeout(
        Duration::from_secs(20),
        nodes[1].request(ids[0], vec![1, 2, 3]),
    )
    .await;
    assert_eq!(answer.expect("answer in time").unwrap(), vec![3, 2, 1]);
    drop(nodes[3].requests());
    let refused = timeout(Duration::from_secs(20), nodes[1].request(ids[3], vec![1])).await;
    assert!(refused.expect("answer in time").is_err());
    echo.abort();
    let metrics = nodes[0].metrics_text();
    assert!(
        metrics.contains("libp2p_swarm_connections_established"),
        "{metrics}"
    );
    let victim = ids[2];
    nodes[2].shutdown().await;
    wait_for(
        "the victim to expire",
        Duration::from_secs(20),
        async || {
            for (i, n) in nodes.iter().enumerate() {
                if i != 2
                    && n.live_peers()
                        .await
                        .unwrap()
                        .iter()
                        .any(|p| p.peer == victim)
                {
                    return false;
                }
            }
            true
        },
    )
    .await;
    for (i, n) in nodes.iter().enumerate() {
        if i != 2 {
            assert_eq!(n.live_peers().await.unwrap().len(), 2, "node {i}");
        }
    }
    let mut rx = nodes[3].events();
    nodes[1].publish(task(5)).await.unwrap();
    let got = timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(NetworkEvent::Gossip { message, .. }) = rx.recv().await
                && message == task(5)
            {
                return;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "gossip stopped working after a node died");
    for (i, n) in nodes.iter().enumerate() {
        if i != 2 {
            n.shutdown().await;
        }
    }
}

/// Nodes keep few connections (idle ones above three times the target are closed, although
/// Kademlia's walks touch every peer and gossipsub would hold each connection for good: the
/// gossip mesh stays), and still reach any live peer on demand at the addresses its heartbeats
/// announce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stay_few_and_any_live_peer_is_reached_on_demand() {
    let _alone = THIRTY_NODES.lock().await;
    const N: usize = 30;
    const TARGET: usize = 2;
    let nodes = mesh_with(
        N,
        |i| if i == 0 { vec![] } else { vec![i - 1] },
        |cfg| {
            cfg.target_peers = TARGET;
            // Production's walk pace: a walk every 2 s would reconnect faster than the upkeep
            // closes.
            cfg.random_walk_interval = Duration::from_secs(300);
        },
    )
    .await;
    let ids: Vec<PeerId> = nodes.iter().map(Network::peer_id).collect();
    wait_for(
        "everyone live everywhere",
        Duration::from_secs(90),
        async || {
            for n in &nodes {
                if n.live_peers().await.unwrap().len() != N - 1 {
                    return false;
                }
            }
            true
        },
    )
    .await;
    // Kademlia's first walks connect everyone to everyone (and gossipsub would keep it so);
    // the upkeep (every 10 s) closes what neither a gossip mesh nor a request uses. Measured:
    // 29 connections per node before, 8–17 after (each topic has its own mesh of up to 12).
    wait_for(
        "connections to at most two thirds of the others",
        Duration::from_secs(60),
        async || {
            for n in &nodes {
                if n.connected_peers().await.unwrap().len() > 2 * N / 3 {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let connected = nodes[0].connected_peers().await.unwrap();
    let far = *ids[1..]
        .iter()
        .find(|p| !connected.contains(p))
        .expect("a peer node 0 is not connected to");
    let status = timeout(Duration::from_secs(20), nodes[0].status(far)).await;
    assert!(
        matches!(
            status.expect("status in time"),
            Ok(conclave_p2p::behaviour::ControlResponse::Status { .. })
        ),
        "a live peer without a connection is reached"
    );
    for n in &nodes {
        n.shutdown().await;
    }
}

/// A node shut down in this process frees its address: a restart (what the simulator does
/// after a crash) listens there again and rejoins the mesh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shut_down_can_restart_on_its_address() {
    let mut nodes = mesh(2, |i| if i == 0 { vec![] } else { vec![0] }).await;
    let keypair = Keypair::generate_ed25519();
    let port = ports(1);
    let bootstrap = nodes[0].wait_listening().await.unwrap()[0].clone();
    let config = || {
        let mut cfg = NetworkConfig::memory(keypair.clone(), port);
        cfg.bootstrap.push(bootstrap.clone());
        cfg
    };
    let first = Network::start(config()).await.unwrap();
    first.wait_listening().await.unwrap();
    first.shutdown().await;
    let again = Network::start(config()).await.unwrap();
    again.wait_listening().await.unwrap();
    let me = again.peer_id();
    nodes.push(again);
    wait_for(
        "the restarted node in the live view",
        Duration::from_secs(30),
        async || {
            nodes[0]
                .live_peers()
                .await
                .unwrap()
                .iter()
                .any(|p| p.peer == me)
        },
    )
    .await;
    for n in &nodes {
        n.shutdown().await;
    }
}
