//! conclave-sim: many real Conclave nodes in one process, on loopback, with an embedded chain.
//!
//! [`Cluster`] starts the chain (revm, contracts deployed), N nodes (real libp2p over loopback
//! TCP, real redb stores in a temporary directory, real HTTP APIs on 127.0.0.1), registers them
//! with stakes and registers projects; the quickstart, the benchmark and the tests drive it.
//! Scenarios (`conclave-sim run`, [`runner`]) run a [`fleet::Fleet`] instead: nodes on the
//! memory transport with shaped links, churn, crashes, partitions and adversaries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use conclave_chain::backend::spawn_block_ticker;
use conclave_chain::contracts::{ProjectSpec, ProverKind};
use conclave_chain::{Chain, Contracts, DeployConfig, DevChain, EmbeddedChain, deploy};
use conclave_node::identity::node_identity;
use conclave_node::program::{Program, WasmSpec};
use conclave_node::ratelimit::Limits;
use conclave_node::store::Store;
use conclave_node::{Node, NodeSetup};
use conclave_p2p::config::NetworkConfig;
use libp2p::identity::Keypair;

pub mod adversary;
pub mod faults;
pub mod fleet;
pub mod links;
pub mod plots;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod security;

/// What the plaintext evaluator computes over `records`, put in the order of the slots they
/// went into (the program reads records in slot order).
pub fn plaintext(
    source: &str,
    records: Vec<Vec<i128>>,
    slots: &[u32],
) -> anyhow::Result<Vec<conclave_node::program::Opened>> {
    let mut by_slot: Vec<(u32, Vec<i128>)> = slots.iter().copied().zip(records).collect();
    by_slot.sort_by_key(|(slot, _)| *slot);
    let records: Vec<Vec<i128>> = by_slot.into_iter().map(|(_, r)| r).collect();
    let program = conclave_mpc::lang::Program::compile(source, 2, Some(records.len()))
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    Ok(program
        .evaluate(&conclave_mpc::lang::InputValues {
            devices: records,
            owner: Vec::new(),
        })?
        .into_iter()
        .map(conclave_node::program::Opened::Public)
        .collect())
}

/// One coin, in wei.
pub fn coin() -> U256 {
    U256::from(10u64).pow(U256::from(18))
}

/// What a simulated node's API admits: every simulated device shares the loopback address, so
/// one client may use the node's whole rate; benchmarks open tasks back to back.
pub fn sim_limits() -> Limits {
    Limits {
        per_client: Limits::default().total,
        openings_per_minute: std::num::NonZeroU32::new(600).expect("non-zero"),
        ..Limits::default()
    }
}

/// The embedded chain with the contracts deployed (by a funded throwaway deployer).
pub async fn embedded_chain() -> anyhow::Result<(Arc<EmbeddedChain>, Contracts)> {
    let chain = Arc::new(EmbeddedChain::new());
    let deployer = PrivateKeySigner::random();
    chain
        .set_balance(deployer.address(), coin() * U256::from(1000))
        .await?;
    let addresses = deploy(chain.as_ref(), &deployer, DeployConfig::default()).await?;
    let contracts = Contracts::new(chain.clone() as Arc<dyn Chain>, addresses);
    Ok((chain, contracts))
}

/// Registers a project running `source` with `(prover kind, committee, threshold, verifier)`
/// for `owner`, and hands the source to the node whose API is at `api` (the others fetch it
/// from the mesh by its hash).
pub async fn register_project(
    contracts: &Contracts,
    owner: &PrivateKeySigner,
    api: &str,
    source: &str,
    (prover_kind, committee, threshold, verifier): (
        ProverKind,
        u16,
        u16,
        alloy::primitives::Address,
    ),
) -> anyhow::Result<u64> {
    let program = Program::from_source(source)?;
    let spec = ProjectSpec {
        program_hash: program.hash,
        program_uri: String::new(),
        prover_kind,
        committee_size: committee,
        threshold,
        receiver: alloy::primitives::Address::ZERO,
        verifier,
        output_words: program.proof_output_words(prover_kind as u8),
    };
    let id = contracts.register_project(owner, &spec).await?;
    let id = id.to::<u64>();
    seed_program(api, id, source).await?;
    Ok(id)
}

/// Hands `source` to the node at `api` as `project`'s program, as a project's operators seed it
/// on the nodes they know (the node checks it against the program hash on chain).
pub async fn seed_program(api: &str, project: u64, source: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .post(format!("{api}/v1/projects/{project}/program"))
        .json(&serde_json::json!({ "hash": "", "source": source }))
        .send()
        .await?;
    if !response.status().is_success() {
        anyhow::bail!(
            "node at {api} refused the program: {}",
            response.text().await?
        );
    }
    Ok(())
}

