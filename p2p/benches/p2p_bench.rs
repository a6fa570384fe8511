//! `p2p-bench`: network figures, one JSON object per line.
//!
//! `cargo bench -p conclave-p2p --bench p2p-bench [-- --runs N]`
//!
//! - `gossip`: delivery latency (p50, p99) of task announcements in a 30-node mesh over libp2p's
//!   in-process memory transport (Noise + Yamux as on the wire).
//! - `mpc`: online SPDZ multiplications per second for 2 and 3 parties over p2p channels between
//!   nodes on loopback TCP, next to the in-memory transport in the same run (same runtime, same
//!   circuit: 10^5 multiplications in one layer, MAC checks included; dealer preprocessing, not
//!   timed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conclave_mpc::dealer::InsecureDealer;
use conclave_mpc::driver::run;
use conclave_mpc::transport::{MemoryTransport, Transport};
use conclave_mpc::wire::SessionId;
use conclave_mpc::{Circuit, CircuitBuilder, Session, SessionConfig};
use conclave_p2p::config::NetworkConfig;
use conclave_p2p::messages::{GossipMessage, TaskAnnouncement, Topic};
use conclave_p2p::network::{Network, NetworkEvent};
use libp2p::PeerId;
use libp2p::identity::Keypair;

fn main() {
    let mut runs = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            other => {
                eprintln!("p2p-bench: unexpected argument {other:?}\nusage: p2p-bench [--runs N]");
                std::process::exit(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(gossip_latency(30, 50));
    for parties in [2, 3] {
        rt.block_on(mpc(parties, 100_000, runs));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn gossip_latency(n: usize, messages: u8) {
    let base = 300_000 + (std::process::id() as u64 % 1000) * 1_000;
    let mut nodes: Vec<Network> = Vec::new();
    for i in 0..n {
        let mut cfg = NetworkConfig::memory(Keypair::generate_ed25519(), base + i as u64);
        if i > 0 {
            for j in [0, i - 1] {
                cfg.bootstrap
                    .push(nodes[j].wait_listening().await.unwrap()[0].clone());
            }
        }
        nodes.push(Network::start(cfg).await.unwrap());
    }
    loop {
        let mut ready = true;
        for node in &nodes {
            ready &= !node.gossip_peers(Topic::Tasks).await.unwrap().is_empty();
        }
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent: Arc<Mutex<HashMap<u8, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let listeners: Vec<_> = nodes
        .iter()
        .map(|node| {
            let (mut rx, sent, latencies) = (node.events(), sent.clone(), latencies.clone());
            tokio::spawn(async move {
                while let Ok(e) = rx.recv().await {
                    if let NetworkEvent::Gossip {
                        message: GossipMessage::Task(t),
                        ..
                    } = e
                        && let Some(at) = sent.lock().unwrap().get(&t.task_id[0])
                    {
                        latencies
                            .lock()
                            .unwrap()
                            .push(at.elapsed().as_secs_f64() * 1e3);
                    }
                }
            })
        })
        .collect();
    for k in 0..messages {
        let msg = GossipMessage::Task(TaskAnnouncement {
            project_id: 0,
            task_id: [k; 32],
            inputs_closed_at_ms: 0,
        });
        sent.lock().unwrap().insert(k, Instant::now());
        nodes[k as usize % n].publish(msg).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for node in &nodes {
        node.shutdown().await;
    }
    for l in listeners {
        l.abort();
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let expected = messages as usize * (n - 1);
    println!(
        "{{\"bench\":\"gossip\",\"nodes\":{n},\"messages\":{messages},\"deliveries\":{},\"expected_deliveries\":{expected},\"gossip_p50_ms\":{:.2},\"gossip_p99_ms\":{:.2}}}",
        l.len(),
        percentile(&l, 0.5),
        percentile(&l, 0.99)
    );
}

fn batch_circuit(parties: usize, batch: usize) -> Circuit {
    let mut b = CircuitBuilder::new(parties);
    let mut sum = None;
    for _ in 0..batch {
        let (x, y) = (b.random(), b.random());
        let p = b.mul(x, y);
        sum = Some(sum.map_or(p, |s| b.add(s, p)));
    }
    b.reveal(sum.expect("batch > 0"));
    b.build()
}

fn sessions(circuit: &Circuit, seed: u64) -> Vec<Session> {
    let parties = circuit.parties();
    InsecureDealer::new(parties, seed)
        .deal(&circuit.requirements())
        .into_iter()
        .enumerate()
        .map(|(p, m)| {
            let cfg = SessionConfig::new(SessionId([seed as u8; 16]), p, parties);
            Session::new(cfg, circuit.clone(), vec![], m).unwrap()
        })
        .collect()
}

async fn timed<T: Transport + 'static>(sessions: Vec<Session>, transports: Vec<T>) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = sessions
        .into_iter()
        .zip(transports)
        .map(|(s, mut t)| tokio::spawn(async move { run(s, &mut t).await.expect("honest run") }))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn mpc(parties: usize, batch: usize, runs: usize) {
    let circuit = batch_circuit(parties, batch);
    let mut nodes: Vec<Network> = Vec::new();
    for _ in 0..parties {
        let mut cfg = NetworkConfig::local(Keypair::generate_ed25519());
        cfg.mdns = false;
        cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        for n in &nodes {
            cfg.bootstrap
                .push(n.wait_listening().await.unwrap()[0].clone());
        }
        nodes.push(Network::start(cfg).await.unwrap());
    }
    let ids: Vec<PeerId> = nodes.iter().map(Network::peer_id).collect();
    let (mut p2p, mut memory) = (Vec::new(), Vec::new());
    for run_index in 0..runs as u64 {
        memory.push(
            timed(
                sessions(&circuit, run_index),
                MemoryTransport::mesh(parties),
            )
            .await,
        );
        let session = SessionId([run_index as u8; 16]);
        let mut transports = Vec::new();
        let connects: Vec<_> = nodes
            .iter()
            .map(|n| {
                let (n, ids) = (n.clone(), ids.clone());
                tokio::spawn(async move { n.mpc().connect(session, &ids, 64 << 20).await.unwrap() })
            })
            .collect();
        for c in connects {
            transports.push(c.await.unwrap());
        }
        p2p.push(timed(sessions(&circuit, run_index), transports).await);
    }
    for n in &nodes {
        n.shutdown().await;
    }
    let (p2p, memory) = (median(p2p), median(memory));
    let rate = |d: Duration| batch as f64 / d.as_secs_f64();
    println!(
        "{{\"bench\":\"mpc\",\"parties\":{parties},\"transport\":\"p2p-tcp-loopback\",\"batch\":{batch},\"runs\":{runs},\"mults_per_sec\":{:.0},\"inmemory_mults_per_sec\":{:.0},\"ratio\":{:.2}}}",
        rate(p2p),
        rate(memory),
        rate(p2p) / rate(memory)
    );
}
