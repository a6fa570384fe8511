//! `conclave-sim`: the quickstart and the end-to-end benchmark, many nodes in one process.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use conclave_chain::watch::ResultWatcher;
use conclave_node::client::Client;
use conclave_node::program::Program;
use conclave_provers::wasm::{TaskInput, WasmEngine};
use conclave_sim::{Cluster, plaintext};
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngExt;

/// Hundreds of simulated nodes allocate from every thread at once; glibc's allocator spent a
/// fifth of a 200-node run's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Many Conclave nodes in one process, with an embedded chain"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// 5 nodes, an embedded chain, a device per slot: a program (the private average unless
    /// --program names another) computed with SPDZ by a committee drawn with 3 expected seats,
    /// published on chain, and checked against the plaintext evaluation.
    Quickstart {
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Devices submitting (default: the program's `devices`; fewer wait out the window).
        #[arg(long)]
        devices: Option<u32>,
        #[arg(long, default_value_t = 3)]
        committee: u16,
        /// `spdz` (a Tally program by MPC), `halo2` (a Tally program proven by one seat, checked
        /// by the others and on chain; with an INSECURE seeded SRS), `wasm` (a module every
        /// seat runs) or `byop` (a module every seat hands to a `conclave-prover` process over
        /// W3bstream's gRPC protocol).
        #[arg(long, value_enum, default_value_t = ProverArg::Spdz)]
        prover: ProverArg,
        /// A Tally program for `spdz` and `halo2` (default: examples/programs/average.tally), or
        /// a module for `wasm` (default: examples/wasm/applet.wasm, fed decimal readings).
        #[arg(long)]
        program: Option<std::path::PathBuf>,
    },
    /// Runs a scenario (simulations/scenarios/*.toml, docs/simulations.md): many nodes with
    /// churn, faults, partitions and adversaries; writes results.json, CSV and plots.
    Run {
        /// The scenario file.
        scenario: std::path::PathBuf,
        /// Where results and plots go (default: sim-results/<scenario name>).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Seed of every random choice (default: the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Monte-Carlo study of committee capture: the probability that an adversary with a share
    /// of the stake draws at least t seats, with the real sortition code, beside the exact
    /// binomial figure; writes security.json, security.csv and plots.
    Security {
        /// Adversary stake shares (0..1).
        #[arg(long, value_delimiter = ',', default_values_t = vec![0.1, 0.2, 0.33])]
        stake_share: Vec<f64>,
        /// Committee sizes (expected seats, 1..=255).
        #[arg(long, value_delimiter = ',', default_values_t = vec![3u16, 5, 9, 16, 32])]
        committee: Vec<u16>,
        /// The threshold is more than this share of the seats: t = floor(ratio × committee) + 1.
        #[arg(long, value_delimiter = ',', default_values_t = vec![0.5, 0.67])]
        threshold_ratio: Vec<f64>,
        /// Draws per (share, committee) pair.
        #[arg(long, default_value_t = 2000)]
        trials: u32,
        /// Registered nodes, each staking `--units` units.
        #[arg(long, default_value_t = 100)]
        nodes: u32,
        #[arg(long, default_value_t = 10)]
        units: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the files go.
        #[arg(long, default_value = "sim-results/security")]
        out: std::path::PathBuf,
    },
    /// End-to-end task latency (inputs closed → result published) for committees of 3 and 5;
    /// prints one JSON object per run.
    Bench {
        #[arg(long, default_value_t = 100)]
        inputs: u32,
        #[arg(long, value_delimiter = ',', default_values_t = vec![3u16, 5])]
        committees: Vec<u16>,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, value_enum, default_value_t = ProverArg::Spdz)]
        prover: ProverArg,
    },
}

/// The provers the simulator runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ProverArg {
    Spdz,
    Halo2,
    Wasm,
    Byop,
}

impl ProverArg {
    fn name(self) -> &'static str {
        match self {
            ProverArg::Spdz => "spdz",
            ProverArg::Halo2 => "halo2",
            ProverArg::Wasm => "wasm",
            ProverArg::Byop => "byop",
        }
    }
}

