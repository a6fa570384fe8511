//! Runs a [`Plan`]: starts the fleet, applies the planned events at their times, feeds tasks to
//! the lanes as they arrive, and follows each task (and its re-runs) to the chain, recording
//! what happened. Devices are simulated clients of the real HTTP API.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use anyhow::{Context, bail};
use conclave_chain::contracts::ProverKind;
use conclave_node::api::TaskJson;
use conclave_node::client::{Client, ClientError};
use conclave_node::program::Program;
use conclave_p2p::network::NetworkEvent;
use indicatif::ProgressBar;
use rand::RngExt;
use serde::Serialize;
use tokio::sync::RwLock;

use crate::fleet::{Fleet, Life};
use crate::links::SimNetwork;
use crate::scenario::{Behaviour, EventKind, Plan, Scenario};

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Published,
    Failed,
    TimedOut,
    /// The run's time limit came first.
    NotRun,
}

/// One task of the project's committee: the first or a re-run.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    pub task_id: String,
    /// Node index of the coordinator (the device's entry node that opened it).
    pub coordinator: Option<usize>,
    /// Node indices with seats, and their seats.
    pub committee: Vec<(usize, u32)>,
    pub seats: u32,
    pub adversary_seats: u32,
    /// Readings the committee accepted.
    pub inputs: u32,
    pub state: String,
    pub reason: Option<String>,
    /// The coordinator's phase timings (ms), when it still runs at the end of the attempt.
    pub phases: Vec<(String, u64)>,
    /// Why devices whose reading did not go in gave up (each error once).
    pub device_errors: Vec<String>,
    /// Readings sent whose acknowledgement never came: they may count or not (a device does
    /// not send one again into a new slot, which could count it twice).
    pub unconfirmed: u32,
    /// When the run's task was open to devices, and when it ended (ms after the start).
    pub opened_ms: u64,
    pub ended_ms: u64,
    /// Its nodes (coordinator and members) that a crash, leave or partition touched while it
    /// ran (see [`crate::faults`]).
    pub touched_by_faults: Vec<usize>,
}

impl Attempt {
    pub fn adversary_member(&self) -> bool {
        self.adversary_seats > 0
    }
}

/// What happened to one task of the scenario.
#[derive(Clone, Debug, Serialize)]
pub struct TaskRecord {
    pub index: usize,
    pub project: Option<u64>,
    pub arrival_ms: u64,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// From its start (a lane took it) to its result on chain.
    pub latency_ms: Option<u64>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub attempts: Vec<Attempt>,
    /// Whether the published output equals the plaintext evaluation of the accepted readings
    /// (with or without each unconfirmed one).
    pub correct: Option<bool>,
}

impl TaskRecord {
    /// A task the scenario's time limit came before.
    fn not_run(index: usize, arrival_ms: u64) -> Self {
        TaskRecord {
            index,
            project: None,
            arrival_ms,
            started_ms: None,
            finished_ms: None,
            latency_ms: None,
            outcome: Outcome::NotRun,
            reason: Some("the scenario's time limit came first".into()),
            attempts: Vec::new(),
            correct: None,
        }
    }
}

/// An event as it was applied.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub at_ms: u64,
    pub planned_ms: u64,
    #[serde(flatten)]
    pub what: EventKind,
    pub error: Option<String>,
}

/// A restarted node, checked after its restart.
#[derive(Clone, Debug, Serialize)]
pub struct Resumed {
    pub node: usize,
    pub restarted_ms: u64,
    /// Tasks it sat on before its crash that its store still holds after the restart.
    pub tasks_before: usize,
    pub tasks_kept: usize,
    /// When node 0 saw it live again.
    pub live_again_ms: Option<u64>,
}

/// What an adversarial node holds at the end: of the committee runs it sat on that published
/// nothing, how many left an output in its store (it must learn none).
#[derive(Clone, Debug, Serialize)]
pub struct AdversaryView {
    pub node: usize,
    pub seated: usize,
    pub unpublished: usize,
    pub outputs_of_unpublished: usize,
}

