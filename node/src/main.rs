//! `conclave`: the node daemon and its command line.

mod program_cli;
mod project_cli;
mod wasm_cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{U256, utils::parse_ether};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use conclave_chain::{Addresses, Chain, Contracts, RpcChain};
use conclave_node::client::{Client, Ending, Submitted};
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
    /// How log lines are written to stderr: `text` (coloured on a terminal only) or `json`
    /// (one object per line).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: conclave_node::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the node's keys and a commented node.toml in DIR. The operator key is encrypted
    /// with a passphrase (not empty) from CONCLAVE_PASSPHRASE or a prompt.
    Init {
        /// The node's folder: keys, node.toml and (by default) its database.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// HTTP API address (IP:PORT) to write into node.toml; devices and `conclave status`
        /// use it.
        #[arg(long, default_value = "127.0.0.1:7001")]
        api: std::net::SocketAddr,
        /// libp2p multiaddr to listen on (TCP port other nodes dial).
        #[arg(long, default_value = "/ip4/0.0.0.0/tcp/4001")]
        listen: String,
        /// Chain JSON-RPC endpoint (URL).
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc: String,
    },
    /// Run the node until SIGINT or SIGTERM (then it finishes in-flight steps and exits 0).
    Run {
        /// The node's configuration file.
        #[arg(long, default_value = "node.toml")]
        config: PathBuf,
    },
    /// Ask a running node how it is (its /health).
    Status {
        /// The node's API as a URL (default: `[api] listen` from --config).
        #[arg(long)]
        api: Option<String>,
        /// The node's configuration file, read for its API address.
        #[arg(long, default_value = "node.toml")]
        config: PathBuf,
    },
    /// Register this node on the NodeRegistry with a stake.
    Register {
        /// The node's configuration file.
        #[arg(long, default_value = "node.toml")]
        config: PathBuf,
        /// Stake in coins (ether units; decimals allowed, e.g. 10 or 0.5), sent from the
        /// operator account; at least the registry's minimum stake.
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
        /// The entry node's API as a URL.
        #[arg(long, default_value = "http://127.0.0.1:7001")]
        api: String,
        /// The project's id (a number, as `conclave project register` printed it).
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
        /// Follow the task until its result is published (printing each step); if it fails,
        /// send the record again into the task that re-runs it. Exit code as `conclave result`.
        #[arg(long)]
        wait: bool,
        /// With --wait: tasks to try at most (1 to 10).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
        attempts: u32,
        /// With --wait: seconds to wait in all before giving up (1 to 86400).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: u64,
    },
    /// Show a task's state: published (with its outputs and confirmations; exit code 0),
    /// failed (with the reason and the task that re-runs it; 3), no such task in this
    /// deployment or project (4), or pending (5).
    Result {
        /// The node.toml naming the chain and the node whose API is asked for the task's state.
        #[arg(long, default_value = "node.toml")]
        config: PathBuf,
        /// The task's id (hex, with or without 0x).
        task: String,
        /// The project the task should belong to (a task of another project is refused, exit
        /// code 4).
        #[arg(long)]
        project: Option<u64>,
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
        /// The project's id.
        #[arg(long)]
        project: u64,
        /// The node's API as a URL.
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
        /// The project.toml.
        file: PathBuf,
        /// The owner's node.toml (its operator key pays and owns the project).
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
        /// The project.toml.
        file: PathBuf,
        /// The project's id.
        #[arg(long)]
        project: u64,
        /// The node's API as a URL.
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
    project_cli::check_committee_formable(
        &contracts,
        registration.spec.committee_size,
        registration.spec.threshold,
    )
    .await?;
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
    let api = api_url(&config);
    if let Err(e) = project_cli::publish(&api, id.to::<u64>(), registration).await {
        println!(
            "the project's program is not on the mesh yet ({e:#}); once your node runs: \
             conclave project publish {} --project {id}",
            file.display()
        );
    }
    Ok(())
}

/// The passphrase of the operator key: CONCLAVE_PASSPHRASE, else asked on the terminal.
fn passphrase() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("CONCLAVE_PASSPHRASE") {
        return Ok(p);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!(
            "no terminal to ask for the operator key's passphrase: set CONCLAVE_PASSPHRASE (e.g. in the service's environment file)"
        );
    }
    rpassword::prompt_password("operator key passphrase: ").context("reading the passphrase")
}