/// Where solc-js is for compiling a `halo2` program's verifier: `CONCLAVE_TOOLS`, or the
/// repository's `.tools` (which `chain/scripts/install-tools` fills).
fn tools() -> std::path::PathBuf {
    std::env::var_os("CONCLAVE_TOOLS")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools"))
}

/// Said whenever the simulator makes halo2 parameters.
const INSECURE_SRS_WARNING: &str = "WARNING: the cluster's KZG parameters come from a fixed, public seed: anyone can forge halo2 proofs against them. They are for this simulation only; real nodes read a ceremony's parameters ([provers] halo2_srs, docs/chain.md).";

fn main() -> anyhow::Result<()> {
    conclave_node::run_main(cli())
}

async fn cli() -> anyhow::Result<()> {
    // yamux warns of every connection closed under it (the connection upkeep closes idle ones).
    conclave_node::init_logging(
        "warn,halo2_base=error,yamux=error",
        conclave_node::LogFormat::Text,
    );
    match Args::parse().command {
        Command::Quickstart {
            nodes,
            devices,
            committee,
            prover,
            program,
        } => quickstart(nodes, devices, committee, prover, program).await,
        Command::Bench {
            inputs,
            committees,
            runs,
            prover,
        } => bench(inputs, &committees, runs, prover).await,
        Command::Run {
            scenario,
            out,
            seed,
        } => run_scenario(&scenario, out, seed).await,
        Command::Security {
            stake_share,
            committee,
            threshold_ratio,
            trials,
            nodes,
            units,
            seed,
            out,
        } => {
            let study = conclave_sim::security::Study {
                stake_shares: stake_share,
                committees: committee,
                threshold_ratios: threshold_ratio,
                trials,
                nodes,
                units_per_node: units,
                seed,
            };
            security(study, &out)
        }
    }
}

/// `conclave-sim run`: the scenario, a progress bar, the summary table, results and plots.
async fn run_scenario(
    path: &std::path::Path,
    out: Option<std::path::PathBuf>,
    seed: Option<u64>,
) -> anyhow::Result<()> {
    let scenario = conclave_sim::scenario::Scenario::read(path)?;
    let seed = seed.unwrap_or(scenario.seed);
    let out = out.unwrap_or_else(|| std::path::Path::new("sim-results").join(&scenario.name));
    eprintln!(
        "scenario {} ({} nodes, {} tasks), seed {seed}",
        scenario.name, scenario.nodes.count, scenario.tasks.count
    );
    let bar = ProgressBar::new(scenario.tasks.count as u64).with_style(
        ProgressStyle::with_template("  [{elapsed_precise}] {bar:30} {pos}/{len} tasks  {msg}")
            .expect("valid template"),
    );
    let total = Instant::now();
    let run = conclave_sim::runner::run(scenario, seed, bar.clone(), |s| {
        let line = format!("• {s} ({:.1} s)", total.elapsed().as_secs_f64());
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    })
    .await?;
    bar.finish_and_clear();
    let summary = conclave_sim::report::Summary::of(&run);
    conclave_sim::report::write(&run, &summary, &out)?;
    let plots = conclave_sim::plots::write_all(&run, &out)?;
    println!("{} (seed {seed})", run.scenario.name);
    print!("{}", summary.table());
    println!(
        "  written            {}/results.json, tasks.csv, attempts.csv, {}.{{png,svg}}",
        out.display(),
        plots.join(", ")
    );
    if summary.wrong > 0 {
        bail!(
            "{} published results differ from the plaintext evaluation",
            summary.wrong
        );
    }
    Ok(())
}

