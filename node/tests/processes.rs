//! Four `conclave` processes and a real anvil on loopback: a project's task completes and its
//! result, read back from chain (and with `conclave result`), equals the plaintext computation.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use conclave_chain::anvil::Anvil;
use conclave_chain::backend::spawn_block_ticker;
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

/// A free port below Linux's ephemeral range (32768 and up), so that no outgoing connection of
/// this or another test can take it while a node that listens on it is restarted.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 1_000) as u16 * 12;
    loop {
        let port = 20_000 + offset.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn conclave(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = conclave_exit(dir, args);
    assert_eq!(code, Some(0), "conclave {args:?} failed: {stderr}");
    stdout
}

/// Runs `conclave ARGS` in `dir` (stdin not a terminal): exit code, stdout, stderr.
fn conclave_exit(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("CONCLAVE_PASSPHRASE", PASSPHRASE)
        .env("RUST_LOG", "warn")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `conclave init` of a node in `dir` on free loopback ports, against the chain at `rpc`: its
/// API port, libp2p port and what init printed.
fn init_node(root: &Path, dir: &Path, rpc: &str) -> (u16, u16, String) {
    let (api, p2p) = (free_port(), free_port());
    let out = conclave(
        root,
        &[
            "init",
            "--dir",
            dir.to_str().unwrap(),
            "--api",
            &format!("127.0.0.1:{api}"),
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{p2p}"),
            "--rpc",
            rpc,
        ],
    );
    (api, p2p, out)
}

fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|rest| rest.split_whitespace().next().unwrap())
        .unwrap_or_else(|| panic!("no {label} in {out}"))
}

/// Four initialised, registered and running `conclave` processes on a fresh anvil, with a
/// private-average project (committee 3, threshold 2, `max_inputs` inputs) and an open epoch.
struct Mesh {
    processes: Processes,
    /// Per node: directory, API port, multiaddr with peer id, peer id.
    nodes: Vec<(std::path::PathBuf, u16, String, String)>,
    contracts: Contracts,
    project: U256,
    from_block: u64,
    _root: tempfile::TempDir,
    _ticker: AbortOnDrop,
    _anvil: Anvil,
}

/// How often the test's anvil mines a block without transactions.
const BLOCK_TIME: Duration = Duration::from_millis(200);