/// Nodes, chain and contracts in this process.
pub struct Cluster {
    pub chain: Arc<EmbeddedChain>,
    pub contracts: Contracts,
    pub nodes: Vec<Node>,
    /// Node i's operator key (for scenarios where an operator misbehaves on chain).
    pub operators: Vec<PrivateKeySigner>,
    /// Node i's libp2p identity (for scenarios where a node signs what it should not).
    pub keypairs: Vec<Keypair>,
    pub owner: PrivateKeySigner,
    /// Mines a block every [`BLOCK_TIME`] while the cluster runs.
    ticker: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// The cluster's KZG parameters for `halo2` projects, written at the first one from a fixed seed:
/// **insecure** (anyone who knows the seed forges proofs), for simulations and tests only.
const INSECURE_SRS: &str = "insecure-kzg.srs";
const INSECURE_SRS_SEED: [u8; 32] = *b"conclave-sim insecure kzg seed!!";

/// How often the embedded chain mines a block when nobody sends a transaction.
pub const BLOCK_TIME: Duration = Duration::from_millis(100);

impl Cluster {
    /// Starts `n` nodes and waits until every node sees every other one live.
    pub async fn start(n: usize, progress: impl FnMut(&str)) -> anyhow::Result<Cluster> {
        Cluster::start_with_limits(n, sim_limits(), progress).await
    }

    /// Starts `n` nodes whose APIs admit `limits`.
    pub async fn start_with_limits(
        n: usize,
        limits: Limits,
        progress: impl FnMut(&str),
    ) -> anyhow::Result<Cluster> {
        Cluster::start_with(n, limits, |_| Default::default(), progress).await
    }