/// `conclave-sim security`: the study, its table, files and plot.
fn security(study: conclave_sim::security::Study, out: &std::path::Path) -> anyhow::Result<()> {
    if study.stake_shares.iter().any(|s| !(0.0..1.0).contains(s))
        || study
            .threshold_ratios
            .iter()
            .any(|r| !(0.0..1.0).contains(r))
        || study.committees.iter().any(|c| !(1..=255).contains(c))
        || !(1..=10_000_000).contains(&study.trials)
        || !(1..=100_000).contains(&study.nodes)
        || !(1..=256).contains(&study.units_per_node)
    {
        bail!(
            "--stake-share and --threshold-ratio must be in [0, 1), --committee 1..=255, \
             --trials 1..=10000000, --nodes 1..=100000, --units 1..=256"
        );
    }
    std::fs::create_dir_all(out)?;
    let bar = ProgressBar::new((study.stake_shares.len() * study.committees.len()) as u64)
        .with_style(
            ProgressStyle::with_template("  {bar:30} {pos}/{len} configurations  [{elapsed}]")
                .expect("valid template"),
        );
    let points = study.run(|| bar.inc(1));
    bar.finish_and_clear();
    println!(
        "P(adversary holds ≥ t seats), {} nodes × {} units, {} draws each",
        study.nodes, study.units_per_node, study.trials
    );
    println!(
        "  {:>6} {:>9} {:>6} {:>3}  {:>12} {:>12}",
        "stake", "committee", "ratio", "t", "monte-carlo", "exact"
    );
    for p in &points {
        println!(
            "  {:>5.0}% {:>9} {:>6.2} {:>3}  {:>12.3e} {:>12.3e}",
            p.stake_share * 100.0,
            p.committee,
            p.threshold_ratio,
            p.threshold,
            p.monte_carlo,
            p.exact
        );
    }
    std::fs::write(
        out.join("security.json"),
        serde_json::to_vec_pretty(&serde_json::json!({ "study": study, "points": points }))?,
    )?;
    std::fs::write(
        out.join("security.csv"),
        conclave_sim::security::csv(&points),
    )?;
    conclave_sim::plots::save(
        &conclave_sim::security::SecurityPlot {
            study: &study,
            points: &points,
        },
        out,
        "security",
    )?;
    println!(
        "  written {}/security.json, security.csv, security.{{png,svg}}",
        out.display()
    );
    Ok(())
}

/// The quickstart's default program.
const AVERAGE: &str = include_str!("../../examples/programs/average.tally");

/// One task end to end; returns the outcome and its timings.
struct Outcome {
    /// The published output bytes.
    output: Vec<u8>,
    project_id: u64,
    chain_id: u64,
    /// The slot each record went into (the program reads records in slot order).
    slots: Vec<u32>,
    committee: Vec<String>,
    tx_hash: String,
    block: u64,
    task_id: String,
    inputs_ms: u128,
    closed_to_published_ms: u128,
    /// Phase timings recorded by the coordinator (committee, compute, submit).
    phases: Vec<(String, u64)>,
}

/// Random records for `devices` devices: each field a value inside its declared range (as the
/// device sends it), and the same as scaled integers for the plaintext evaluator.
fn random_records(program: &Program, devices: u32) -> (Vec<Vec<f64>>, Vec<Vec<i128>>) {
    let mut rng = rand::rng();
    let mut sent = Vec::new();
    let mut scaled = Vec::new();
    for _ in 0..devices {
        let values: Vec<i128> = program
            .device_fields
            .iter()
            .map(|f| {
                // Readings in the middle of the range, so that sums stay readable.
                let (lo, hi) = (f.lo.max(-1000 << frac(f)), f.hi.min(1000 << frac(f)));
                rng.random_range(lo..=hi)
            })
            .collect();
        sent.push(
            values
                .iter()
                .zip(&program.device_fields)
                .map(|(v, f)| *v as f64 / (1u64 << frac(f)) as f64)
                .collect(),
        );
        scaled.push(values);
    }
    (sent, scaled)
}

fn frac(f: &conclave_mpc::lang::FieldSpec) -> u32 {
    match f.kind {
        conclave_mpc::lang::Kind::Fixed(frac) => frac,
        _ => 0,
    }
}

/// What one device sends: a Tally program's field values, or a `wasm` task's record.
enum DeviceRecord {
    Values(Vec<f64>),
    Data(Vec<u8>),
}