/// A passphrase for a new operator key: not empty, and typed twice when asked on a terminal.
fn new_passphrase() -> anyhow::Result<String> {
    let asked = std::env::var("CONCLAVE_PASSPHRASE").is_err();
    let p = passphrase()?;
    if p.trim().is_empty() {
        bail!(
            "the passphrase is empty: the operator key (which holds the stake) would be stored unprotected; choose one (CONCLAVE_PASSPHRASE or the prompt)"
        );
    }
    if asked {
        let again = rpassword::prompt_password("the same passphrase again: ")
            .context("reading the passphrase")?;
        if again != p {
            bail!("the two passphrases differ");
        }
    }
    Ok(p)
}

/// The URL of the node API that `config` describes (an unspecified listen address is asked
/// on loopback).
fn api_url(config: &NodeConfig) -> String {
    let mut addr = config.api.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
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

fn main() -> anyhow::Result<ExitCode> {
    conclave_node::run_main(cli())
}

async fn cli() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    conclave_node::init_logging("info,libp2p=warn,halo2_base=error", cli.log_format);
    match cli.command {
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
            let (operator, keypair) = keys::create(&dir, &new_passphrase()?)?;
            std::fs::write(&config_path, config::template(api, &listen, &rpc))?;
            println!("peer id   {}", keypair.public().to_peer_id());
            println!(
                "operator  {}  (fund it, then `conclave register --stake <coins>`)",
                operator.address()
            );
            println!("config    {}", config_path.display());
        }
        Command::Run { config } => run(&load(&config)?).await?,
        Command::Status { api, config } => {
            let api = match api {
                Some(api) => api,
                None if config.exists() => api_url(&load(&config)?),
                None => bail!(
                    "no {} to read the node's API address from: give --config FILE or --api URL",
                    config.display()
                ),
            };
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
            wait,
            attempts,
            timeout,
        } => {
            let chain = match (rpc, unchecked) {
                (Some(rpc), _) => Some(
                    connect(&rpc, &addresses)
                        .await
                        .context("the chain to check the committee against")?,
                ),
                (None, true) => None,
                (None, false) => bail!(
                    "give --rpc (and --addresses) so that the committee can be checked against \
                     chain, or --unchecked to trust the entry node"
                ),
            };
            let client = match &chain {
                Some(contracts) => Client::new(&api).with_chain(contracts.clone()),
                None => Client::new(&api),
            };
            // The owner's key is opened once, not at every attempt.
            let owner_key = if owner {
                let config = load(&config)?;
                Some(keys::operator_key(&config.data_dir, &passphrase()?)?)
            } else {
                None
            };
            let submit = async || -> anyhow::Result<Submitted> {
                Ok(if let Some(data) = &data {
                    client
                        .submit_data(project, &wasm_cli::record(data)?)
                        .await?
                } else if let Some(key) = &owner_key {
                    client.submit_owner_record(project, &values, key).await?
                } else {
                    client.submit_record(project, &values).await?
                })
            };
            if !wait {
                let done = submit().await?;
                println!(
                    "accepted: task 0x{} slot {}",
                    hex::encode(done.task_id),
                    done.slot
                );
                return Ok(ExitCode::SUCCESS);
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
            for attempt in 1..=attempts {
                // A task whose member was just lost (503), closed (409) or a busy node (429)
                // takes the record in a moment: a new task, or the same once it answers.
                let done = loop {
                    match submit().await {
                        Ok(done) => break done,
                        Err(e)
                            if retryable(&e)
                                && tokio::time::Instant::now() + SUBMIT_RETRY < deadline =>
                        {
                            println!(
                                "not accepted yet ({}); trying again",
                                printable(&format!("{e:#}"))
                            );
                            tokio::time::sleep(SUBMIT_RETRY).await;
                        }
                        Err(e) => return Err(e),
                    }
                };
                println!(
                    "accepted: task 0x{} slot {} (attempt {attempt} of {attempts}); waiting for the result",
                    hex::encode(done.task_id),
                    done.slot
                );
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match client.follow(&done.task_id, FOLLOW_POLL, left).await {
                    Ok(Ending::Published(status)) => {
                        // From the chain where there is one: the outputs read with the
                        // task's program, and the confirmations.
                        if let Some(contracts) = &chain {
                            let task = U256::from_be_bytes(done.task_id);
                            return Ok(show_result(contracts, &api, task, None).await?.code());
                        }
                        print_status_outputs(&status);
                        println!(
                            "published in block {} (tx {})",
                            status.block.unwrap_or_default(),
                            status.tx_hash.unwrap_or_default()
                        );
                        return Ok(Outcome::Published.code());
                    }
                    Ok(Ending::Failed(status)) => {
                        // The node's word is checked where the chain can say: a task that
                        // published after all is not sent to again.
                        if let Some(contracts) = &chain {
                            let task = U256::from_be_bytes(done.task_id);
                            if contracts.result(task).await?.is_some() {
                                return Ok(show_result(contracts, &api, task, None).await?.code());
                            }
                        }
                        println!(
                            "task 0x{} failed: {}",
                            hex::encode(done.task_id),
                            printable(status.reason.as_deref().unwrap_or("no reason given"))
                        );
                        match status.retried_as.as_deref().map(printable) {
                            Some(next) if attempt < attempts => {
                                println!(
                                    "re-run as task 0x{}: sending the record again",
                                    next.trim_start_matches("0x")
                                );
                            }
                            Some(next) => println!(
                                "re-run as task 0x{}; no attempts left",
                                next.trim_start_matches("0x")
                            ),
                            None if attempt < attempts => {
                                println!("sending the record again into the project's next task");
                                // Devices of one failed task resubmit through different entry
                                // nodes: apart in time, the first's new task is announced
                                // before the others ask, and they join it.
                                let spread = rand::random_range(0..RESUBMIT_SPREAD_MS);
                                tokio::time::sleep(Duration::from_millis(spread)).await;
                            }
                            None => {}
                        }
                    }
                    Err(e) => {
                        println!("{}", printable(&e.to_string()));
                        return Ok(Outcome::Pending.code());
                    }
                }
            }
            println!("not published after {attempts} attempt(s)");
            return Ok(Outcome::Failed.code());
        }
        Command::Result {
            config,
            task,
            project,
            receiver_key,
        } => {
            let config = load(&config)?;
            let task = U256::from_str_radix(task.trim_start_matches("0x"), 16)
                .context("task id must be hex")?;
            let contracts = contracts(&config).await?;
            let api = api_url(&config);
            if let Some(file) = receiver_key {
                let key = keys::receiver_key(&file)?;
                let client = Client::new(&api).with_chain(contracts);
                for o in client.receiver_outputs(task.to_be_bytes(), &key).await? {
                    println!("{} = {o}", o.name);
                }
                return Ok(ExitCode::SUCCESS);
            }
            return Ok(show_result(&contracts, &api, task, project).await?.code());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How often `submit --wait` asks for the task's state.
const FOLLOW_POLL: Duration = Duration::from_secs(1);
/// Up to how long `submit --wait` waits at random before sending into a project's next task.
const RESUBMIT_SPREAD_MS: u64 = 5_000;
/// How long `submit --wait` waits before sending a record the node could not take yet.
const SUBMIT_RETRY: Duration = Duration::from_secs(2);

/// Whether a refused submission may succeed if sent again shortly: the network failed, or the
/// node answered that the committee is unreachable (503), the task closed or aborted (409), or
/// it is busy (429). A bad record or a lying node is final.
fn retryable(e: &anyhow::Error) -> bool {
    use conclave_node::client::ClientError;
    matches!(
        e.downcast_ref::<ClientError>(),
        Some(ClientError::Http(_))
            | Some(ClientError::Status {
                status: 409 | 429 | 503,
                ..
            })
    )
}

/// Where a task stands, as `conclave result` and `conclave submit --wait` exit with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Published on chain (exit code 0).
    Published,
    /// Not published yet, and not failed as far as anyone can tell (5).
    Pending,
    /// Failed, or no result by its deadline (3).
    Failed,
    /// No such task in this deployment, or one of another project (4).
    NotFound,
}

impl Outcome {
    fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Published => 0,
            Outcome::Failed => 3,
            Outcome::NotFound => 4,
            // Not 2, which is a usage error's.
            Outcome::Pending => 5,
        })
    }
}

