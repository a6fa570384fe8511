//! `conclave`: the node daemon and its command line.

mod program_cli;
mod project_cli;
mod wasm_cli;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::primitives::{U256, utils::parse_ether};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use conclave_chain::{Addresses, Chain, Contracts, RpcChain};
use conclave_node::client::Client;
use conclave_node::config::{self, NodeConfig};
use conclave_node::program::Program;
use conclave_node::store::Store;
use conclave_node::{Node, NodeSetup, keys};
use conclave_p2p::config::NetworkConfig;

/// A Conclave node: joins the mesh, serves devices, computes private tasks in committees and
/// publishes their results on chain.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the node's keys and a commented node.toml in DIR. The operator key is encrypted
    /// with a passphrase from CONCLAVE_PASSPHRASE or a prompt.
    Init {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// HTTP API address to write into node.toml.
        #[arg(long, default_value = "127.0.0.1:7001")]
        api: std::net::SocketAddr,
        /// Multiaddr to listen on.
        #[arg(long, default_value = "/ip4/0.0.0.0/tcp/4001")]
        listen: String,
        /// Chain JSON-RPC endpoint.
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
    },
    /// Run the node until interrupted.
    Run {
        #[arg(long, default_value = "node.toml")]
        config: PathBuf,
    },
    /// Ask a running node how it is (its /health).
    Status {
        #[arg(long, default_value = "http://127.0.0.1:7001")]
        api: String,
    },
    /// Register this node on the NodeRegistry with a stake (in coins, e.g. 10 or 0.5).
    Register {
        #[arg(long, default_value = "node.toml")]
        config: PathBuf,
        #[arg(long)]
        stake: String,
    },
    /// Projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Programs in Tally, the program language (docs/programs.md).
    Program {
        #[command(subcommand)]
        command: ProgramCommand,
    },
    /// WebAssembly modules for the `wasm` prover, tried on this machine (docs/wasm.md; nodes do
    /// not take `wasm` projects yet).
    Wasm {
        #[command(subcommand)]
        command: WasmCommand,
    },
    /// As a device: secret-share a record into the project's open task through a node's API,
    /// after checking the committee the node announces against chain.
    Submit {
        #[arg(long, default_value = "http://127.0.0.1:7001")]
        api: String,
        #[arg(long)]
        project: u64,
        /// One value per field of the program's device input, in declaration order (repeat the
        /// flag for several fields); a fixed-point field takes a decimal number.
        #[arg(
            long = "value",
            allow_hyphen_values = true,
            required_unless_present = "data"
        )]
        values: Vec<f64>,
        /// For a `wasm` project: the record, sealed whole to each member (`0x…` is hex,
        /// anything else its UTF-8 bytes).
        #[arg(long, conflicts_with_all = ["values", "owner"])]
        data: Option<String>,
        /// JSON-RPC endpoint of the chain the committee is checked against.
        #[arg(long)]
        rpc: Option<String>,
        /// The deployment's addresses file (from conclave-deploy).
        #[arg(long, default_value = "addresses.json")]
        addresses: PathBuf,
        /// Trust the entry node's committee without checking it against chain.
        #[arg(long)]
        unchecked: bool,
        /// As the project owner: the values are the program's owner parameters (`from owner`),
        /// sent into the task's owner slot with the operator key of the node in --config.
        #[arg(long, requires = "rpc")]
        owner: bool,
        /// The node.toml whose operator key owns the project (with --owner).
        #[arg(long, default_value = "node.toml")]
        config: PathBuf,
    },
    /// Read a task's published result from chain.
    Result {
        #[arg(long, default_value = "node.toml")]
        config: PathBuf,
        /// Task id (hex).
        task: String,
        /// As the program's receiver: open the private outputs with this key file (from
        /// `conclave program receiver-key`).
        #[arg(long)]
        receiver_key: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ProgramCommand {
    /// Parse and type-check FILE; print its hash, inputs, outputs, gate counts and the
    /// preprocessing it needs. Errors are printed with their line and column.
    Check { file: PathBuf },
    /// Evaluate FILE in the clear (the reference semantics) on the records in a JSON file:
    /// {"devices": [{"reading": 12}, ...], "owner": {"weights": [0.5, 1.0]}}.
    Eval {
        file: PathBuf,
        #[arg(long)]
        inputs: PathBuf,
    },
    /// Create a receiver key pair for private outputs: the secret goes to FILE (mode 0600);
    /// the line to put into the program is printed.
    ReceiverKey { file: PathBuf },
    /// Hand the source of a registered project's program to a running node, which serves it to
    /// the mesh (nodes fetch programs by hash).
    Publish {
        file: PathBuf,
        #[arg(long)]
        project: u64,
        #[arg(long, default_value = "http://127.0.0.1:7001")]
        api: String,
    },
}

#[derive(Subcommand)]
enum WasmCommand {
    /// Load FILE as the engine does: print its hash, ABI, imports and memory, or why it cannot
    /// run (each unsupported import named).
    Check { file: PathBuf },
    /// Run FILE over device records as a task would; print its output, logs and fuel used.
    Run {
        file: PathBuf,
        /// One device record per flag, in slot order: `0x…` is hex, anything else its UTF-8
        /// bytes.
        #[arg(long = "record", allow_hyphen_values = true)]
        records: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Register the project described by a project.toml, owned by this node's operator.
    Register {
        file: PathBuf,
        #[arg(long, default_value = "node.toml")]
        config: PathBuf,
        /// For prover "halo2": the folder holding solc-js (`node_modules/solc`, as
        /// `chain/scripts/install-tools` installs it); Node.js must be on the PATH.
        #[arg(long, env = "CONCLAVE_TOOLS", default_value = ".tools")]
        tools: PathBuf,
    },
    /// Import a W3bstream project file: write the equivalent project.toml and code into --out,
    /// say what could not be carried over, and register it (unless --dry-run). A wasm applet
    /// runs at every seat; other VM types (1 risc0, 2 halo2, 3 zkwasm) go to the provers
    /// operators run for them (`byop`, docs/provers.md).
    Import {
        /// The W3bstream project file (JSON).
        file: PathBuf,
        /// The project version to import (default: the file's defaultVersion, else its
        /// first).
        #[arg(long)]
        project_version: Option<String>,
        /// Hand a wasm applet to the operators' W3bstream wasm VMs instead of running it at
        /// every seat.
        #[arg(long)]
        byop: bool,
        /// Expected committee seats (sortition draws about this many).
        #[arg(long, default_value_t = 3)]
        committee: u16,
        /// Seats whose signatures publish a result (at most --committee).
        #[arg(long, default_value_t = 2)]
        threshold: u16,
        /// Device records a task takes (1 to 1024).
        #[arg(long, default_value_t = 10)]
        devices: u32,
        /// A task's input window, in seconds (1 to 86400).
        #[arg(long, default_value_t = 60)]
        window: u64,
        /// The largest record a device sends, in bytes (1 to 2048).
        #[arg(long, default_value_t = 256)]
        record_bytes: u32,
        /// Where project.toml and the code are written (default: next to FILE, named after it).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the files and stop; register later with `conclave project register`.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = "node.toml")]
        config: PathBuf,
    },
    /// Hand a registered project's program (and, for `wasm`, its module) to a running node,
    /// which serves them to the mesh.
    Publish {
        file: PathBuf,
        #[arg(long)]
        project: u64,
        #[arg(long, default_value = "http://127.0.0.1:7001")]
        api: String,
    },
}

/// Registers the project a project.toml describes, owned by `config`'s operator (deploying a
/// halo2 verifier first), and hands its program to the operator's node.
async fn register(file: &Path, config: &Path, tools: &Path) -> anyhow::Result<()> {
    let config = load(config)?;
    let mut registration = project_cli::read(file)?;
    let operator = keys::operator_key(&config.data_dir, &passphrase()?)?;
    let contracts = contracts(&config).await?;
    if registration.spec.prover_kind == conclave_chain::contracts::ProverKind::Halo2 {
        let srs = config.provers.halo2_srs.as_ref().context(
            "prover \"halo2\" needs [provers] halo2_srs in node.toml: the verifier is made from the parameters the nodes prove with",
        )?;
        registration.spec.verifier =
            project_cli::deploy_verifier(&registration, srs, tools, &contracts, &operator).await?;
    }
    let id = contracts
        .register_project(&operator, &registration.spec)
        .await?;
    println!("project {id} (program {})", registration.spec.program_hash);
    let api = format!("http://{}", config.api.listen);
    if let Err(e) = project_cli::publish(&api, id.to::<u64>(), registration).await {
        println!(
            "the project's program is not on the mesh yet ({e:#}); once your node runs: \
             conclave project publish {} --project {id}",
            file.display()
        );
    }
    Ok(())
}

fn passphrase() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("CONCLAVE_PASSPHRASE") {
        return Ok(p);
    }
    rpassword::prompt_password("operator key passphrase: ").context("reading the passphrase")
}

async fn contracts(config: &NodeConfig) -> anyhow::Result<Contracts> {
    connect(&config.chain.rpc, &config.chain.addresses).await
}

/// The deployment in `addresses` on the chain at `rpc`, which must be that deployment's chain.
async fn connect(rpc: &str, addresses: &Path) -> anyhow::Result<Contracts> {
    let deployed = Addresses::read(addresses)?;
    let chain = RpcChain::connect(rpc)
        .await
        .with_context(|| format!("connecting to {rpc}"))?;
    if chain.chain_id().await? != deployed.chain_id {
        bail!("{rpc} is not the chain of {}", addresses.display());
    }
    Ok(Contracts::new(Arc::new(chain), deployed))
}

fn load(path: &Path) -> anyhow::Result<NodeConfig> {
    Ok(NodeConfig::load(path)?)
}

fn main() -> anyhow::Result<()> {
    conclave_node::run_main(cli())
}

async fn cli() -> anyhow::Result<()> {
    conclave_node::init_logging("info,libp2p=warn,halo2_base=error");
    match Cli::parse().command {
        Command::Init {
            dir,
            api,
            listen,
            rpc,
        } => {
            std::fs::create_dir_all(&dir)?;
            let config_path = dir.join("node.toml");
            if config_path.exists() {
                bail!("{} exists; refusing to overwrite", config_path.display());
            }
            let (operator, keypair) = keys::create(&dir, &passphrase()?)?;
            std::fs::write(&config_path, config::template(api, &listen, &rpc))?;
            println!("peer id   {}", keypair.public().to_peer_id());
            println!(
                "operator  {}  (fund it, then `conclave register --stake <coins>`)",
                operator.address()
            );
            println!("config    {}", config_path.display());
        }
        Command::Run { config } => run(&load(&config)?).await?,
        Command::Status { api } => {
            let body = reqwest::get(format!("{}/health", api.trim_end_matches('/')))
                .await
                .with_context(|| format!("is a node running at {api}?"))?
                .text()
                .await?;
            println!("{body}");
        }
        Command::Register { config, stake } => {
            let config = load(&config)?;
            let operator = keys::operator_key(&config.data_dir, &passphrase()?)?;
            let keypair = keys::node_key(&config.data_dir)?;
            let peer = keypair.public().to_peer_id();
            let stake = parse_ether(&stake).context("stake must be a number of coins")?;
            let contracts = contracts(&config).await?;
            let a = contracts.addresses();
            let identity = conclave_node::identity::node_identity(
                &keypair,
                a.chain_id,
                a.node_registry,
                operator.address(),
            )?;
            let receipt = contracts.register_node(&operator, &identity, stake).await?;
            println!(
                "registered {peer} for {} with stake {stake} wei in tx {}",
                operator.address(),
                receipt.tx_hash
            );
        }
        Command::Project {
            command:
                ProjectCommand::Register {
                    file,
                    config,
                    tools,
                },
        } => register(&file, &config, &tools).await?,
        Command::Project {
            command:
                ProjectCommand::Import {
                    file,
                    project_version,
                    byop,
                    committee,
                    threshold,
                    devices,
                    window,
                    record_bytes,
                    out,
                    dry_run,
                    config,
                },
        } => {
            let written = project_cli::import(
                &file,
                project_version.as_deref(),
                byop,
                project_cli::Shape {
                    committee,
                    threshold,
                    devices,
                    window,
                    record_bytes,
                },
                out,
            )?;
            if !dry_run {
                register(&written, &config, Path::new(".tools")).await?;
            }
        }
        Command::Project {
            command: ProjectCommand::Publish { file, project, api },
        } => {
            project_cli::publish(&api, project, project_cli::read(&file)?).await?;
            println!("{api} now serves project {project}'s program");
        }
        Command::Wasm { command } => match command {
            WasmCommand::Check { file } => wasm_cli::check(&file)?,
            WasmCommand::Run { file, records } => {
                let records = records
                    .iter()
                    .map(|r| wasm_cli::record(r))
                    .collect::<anyhow::Result<_>>()?;
                wasm_cli::run(&file, records)?
            }
        },
        Command::Program { command } => match command {
            ProgramCommand::Check { file } => program_cli::check(&file)?,
            ProgramCommand::Eval { file, inputs } => program_cli::eval(&file, &inputs)?,
            ProgramCommand::ReceiverKey { file } => {
                let public = keys::create_receiver_key(&file)?;
                println!("secret key written to {}; keep it safe", file.display());
                println!("receiver \"{}\";", hex::encode(public));
            }
            ProgramCommand::Publish { file, project, api } => {
                let source = program_cli::read_source(&file)?;
                project_cli::publish_source(&api, project, &source).await?;
                println!(
                    "{api} now serves program {}",
                    alloy::primitives::keccak256(source.as_bytes())
                );
            }
        },
        Command::Submit {
            api,
            project,
            values,
            data,
            rpc,
            addresses,
            unchecked,
            owner,
            config,
        } => {
            let client = match (rpc, unchecked) {
                (Some(rpc), _) => Client::new(api).with_chain(
                    connect(&rpc, &addresses)
                        .await
                        .context("the chain to check the committee against")?,
                ),
                (None, true) => Client::new(api),
                (None, false) => bail!(
                    "give --rpc (and --addresses) so that the committee can be checked against \
                     chain, or --unchecked to trust the entry node"
                ),
            };
            let done = if let Some(data) = data {
                client
                    .submit_data(project, &wasm_cli::record(&data)?)
                    .await?
            } else if owner {
                let config = load(&config)?;
                let key = keys::operator_key(&config.data_dir, &passphrase()?)?;
                client.submit_owner_record(project, &values, &key).await?
            } else {
                client.submit_record(project, &values).await?
            };
            println!(
                "accepted: task 0x{} slot {}",
                hex::encode(done.task_id),
                done.slot
            );
        }
        Command::Result {
            config,
            task,
            receiver_key,
        } => {
            let config = load(&config)?;
            let task = U256::from_str_radix(task.trim_start_matches("0x"), 16)
                .context("task id must be hex")?;
            let contracts = contracts(&config).await?;
            let api = format!("http://{}", config.api.listen);
            if let Some(file) = receiver_key {
                let key = keys::receiver_key(&file)?;
                let client = Client::new(&api).with_chain(contracts);
                for o in client.receiver_outputs(task.to_be_bytes(), &key).await? {
                    println!("{} = {o}", o.name);
                }
                return Ok(());
            }
            match contracts.result(task).await? {
                None => println!("no result published for this task yet"),
                Some(r) => {
                    match read_outputs(&contracts, &api, task, &r.output).await {
                        Ok(Some(outputs)) => {
                            for o in outputs {
                                println!("{} = {o}", o.name());
                            }
                        }
                        Ok(None) => println!("output = {}", wasm_cli::shown(&r.output)),
                        Err(e) => println!("output 0x{} ({e:#})", hex::encode(&r.output)),
                    }
                    println!("published in block {}", r.published_block);
                }
            }
        }
    }
    Ok(())
}

/// A task's published outputs, read with its program (fetched from the node at `api` and
/// checked against the hash on chain); `None` for a `wasm` task, whose output is the module's
/// bytes.
async fn read_outputs(
    contracts: &Contracts,
    api: &str,
    task: U256,
    output: &[u8],
) -> anyhow::Result<Option<Vec<conclave_provers::Opened>>> {
    let hash = contracts.task(task).await?.programHash;
    let url = format!("{api}/v1/tasks/0x{:064x}/program", task);
    let answer: conclave_node::api::ProgramJson = reqwest::get(&url)
        .await
        .with_context(|| format!("fetching the task's program from {api}"))?
        .json()
        .await
        .context("the node's answer")?;
    let program = Program::from_chain(&answer.source, hash)?;
    if let conclave_node::program::Body::Wasm(_) = program.body {
        return Ok(None);
    }
    program
        .decode_outputs(output)
        .map(Some)
        .context("the output does not have the program's layout")
}

fn multiaddrs(list: &[String], what: &str) -> anyhow::Result<Vec<libp2p::Multiaddr>> {
    list.iter()
        .map(|a| a.parse().with_context(|| format!("{what} address {a}")))
        .collect()
}

/// Says loudly if this node's registry record is one that other nodes ignore (registered with
/// another key, e.g. before input keys were derived from the peer key): it would never be seated.
async fn check_own_record(node: &Node, config: &NodeConfig) {
    let Ok(contracts) = contracts(config).await else {
        return;
    };
    let a = contracts.addresses();
    match contracts.node(node.operator()).await {
        Ok(record) if !record.peerId.is_empty() => {
            if let Err(e) = conclave_node::identity::verify_record(
                &record,
                a.chain_id,
                a.node_registry,
                node.operator(),
            ) {
                tracing::error!(error = %e, "this node's registry record fails the identity check: other nodes ignore it; deactivate, withdraw and register again");
            } else if record.peerId.as_ref() != node.peer_id().to_bytes().as_slice() {
                tracing::error!(
                    "this operator is registered with another peer id than this node's"
                );
            }
        }
        Ok(_) => tracing::warn!("this operator is not registered: run `conclave register`"),
        Err(e) => tracing::warn!(error = %e, "could not read this node's registry record"),
    }
}

async fn run(config: &NodeConfig) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    let keypair = keys::node_key(dir)?;
    let operator = keys::operator_key(dir, &passphrase()?)?;
    let mut network = if config.network.local {
        NetworkConfig::local(keypair)
    } else {
        NetworkConfig::new(keypair)
    };
    network.mdns = config.network.mdns;
    network.listen = multiaddrs(&config.network.listen, "listen")?;
    network.bootstrap = multiaddrs(&config.network.bootstrap, "bootstrap")?;
    network.chain_address = operator.address().0.0;
    let node = Node::start(NodeSetup {
        network,
        contracts: contracts(config).await?,
        operator,
        store: Store::open(&dir.join("node.redb"))?,
        http: config.api.listen,
        rate_limits: config.api.limits(),
        confirmations: config.chain.confirmations,
        halo2_srs: config.provers.halo2_srs.clone(),
        byop: config.provers.byop_config(),
    })
    .await?;
    let addrs = node.network().wait_listening().await?;
    tracing::info!(peer = %node.peer_id(), api = %node.http_addr(), ?addrs, "node running");
    check_own_record(&node, config).await;
    let signal = stop_signal().await?;
    tracing::info!(
        signal,
        "shutting down: no new work; steps in flight end within {:?}",
        conclave_node::node::SHUTDOWN_WAIT
    );
    node.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM (what systemd and container runtimes send to stop).
async fn stop_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.map(|()| "SIGINT"),
            _ = terminate.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map(|()| "Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    /// Every subcommand's arguments are well formed (clap checks names and defaults only when
    /// the subcommand is first parsed, so a clash would otherwise surface as a panic in use).
    #[test]
    fn the_command_line_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