async fn run_task(
    cluster: &Cluster,
    project: u64,
    records: &[DeviceRecord],
    bar: &ProgressBar,
) -> anyhow::Result<Outcome> {
    let first = Client::new(format!("http://{}", cluster.nodes[0].http_addr()));
    let task = first.task(project).await.context("opening the task")?;
    bar.set_message(format!(
        "committee of {} formed; devices submitting",
        task.committee.len()
    ));
    let from_block = cluster.contracts.chain().block_number().await?;
    let started = Instant::now();
    let submits = records.iter().enumerate().map(|(i, record)| {
        let entry = &cluster.nodes[i % cluster.nodes.len()];
        // Devices check the committee the entry node announces against chain.
        let client = Client::new(format!("http://{}", entry.http_addr()))
            .with_chain(cluster.contracts.clone());
        let task = task.clone();
        let bar = bar.clone();
        async move {
            let r = match record {
                DeviceRecord::Values(values) => client.submit_record_to(&task, values).await,
                DeviceRecord::Data(data) => client.submit_data_to(&task, data).await,
            };
            bar.inc(1);
            r
        }
    });
    let mut slots = Vec::with_capacity(records.len());
    for r in futures::future::join_all(submits).await {
        slots.push(r.context("a device's submission")?.slot);
    }
    let inputs_ms = started.elapsed().as_millis();
    let closed = Instant::now();
    bar.set_message("inputs closed; committee computing and publishing");
    let mut watcher = ResultWatcher::new(cluster.contracts.clone(), from_block, 0)
        .with_poll_interval(Duration::from_millis(20));
    let wanted = U256::from_str_radix(&task.task_id, 16)?;
    let published = watcher
        .wait_for_task(wanted, Duration::from_secs(300))
        .await?
        .context("no result published within 300 s")?;
    let closed_to_published_ms = closed.elapsed().as_millis();
    let task_bytes: [u8; 32] = wanted.to_be_bytes();
    // The coordinator records its last phase just after the event is out: wait for it.
    let mut phases = Vec::new();
    for _ in 0..100 {
        for node in &cluster.nodes {
            if let Some(r) = node.task(&task_bytes)?
                && r.coordinating
                && r.state.is_final()
            {
                phases = r.timings;
            }
        }
        if !phases.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Outcome {
        phases,
        output: published.event.output.to_vec(),
        project_id: project,
        chain_id: cluster.contracts.addresses().chain_id,
        slots,
        committee: task.committee.iter().map(|m| m.peer_id.clone()).collect(),
        tx_hash: published.tx_hash.to_string(),
        block: published.block_number,
        task_id: task.task_id,
        inputs_ms,
        closed_to_published_ms,
    })
}

async fn quickstart(
    nodes: usize,
    devices: Option<u32>,
    committee: u16,
    prover: ProverArg,
    file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let total = Instant::now();
    let step = |s: &str| eprintln!("• {s} ({:.1} s)", total.elapsed().as_secs_f64());
    // A majority of the committee must sign.
    let threshold = committee / 2 + 1;
    let job = match prover {
        ProverArg::Spdz => Job::tally(file, devices, false)?,
        ProverArg::Halo2 => {
            eprintln!("{INSECURE_SRS_WARNING}");
            Job::tally(file, devices, true)?
        }
        ProverArg::Wasm => Job::applet(file, devices.unwrap_or(10))?,
        ProverArg::Byop => Job::applet(file, devices.unwrap_or(10))?.by_external_prover()?,
    };
    let (cluster, _prover_process) = start_cluster(nodes, prover, step).await?;
    let project = job.register(&cluster, committee, threshold).await?;
    step(&format!(
        "project {project} registered: {} ({}), committee {committee}, threshold {threshold}",
        job.name,
        job.hash()
    ));
    let bar = ProgressBar::new(job.records.len() as u64).with_style(
        ProgressStyle::with_template("  {bar:30} {pos}/{len} inputs  {msg}")
            .expect("valid template"),
    );
    let outcome = run_task(&cluster, project, &job.records, &bar).await;
    bar.finish_and_clear();
    cluster.shutdown().await;
    let o = outcome?;
    let (shown, correct) = job.check(&o)?;
    println!();
    println!(
        "{} over {} devices' records, {}",
        job.name,
        job.records.len(),
        job.how()
    );
    println!("  task       0x{}", o.task_id);
    println!("  committee  {}", o.committee.join("\n             "));
    for line in shown {
        println!("  {line}");
    }
    println!("  tx         {} (block {})", o.tx_hash, o.block);
    println!(
        "  timings    inputs {} ms, inputs closed → published {} ms, total {:.1} s",
        o.inputs_ms,
        o.closed_to_published_ms,
        total.elapsed().as_secs_f64()
    );
    println!(
        "  check      {} → {}",
        job.reference(),
        if correct { "equal" } else { "DIFFERENT" }
    );
    if !correct {
        bail!("the published result differs from the reference");
    }
    Ok(())
}

