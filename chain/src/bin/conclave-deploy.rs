//! Deploys Conclave's contracts to a fresh chain over JSON-RPC and writes their addresses.
//!
//! `CONCLAVE_DEPLOYER_KEY=0x… conclave-deploy --rpc http://127.0.0.1:8545 --out addresses.json`

use std::path::PathBuf;

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use clap::Parser;
use conclave_chain::{DeployConfig, RpcChain, deploy};

/// Deploy NodeRegistry, ProjectRegistry and TaskRouter, and write their addresses as JSON.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// JSON-RPC endpoint of the chain.
    #[arg(long)]
    rpc: String,
    /// Hex secp256k1 key of the deploying account (it pays for the deployment).
    #[arg(long, env = "CONCLAVE_DEPLOYER_KEY", hide_env_values = true)]
    key: String,
    /// Where to write the addresses.
    #[arg(long, default_value = "addresses.json")]
    out: PathBuf,
    /// Smallest stake a node may register with, in wei.
    #[arg(long, default_value = "1000000000000000000")]
    min_stake: U256,
    /// Blocks between deactivating a node and withdrawing its stake (at least the task window).
    #[arg(long, default_value_t = 2_000)]
    withdraw_delay: u64,
    /// Blocks from opening a task to the last block its result is accepted in.
    #[arg(long, default_value_t = 1_000)]
    task_window: u64,
    /// Blocks before a project's configuration change applies to newly opened tasks.
    #[arg(long, default_value_t = 100)]
    change_delay: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let key: PrivateKeySigner = args
        .key
        .trim()
        .parse()
        .context("the deployer key is not a hex secp256k1 key")?;
    let chain = RpcChain::connect(&args.rpc)
        .await
        .with_context(|| format!("connecting to {}", args.rpc))?;
    let config = DeployConfig {
        min_stake: args.min_stake,
        withdraw_delay: args.withdraw_delay,
        task_window: args.task_window,
        change_delay: args.change_delay,
    };
    let addresses = deploy(&chain, &key, config).await.context("deploying")?;
    addresses.write(&args.out)?;
    println!("{}", serde_json::to_string_pretty(&addresses)?);
    eprintln!("addresses written to {}", args.out.display());
    Ok(())
}
