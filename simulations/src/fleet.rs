//! The nodes of a scenario: real `conclave` nodes on the shaped memory transport, each with its
//! own store on disk, that join late, leave, crash and restart from their stores as the plan
//! says.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use conclave_chain::backend::spawn_block_ticker;
use conclave_chain::{Contracts, DevChain, EmbeddedChain};
use conclave_node::identity::node_identity;
use conclave_node::store::Store;
use conclave_node::{Node, NodeSetup};
use conclave_p2p::channel::FrameTamper;
use conclave_p2p::config::NetworkConfig;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};

use crate::links::{Ports, SimNetwork};
use crate::{BLOCK_TIME, coin, sim_limits};

/// What stays of a node across crashes: its keys and where its store is.
struct Identity {
    keypair: Keypair,
    operator: PrivateKeySigner,
    stake_coins: u64,
    tamper: Option<Arc<dyn FrameTamper>>,
}

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Life {
    NotJoined,
    Running,
    Crashed,
    Left,
}

pub struct Fleet {
    pub chain: Arc<EmbeddedChain>,
    pub contracts: Contracts,
    /// Owns the scenario's projects.
    pub owner: PrivateKeySigner,
    pub net: SimNetwork,
    nodes: Vec<Option<Node>>,
    life: Vec<Life>,
    registered: Vec<bool>,
    ids: Vec<Identity>,
    ports: Ports,
    bootstrap: Vec<Vec<usize>>,
    heartbeat: Duration,
    dir: tempfile::TempDir,
    ticker: tokio::task::JoinHandle<()>,
}

/// How long a restarting node waits for its crashed predecessor to let go of the store:
/// `Node::shutdown` ends the node's work before it returns, so this only covers a request
/// answered at that moment.
const STORE_RELEASE: Duration = Duration::from_secs(15);
/// Fleets larger than this gossip and walk at the production pace.
const LARGE_FLEET: usize = 50;

