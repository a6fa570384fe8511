//! `conclave-mesh-node`: joins the Conclave mesh alone (no MPC, no chain) and reports what it sees
//! as JSON lines on stdout, for checking an operator's connectivity and for multi-process tests.
//!
//! ```text
//! conclave-mesh-node [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--mdns]
//! ```
//! Prints `{"event":"listening","addr":…}` per address, `{"event":"live","peer":…}` and
//! `{"event":"expired","peer":…}` as the live view changes, and `{"event":"task","from":…,"id":N}`
//! for task announcements. A line `publish N` on stdin announces task N; `quit` stops.

use std::time::Duration;

use conclave_p2p::config::NetworkConfig;
use conclave_p2p::messages::{GossipMessage, TaskAnnouncement};
use conclave_p2p::network::{Network, NetworkEvent};
use libp2p::identity::Keypair;
use tokio::io::{AsyncBufReadExt, BufReader};

fn usage() -> ! {
    eprintln!(
        "usage: conclave-mesh-node [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--mdns]"
    );
    std::process::exit(2);
}

fn parse() -> NetworkConfig {
    let mut cfg = NetworkConfig::local(Keypair::generate_ed25519());
    cfg.mdns = false;
    let mut listen = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut addr = || {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--listen" => listen.push(addr()),
            "--bootstrap" => cfg.bootstrap.push(addr()),
            "--mdns" => cfg.mdns = true,
            _ => usage(),
        }
    }
    if !listen.is_empty() {
        cfg.listen = listen;
    }
    cfg
}

#[tokio::main]
async fn main() {
    let network = match Network::start(parse()).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("conclave-mesh-node: {e}");
            std::process::exit(1);
        }
    };
    let mut events = network.events();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for addr in network.wait_listening().await.unwrap_or_default() {
        println!("{{\"event\":\"listening\",\"addr\":\"{addr}\"}}");
    }
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = stdin.next_line() => match line.ok().flatten().as_deref().map(str::trim) {
                Some("quit") | None => break,
                Some(cmd) => match cmd.strip_prefix("publish ").and_then(|n| n.parse::<u8>().ok()) {
                    Some(id) => {
                        let msg = GossipMessage::Task(TaskAnnouncement { project_id: 0, task_id: [id; 32], inputs_closed_at_ms: 0 });
                        if let Err(e) = network.publish(msg).await {
                            println!("{{\"event\":\"error\",\"reason\":\"{e}\"}}");
                        }
                    }
                    None => eprintln!("unknown command {cmd:?}; use `publish N` or `quit`"),
                },
            },
            event = events.recv() => match event {
                Ok(NetworkEvent::PeerLive(p)) => println!("{{\"event\":\"live\",\"peer\":\"{p}\"}}"),
                Ok(NetworkEvent::PeerExpired(p)) => println!("{{\"event\":\"expired\",\"peer\":\"{p}\"}}"),
                Ok(NetworkEvent::Gossip { from, message: GossipMessage::Task(t) }) => {
                    println!("{{\"event\":\"task\",\"from\":\"{from}\",\"id\":{}}}", t.task_id[0]);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
        }
    }
    network.shutdown().await;
}