/// Everything a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub scenario: Scenario,
    pub seed: u64,
    pub version: String,
    pub plan: Plan,
    pub tasks: Vec<TaskRecord>,
    pub events: Vec<Applied>,
    pub resumed: Vec<Resumed>,
    pub adversary_view: Vec<AdversaryView>,
    /// Heartbeat delivery delays (ms) seen by the observer nodes.
    pub gossip_delivery_ms: Vec<u32>,
    pub setup_ms: u64,
    pub wall_ms: u64,
    pub peak_rss_bytes: Option<u64>,
}

/// The scenario's shared state while it runs.
struct World {
    fleet: RwLock<Fleet>,
    plan: Plan,
    scenario: Scenario,
    source: String,
    program: Program,
    start: Instant,
    /// When the scenario's time limit ends the run: tasks still under way are cut off then and
    /// reported with the step they were in.
    ends: Instant,
    /// Node → task ids it sat on (for the restart check).
    seated: Mutex<Vec<Vec<String>>>,
    /// The project registered at set-up: every node is handed the program under it.
    first_project: u64,
    applied: Mutex<Vec<Applied>>,
    resumed: Mutex<Vec<Resumed>>,
    /// Per crashed node, the tasks it sat on before its crash.
    seated_at_crash: Mutex<std::collections::HashMap<usize, Vec<String>>>,
    checks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Beyond this many readings sent without acknowledgement, a run's output is not checked
/// (every combination of them in or out is tried).
const MAX_UNCONFIRMED: usize = 8;

/// How long after the time limit lanes may take to record the tasks it cut off.
const LANE_GRACE: Duration = Duration::from_secs(30);

/// Nodes handed the program at once.
const SEED_AT_ONCE: usize = 8;

impl World {
    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A running honest node, at random.
    async fn entry(&self) -> Option<(usize, String)> {
        let fleet = self.fleet.read().await;
        let honest: Vec<usize> = fleet
            .running()
            .filter(|&i| !self.plan.is_adversary(i))
            .collect();
        let i = *honest.get(rand::rng().random_range(0..honest.len().max(1)))?;
        Some((i, fleet.api(i)?))
    }
}

/// Hands the program to every running node, a few at a time; a node that stopped meanwhile is
/// skipped (members also fetch the program from their peers).
async fn seed_everywhere(fleet: &Fleet, project: u64, source: &str) -> anyhow::Result<usize> {
    use futures::StreamExt as _;
    let apis: Vec<String> = fleet.running().filter_map(|i| fleet.api(i)).collect();
    let seeded: Vec<anyhow::Result<()>> = futures::stream::iter(apis)
        .map(|api| async move { crate::seed_program(&api, project, source).await })
        .buffer_unordered(SEED_AT_ONCE)
        .collect()
        .await;
    let handed = seeded.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<String> = seeded
        .into_iter()
        .filter_map(|r| r.err())
        .filter(|e| {
            !e.chain().any(|c| {
                c.downcast_ref::<reqwest::Error>()
                    .is_some_and(reqwest::Error::is_connect)
            })
        })
        .map(|e| format!("{e:#}"))
        .collect();
    if let Some(first) = refused.first() {
        bail!("{} nodes refused the program: {first}", refused.len());
    }
    Ok(handed)
}

/// Registers a project for the scenario's program, through the node at `api`.
async fn register_project(
    fleet: &Fleet,
    api: &str,
    source: &str,
    s: &crate::scenario::Project,
) -> anyhow::Result<u64> {
    let shape = (
        ProverKind::Spdz,
        s.committee,
        s.threshold,
        alloy::primitives::Address::ZERO,
    );
    crate::register_project(&fleet.contracts, &fleet.owner, api, source, shape).await
}

/// Runs `scenario` with `seed`; `bar` shows tasks done.
pub async fn run(
    scenario: Scenario,
    seed: u64,
    bar: ProgressBar,
    mut say: impl FnMut(&str),
) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    let plan = Plan::new(&scenario, seed);
    let (source, program) = program_of(&scenario)?;
    let behaviours = scenario
        .adversary
        .as_ref()
        .map(|a| a.behaviours.clone())
        .unwrap_or_default();
    let n = scenario.nodes.count;
    let adversaries = plan.adversaries.clone();
    let mut fleet = Fleet::new(
        &plan.stakes,
        plan.bootstrap.clone(),
        |ports| SimNetwork::new(&scenario.network, ports, seed),
        Duration::from_millis(scenario.nodes.heartbeat_ms),
        |i| {
            adversaries
                .binary_search(&i)
                .ok()
                .and_then(|_| crate::adversary::frame_tamper(&behaviours))
        },
    )
    .await?;
    say(&format!(
        "chain deployed; starting {} of {n} nodes",
        plan.initial
    ));
    let starting = ProgressBar::new(plan.initial as u64).with_style(bar.style());
    for i in 0..plan.initial {
        fleet.start(i).await?;
        starting.inc(1);
    }
    starting.finish_and_clear();
    say("nodes started and registered; waiting for the mesh");
    fleet
        .wait_mesh(0.9, Duration::from_secs(60 + n as u64), &mut say)
        .await?;
    say(&format!(
        "mesh formed in {:.1} s; handing the program to every node",
        started.elapsed().as_secs_f64()
    ));
    let first_project = {
        let api = fleet.api(0).context("node 0 is down")?;
        register_project(&fleet, &api, &source, &scenario.project).await?
    };
    let seeded = seed_everywhere(&fleet, first_project, &source).await?;
    let setup_ms = started.elapsed().as_millis() as u64;
    say(&format!(
        "program on {seeded} nodes; running {} tasks",
        scenario.tasks.count
    ));
    // Observers of gossip delivery: nodes that never crash nor leave.
    let gossip = Arc::new(Mutex::new(Vec::<u32>::new()));
    let mut observers = Vec::new();
    for i in observers_of(&plan, &scenario) {
        if let Some(node) = fleet.node(i) {
            observers.push(tokio::spawn(observe_gossip(
                node.network().events(),
                gossip.clone(),
            )));
        }
    }
    let mut spammers = Vec::new();
    if behaviours.contains(&Behaviour::SpamGossip) {
        let victims: Vec<_> = (0..n)
            .filter(|i| !plan.is_adversary(*i))
            .map(|i| fleet.peer_id(i))
            .collect();
        for &i in &plan.adversaries {
            if let Some(node) = fleet.node(i) {
                spammers.push(tokio::spawn(crate::adversary::spam_gossip(
                    node.network().clone(),
                    victims.clone(),
                )));
            }
        }
    }
    let world = Arc::new(World {
        fleet: RwLock::new(fleet),
        plan: plan.clone(),
        scenario: scenario.clone(),
        source,
        program,
        start: Instant::now(),
        ends: started + Duration::from_secs(scenario.time_limit_secs),
        seated: Mutex::new(vec![Vec::new(); n]),
        first_project,
        applied: Mutex::default(),
        resumed: Mutex::default(),
        seated_at_crash: Mutex::default(),
        checks: Mutex::default(),
    });
    // The limit counts the whole run, start-up and mesh included, so that a scenario's wall
    // time is what its file says.
    let limit = Duration::from_secs(scenario.time_limit_secs).saturating_sub(started.elapsed());
    let events = tokio::spawn(apply_events(world.clone()));
    let queue = Arc::new(Mutex::new(
        (0..scenario.tasks.count).collect::<VecDeque<_>>(),
    ));
    let records = Arc::new(Mutex::new(Vec::new()));
    let mut lanes: Vec<_> = (0..scenario.project.lanes)
        .map(|_| {
            let (world, queue, records, bar) =
                (world.clone(), queue.clone(), records.clone(), bar.clone());
            tokio::spawn(async move {
                while Instant::now() < world.ends {
                    let next = queue.lock().expect("queue").pop_front();
                    let Some(index) = next else { return };
                    let record = run_task(&world, index).await;
                    bar.inc(1);
                    let mut records = records.lock().expect("records");
                    records.push(record);
                    bar.set_message(summary_line(&records));
                }
            })
        })
        .collect();
    let all_lanes = futures::future::join_all(lanes.iter_mut());
    // Each task cuts itself off at the limit; the grace covers its last status read.
    if tokio::time::timeout(limit + LANE_GRACE, all_lanes)
        .await
        .is_err()
        || Instant::now() >= world.ends
    {
        say("the scenario's time limit came first; tasks left are reported as not run");
    }
    // A lane that join_all saw finish must not be awaited again.
    for lane in lanes.into_iter().filter(|l| !l.is_finished()) {
        lane.abort();
        let _ = lane.await;
    }
    events.abort();
    let _ = events.await;
    let checks = std::mem::take(&mut *world.checks.lock().expect("checks"));
    for check in checks {
        let _ = check.await;
    }
    let applied = std::mem::take(&mut *world.applied.lock().expect("applied"));
    let resumed = std::mem::take(&mut *world.resumed.lock().expect("resumed"));
    for task in observers.iter().chain(&spammers) {
        task.abort();
    }
    let mut tasks = std::mem::take(&mut *records.lock().expect("records"));
    let done: std::collections::HashSet<usize> = tasks.iter().map(|t| t.index).collect();
    for index in (0..scenario.tasks.count).filter(|i| !done.contains(i)) {
        tasks.push(TaskRecord::not_run(index, plan.arrivals_ms[index]));
    }
    tasks.sort_by_key(|t| t.index);
    for attempt in tasks.iter_mut().flat_map(|t| &mut t.attempts) {
        attempt.touched_by_faults = crate::faults::touched_by_faults(attempt, &applied);
    }
    let adversary_view = adversary_view(&world).await;
    let world = Arc::into_inner(world).context("a lane outlived the run")?;
    world.fleet.into_inner().shutdown().await;
    let gossip_delivery_ms = std::mem::take(&mut *gossip.lock().expect("gossip"));
    Ok(RunResult {
        scenario,
        seed,
        version: env!("CARGO_PKG_VERSION").into(),
        plan,
        tasks,
        events: applied,
        resumed,
        adversary_view,
        gossip_delivery_ms,
        setup_ms,
        wall_ms: started.elapsed().as_millis() as u64,
        peak_rss_bytes: peak_rss(),
    })
}