/// `nodes` nodes; for `byop`, with a `conclave-prover` process (W3bstream VM type 4) that
/// every node hands byop tasks to, running until the returned handle is dropped.
async fn start_cluster(
    nodes: usize,
    prover: ProverArg,
    mut step: impl FnMut(&str),
) -> anyhow::Result<(Cluster, Option<conclave_sim::ProverProcess>)> {
    let process = match prover {
        ProverArg::Byop => Some(conclave_sim::ProverProcess::spawn()?),
        _ => None,
    };
    let byop = match &process {
        Some(p) => {
            step(&format!("conclave-prover process listening at {}", p.url));
            conclave_node::byop::ByopConfig {
                endpoints: vec![conclave_node::byop::ByopEndpoint {
                    vm_type: W3BSTREAM_WASM,
                    url: p.url.clone(),
                    protocol: conclave_provers::byop::Protocol::Auto,
                    call_timeout_secs: 60,
                    retries: 2,
                }],
                allow_project_endpoints: false,
            }
        }
        None => Default::default(),
    };
    let cluster =
        Cluster::start_with(nodes, conclave_sim::sim_limits(), |_| byop.clone(), step).await?;
    Ok((cluster, process))
}

/// What a quickstart or benchmark runs: a Tally program by SPDZ, or a module by `wasm`, with
/// one record per device.
struct Job {
    name: String,
    /// The Tally source, or the module.
    what: JobKind,
    records: Vec<DeviceRecord>,
    /// The Tally records as scaled integers, for the plaintext evaluator.
    scaled: Vec<Vec<i128>>,
}

enum JobKind {
    /// A Tally program, computed by SPDZ or (`proven`) by halo2.
    Tally {
        source: String,
        program: Box<Program>,
        proven: bool,
    },
    Wasm(Vec<u8>),
    /// A module, zlib-compressed as W3bstream ships code, run by an external prover.
    Byop {
        module: Vec<u8>,
        code: Vec<u8>,
    },
}

/// W3bstream's VM type of wasm provers.
const W3BSTREAM_WASM: u64 = 4;

/// The quickstart's default module: the AssemblyScript applet (`@w3bstream/wasm-sdk`).
const APPLET: &[u8] = include_bytes!("../../examples/wasm/applet.wasm");

impl Job {
    /// A Tally program (the private average unless `file` names another), random records;
    /// `proven` by halo2 rather than computed by SPDZ.
    fn tally(
        file: Option<std::path::PathBuf>,
        devices: Option<u32>,
        proven: bool,
    ) -> anyhow::Result<Job> {
        let (name, source) = match &file {
            Some(f) => (
                f.display().to_string(),
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            ),
            None => (
                "examples/programs/average.tally".to_string(),
                AVERAGE.to_string(),
            ),
        };
        let program = Program::from_source(&source)
            .with_context(|| format!("{name} cannot run on the mesh"))?;
        if program.owner_bits > 0 {
            bail!(
                "{name} reads the project owner's parameters, which the quickstart does not \
                 supply; `conclave submit --owner` does (docs/programs.md)"
            );
        }
        let devices = devices
            .unwrap_or(program.max_inputs)
            .min(program.max_inputs);
        if proven {
            program
                .task_shape(conclave_chain::contracts::ProverKind::Halo2 as u8)
                .with_context(|| format!("{name} cannot run under halo2"))?;
            if devices != program.max_inputs {
                bail!(
                    "a halo2 task takes all {} device records of {name} (its verifier is for that many)",
                    program.max_inputs
                );
            }
        }
        let (sent, scaled) = random_records(&program, devices);
        Ok(Job {
            name,
            records: sent.into_iter().map(DeviceRecord::Values).collect(),
            scaled,
            what: JobKind::Tally {
                source,
                program: Box::new(program),
                proven,
            },
        })
    }