fn print_status_outputs(status: &conclave_node::api::StatusJson) {
    match (&status.outputs, &status.output) {
        (Some(outputs), _) => {
            for o in outputs {
                println!("{} = {}", printable(&o.name), printable(&o.value));
            }
        }
        (None, Some(raw)) => println!("output = 0x{}", printable(raw.trim_start_matches("0x"))),
        (None, None) => {}
    }
}

/// Prints where `task` stands: its result from chain when published (with confirmations);
/// else what the node at `api` knows (its state, or why it failed and the task re-running it).
async fn show_result(
    contracts: &Contracts,
    api: &str,
    task: U256,
    project: Option<u64>,
) -> anyhow::Result<Outcome> {
    let Some(record) = contracts.task_if_any(task).await? else {
        println!("no task 0x{task:064x} in this deployment");
        return Ok(Outcome::NotFound);
    };
    if let Some(project) = project
        && record.projectId != U256::from(project)
    {
        println!(
            "task 0x{task:064x} belongs to project {}, not {project}",
            record.projectId
        );
        return Ok(Outcome::NotFound);
    }
    let head = contracts.chain().block_number().await?;
    if let Some(r) = contracts.result(task).await? {
        match read_outputs(contracts, api, task, &r.output).await {
            Ok(Some(outputs)) => {
                for o in outputs {
                    println!("{} = {o}", o.name());
                }
            }
            Ok(None) => println!("output = {}", wasm_cli::shown(&r.output)),
            Err(e) => println!("output 0x{} ({e:#})", hex::encode(&r.output)),
        }
        println!(
            "published in block {} ({} confirmation(s))",
            r.published_block,
            head.saturating_sub(r.published_block) + 1
        );
        return Ok(Outcome::Published);
    }
    let status = Client::new(api).status(&task.to_be_bytes()).await;
    if let Ok(s) = &status
        && s.state == "failed"
    {
        println!(
            "failed: {}",
            printable(s.reason.as_deref().unwrap_or("no reason given"))
        );
        match s.retried_as.as_deref().map(printable) {
            Some(next) => println!("re-run as task 0x{}", next.trim_start_matches("0x")),
            None => println!("not re-run"),
        }
        return Ok(Outcome::Failed);
    }
    if head > record.deadline {
        println!(
            "failed: no result by the task's deadline (block {}; the chain is at {head})",
            record.deadline
        );
        return Ok(Outcome::Failed);
    }
    match status {
        Ok(s) => println!("pending: {}", pending_step(&printable(&s.state))),
        Err(e) => println!(
            "pending: no result on chain yet ({api} could not say more: {})",
            printable(&e.to_string())
        ),
    }
    Ok(Outcome::Pending)
}