/// The input window of the default program. Devices submit as soon as the members' masks are
/// ready, and the coordinator closes early once every slot is in, so a long window costs nothing
/// when all goes well; it must outlast preprocessing of the largest committees a draw gives on a
/// loaded machine (a 9-seat one took over 45 s in a debug build beside other tasks).
const DEVICE_WINDOW_SECS: u64 = 90;

/// The scenario's program: its file, or the sum and count of `devices` readings.
fn program_of(scenario: &Scenario) -> anyhow::Result<(String, Program)> {
    let source = match &scenario.project.program {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => Program::sum_source(scenario.project.devices, DEVICE_WINDOW_SECS, 32),
    };
    let program = Program::from_source(&source)?;
    if program.device_fields.len() != 1 || program.owner_bits > 0 {
        bail!("a scenario's program takes one number per device and no owner parameters");
    }
    if program.max_inputs != scenario.project.devices {
        bail!(
            "project.devices ({}) must be the program's `devices` ({})",
            scenario.project.devices,
            program.max_inputs
        );
    }
    Ok((source, program))
}

/// Nodes that neither crash nor leave by the plan (at most 8), whose gossip is measured.
fn observers_of(plan: &Plan, scenario: &Scenario) -> Vec<usize> {
    let troubled: std::collections::HashSet<usize> = plan
        .events
        .iter()
        .filter_map(|e| match e.what {
            EventKind::Crash { node } | EventKind::Leave { node } => Some(node),
            _ => None,
        })
        .collect();
    (0..plan.initial)
        .filter(|i| !troubled.contains(i) && !plan.is_adversary(*i))
        .take(8.min(scenario.nodes.count))
        .collect()
}