/// Stops the block ticker with the mesh.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Mesh {
    async fn start(max_inputs: u32) -> Mesh {
        Mesh::start_with(max_inputs, None).await
    }

    /// A mesh whose nodes read the KZG parameters at `halo2_srs` for halo2 tasks.
    async fn start_with(max_inputs: u32, halo2_srs: Option<&Path>) -> Mesh {
        let anvil = Anvil::start().expect("anvil (scripts/test installs it)");
        let chain = Arc::new(RpcChain::connect(anvil.url()).await.unwrap());
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
        let ticker = spawn_block_ticker(chain.clone(), BLOCK_TIME);

        let root = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..4 {
            let dir = root.path().join(format!("node{i}"));
            let (api, p2p, out) = init_node(root.path(), &dir, anvil.url());
            let peer = field(&out, "peer id").to_string();
            let operator: alloy::primitives::Address = field(&out, "operator").parse().unwrap();
            let config = dir.join("node.toml");
            let text = std::fs::read_to_string(&config)
                .unwrap()
                .replace("local = false", "local = true")
                .replace("confirmations = 1", "confirmations = 0")
                .replace(
                    "# halo2_srs = \"kzg_bn254_20.srs\"",
                    &halo2_srs.map_or(String::new(), |p| format!("halo2_srs = {p:?}")),
                );
            std::fs::write(&config, text).unwrap();
            addresses.write(&dir.join("addresses.json")).unwrap();
            chain
                .set_balance(operator, coin * U256::from(100))
                .await
                .unwrap();
            conclave(&dir, &["register", "--stake", "10"]);
            let addr = format!("/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer}");
            nodes.push((dir, api, addr, peer));
        }
        let mut mesh = Mesh {
            processes: Processes(Vec::new()),
            nodes,
            contracts,
            project: U256::ZERO,
            from_block: 0,
            _root: root,
            _ticker: AbortOnDrop(ticker),
            _anvil: anvil,
        };
        for i in 0..4 {
            let child = mesh.spawn(i);
            mesh.processes.0.push(child);
        }
        mesh.wait_all_live().await;

        let owner = PrivateKeySigner::random();
        chain.set_balance(owner.address(), coin).await.unwrap();
        let source = Program::sum_source(max_inputs, 120, 32);
        let program = Program::from_source(&source).unwrap();
        mesh.project = mesh
            .contracts
            .register_project(
                &owner,
                &ProjectSpec {
                    program_hash: program.hash,
                    program_uri: String::new(),
                    prover_kind: ProverKind::Spdz,
                    committee_size: 3,
                    threshold: 2,
                    receiver: alloy::primitives::Address::ZERO,
                    verifier: alloy::primitives::Address::ZERO,
                    output_words: 0,
                },
            )
            .await
            .unwrap();
        // One node gets the source; the others fetch it over the mesh by its hash.
        let published = reqwest::Client::new()
            .post(format!(
                "{}/v1/projects/{}/program",
                mesh.api(2),
                mesh.project
            ))
            .json(&serde_json::json!({ "hash": "", "source": source }))
            .send()
            .await
            .unwrap();
        assert!(
            published.status().is_success(),
            "{:?}",
            published.text().await
        );
        mesh.from_block = chain.block_number().await.unwrap();
        mesh
    }

    /// Starts node `i`'s `conclave run`, bootstrapping through every other node.
    fn spawn(&self, i: usize) -> Child {
        let (dir, _, _, _) = &self.nodes[i];
        let bootstrap: Vec<&str> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n.2.as_str())
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))
            .unwrap();
        Command::new(BIN)
            .args(["run"])
            .env("CONCLAVE_PASSPHRASE", PASSPHRASE)
            .env("CONCLAVE_BOOTSTRAP", bootstrap.join(","))
            .env("RUST_LOG", "info,libp2p=warn")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn api(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].1)
    }

    async fn wait_all_live(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut live = 0;
            for i in 0..self.nodes.len() {
                if let Ok(r) = http.get(format!("{}/health", self.api(i))).send().await
                    && let Ok(v) = r.json::<serde_json::Value>().await
                    && v["live_peers"].as_u64() == Some(3)
                {
                    live += 1;
                }
            }
            if live == self.nodes.len() {
                return;
            }
            if Instant::now() > deadline {
                self.show_logs();
                panic!("the four nodes did not all see each other");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Devices send `records` (`--value` or `--data`) into `project` with `conclave submit`
    /// through nodes 1, 2, …, checking against the chain: the task (hex, no 0x).
    fn submit_with_cli(&self, dir: &Path, project: u64, flag: &str, records: &[String]) -> String {
        let rpc = self._anvil.url().to_string();
        let mut task = String::new();
        for (i, record) in records.iter().enumerate() {
            let out = conclave(
                dir,
                &[
                    "submit",
                    "--api",
                    &self.api(i + 1),
                    "--project",
                    &project.to_string(),
                    flag,
                    record,
                    "--rpc",
                    &rpc,
                ],
            );
            task = field(&out, "accepted: task").into();
        }
        task.trim_start_matches("0x").to_string()
    }

    /// Prints the end of every node's log, for a test that is about to fail.
    fn show_logs(&self) {
        for (i, (dir, ..)) in self.nodes.iter().enumerate() {
            let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- node {i} (last {} lines) ---", tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }

    /// Waits for the task's `ResultPublished` and decodes it.
    async fn published(&self, task_id: &str) -> (Average, alloy::primitives::Bytes) {
        let published = self.published_raw(task_id).await;
        (
            Average::decode(&published.event.output).unwrap(),
            published.event.output,
        )
    }

    /// Waits for the task's `ResultPublished`.
    async fn published_raw(&self, task_id: &str) -> conclave_chain::contracts::Published {
        let mut watcher = ResultWatcher::new(self.contracts.clone(), self.from_block, 0)
            .with_poll_interval(Duration::from_millis(100));
        let wanted = U256::from_str_radix(task_id, 16).unwrap();
        let published = watcher
            .wait_for_task(wanted, Duration::from_secs(180))
            .await
            .unwrap();
        let Some(published) = published else {
            self.show_logs();
            panic!("no result published in time");
        };
        published
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_publish_a_correct_result_on_anvil() {
    let mesh = Mesh::start(8).await;
    let readings: Vec<i64> = vec![212, -15, 198, 305, 0, 77, 1_000_000, 42];
    let task = Client::new(mesh.api(0))
        .task(mesh.project.to::<u64>())
        .await
        .unwrap();
    for (i, &r) in readings.iter().enumerate() {
        Client::new(mesh.api(i % 4))
            .submit_to(&task, r)
            .await
            .unwrap();
    }
    let (avg, output) = mesh.published(&task.task_id).await;
    assert_eq!(avg.sum, readings.iter().sum::<i64>());
    assert_eq!(avg.count, readings.len() as u64);
    let wanted = U256::from_str_radix(&task.task_id, 16).unwrap();
    let stored = mesh.contracts.result(wanted).await.unwrap().unwrap();
    assert_eq!(stored.output, output);
    // The first member in rank order submitted it.
    let submitter = stored.submitter.to_string().to_lowercase();
    assert_eq!(
        task.committee[0].operator, submitter,
        "submitted by the rank-0 member"
    );
    let shown = conclave(&mesh.nodes[1].0, &["result", &task.task_id]);
    assert!(
        shown.contains(&format!("sum = {}\ncounted = 8", avg.sum)),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stopped_by_sigterm_after_acknowledging_inputs_exits_0_keeps_them_and_the_task_completes()
 {
    let mut mesh = Mesh::start(6).await;
    let task = Client::new(mesh.api(0))
        .task(mesh.project.to::<u64>())
        .await
        .unwrap();
    // A committee member that is not the coordinator.
    let victim = mesh
        .nodes
        .iter()
        .position(|n| n.3 != task.coordinator && task.committee.iter().any(|m| m.peer_id == n.3))
        .expect("a member other than the coordinator");
    let readings: Vec<i64> = vec![10, 20, 30, 40, 50, 60];
    for &r in &readings[..3] {
        Client::new(mesh.api(0)).submit_to(&task, r).await.unwrap();
    }
    // Stop it as systemd would (SIGTERM) after it acknowledged three inputs: it shuts down
    // gracefully with exit code 0; started again from its directory, it still holds them.
    sigterm(&mut mesh.processes.0[victim]);
    mesh.processes.0[victim] = mesh.spawn(victim);
    mesh.wait_all_live().await;
    for &r in &readings[3..] {
        Client::new(mesh.api(0)).submit_to(&task, r).await.unwrap();
    }
    let (avg, _) = mesh.published(&task.task_id).await;
    assert_eq!(avg.sum, readings.iter().sum::<i64>());
    assert_eq!(
        avg.count, 6,
        "the inputs acknowledged before the restart were kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_mid_task_is_replaced_and_the_work_is_published_by_a_new_committee() {
    let mut mesh = Mesh::start(4).await;
    let project = mesh.project.to::<u64>();
    let first = Client::new(mesh.api(0)).task(project).await.unwrap();
    let victim = mesh
        .nodes
        .iter()
        .position(|n| n.3 != first.coordinator && first.committee.iter().any(|m| m.peer_id == n.3))
        .expect("a member other than the coordinator");
    // Devices use `conclave submit --wait`, which follows the task and sends the reading
    // again into the task that re-runs it.
    let entry = mesh.api(0);
    let rpc = mesh._anvil.url().to_string();
    let dir = mesh.nodes[0].0.clone();
    let device = |reading: i64| {
        let (api, rpc, dir) = (entry.clone(), rpc.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let (code, out, err) = conclave_exit(
                &dir,
                &[
                    "submit",
                    "--api",
                    &api,
                    "--project",
                    &project.to_string(),
                    "--value",
                    &reading.to_string(),
                    "--rpc",
                    &rpc,
                    "--wait",
                    "--attempts",
                    "3",
                    "--timeout",
                    "170",
                ],
            );
            assert_eq!(code, Some(0), "submit --wait: {out}{err}");
            assert!(out.contains("published in block"), "{out}");
            let task = out
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("accepted: task 0x"))
                .map(|rest| rest.split_whitespace().next().unwrap().to_string())
                .unwrap();
            <[u8; 32]>::try_from(hex::decode(task).unwrap()).unwrap()
        })
    };
    // Two devices get their readings in; then a member dies before the task can close.
    let early = [device(11), device(22)];
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = mesh.processes.0[victim].kill();
    let _ = mesh.processes.0[victim].wait();
    let late = [device(33), device(44)];
    let mut tasks = Vec::new();
    for handle in early.into_iter().chain(late) {
        tasks.push(handle.await.unwrap());
    }
    assert!(
        tasks.iter().all(|t| *t == tasks[0]),
        "all readings end in one task"
    );
    assert_ne!(
        hex::encode(tasks[0]),
        first.task_id,
        "published by a new task"
    );
    let (avg, _) = mesh.published(&hex::encode(tasks[0])).await;
    assert_eq!((avg.sum, avg.count), (110, 4));
    let first_result = mesh
        .contracts
        .result(U256::from_str_radix(&first.task_id, 16).unwrap())
        .await
        .unwrap();
    assert!(first_result.is_none(), "the failed task published nothing");
    // `conclave result`, asked at a node that was not in the task, tells the failed task (exit
    // code 3, with its reason) from the published one (0).
    let alive = &mesh.nodes[(victim + 1) % 4].0;
    let (code, out, err) = conclave_exit(alive, &["result", &first.task_id]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.starts_with("failed: "), "{out}");
    // Re-run by its coordinator (when a draw without the dead member came up within its
    // tries), or not: then the devices went on into the project's next task.
    assert!(
        out.contains(&format!("re-run as task 0x{}", hex::encode(tasks[0])))
            || out.ends_with("not re-run\n"),
        "{out}"
    );
    let (code, out, _) = conclave_exit(alive, &["result", &hex::encode(tasks[0])]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("sum = 110\ncounted = 4"), "{out}");
}

/// A `wasm` project as an operator makes one, with the CLI only: `conclave project register` of
/// a project.toml naming a module, devices sending `conclave submit --data` through three
/// nodes, and `conclave result` reading the module's output from chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_project_registered_with_the_cli_publishes_on_anvil() {
    let mesh = Mesh::start(2).await;
    let dir = &mesh.nodes[0].0;
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wasm/sum.wat"),
        dir.join("sum.wat"),
    )
    .unwrap();
    std::fs::write(
        dir.join("project.toml"),
        "prover = \"wasm\"\nmodule = \"sum.wat\"\ndevices = 3\nwindow = 120\nrecord_bytes = 8\ncommittee_size = 3\nthreshold = 2\n",
    )
    .unwrap();
    let out = conclave(dir, &["project", "register", "project.toml"]);
    let project = out
        .split_whitespace()
        .nth(1)
        .and_then(|id| id.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no project id in {out}"));
    assert!(out.contains("module 0x"), "{out}");
    let data: Vec<String> = [5i64, -12, 40]
        .iter()
        .map(|v| format!("0x{}", hex::encode(v.to_le_bytes())))
        .collect();
    let task = mesh.submit_with_cli(dir, project, "--data", &data);
    let mut watcher = ResultWatcher::new(mesh.contracts.clone(), mesh.from_block, 0)
        .with_poll_interval(Duration::from_millis(100));
    let published = watcher
        .wait_for_task(
            U256::from_str_radix(&task, 16).unwrap(),
            Duration::from_secs(180),
        )
        .await
        .unwrap()
        .expect("the wasm task publishes");
    assert_eq!(published.event.output.as_ref(), 33i64.to_le_bytes());
    let shown = conclave(dir, &["result", &task]);
    assert!(
        shown.contains(&format!("output = 0x{}", hex::encode(33i64.to_le_bytes()))),
        "{shown}"
    );
}

/// A `halo2` project registered with the CLI (which generates, compiles and deploys the
/// program's verifier from the same KZG parameters the nodes read) publishes a proven result on
/// anvil; devices send their readings with `conclave submit --value`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halo2_project_registered_with_the_cli_publishes_on_anvil() {
    let source = "devices 3;\nwindow 120;\ninput reading: int16 in -1000..=1000 from devices;\noutput sum = sum(reading);\noutput counted = sum(valid);\n";
    let root = tempfile::tempdir().unwrap();
    let srs = root.path().join("insecure-test.srs");
    let compiled = conclave_mpc::lang::Program::compile(source, 1, Some(3)).unwrap();
    let k = conclave_provers::halo2::rows_needed(&compiled.lowered.circuit, 1).unwrap();
    // Insecure (from a seed): for this test only.
    conclave_provers::halo2::Srs::insecure(k, [9; 32])
        .write(&srs)
        .unwrap();
    let mesh = Mesh::start_with(2, Some(&srs)).await;
    let dir = &mesh.nodes[0].0;
    std::fs::write(dir.join("sum.cvl"), source).unwrap();
    std::fs::write(
        dir.join("project.toml"),
        "prover = \"halo2\"\nprogram = \"sum.cvl\"\ncommittee_size = 3\nthreshold = 2\n",
    )
    .unwrap();
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools");
    let out = conclave(
        dir,
        &[
            "project",
            "register",
            "project.toml",
            "--tools",
            tools.to_str().unwrap(),
        ],
    );
    assert!(out.contains("verifier deployed at 0x"), "{out}");
    let project = out
        .lines()
        .find_map(|l| l.strip_prefix("project "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no project id in {out}"));
    let values = ["5", "-12", "4000"].map(String::from);
    let task = mesh.submit_with_cli(dir, project, "--value", &values);
    let published = mesh.published_raw(&task).await;
    let mut words = published.event.output.chunks(32);
    let word = |w: &[u8]| i128::from_be_bytes(w[16..].try_into().unwrap());
    assert_eq!(
        (word(words.next().unwrap()), word(words.next().unwrap())),
        (-7, 2)
    );
    let shown = conclave(dir, &["result", &task]);
    assert!(shown.contains("sum = -7\ncounted = 2"), "{shown}");
}

/// `scripts/local-net N` running in the background, stopped with SIGTERM (as Ctrl-C would) when
/// dropped.
struct LocalNet {
    child: Child,
    /// What the script printed so far.
    lines: std::sync::mpsc::Receiver<String>,
    dir: std::path::PathBuf,
    base: u16,
    _root: tempfile::TempDir,
}

impl LocalNet {
    /// Starts the script with `n` nodes on ports from a free base, and waits for it to be ready:
    /// the project it registered.
    fn start(n: u16) -> (LocalNet, u64) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("net");
        let base = free_base_port(n);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-net");
        let mut child = Command::new("bash")
            .arg(script)
            .args([&n.to_string(), "--dir", dir.to_str().unwrap()])
            .args(["--base-port", &base.to_string()])
            .env("CONCLAVE_BIN_DIR", Path::new(BIN).parent().unwrap())
            .env("CONCLAVE_PASSPHRASE", PASSPHRASE)
            .env("RUST_LOG", "info,libp2p=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("local-net| {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let net = LocalNet {
            child,
            lines,
            dir,
            base,
            _root: root,
        };
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = net
                .lines
                .recv_timeout(left)
                .expect("scripts/local-net got ready in time");
            if let Some(rest) = line.strip_prefix("local net ready: ") {
                let project = rest.split("project ").nth(1).unwrap();
                let project = project.split(',').next().unwrap().parse().unwrap();
                return (net, project);
            }
        }
    }

    fn api(&self, i: u16) -> String {
        format!("http://127.0.0.1:{}", self.base + i)
    }

    fn rpc(&self) -> String {
        format!("http://127.0.0.1:{}", self.base)
    }

    fn node(&self, i: u16) -> std::path::PathBuf {
        self.dir.join(format!("node{i}"))
    }

    /// SIGTERM to the script, which stops its nodes and anvil: its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on a child process this test started and has not waited for yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LocalNet {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

/// A base port whose anvil port (base), API ports (base + 1 …) and libp2p ports (base + 101 …)
/// are all free now.
fn free_base_port(n: u16) -> u16 {
    loop {
        let base = free_port();
        if base > 64_000 {
            continue;
        }
        let ports = std::iter::once(base)
            .chain((1..=n).map(|i| base + i))
            .chain((1..=n).map(|i| base + 100 + i));
        let all_free = ports
            .collect::<Vec<_>>()
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok());
        if all_free {
            return base;
        }
    }
}

/// The operator's walk-through (docs/operators.md) as `scripts/local-net 4` runs it: devices
/// use `conclave submit --wait` and get the published mean; `conclave result` says pending,
/// published and "no such task" with its exit codes; `status` reads node.toml; the script stops
/// everything on SIGTERM.
#[test]
fn local_net_runs_a_task_that_submit_wait_follows_to_its_published_mean() {
    let (mut net, project) = LocalNet::start(4);
    let addresses = net.dir.join("addresses.json");
    let (rpc, addresses) = (net.rpc(), addresses.to_str().unwrap().to_string());
    let node1 = net.node(1);
    let submit = |i: u16, value: i64, wait: bool| {
        let mut args = vec![
            "submit".to_string(),
            "--api".into(),
            net.api(i),
            "--project".into(),
            project.to_string(),
            "--value".into(),
            value.to_string(),
            "--rpc".into(),
            rpc.clone(),
            "--addresses".into(),
            addresses.clone(),
        ];
        if wait {
            args.push("--wait".into());
        }
        let dir = node1.clone();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            conclave_exit(&dir, &args)
        })
    };
    // One device sends and leaves; while the task takes inputs it is pending (exit code 5).
    let (code, out, err) = submit(1, 10, false).join().unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    let task = field(&out, "accepted: task").to_string();
    let (code, out, err) = conclave_exit(&node1, &["result", &task]);
    assert_eq!(code, Some(5), "{out}{err}");
    assert!(out.starts_with("pending: "), "{out}");
    // Two more wait for the result: the mean of 10, 20 and 60.
    let waiting = [submit(2, 20, true), submit(3, 60, true)];
    for device in waiting {
        let (code, out, err) = device.join().unwrap();
        assert_eq!(code, Some(0), "submit --wait: {out}{err}");
        assert_mean_of_three(&out, 30.0);
        assert!(out.contains("published in block"), "{out}");
    }
    let (code, out, err) = conclave_exit(&node1, &["result", &task]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_mean_of_three(&out, 30.0);
    assert!(out.contains("confirmation(s))"), "{out}");
    // The task is not project 99's; task 0xdeadbeef does not exist.
    let (code, out, _) = conclave_exit(&node1, &["result", &task, "--project", "99"]);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains(&format!("belongs to project {project}, not 99")),
        "{out}"
    );
    let (code, out, _) = conclave_exit(&node1, &["result", "0xdeadbeef"]);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.starts_with("no task 0x"), "{out}");
    // `status` finds the API in node.toml.
    let out = conclave(&node1, &["status"]);
    assert!(out.contains("\"live_peers\":3"), "{out}");
    // SIGTERM: the script stops its nodes (each exits 0, logging it) and anvil, and exits 0.
    let status = net.stop();
    assert!(status.success(), "{status:?}");
    let mut logs = String::new();
    for i in 1..=4 {
        let log = std::fs::read_to_string(net.node(i).join("node.log")).unwrap();
        assert!(log.contains("stopped"), "node{i}: {log}");
        logs.push_str(&log);
    }
    // Members log their steps at info level.
    for step in [
        "seated in a task's committee",
        "preprocessing done",
        "inputs closed; computing",
        "computed; result signed",
        "result published",
    ] {
        assert!(logs.contains(step), "no {step:?} in the nodes' logs");
    }
}

/// `out` shows `mean = m` (within the fixed-point division's precision, docs/programs.md) and
/// `counted = 3`.
fn assert_mean_of_three(out: &str, mean: f64) {
    let shown: f64 = field(out, "mean = ").parse().unwrap();
    assert!((shown - mean).abs() < 1e-3, "{out}");
    assert!(out.contains("counted = 3\n"), "{out}");
}

/// `conclave init` refuses an empty passphrase, and without a terminal or CONCLAVE_PASSPHRASE
/// names the variable; committee shapes out of range name their range.
#[test]
fn bad_operator_inputs_get_errors_that_say_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let init = |dir: &str, passphrase: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(["init", "--dir", dir])
            .current_dir(root.path())
            .stdin(Stdio::null())
            .env_remove("CONCLAVE_PASSPHRASE");
        if let Some(p) = passphrase {
            command.env("CONCLAVE_PASSPHRASE", p);
        }
        let out = command.output().unwrap();
        (out.status.success(), String::from_utf8(out.stderr).unwrap())
    };
    let (ok, err) = init("a", Some(""));
    assert!(!ok && err.contains("the passphrase is empty"), "{err}");
    assert!(!root.path().join("a/node.toml").exists());
    let (ok, err) = init("b", None);
    assert!(!ok && err.contains("set CONCLAVE_PASSPHRASE"), "{err}");
    let (ok, err) = init("c", Some("a real passphrase"));
    assert!(ok, "{err}");

    // scripts/local-net empties only a folder it made: another one is refused, untouched.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-net");
    let out = Command::new("bash")
        .arg(&script)
        .args(["2", "--dir", root.path().join("c").to_str().unwrap()])
        .env("CONCLAVE_BIN_DIR", Path::new(BIN).parent().unwrap())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was not made by this script"));
    assert!(root.path().join("c/node.toml").exists());

    // A program's parameters out of range say their range, with the place.
    std::fs::write(
        root.path().join("zero.tally"),
        "devices 0;\nwindow 30;\ninput r: int32 in 0..=10 from devices;\noutput s = sum(r);\n",
    )
    .unwrap();
    let (code, _, err) = conclave_exit(root.path(), &["program", "check", "zero.tally"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("`devices` takes a whole number from 1 to 10000"),
        "{err}"
    );
    assert!(err.contains("zero.tally:1:9"), "{err}");
    // Flags say their units.
    let (_, help, _) = conclave_exit(root.path(), &["register", "--help"]);
    assert!(help.contains("Stake in coins"), "{help}");
    let (_, help, _) = conclave_exit(root.path(), &["submit", "--help"]);
    assert!(help.contains("With --wait: seconds to wait"), "{help}");

    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/programs/average.tally");
    std::fs::copy(program, root.path().join("average.tally")).unwrap();
    for (shape, said) in [
        (
            "committee_size = 0\nthreshold = 1",
            "committee_size is 0; it must be 1 to 32",
        ),
        (
            "committee_size = 33\nthreshold = 2",
            "committee_size is 33; it must be 1 to 32",
        ),
        (
            "committee_size = 3\nthreshold = 4",
            "threshold is 4; it must be 1 to committee_size (3)",
        ),
    ] {
        let file = root.path().join("p.toml");
        std::fs::write(
            &file,
            format!("program = \"average.tally\"\nprover = \"spdz\"\n{shape}\n"),
        )
        .unwrap();
        let (code, out, err) = conclave_exit(
            root.path(),
            &["project", "register", "p.toml", "--config", "c/node.toml"],
        );
        assert_ne!(code, Some(0), "{out}");
        assert!(err.contains(said), "{shape}: {err}");
    }
}

/// A node started before its operator is funded and registered says so at start (a warning
/// in its log for each), and still stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_unregistered_and_unfunded_warns() {
    let anvil = Anvil::start().expect("anvil (scripts/test installs it)");
    let chain = Arc::new(RpcChain::connect(anvil.url()).await.unwrap());
    let deployer = PrivateKeySigner::random();
    let coin = U256::from(10u64).pow(U256::from(18));
    chain.set_balance(deployer.address(), coin).await.unwrap();
    let addresses = deploy(chain.as_ref(), &deployer, DeployConfig::default())
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    init_node(root.path(), &dir, anvil.url());
    addresses.write(&dir.join("addresses.json")).unwrap();
    // Started, in text and then in JSON, it warns of both at start.
    let log = dir.join("node.log");
    let mut node = Processes(vec![run_until_warned(&dir, &["run"], &log).await]);
    sigterm(&mut node.0[0]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("\x1b["),
        "no colour codes in a log file: {text}"
    );
    // With --log-format json every line is one JSON object.
    let json_log = dir.join("node.json.log");
    node.0[0] = run_until_warned(&dir, &["--log-format", "json", "run"], &json_log).await;
    for line in std::fs::read_to_string(&json_log).unwrap().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
}

/// Starts `conclave ARGS` in `dir` with its log in `log`, and waits until it warned that its
/// operator is unregistered and short of funds.
async fn run_until_warned(dir: &Path, args: &[&str], log: &Path) -> Child {
    // Held by a guard until handed back, so a failed wait does not leave it running.
    let mut guard = Processes(vec![
        Command::new(BIN)
            .args(args)
            .env("CONCLAVE_PASSPHRASE", PASSPHRASE)
            .env("RUST_LOG", "warn")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap();
        if text.contains("this operator is not registered")
            && text.contains("below what submitting one result costs")
        {
            return guard.0.pop().unwrap();
        }
        assert!(Instant::now() < deadline, "no start warnings: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM to `child` (as systemd stops a service); it must exit 0.
fn sigterm(child: &mut Child) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on a child process this test started and has not waited for yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "stopped by SIGTERM: {status:?}");
}