    /// Starts `n` nodes whose APIs admit `limits`; node `i` hands `byop` tasks to the provers
    /// `byop(i)` names.
    pub async fn start_with(
        n: usize,
        limits: Limits,
        byop: impl Fn(usize) -> conclave_node::byop::ByopConfig,
        mut progress: impl FnMut(&str),
    ) -> anyhow::Result<Cluster> {
        let (chain, contracts) = embedded_chain().await?;
        let addresses = contracts.addresses();
        progress("contracts deployed on the embedded chain");
        let dir = tempfile::tempdir()?;
        let mut nodes: Vec<Node> = Vec::with_capacity(n);
        let mut operators = Vec::with_capacity(n);
        let mut identities = Vec::with_capacity(n);
        let mut keypairs = Vec::with_capacity(n);
        for i in 0..n {
            let operator = PrivateKeySigner::random();
            operators.push(operator.clone());
            chain
                .set_balance(operator.address(), coin() * U256::from(100))
                .await?;
            let keypair = Keypair::generate_ed25519();
            identities.push(node_identity(
                &keypair,
                addresses.chain_id,
                addresses.node_registry,
                operator.address(),
            )?);
            keypairs.push(keypair.clone());
            let mut network = NetworkConfig::local(keypair);
            network.mdns = false;
            network.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
            network.chain_address = operator.address().0.0;
            // Each node knows every earlier one, so every pair has a direct connection for
            // requests and MPC streams from the start.
            for earlier in &nodes {
                network
                    .bootstrap
                    .extend(earlier.network().listen_addrs().await?);
            }
            let store = Store::open(&dir.path().join(format!("node{i}.redb")))?;
            let node = Node::start(NodeSetup {
                network,
                contracts: contracts.clone(),
                operator,
                store,
                http: "127.0.0.1:0".parse()?,
                rate_limits: limits,
                confirmations: 0,
                halo2_srs: Some(dir.path().join(INSECURE_SRS)),
                byop: byop(i),
            })
            .await
            .with_context(|| format!("starting node {i}"))?;
            node.network().wait_listening().await?;
            nodes.push(node);
        }
        progress("nodes started");
        for (identity, op) in identities.iter().zip(&operators) {
            contracts
                .register_node(op, identity, coin() * U256::from(10))
                .await?;
        }
        progress("nodes registered with stakes");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut all = true;
            for node in &nodes {
                all &= node.network().live_peers().await?.len() + 1 >= n;
            }
            if all {
                break;
            }
            if Instant::now() > deadline {
                bail!("the mesh did not form within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        progress("mesh formed: every node sees every other");
        let owner = PrivateKeySigner::random();
        chain
            .set_balance(owner.address(), coin() * U256::from(10))
            .await?;
        let ticker = spawn_block_ticker(chain.clone(), BLOCK_TIME);
        Ok(Cluster {
            chain,
            ticker,
            contracts,
            nodes,
            keypairs,
            operators,
            owner,
            _dir: dir,
        })
    }

    /// Registers a project of sum and count over 32-bit readings ([`Program::sum_source`]).
    pub async fn private_average_project(
        &self,
        committee: u16,
        threshold: u16,
        max_inputs: u32,
        window_secs: u64,
    ) -> anyhow::Result<u64> {
        let source = Program::sum_source(max_inputs, window_secs, 32);
        self.program_project(&source, committee, threshold).await
    }

    /// Registers a project running `source` and hands the source to node 0 only: the other
    /// nodes fetch it from the mesh by its hash when they first need it.
    pub async fn program_project(
        &self,
        source: &str,
        committee: u16,
        threshold: u16,
    ) -> anyhow::Result<u64> {
        self.register(source, ProverKind::Spdz, committee, threshold)
            .await
    }

    /// Registers a `wasm` project running `module` (tasks of `devices` records of at most
    /// `record_bytes`, `window_secs` long) and hands its manifest and module to node 0 only.
    pub async fn wasm_project(
        &self,
        module: &[u8],
        (devices, window_secs, record_bytes): (u32, u64, u32),
        committee: u16,
        threshold: u16,
    ) -> anyhow::Result<u64> {
        let manifest = WasmSpec {
            module: alloy::primitives::keccak256(module),
            devices,
            window_secs,
            record_bytes,
            module_uri: String::new(),
            runner: conclave_node::program::Runner::Wasm,
        }
        .render();
        let id = self
            .register(&manifest, ProverKind::Wasm, committee, threshold)
            .await?;
        self.upload_module(id, module).await?;
        Ok(id)
    }

    /// Registers a `byop` project (or `tee`, with a policy in `byop`) whose code `code` every
    /// seat hands to its prover for `byop.vm_type`, and hands the manifest and the code to node 0
    /// only.
    pub async fn byop_project(
        &self,
        code: &[u8],
        byop: conclave_node::program::ByopSpec,
        (devices, window_secs, record_bytes): (u32, u64, u32),
        committee: u16,
        threshold: u16,
    ) -> anyhow::Result<u64> {
        let spec = WasmSpec {
            module: alloy::primitives::keccak256(code),
            devices,
            window_secs,
            record_bytes,
            module_uri: String::new(),
            runner: conclave_node::program::Runner::Byop(byop),
        };
        let id = self
            .register(&spec.render(), spec.kind(), committee, threshold)
            .await?;
        self.upload_module(id, code).await?;
        Ok(id)
    }

    /// Hands a project's module (or byop code) to node 0.
    async fn upload_module(&self, project: u64, module: &[u8]) -> anyhow::Result<()> {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/projects/{project}/module", self.api(0)))
            .body(module.to_vec())
            .send()
            .await?;
        if !response.status().is_success() {
            anyhow::bail!("node 0 refused the module: {}", response.text().await?);
        }
        Ok(())
    }

    /// Registers a `halo2` project running `source` with its verifier
    /// ([`Cluster::halo2_verifier`]).
    pub async fn halo2_project(
        &self,
        source: &str,
        committee: u16,
        threshold: u16,
        tools: &std::path::Path,
    ) -> anyhow::Result<u64> {
        let verifier = self.halo2_verifier(source, tools).await?;
        self.halo2_project_with(source, committee, threshold, verifier)
            .await
    }

    /// Registers a `halo2` project running `source` whose verifier is already deployed.
    pub async fn halo2_project_with(
        &self,
        source: &str,
        committee: u16,
        threshold: u16,
        verifier: alloy::primitives::Address,
    ) -> anyhow::Result<u64> {
        self.register_with(source, ProverKind::Halo2, committee, threshold, verifier)
            .await
    }

    /// Deploys the verifier of the `halo2` program `source`: writes the cluster's insecure KZG
    /// parameters at the first one (as many rows as the program needs; every node reads them
    /// at its first halo2 task), then generates the verifier and compiles it (solc-js under
    /// `tools`).
    pub async fn halo2_verifier(
        &self,
        source: &str,
        tools: &std::path::Path,
    ) -> anyhow::Result<alloy::primitives::Address> {
        let program = Program::from_source(source)?;
        let path = self.insecure_srs();
        let bytecode = tokio::task::spawn_blocking({
            let tools = tools.to_path_buf();
            move || -> anyhow::Result<Vec<u8>> {
                let srs = if path.exists() {
                    conclave_provers::halo2::Srs::read(&path)?
                } else {
                    let compiled = conclave_mpc::lang::Program::compile(
                        &program.source,
                        1,
                        Some(program.max_inputs as usize),
                    )
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                    let k = conclave_provers::halo2::rows_needed(&compiled.lowered.circuit, 1)?;
                    let srs = conclave_provers::halo2::Srs::insecure(k, INSECURE_SRS_SEED);
                    srs.write(&path)?;
                    srs
                };
                conclave_node::halo2::verifier_bytecode(&srs, &program, &tools)
                    .map_err(anyhow::Error::msg)
            }
        })
        .await??;
        Ok(self
            .contracts
            .deploy_verifier(&self.owner, &bytecode.into())
            .await?)
    }

    async fn register(
        &self,
        source: &str,
        prover_kind: ProverKind,
        committee: u16,
        threshold: u16,
    ) -> anyhow::Result<u64> {
        let zero = alloy::primitives::Address::ZERO;
        self.register_with(source, prover_kind, committee, threshold, zero)
            .await
    }

    async fn register_with(
        &self,
        source: &str,
        prover_kind: ProverKind,
        committee: u16,
        threshold: u16,
        verifier: alloy::primitives::Address,
    ) -> anyhow::Result<u64> {
        let shape = (prover_kind, committee, threshold, verifier);
        register_project(&self.contracts, &self.owner, &self.api(0), source, shape).await
    }

    /// The result of the task with this (hex) id, published after block `from`, waiting up to
    /// `wait`.
    pub async fn published(
        &self,
        task_id: &str,
        from: u64,
        wait: Duration,
    ) -> anyhow::Result<conclave_chain::contracts::Published> {
        let task = U256::from_str_radix(task_id.trim_start_matches("0x"), 16)?;
        conclave_chain::watch::ResultWatcher::new(self.contracts.clone(), from, 0)
            .with_poll_interval(Duration::from_millis(20))
            .wait_for_task(task, wait)
            .await?
            .with_context(|| format!("task {task_id} did not publish within {wait:?}"))
    }

    /// Node `node`'s status of a task once it has seen the task published (it learns of the
    /// publication from the chain a few polls after the event, so a status read right after
    /// [`Cluster::published`] may still say "attesting").
    pub async fn status_once_published(
        &self,
        node: usize,
        task: &[u8; 32],
        wait: Duration,
    ) -> anyhow::Result<conclave_node::api::StatusJson> {
        let client = conclave_node::client::Client::new(self.api(node));
        let deadline = Instant::now() + wait;
        loop {
            let status = client.status(task).await?;
            if status.state == "published" {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("node {node} still says {} after {wait:?}", status.state);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The seats `operator` holds in `task`'s draw, and the seats everyone else holds.
    pub async fn seats_of(
        &self,
        task: U256,
        operator: alloy::primitives::Address,
    ) -> anyhow::Result<(u32, u32)> {
        let seated = self
            .contracts
            .committee(task)
            .await?
            .context("the task has no draw yet")?;
        let count = |theirs: bool| -> u32 {
            seated
                .iter()
                .filter(|(who, _)| (*who == operator) == theirs)
                .map(|(_, mask)| conclave_chain::sortition::seat_count(*mask))
                .sum()
        };
        Ok((count(true), count(false)))
    }

    /// The cluster's insecure KZG parameters (written by the first [`Cluster::halo2_project`]).
    pub fn insecure_srs(&self) -> std::path::PathBuf {
        self._dir.path().join(INSECURE_SRS)
    }

    /// Where the nodes' databases are (`node{i}.redb`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The API base URL of node `i`.
    pub fn api(&self, i: usize) -> String {
        format!("http://{}", self.nodes[i].http_addr())
    }

    pub async fn shutdown(self) {
        self.ticker.abort();
        for node in self.nodes {
            node.shutdown().await;
        }
    }
}

/// A `conclave-prover` process on 127.0.0.1 (any free port), stopped when dropped.
pub struct ProverProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:port`.
    pub url: String,
}

impl ProverProcess {
    /// Starts the `conclave-prover` binary: `CONCLAVE_PROVER` if set, else the one next to this
    /// executable (or next to its folder, for test binaries under `deps/`).
    pub fn spawn() -> anyhow::Result<ProverProcess> {
        let binary = Self::binary()?;
        let mut child = std::process::Command::new(&binary)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("the prover's stdout")?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let address = line
            .strip_prefix("conclave-prover listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        let Some(address) = address else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} did not say where it listens: {line:?}",
                binary.display()
            );
        };
        Ok(ProverProcess {
            child,
            url: format!("http://{address}"),
        })
    }

    fn binary() -> anyhow::Result<std::path::PathBuf> {
        if let Some(path) = std::env::var_os("CONCLAVE_PROVER") {
            return Ok(path.into());
        }
        let exe = std::env::current_exe()?;
        let name = format!("conclave-prover{}", std::env::consts::EXE_SUFFIX);
        exe.parent()
            .into_iter()
            .flat_map(|dir| [Some(dir), dir.parent()])
            .flatten()
            .map(|dir| dir.join(&name))
            .find(|path| path.is_file())
            .context(
                "no conclave-prover binary next to this one: build it with \
                 `cargo build -p conclave-provers --bin conclave-prover` (same profile), or set \
                 CONCLAVE_PROVER to its path",
            )
    }

    /// The process id (a test kills it to see a crashed prover).
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ProverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