async fn observe_gossip(
    mut events: tokio::sync::broadcast::Receiver<NetworkEvent>,
    into: Arc<Mutex<Vec<u32>>>,
) {
    const MAX_SAMPLES: usize = 1 << 20;
    loop {
        match events.recv().await {
            Ok(NetworkEvent::Gossip {
                message: conclave_p2p::messages::GossipMessage::Heartbeat(hb),
                ..
            }) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let mut samples = into.lock().expect("gossip");
                if samples.len() < MAX_SAMPLES {
                    samples.push(now.saturating_sub(hb.sent_at_ms) as u32);
                }
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(_) => return,
        }
    }
}

/// Applies the plan's events at their times, recording each in the world; a restart starts
/// its check.
async fn apply_events(world: Arc<World>) {
    for event in world.plan.events.clone() {
        let wait = event.at_ms.saturating_sub(world.ms());
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let mut fleet = world.fleet.write().await;
        let error = match &event.what {
            EventKind::Join { node } => match fleet.start(*node).await {
                Ok(()) => match fleet.api(*node) {
                    Some(api) => crate::seed_program(&api, world.first_project, &world.source)
                        .await
                        .err(),
                    None => None,
                },
                Err(e) => Some(e),
            },
            EventKind::Restart { node } if fleet.life(*node) == Life::Crashed => {
                let result = fleet.start(*node).await.err();
                if result.is_none() {
                    let check = tokio::spawn(check_resumed(world.clone(), *node));
                    world.checks.lock().expect("checks").push(check);
                }
                result
            }
            EventKind::Restart { .. } => Some(anyhow::anyhow!("the node was not crashed")),
            EventKind::Crash { node } => {
                fleet.crash(*node).await;
                let seated = world.seated.lock().expect("seated")[*node].clone();
                world
                    .seated_at_crash
                    .lock()
                    .expect("seated")
                    .insert(*node, seated);
                None
            }
            EventKind::Leave { node } => fleet.leave(*node).await.err(),
            EventKind::PartitionOpens { index, nodes } => {
                fleet.net.open(*index, nodes);
                None
            }
            EventKind::PartitionHeals { index } => {
                fleet.net.heal(*index);
                None
            }
        };
        drop(fleet);
        world.applied.lock().expect("applied").push(Applied {
            at_ms: world.ms(),
            planned_ms: event.at_ms,
            what: event.what,
            error: error.map(|e| format!("{e:#}")),
        });
    }
}