    /// A module (the applet unless `file` names another) over random readings, sent as decimal
    /// text as the applet reads them.
    fn applet(file: Option<std::path::PathBuf>, devices: u32) -> anyhow::Result<Job> {
        let (name, module) = match &file {
            Some(f) => (
                f.display().to_string(),
                std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
            ),
            None => ("examples/wasm/applet.wasm".to_string(), APPLET.to_vec()),
        };
        let mut rng = rand::rng();
        let records = (0..devices)
            .map(|_| {
                let reading: i32 = rng.random_range(-1000..=1000);
                DeviceRecord::Data(reading.to_string().into_bytes())
            })
            .collect();
        Ok(Job {
            name,
            records,
            scaled: Vec::new(),
            what: JobKind::Wasm(module),
        })
    }

    /// The same module, run by each seat's `conclave-prover` instead of the seat itself.
    fn by_external_prover(self) -> anyhow::Result<Job> {
        let JobKind::Wasm(module) = self.what else {
            bail!("only a module runs at an external prover here");
        };
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &module)?;
        let code = z.finish()?;
        Ok(Job {
            what: JobKind::Byop { module, code },
            ..self
        })
    }

    async fn register(
        &self,
        cluster: &Cluster,
        committee: u16,
        threshold: u16,
    ) -> anyhow::Result<u64> {
        match &self.what {
            JobKind::Tally {
                source,
                proven: false,
                ..
            } => cluster.program_project(source, committee, threshold).await,
            JobKind::Tally { source, .. } => {
                cluster
                    .halo2_project(source, committee, threshold, &tools())
                    .await
            }
            JobKind::Wasm(module) => {
                let devices = self.records.len() as u32;
                cluster
                    .wasm_project(module, (devices, 600, 64), committee, threshold)
                    .await
            }
            JobKind::Byop { code, .. } => {
                let byop = conclave_node::program::ByopSpec {
                    vm_type: W3BSTREAM_WASM,
                    version: "0.1".into(),
                    code_param: String::new(),
                    endpoint: String::new(),
                    tee: None,
                };
                let devices = self.records.len() as u32;
                cluster
                    .byop_project(code, byop, (devices, 600, 64), committee, threshold)
                    .await
            }
        }
    }

    fn hash(&self) -> alloy::primitives::B256 {
        match &self.what {
            JobKind::Tally { program, .. } => program.hash,
            JobKind::Wasm(module) => alloy::primitives::keccak256(module),
            JobKind::Byop { code, .. } => alloy::primitives::keccak256(code),
        }
    }

    fn how(&self) -> &'static str {
        match self.what {
            JobKind::Tally { proven: false, .. } => "computed by SPDZ (MASCOT preprocessing)",
            JobKind::Tally { .. } => {
                "proven by one seat (halo2), checked by the others and by the chain's verifier"
            }
            JobKind::Wasm(_) => "run by every seat (wasm), published by t agreeing seats",
            JobKind::Byop { .. } => {
                "run by each seat's conclave-prover (byop, W3bstream gRPC), published by t agreeing seats"
            }
        }
    }

    fn reference(&self) -> &'static str {
        match self.what {
            JobKind::Tally { .. } => "plaintext evaluation",
            JobKind::Wasm(_) | JobKind::Byop { .. } => "the module run here",
        }
    }

    /// The published output as lines to show, and whether it is what the reference computes
    /// over the same records in slot order.
    fn check(&self, o: &Outcome) -> anyhow::Result<(Vec<String>, bool)> {
        match &self.what {
            JobKind::Tally {
                source, program, ..
            } => {
                let outputs = program
                    .decode_outputs(&o.output)
                    .context("undecodable output")?;
                let expected = plaintext(source, self.scaled.clone(), &o.slots)?;
                let shown = outputs
                    .iter()
                    .map(|out| format!("{:<10} {out}", out.name()))
                    .collect();
                Ok((shown, outputs == expected))
            }
            JobKind::Wasm(module) | JobKind::Byop { module, .. } => {
                // A byop prover is not told the chain.
                let chain_id = match self.what {
                    JobKind::Byop { .. } => 0,
                    _ => o.chain_id,
                };
                let engine = WasmEngine::new(conclave_node::manifest::wasm_limits())?;
                let mut by_slot: Vec<(u32, Vec<u8>)> = o
                    .slots
                    .iter()
                    .zip(&self.records)
                    .map(|(slot, r)| match r {
                        DeviceRecord::Data(d) => (*slot, d.clone()),
                        DeviceRecord::Values(_) => (*slot, Vec::new()),
                    })
                    .collect();
                by_slot.sort();
                let task_id: [u8; 32] = U256::from_str_radix(&o.task_id, 16)?.to_be_bytes();
                let run = engine.run(
                    &engine.load(module)?,
                    TaskInput {
                        project_id: o.project_id,
                        task_id,
                        chain_id,
                        records: by_slot.into_iter().map(|(_, r)| r).collect(),
                    },
                )?;
                let shown = match std::str::from_utf8(&o.output) {
                    Ok(text) => format!(
                        "output     {}",
                        text.split_whitespace().collect::<Vec<_>>().join(" ")
                    ),
                    Err(_) => format!("output     0x{}", hex::encode(&o.output)),
                };
                Ok((vec![shown], run.output == o.output))
            }
        }
    }
}

