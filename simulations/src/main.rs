//! `conclave-sim`: the quickstart and the end-to-end benchmark, many nodes in one process.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use conclave_chain::watch::ResultWatcher;
use conclave_node::client::Client;
use conclave_node::program::Average;
use conclave_sim::Cluster;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngExt;

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
    /// 5 nodes, an embedded chain, 20 devices: a private average computed with SPDZ by a
    /// committee drawn with 3 expected seats, and published on chain.
    Quickstart {
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        #[arg(long, default_value_t = 20)]
        devices: u32,
        #[arg(long, default_value_t = 3)]
        committee: u16,
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
    },
}

fn main() -> anyhow::Result<()> {
    conclave_node::run_main(cli())
}

async fn cli() -> anyhow::Result<()> {
    conclave_node::init_logging("warn");
    match Args::parse().command {
        Command::Quickstart {
            nodes,
            devices,
            committee,
        } => quickstart(nodes, devices, committee).await,
        Command::Bench {
            inputs,
            committees,
            runs,
        } => bench(inputs, &committees, runs).await,
    }
}

/// One private-average task end to end; returns the outcome and its timings.
struct Outcome {
    average: Average,
    expected: i64,
    committee: Vec<String>,
    tx_hash: String,
    block: u64,
    task_id: String,
    inputs_ms: u128,
    closed_to_published_ms: u128,
    /// Phase timings recorded by the coordinator (committee, compute, submit).
    phases: Vec<(String, u64)>,
}

async fn run_task(
    cluster: &Cluster,
    project: u64,
    devices: u32,
    bar: &ProgressBar,
) -> anyhow::Result<Outcome> {
    let first = Client::new(format!("http://{}", cluster.nodes[0].http_addr()));
    let task = first.task(project).await.context("opening the task")?;
    bar.set_message(format!(
        "committee of {} formed; devices submitting",
        task.committee.len()
    ));
    let from_block = cluster.contracts.chain().block_number().await?;
    let readings: Vec<i64> = {
        let mut rng = rand::rng();
        (0..devices).map(|_| rng.random_range(150..=350)).collect()
    };
    let started = Instant::now();
    let submits = readings.iter().enumerate().map(|(i, &reading)| {
        let entry = &cluster.nodes[i % cluster.nodes.len()];
        // Devices check the committee the entry node announces against chain.
        let client = Client::new(format!("http://{}", entry.http_addr()))
            .with_chain(cluster.contracts.clone());
        let task = task.clone();
        let bar = bar.clone();
        async move {
            let r = client.submit_to(&task, reading).await;
            bar.inc(1);
            r
        }
    });
    for r in futures::future::join_all(submits).await {
        r.context("a device's submission")?;
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
    let average = Average::decode(&published.event.output).context("undecodable output")?;
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
        average,
        expected: readings.iter().sum(),
        committee: task.committee.iter().map(|m| m.peer_id.clone()).collect(),
        tx_hash: published.tx_hash.to_string(),
        block: published.block_number,
        task_id: task.task_id,
        inputs_ms,
        closed_to_published_ms,
    })
}

async fn quickstart(nodes: usize, devices: u32, committee: u16) -> anyhow::Result<()> {
    let total = Instant::now();
    let step = |s: &str| eprintln!("• {s} ({:.1} s)", total.elapsed().as_secs_f64());
    let cluster = Cluster::start(nodes, step).await?;
    // A majority of the committee must sign.
    let threshold = committee / 2 + 1;
    let project = cluster
        .private_average_project(committee, threshold, devices, 120)
        .await?;
    step(&format!(
        "project {project} registered: private average, committee {committee}, threshold {threshold}"
    ));
    let bar = ProgressBar::new(u64::from(devices)).with_style(
        ProgressStyle::with_template("  {bar:30} {pos}/{len} inputs  {msg}")
            .expect("valid template"),
    );
    let outcome = run_task(&cluster, project, devices, &bar).await;
    bar.finish_and_clear();
    let o = match outcome {
        Ok(o) => o,
        Err(e) => {
            cluster.shutdown().await;
            return Err(e);
        }
    };
    println!();
    println!(
        "Private average of {devices} device readings, computed by SPDZ (MASCOT preprocessing)"
    );
    println!("  task       0x{}", o.task_id);
    println!("  committee  {}", o.committee.join("\n             "));
    println!("  sum        {}", o.average.sum);
    println!("  count      {}", o.average.count);
    println!("  mean       {:.3}", o.average.mean().unwrap_or_default());
    println!("  tx         {} (block {})", o.tx_hash, o.block);
    println!(
        "  timings    inputs {} ms, inputs closed → published {} ms, total {:.1} s",
        o.inputs_ms,
        o.closed_to_published_ms,
        total.elapsed().as_secs_f64()
    );
    let correct = o.average.sum == o.expected && o.average.count == u64::from(devices);
    println!(
        "  check      plaintext sum {} → {}",
        o.expected,
        if correct { "equal" } else { "DIFFERENT" }
    );
    cluster.shutdown().await;
    if !correct {
        bail!("the published result differs from the plaintext computation");
    }
    Ok(())
}

async fn bench(inputs: u32, committees: &[u16], runs: usize) -> anyhow::Result<()> {
    for &committee in committees {
        let nodes = usize::from(committee).max(5);
        let cluster = Cluster::start(nodes, |_| {}).await?;
        for _ in 0..runs {
            // Seats are random around the committee size; a majority of them publishes.
            let project = cluster
                .private_average_project(committee, committee / 2 + 1, inputs, 600)
                .await?;
            let bar = ProgressBar::hidden();
            let o = run_task(&cluster, project, inputs, &bar).await?;
            if o.average.sum != o.expected {
                bail!("wrong result in the benchmark");
            }
            let mut line = serde_json::json!({
                "bench": "end_to_end",
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