/// A restarted node: is it live again in node 0's view, and does its store still hold the
/// tasks it sat on before its crash?
async fn check_resumed(world: Arc<World>, node: usize) {
    let mut r = Resumed {
        node,
        restarted_ms: world.ms(),
        tasks_before: 0,
        tasks_kept: 0,
        live_again_ms: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let fleet = world.fleet.read().await;
        let peer = fleet.peer_id(node);
        let live = match fleet.node(0) {
            Some(zero) => zero
                .network()
                .live_peers()
                .await
                .is_ok_and(|peers| peers.iter().any(|p| p.peer == peer)),
            None => false,
        };
        drop(fleet);
        if live {
            r.live_again_ms = Some(world.ms());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = world
        .seated_at_crash
        .lock()
        .expect("seated")
        .get(&node)
        .cloned()
        .unwrap_or_default();
    let fleet = world.fleet.read().await;
    if let Some(n) = fleet.node(node) {
        r.tasks_before = before.len();
        r.tasks_kept = before
            .iter()
            .filter(|id| task_bytes(id).is_some_and(|t| n.task(&t).ok().flatten().is_some()))
            .count();
    }
    drop(fleet);
    world.resumed.lock().expect("resumed").push(r);
}

async fn adversary_view(world: &World) -> Vec<AdversaryView> {
    let fleet = world.fleet.read().await;
    let mut views = Vec::new();
    for &i in &world.plan.adversaries {
        let seated = world.seated.lock().expect("seated")[i].clone();
        let mut view = AdversaryView {
            node: i,
            seated: seated.len(),
            unpublished: 0,
            outputs_of_unpublished: 0,
        };
        for id in seated.iter().filter_map(|id| task_bytes(id)) {
            if matches!(
                fleet.contracts.result(U256::from_be_bytes(id)).await,
                Ok(Some(_))
            ) {
                continue;
            }
            view.unpublished += 1;
            let held = fleet
                .node(i)
                .and_then(|node| node.task(&id).ok().flatten())
                .is_some_and(|r| r.output.is_some());
            view.outputs_of_unpublished += usize::from(held);
        }
        views.push(view);
    }
    views
}

fn task_bytes(hex_id: &str) -> Option<[u8; 32]> {
    U256::from_str_radix(hex_id.trim_start_matches("0x"), 16)
        .ok()
        .map(|t| t.to_be_bytes())
}

/// One task: a fresh project, the devices' readings into its task and, when a committee fails,
/// into the re-run, until it is published, fails for good or runs out of time.
async fn run_task(world: &World, index: usize) -> TaskRecord {
    let arrival_ms = world.plan.arrivals_ms[index];
    let wait = arrival_ms.saturating_sub(world.ms());
    let arrives = Instant::now() + Duration::from_millis(wait);
    if arrives >= world.ends {
        tokio::time::sleep_until(world.ends.into()).await;
        return TaskRecord::not_run(index, arrival_ms);
    }
    tokio::time::sleep_until(arrives.into()).await;
    let started_ms = world.ms();
    let mut record = TaskRecord {
        index,
        project: None,
        arrival_ms,
        started_ms: Some(started_ms),
        finished_ms: None,
        latency_ms: None,
        outcome: Outcome::TimedOut,
        reason: None,
        attempts: Vec::new(),
        correct: None,
    };
    let own_deadline = Instant::now() + Duration::from_secs(world.scenario.tasks.deadline_secs);
    let deadline = own_deadline.min(world.ends);
    match tokio::time::timeout_at(deadline.into(), follow_task(world, index, &mut record)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            record.outcome = Outcome::Failed;
            record.reason = Some(format!("{e:#}"));
        }
        Err(_) => {
            record.outcome = Outcome::TimedOut;
            // follow_task left its last step in `reason`.
            let step = record.reason.take().unwrap_or_default();
            record.reason = Some(if own_deadline <= world.ends {
                format!(
                    "not published within {} s ({step})",
                    world.scenario.tasks.deadline_secs
                )
            } else {
                format!("cut off by the scenario's time limit ({step})")
            });
        }
    }
    record.finished_ms = Some(world.ms());
    if record.outcome == Outcome::Published {
        record.latency_ms = record.finished_ms.map(|f| f - started_ms);
    }
    record
}

/// Registers the task's project and follows the task and its re-runs to a final state. What it
/// is doing stays in `record.reason` (and a committee run in `record.attempts` from the moment
/// it opens), so that a task cut off by its deadline says where it was.
async fn follow_task(world: &World, index: usize, record: &mut TaskRecord) -> anyhow::Result<()> {
    let s = &world.scenario.project;
    // The first task runs under the project registered at set-up, whose program every node
    // holds; the others register their own (the program, known by its hash, is the same).
    let project = match index {
        0 => world.first_project,
        _ => {
            record.reason = Some("registering the project".into());
            let fleet = world.fleet.read().await;
            let api = fleet.api(0).context("node 0 is down")?;
            register_project(&fleet, &api, &world.source, s).await?
        }
    };
    record.project = Some(project);
    let readings = &world.plan.readings[index];
    let mut rerun: Option<String> = None;
    loop {
        record.reason = Some("opening the task".into());
        let task = open_or_join(world, project, rerun.as_deref()).await?;
        let opened_ms = world.ms();
        record.reason = Some("drawing the committee".into());
        record.attempts.push(describe(world, &task, 0).await);
        record.reason = Some("devices submitting".into());
        let sent = submit_all(world, &task, readings).await;
        let attempt = record.attempts.last_mut().expect("pushed above");
        attempt.inputs = sent.confirmed.len() as u32;
        attempt.unconfirmed = sent.unconfirmed.len() as u32;
        attempt.device_errors = sent.errors.clone();
        attempt.opened_ms = opened_ms;
        attempt.state = "running".into();
        // Members that took the inputs have the task in their stores.
        if !sent.confirmed.is_empty() || !sent.unconfirmed.is_empty() {
            let mut seated = world.seated.lock().expect("seated");
            for (node, _) in &attempt.committee {
                seated[*node].push(task.task_id.clone());
            }
        }
        record.reason = Some("waiting for the committee's result".into());
        let status = wait_final(world, &task).await?;
        let ended_ms = world.ms();
        let attempt = record.attempts.last_mut().expect("pushed above");
        attempt.ended_ms = ended_ms;
        if let (Some(c), Some(id)) = (attempt.coordinator, task_bytes(&task.task_id)) {
            let fleet = world.fleet.read().await;
            if let Some(Ok(Some(r))) = fleet.node(c).map(|n| n.task(&id)) {
                attempt.phases = r.timings;
            }
        }
        attempt.state = status.state.clone();
        attempt.reason = status.reason.clone();
        match status.state.as_str() {
            "published" => {
                record.outcome = Outcome::Published;
                record.reason = None;
                let (correct, mismatch) = check_output(world, &status, readings, &sent)?;
                record.correct = correct;
                record.reason = mismatch;
                return Ok(());
            }
            _ => match status.retried_as {
                Some(next) => rerun = Some(next),
                None => {
                    record.outcome = Outcome::Failed;
                    record.reason = status.reason;
                    return Ok(());
                }
            },
        }
    }
}

/// The project's task through a random honest entry node: a new one, or the re-run `rerun`
/// once it is open.
async fn open_or_join(
    world: &World,
    project: u64,
    rerun: Option<&str>,
) -> anyhow::Result<TaskJson> {
    let mut last = String::from("no node runs");
    for _ in 0..200 {
        if let Some((_, api)) = world.entry().await {
            match Client::new(api).task(project).await {
                Ok(task) if rerun.is_none_or(|want| same_task(want, &task.task_id)) => {
                    return Ok(task);
                }
                Ok(task) => last = format!("the open task is {}, not the re-run", task.task_id),
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("no task to submit into: {last}")
}

fn same_task(a: &str, b: &str) -> bool {
    a.trim_start_matches("0x")
        .eq_ignore_ascii_case(b.trim_start_matches("0x"))
}

/// What the devices of one committee run sent: readings by (reading index, slot).
#[derive(Debug, Default)]
struct Sent {
    /// Acknowledged by the committee.
    confirmed: Vec<(usize, u32)>,
    /// Sent without an acknowledgement: they may count or not.
    unconfirmed: Vec<(usize, u32)>,
    /// Why devices gave up (each error once).
    errors: Vec<String>,
}

/// Each device submits its reading through a random honest entry node, trying another when one
/// fails before the reading was sent; a reading sent without an acknowledgement is not sent
/// again (into a new slot it could count twice), as `conclave submit` does.
async fn submit_all(world: &World, task: &TaskJson, readings: &[i64]) -> Sent {
    let contracts = world.fleet.read().await.contracts.clone();
    let devices = readings.iter().enumerate().map(|(i, &reading)| {
        let contracts = contracts.clone();
        async move {
            // Every try's error, in order: the last alone hides why the first ones failed.
            let mut tries: Vec<String> = Vec::new();
            for _ in 0..3 {
                let Some((entry, api)) = world.entry().await else {
                    tries.push("no honest entry node runs".into());
                    break;
                };
                let client = Client::new(api).with_chain(contracts.clone());
                match client.submit_to(task, reading).await {
                    Ok(done) => return Ok((i, done.slot)),
                    Err(e @ ClientError::Undelivered { slot, .. }) => {
                        tries.push(format!("via node {entry}: {e}"));
                        return Err((Some((i, slot)), tries.join("; then ")));
                    }
                    Err(e) => tries.push(format!("via node {entry}: {e}")),
                }
            }
            Err((None, tries.join("; then ")))
        }
    });
    let mut sent = Sent::default();
    for outcome in futures::future::join_all(devices).await {
        match outcome {
            Ok(slot) => sent.confirmed.push(slot),
            Err((maybe, e)) => {
                sent.unconfirmed.extend(maybe);
                if !sent.errors.contains(&e) {
                    sent.errors.push(e);
                }
            }
        }
    }
    sent
}

/// The attempt's committee as drawn on chain, with the adversary's seats.
async fn describe(world: &World, task: &TaskJson, inputs: u32) -> Attempt {
    let fleet = world.fleet.read().await;
    let mut attempt = Attempt {
        task_id: task.task_id.clone(),
        coordinator: fleet.index_of(&task.coordinator),
        committee: Vec::new(),
        seats: 0,
        adversary_seats: 0,
        inputs,
        state: String::new(),
        reason: None,
        phases: Vec::new(),
        device_errors: Vec::new(),
        unconfirmed: 0,
        opened_ms: 0,
        ended_ms: 0,
        touched_by_faults: Vec::new(),
    };
    let Some(id) = task_bytes(&task.task_id) else {
        return attempt;
    };
    if let Ok(Some(seated)) = fleet.contracts.committee(U256::from_be_bytes(id)).await {
        for (operator, mask) in seated {
            let seats = conclave_chain::sortition::seat_count(mask);
            let node = (0..fleet.len()).find(|&i| fleet.operator(i).address() == operator);
            if let Some(node) = node {
                attempt.committee.push((node, seats));
                if world.plan.is_adversary(node) {
                    attempt.adversary_seats += seats;
                }
            }
            attempt.seats += seats;
        }
    }
    attempt
}

/// Polls the task's status (through any running honest node) until it is published or failed.
async fn wait_final(
    world: &World,
    task: &TaskJson,
) -> anyhow::Result<conclave_node::api::StatusJson> {
    let id = task_bytes(&task.task_id).context("a task id")?;
    loop {
        if let Some((_, api)) = world.entry().await
            && let Ok(status) = Client::new(api).status(&id).await
            && matches!(status.state.as_str(), "published" | "failed")
        {
            if status.state == "failed" && status.retried_as.is_none() {
                return Ok(rerun_of(world, &id, status).await);
            }
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A failed task's status once its coordinator has opened the re-run (it records the failure
/// first, then draws the new committee), or as it is after [`RERUN_WAIT`].
async fn rerun_of(
    world: &World,
    id: &[u8; 32],
    failed: conclave_node::api::StatusJson,
) -> conclave_node::api::StatusJson {
    let deadline = Instant::now() + RERUN_WAIT;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Some((_, api)) = world.entry().await
            && let Ok(status) = Client::new(api).status(id).await
            && status.retried_as.is_some()
        {
            return status;
        }
    }
    failed
}

/// How long a failed task's re-run may take to open (a few draws, each two transactions and
/// the seat holders' answers).
const RERUN_WAIT: Duration = Duration::from_secs(40);

/// Whether the published output equals the plaintext evaluation of the readings that went in,
/// in slot order.
/// Whether the published output is the plaintext evaluation of the confirmed readings plus
/// some of the unconfirmed ones (each may or may not have gone in); if not, what differs.
/// `None` (not checked) beyond [`MAX_UNCONFIRMED`] of them.
fn check_output(
    world: &World,
    status: &conclave_node::api::StatusJson,
    readings: &[i64],
    sent: &Sent,
) -> anyhow::Result<(Option<bool>, Option<String>)> {
    let output = hex::decode(
        status
            .output
            .as_deref()
            .context("a published status without output")?
            .trim_start_matches("0x"),
    )?;
    let outputs = world
        .program
        .decode_outputs(&output)
        .context("an undecodable output")?;
    let unconfirmed = &sent.unconfirmed[..sent.unconfirmed.len().min(MAX_UNCONFIRMED)];
    let mut first_expected = None;
    for subset in 0..1u32 << unconfirmed.len() {
        let went_in = sent.confirmed.iter().chain(
            unconfirmed
                .iter()
                .enumerate()
                .filter(|(k, _)| subset >> k & 1 == 1)
                .map(|(_, s)| s),
        );
        let (records, slots): (Vec<Vec<i128>>, Vec<u32>) = went_in
            .map(|&(i, slot)| (vec![i128::from(readings[i])], slot))
            .unzip();
        // A set the program cannot run on (too few inputs for it) is not what the committee ran.
        let Ok(expected) = crate::plaintext(&world.source, records, &slots) else {
            continue;
        };
        if outputs == expected {
            return Ok((Some(true), None));
        }
        first_expected.get_or_insert(expected);
    }
    if sent.unconfirmed.len() > unconfirmed.len() {
        return Ok((
            None,
            Some(format!(
                "not checked: {} readings were sent without acknowledgement",
                sent.unconfirmed.len()
            )),
        ));
    }
    Ok((
        Some(false),
        Some(format!(
            "the published output {outputs:?} is not the plaintext {:?} of the {} confirmed readings (slots {:?}; unconfirmed {:?})",
            first_expected.unwrap_or_default(),
            sent.confirmed.len(),
            sent.confirmed.iter().map(|s| s.1).collect::<Vec<_>>(),
            sent.unconfirmed
        )),
    ))
}

/// "12 published, 1 failed" for the progress bar.
fn summary_line(records: &[TaskRecord]) -> String {
    let count = |o: Outcome| records.iter().filter(|r| r.outcome == o).count();
    format!(
        "{} published, {} failed, {} timed out",
        count(Outcome::Published),
        count(Outcome::Failed),
        count(Outcome::TimedOut)
    )
}

/// This process's peak resident memory (Linux).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