impl Fleet {
    /// Deploys the chain and prepares `stakes.len()` node identities; no node runs yet.
    /// `tamper(i)` is node i's hand on its MPC frames (adversaries only).
    pub async fn new(
        stakes: &[u64],
        bootstrap: Vec<Vec<usize>>,
        net: impl FnOnce(Ports) -> SimNetwork,
        heartbeat: Duration,
        tamper: impl Fn(usize) -> Option<Arc<dyn FrameTamper>>,
    ) -> anyhow::Result<Fleet> {
        let (chain, contracts) = crate::embedded_chain().await?;
        // Memory ports are per process: a random base keeps two fleets (or tests) apart.
        let ports = Ports {
            base: 1_000_000 + u64::from(rand::random::<u32>()),
            count: stakes.len(),
        };
        let mut ids = Vec::with_capacity(stakes.len());
        for (i, &stake_coins) in stakes.iter().enumerate() {
            let operator = PrivateKeySigner::random();
            chain
                .set_balance(operator.address(), coin() * U256::from(stake_coins + 10))
                .await?;
            ids.push(Identity {
                keypair: Keypair::generate_ed25519(),
                operator,
                stake_coins,
                tamper: tamper(i),
            });
        }
        let owner = PrivateKeySigner::random();
        chain
            .set_balance(owner.address(), coin() * U256::from(100))
            .await?;
        let ticker = spawn_block_ticker(chain.clone() as Arc<dyn DevChain>, BLOCK_TIME);
        let n = stakes.len();
        Ok(Fleet {
            net: net(ports),
            chain,
            contracts,
            owner,
            nodes: (0..n).map(|_| None).collect(),
            life: vec![Life::NotJoined; n],
            registered: vec![false; n],
            ids,
            ports,
            bootstrap,
            heartbeat,
            dir: tempfile::tempdir()?,
            ticker,
        })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn life(&self, i: usize) -> Life {
        self.life[i]
    }

    /// Node i, if it runs now.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].as_ref()
    }

    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&i| self.life[i] == Life::Running)
    }

    pub fn operator(&self, i: usize) -> &PrivateKeySigner {
        &self.ids[i].operator
    }

    pub fn peer_id(&self, i: usize) -> PeerId {
        self.ids[i].keypair.public().to_peer_id()
    }

    /// The node whose libp2p identity is `peer`.
    pub fn index_of(&self, peer: &str) -> Option<usize> {
        (0..self.len()).find(|&i| self.peer_id(i).to_string() == peer)
    }

    pub fn api(&self, i: usize) -> Option<String> {
        self.node(i).map(|n| format!("http://{}", n.http_addr()))
    }

    pub fn store_path(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("node{i}.redb"))
    }

    fn address(&self, i: usize) -> Multiaddr {
        format!("/memory/{}/p2p/{}", self.ports.port(i), self.peer_id(i))
            .parse()
            .expect("a memory address")
    }

    /// Starts node i (first start, a late join, or a restart from its store) and registers it
    /// on chain the first time.
    pub async fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let id = &self.ids[i];
        let addresses = self.contracts.addresses();
        let mut network = NetworkConfig::memory(id.keypair.clone(), self.ports.port(i));
        network.chain_address = id.operator.address().0.0;
        network.heartbeat_interval = self.heartbeat;
        network.heartbeat_ttl = self.heartbeat * 6;
        // Above a few dozen nodes, slower gossipsub upkeep and no Kademlia: at hundreds of nodes
        // in one process, the local test net's walk every 2 s and mesh upkeep five times a
        // second take more CPU than two cores have. Below, the brisk pace keeps gossip delivery
        // (and so the live view) prompt: at 20 nodes its p99 was 1 s, against 8.5 s at the
        // production pace. Large fleets also close idle connections sooner (15 s), each costing
        // gossip and ping upkeep.
        if self.ids.len() > LARGE_FLEET {
            let production = NetworkConfig::new(id.keypair.clone());
            // gossipsub's mesh upkeep every 3 s rather than every second: 180 swarms' upkeep
            // is a steady load on two cores, and delivery does not wait for it.
            network.gossip_heartbeat = 3 * production.gossip_heartbeat;
            // No Kademlia: at 200 nodes every node made 2.5-3 new connections a second, most of
            // them for walks (each asks hundreds of peers over new connections); bootstrap
            // peers and the heartbeats' addresses find every peer here anyway.
            network.kademlia = false;
            network.idle_timeout = Duration::from_secs(15);
        }
        network.links = Some(self.net.links.clone());
        network.tamper = id.tamper.clone();
        // Its planned peers that run now, or any running node if none does.
        let mut peers: Vec<usize> = self.bootstrap[i]
            .iter()
            .copied()
            .filter(|&j| self.life[j] == Life::Running && self.net.connected(i, j))
            .collect();
        if peers.is_empty() {
            peers.extend(self.running().filter(|&j| j != i).take(1));
        }
        network.bootstrap = peers.iter().map(|&j| self.address(j)).collect();
        let store = open_store(&self.store_path(i)).await?;
        let node = Node::start(NodeSetup {
            network,
            contracts: self.contracts.clone(),
            operator: id.operator.clone(),
            store,
            http: "127.0.0.1:0".parse()?,
            rate_limits: sim_limits(),
            confirmations: 0,
            halo2_srs: None,
            byop: Default::default(),
        })
        .await
        .with_context(|| format!("starting node {i}"))?;
        node.network().wait_listening().await?;
        if !self.registered[i] {
            let identity = node_identity(
                &id.keypair,
                addresses.chain_id,
                addresses.node_registry,
                id.operator.address(),
            )?;
            self.contracts
                .register_node(&id.operator, &identity, coin() * U256::from(id.stake_coins))
                .await
                .with_context(|| format!("registering node {i}"))?;
            self.registered[i] = true;
        }
        self.nodes[i] = Some(node);
        self.life[i] = Life::Running;
        Ok(())
    }

    /// Stops node i abruptly; its store stays for a restart.
    pub async fn crash(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
            self.life[i] = Life::Crashed;
        }
    }

    /// Node i leaves for good: deactivates its stake on chain, then stops.
    pub async fn leave(&mut self, i: usize) -> anyhow::Result<()> {
        if self.registered[i] {
            self.contracts
                .deactivate_node(&self.ids[i].operator)
                .await
                .with_context(|| format!("node {i} deactivating"))?;
        }
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
        self.life[i] = Life::Left;
        Ok(())
    }

    /// Waits until each running node sees at least `fraction` of the other running nodes live,
    /// telling `progress` every 10 s how far it is (live peers and connections per node).
    pub async fn wait_mesh(
        &self,
        fraction: f64,
        wait: Duration,
        mut progress: impl FnMut(&str),
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + wait;
        let running: Vec<usize> = self.running().collect();
        let want = ((running.len().saturating_sub(1)) as f64 * fraction).floor() as usize;
        let mut reported = Instant::now();
        loop {
            let mut least = usize::MAX;
            let mut connections = Vec::with_capacity(running.len());
            for &i in &running {
                let network = self.nodes[i].as_ref().expect("running").network();
                least = least.min(network.live_peers().await?.len());
                connections.push(network.connected_peers().await?.len());
            }
            if least >= want {
                return Ok(());
            }
            if reported.elapsed() >= Duration::from_secs(10) {
                reported = Instant::now();
                connections.sort_unstable();
                progress(&format!(
                    "mesh: the least-informed node sees {least} of {want} peers live; connections per node {}–{} (median {})",
                    connections[0],
                    connections[connections.len() - 1],
                    connections[connections.len() / 2]
                ));
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the mesh did not form within {wait:?}: a node sees {least} of {want} peers live"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops every node at once: one after another, each waited for its network's goodbye
    /// while the others kept the mesh busy (200 nodes took three and a half minutes).
    pub async fn shutdown(mut self) {
        self.ticker.abort();
        let nodes = self.nodes.iter_mut().filter_map(Option::take);
        futures::future::join_all(nodes.map(|node| node.shutdown())).await;
    }
}

/// Opens a store, waiting while a crashed node's tasks still hold it.
async fn open_store(path: &std::path::Path) -> anyhow::Result<Store> {
    let deadline = Instant::now() + STORE_RELEASE;
    loop {
        match Store::open(path) {
            Ok(store) => return Ok(store),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "store still held; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        }
    }
}