/// Text a node sent, without control characters (a terminal would act on escape sequences).
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// What a task's state means to someone waiting for its result.
fn pending_step(state: &str) -> String {
    match state {
        "pending" => "opened, its committee not yet drawn".into(),
        "committee" => "its committee is taking inputs".into(),
        "running" => "inputs closed; the committee is computing".into(),
        "attesting" => "the result is submitted; waiting for confirmations".into(),
        "published" => "the node reports it published; not yet seen on this chain".into(),
        other => other.to_string(),
    }
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
        Ok(_) => tracing::warn!(
            "this operator is not registered: the node is never seated; run `conclave register --stake <coins>`"
        ),
        Err(e) => tracing::warn!(error = %e, "could not read this node's registry record"),
    }
    let chain = contracts.chain();
    if let (Ok(balance), Ok(price)) = (
        chain.balance(node.operator()).await,
        chain.gas_price().await,
    ) {
        let cost = U256::from(price) * U256::from(SUBMIT_GAS);
        if balance < cost || balance.is_zero() {
            tracing::warn!(
                operator = %node.operator(),
                %balance,
                submit_cost = %cost,
                "the operator's balance (wei) is below what submitting one result costs at the current gas price: fund it, or its submissions fail"
            );
        }
    }
}

/// Gas a result submission may take: about 202,000 plus 13,200 per signer (docs/chain.md), for
/// the largest committee, with room for a receiver's call.
const SUBMIT_GAS: u64 = 700_000;

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
    network.private_addresses |= config.network.private_addresses;
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

    /// A node's text reaches the terminal without escape sequences.
    #[test]
    fn node_text_is_printed_without_control_characters() {
        assert_eq!(
            super::printable("failed\x1b[2J\x1b]0;owned\x07: reason\n"),
            "failed[2J]0;owned: reason"
        );
    }
}