async fn bench(
    inputs: u32,
    committees: &[u16],
    runs: usize,
    prover: ProverArg,
) -> anyhow::Result<()> {
    if prover == ProverArg::Halo2 {
        eprintln!("{INSECURE_SRS_WARNING}");
    }
    for &committee in committees {
        let nodes = usize::from(committee).max(5);
        let (cluster, _prover_process) = start_cluster(nodes, prover, |_| {}).await?;
        for _ in 0..runs {
            // Seats are random around the committee size; a majority of them publishes.
            let job = match prover {
                ProverArg::Spdz | ProverArg::Halo2 => {
                    let source = Program::sum_source(inputs, 600, 32);
                    let program = Program::from_source(&source)?;
                    let (sent, scaled) = random_records(&program, inputs);
                    Job {
                        name: "sum".into(),
                        records: sent.into_iter().map(DeviceRecord::Values).collect(),
                        scaled,
                        what: JobKind::Tally {
                            source,
                            program: Box::new(program),
                            proven: prover == ProverArg::Halo2,
                        },
                    }
                }
                ProverArg::Wasm => Job::applet(None, inputs)?,
                ProverArg::Byop => Job::applet(None, inputs)?.by_external_prover()?,
            };
            let project = job.register(&cluster, committee, committee / 2 + 1).await?;
            let o = run_task(&cluster, project, &job.records, &ProgressBar::hidden()).await?;
            if !job.check(&o)?.1 {
                bail!("wrong result in the benchmark");
            }
            let mut line = serde_json::json!({
                "bench": "end_to_end",
                "prover": prover.name(),
                "committee": committee,
                "inputs": inputs,
                "nodes": nodes,
                "latency_ms": o.closed_to_published_ms,
                "inputs_ms": o.inputs_ms,
            });
            for (phase, ms) in &o.phases {
                line[format!("{phase}_ms")] = serde_json::json!(ms);
            }
            println!("{line}");
        }
        cluster.shutdown().await;
    }
    Ok(())
}
