//! Four `conclave` processes and a real anvil on loopback: a project's task completes and its
//! result, read back from chain (and with `conclave result`), equals the plaintext computation.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{B256, U256};
use alloy::signers::local::PrivateKeySigner;
use conclave_chain::anvil::Anvil;
use conclave_chain::contracts::{ProjectSpec, ProverKind};
use conclave_chain::watch::ResultWatcher;
use conclave_chain::{Chain, Contracts, DeployConfig, DevChain, RpcChain, deploy};
use conclave_node::client::Client;
use conclave_node::program::{Average, Program};

const BIN: &str = env!("CARGO_BIN_EXE_conclave");
const PASSPHRASE: &str = "test passphrase";

/// Kills the node processes when the test ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn conclave(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("CONCLAVE_PASSPHRASE", PASSPHRASE)
        .env("RUST_LOG", "warn")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "conclave {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|rest| rest.split_whitespace().next().unwrap())
        .unwrap_or_else(|| panic!("no {label} in {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_publish_a_correct_result_on_anvil() {
    let anvil = Anvil::start().expect("anvil (scripts/test installs it)");
    let rpc = RpcChain::connect(anvil.url()).await.unwrap();
    let chain: Arc<RpcChain> = Arc::new(rpc);
    let coin = U256::from(10u64).pow(U256::from(18));
    let deployer = PrivateKeySigner::random();
    chain
        .set_balance(deployer.address(), coin * U256::from(100))
        .await
        .unwrap();
    let addresses = deploy(chain.as_ref(), &deployer, DeployConfig::default())
        .await
        .unwrap();
    let contracts = Contracts::new(chain.clone() as Arc<dyn Chain>, addresses);

    let root = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..4 {
        let dir = root.path().join(format!("node{i}"));
        let (api, p2p) = (free_port(), free_port());
        let out = conclave(
            root.path(),
            &[
                "init",
                "--dir",
                dir.to_str().unwrap(),
                "--api",
                &format!("127.0.0.1:{api}"),
                "--listen",
                &format!("/ip4/127.0.0.1/tcp/{p2p}"),
                "--rpc",
                anvil.url(),
            ],
        );
        let peer = field(&out, "peer id").to_string();
        let operator: alloy::primitives::Address = field(&out, "operator").parse().unwrap();
        let config = dir.join("node.toml");
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("local = false", "local = true")
            .replace("confirmations = 1", "confirmations = 0");
        std::fs::write(&config, text).unwrap();
        addresses.write(&dir.join("addresses.json")).unwrap();
        chain
            .set_balance(operator, coin * U256::from(100))
            .await
            .unwrap();
        conclave(&dir, &["register", "--stake", "10"]);
        nodes.push((dir, api, format!("/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer}")));
    }
    let mut processes = Processes(Vec::new());
    for (i, (dir, _, _)) in nodes.iter().enumerate() {
        let bootstrap: Vec<&str> = nodes[..i].iter().map(|n| n.2.as_str()).collect();
        let log = std::fs::File::create(dir.join("node.log")).unwrap();
        let child = Command::new(BIN)
            .args(["run"])
            .env("CONCLAVE_PASSPHRASE", PASSPHRASE)
            .env("CONCLAVE_BOOTSTRAP", bootstrap.join(","))
            .env("RUST_LOG", "info,libp2p=warn")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        processes.0.push(child);
    }

    // Everyone live everywhere.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut live = 0;
        for (_, api, _) in &nodes {
            if let Ok(r) = http
                .get(format!("http://127.0.0.1:{api}/health"))
                .send()
                .await
                && let Ok(v) = r.json::<serde_json::Value>().await
                && v["live_peers"].as_u64() == Some(3)
            {
                live += 1;
            }
        }
        if live == nodes.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the four nodes did not all see each other"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let owner = PrivateKeySigner::random();
    chain.set_balance(owner.address(), coin).await.unwrap();
    let program = Program::private_average(8, 120);
    let project = contracts
        .register_project(
            &owner,
            &ProjectSpec {
                program_hash: B256::from(program.hash()),
                program_uri: program.uri.clone(),
                prover_kind: ProverKind::Spdz,
                committee_size: 3,
                threshold: 2,
                receiver: alloy::primitives::Address::ZERO,
            },
        )
        .await
        .unwrap();
    contracts.open_epoch(&owner).await.unwrap();
    let from = chain.block_number().await.unwrap();

    let readings: Vec<i64> = vec![212, -15, 198, 305, 0, 77, 1_000_000, 42];
    let task = Client::new(format!("http://127.0.0.1:{}", nodes[0].1))
        .task(project.to::<u64>())
        .await
        .unwrap();
    for (i, &r) in readings.iter().enumerate() {
        let api = format!("http://127.0.0.1:{}", nodes[i % 4].1);
        Client::new(api).submit_to(&task, r).await.unwrap();
    }
    let mut watcher = ResultWatcher::new(contracts.clone(), from, 0)
        .with_poll_interval(Duration::from_millis(100));
    let wanted = U256::from_str_radix(&task.task_id, 16).unwrap();
    let published = tokio::time::timeout(Duration::from_secs(180), async {
        loop {
            if let Some(e) = watcher
                .next_batch()
                .await
                .unwrap()
                .into_iter()
                .find(|e| e.event.taskId == wanted)
            {
                return e;
            }
        }
    })
    .await
    .expect("result published in time");
    let avg = Average::decode(&published.event.output).unwrap();
    assert_eq!(avg.sum, readings.iter().sum::<i64>());
    assert_eq!(avg.count, readings.len() as u64);
    let stored = contracts.result(project, wanted).await.unwrap().unwrap();
    assert_eq!(stored.output, published.event.output);

    let shown = conclave(
        &nodes[1].0,
        &["result", "--project", &project.to_string(), &task.task_id],
    );
    assert!(
        shown.contains(&format!("sum {} count 8", avg.sum)),
        "{shown}"
    );
    drop(processes);
    drop(anvil);
}
