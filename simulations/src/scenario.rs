//! Scenario files for `conclave-sim run` (docs/simulations.md): what to simulate, read from
//! TOML and checked, and the [`Plan`] it turns into for a seed — every random choice made up
//! front, so the same seed gives the same stakes, adversaries, faults, arrivals and readings.

use std::path::{Path, PathBuf};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Largest scenario file read.
const MAX_SCENARIO_BYTES: u64 = 1 << 20;
/// Most nodes a scenario may ask for (each is a full node in this process).
pub const MAX_NODES: usize = 2000;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The default seed (`--seed` overrides it).
    #[serde(default = "one")]
    pub seed: u64,
    /// The whole run (start-up, mesh and tasks) stops after this long even if tasks are left
    /// (they are reported as not run).
    #[serde(default = "default_time_limit")]
    pub time_limit_secs: u64,
    pub nodes: Nodes,
    pub project: Project,
    pub tasks: Tasks,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub faults: Faults,
    #[serde(default)]
    pub adversary: Option<Adversary>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Nodes {
    /// Nodes in all, including those that join late.
    pub count: usize,
    #[serde(default)]
    pub stake: Stake,
    /// Nodes (the last ones) that start only at a time in the window.
    #[serde(default)]
    pub join: Option<Churn>,
    /// Nodes (honest, never node 0) that shut down for good at a time in the window.
    #[serde(default)]
    pub leave: Option<Churn>,
    /// Earlier nodes each node dials when it starts (the rest it finds through Kademlia).
    #[serde(default = "eight")]
    pub bootstrap_peers: usize,
    /// How often each node announces itself on gossip (its live view expires peers after 6×).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
}

/// How stake is spread over the nodes, in whole coins (the registry's minimum stake).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "distribution", rename_all = "lowercase", deny_unknown_fields)]
pub enum Stake {
    /// Every node stakes `coins`.
    Equal { coins: u64 },
    /// The node of rank r (a seeded shuffle) stakes max(1, round(coins / r^exponent)).
    Zipf { coins: u64, exponent: f64 },
    /// Node i stakes `coins[i]`.
    Explicit { coins: Vec<u64> },
}

impl Default for Stake {
    fn default() -> Self {
        Stake::Equal { coins: 10 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    pub count: usize,
    /// Times are uniform in [from, to] seconds after the start.
    pub between_secs: [f64; 2],
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Only `spdz` runs in scenarios for now.
    #[serde(default = "spdz")]
    pub prover: String,
    /// A Tally program of device records only; default: the sum and count of `devices`
    /// 32-bit readings.
    #[serde(default)]
    pub program: Option<PathBuf>,
    /// Expected seats of a task's committee, and the seats that must sign.
    pub committee: u16,
    pub threshold: u16,
    /// Devices (records) per task.
    pub devices: u32,
    /// Projects run side by side, each one task at a time: the scenario's concurrency.
    #[serde(default = "four")]
    pub lanes: usize,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tasks {
    pub count: usize,
    /// Poisson arrivals at this mean rate.
    pub rate_per_sec: f64,
    /// A task (with its re-runs) not published this long after it started counts as timed
    /// out.
    #[serde(default = "default_task_deadline")]
    pub deadline_secs: u64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// One-way delay of each chunk on a link.
    #[serde(default)]
    pub latency_ms: Latency,
    /// Probability that a chunk is lost and retransmitted (it arrives 3 latencies + 200 ms
    /// late: the streams are reliable, like TCP's).
    #[serde(default)]
    pub loss: f64,
    /// Each direction of each link carries at most this much.
    #[serde(default)]
    pub bandwidth_mbps: Option<f64>,
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

/// A latency distribution in milliseconds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "distribution", rename_all = "lowercase", deny_unknown_fields)]
pub enum Latency {
    Fixed {
        ms: f64,
    },
    Uniform {
        min: f64,
        max: f64,
    },
    /// Normal, cut at zero.
    Normal {
        mean: f64,
        sd: f64,
    },
    /// Log-normal with this median and shape (long tails, as on the internet).
    Lognormal {
        median: f64,
        sigma: f64,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Fixed { ms: 0.0 }
    }
}

/// Nodes cut off from the rest between two times: `nodes` by index, or a seeded `fraction`
/// of the nodes (never node 0).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub at_secs: f64,
    pub heal_secs: f64,
    #[serde(default)]
    pub nodes: Vec<usize>,
    #[serde(default)]
    pub fraction: f64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    #[serde(default)]
    pub crashes: Vec<Crash>,
    /// Random crashes of honest nodes (never node 0), on average this many a minute...
    #[serde(default)]
    pub crash_rate_per_min: f64,
    /// ... each restarting after this long.
    #[serde(default = "default_downtime")]
    pub downtime_secs: f64,
}

/// Node `node` crashes at `at_secs` and, with `restart_after_secs`, restarts from its store.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Crash {
    pub node: usize,
    pub at_secs: f64,
    #[serde(default)]
    pub restart_after_secs: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Adversary {
    /// The adversary's share of all stake (its nodes are drawn until they hold at least this).
    #[serde(default)]
    pub stake_share: f64,
    /// Or exactly these nodes (never node 0).
    #[serde(default)]
    pub nodes: Vec<usize>,
    pub behaviours: Vec<Behaviour>,
}

/// What the adversary's nodes do (DESIGN.md's trust model).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Alter every MPC frame they send (a share, a MAC, an opening, an OT message).
    Tamper,
    /// Close their MPC channels in the middle of a computation.
    Abort,
    /// Publish junk on every gossip topic, 20 messages a second per node.
    SpamGossip,
    /// Not built in the simulator yet; tests/tests/adversary.rs covers them.
    SignWrongOutput,
    Equivocate,
    Withhold,
    SquatSlots,
}

impl Behaviour {
    fn simulated(self) -> bool {
        matches!(
            self,
            Behaviour::Tamper | Behaviour::Abort | Behaviour::SpamGossip
        )
    }
}

fn one() -> u64 {
    1
}
fn four() -> usize {
    4
}
fn eight() -> usize {
    8
}
fn spdz() -> String {
    "spdz".into()
}
fn default_time_limit() -> u64 {
    900
}
fn default_heartbeat() -> u64 {
    500
}
fn default_task_deadline() -> u64 {
    180
}
fn default_downtime() -> f64 {
    10.0
}

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_SCENARIO_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Scenario {
    pub fn read(path: &Path) -> Result<Scenario, ScenarioError> {
        let read = |source| ScenarioError::Read {
            path: path.into(),
            source,
        };
        if std::fs::metadata(path).map_err(read)?.len() > MAX_SCENARIO_BYTES {
            return Err(ScenarioError::TooLarge { path: path.into() });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let scenario: Scenario = toml::from_str(&text).map_err(|e| ScenarioError::Parse {
            path: path.into(),
            source: Box::new(e),
        })?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Refuses what cannot run, naming the field and its range.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        let n = self.nodes.count;
        if !(1..=MAX_NODES).contains(&n) {
            return bad(format!("nodes.count must be 1..={MAX_NODES}, not {n}"));
        }
        let late = self.nodes.join.as_ref().map_or(0, |j| j.count);
        let leaving = self.nodes.leave.as_ref().map_or(0, |l| l.count);
        if late + leaving >= n {
            return bad(format!(
                "nodes.join.count + nodes.leave.count ({}) must leave node 0 and more of the {n} nodes",
                late + leaving
            ));
        }
        for (what, churn) in [("join", &self.nodes.join), ("leave", &self.nodes.leave)] {
            if let Some(c) = churn
                && !(0.0 <= c.between_secs[0] && c.between_secs[0] <= c.between_secs[1])
            {
                return bad(format!(
                    "nodes.{what}.between_secs must be [from, to] with 0 ≤ from ≤ to"
                ));
            }
        }
        match &self.nodes.stake {
            Stake::Equal { coins } | Stake::Zipf { coins, .. } if !(1..=256).contains(coins) => {
                return bad(format!("nodes.stake.coins must be 1..=256, not {coins}"));
            }
            Stake::Zipf { exponent, .. } if !(0.0..=4.0).contains(exponent) => {
                return bad(format!(
                    "nodes.stake.exponent must be 0..=4, not {exponent}"
                ));
            }
            Stake::Explicit { coins } if coins.len() != n => {
                return bad(format!(
                    "nodes.stake.coins lists {} stakes for {n} nodes",
                    coins.len()
                ));
            }
            Stake::Explicit { coins } if coins.iter().any(|c| !(1..=256).contains(c)) => {
                return bad("nodes.stake.coins must each be 1..=256".into());
            }
            _ => {}
        }
        if !(100..=60_000).contains(&self.nodes.heartbeat_ms) {
            return bad("nodes.heartbeat_ms must be 100..=60000".into());
        }
        if self.project.prover != "spdz" {
            return bad(format!(
                "project.prover = {:?} does not run in scenarios yet (only \"spdz\"); \
                 `conclave-sim quickstart --prover` runs the others",
                self.project.prover
            ));
        }
        let p = &self.project;
        if p.committee == 0 || p.threshold == 0 || p.threshold > p.committee {
            return bad(format!(
                "project.threshold must be 1..=committee ({}), not {}",
                p.committee, p.threshold
            ));
        }
        if !(1..=10_000).contains(&p.devices) {
            return bad(format!(
                "project.devices must be 1..=10000, not {}",
                p.devices
            ));
        }
        if !(1..=64).contains(&p.lanes) {
            return bad(format!("project.lanes must be 1..=64, not {}", p.lanes));
        }
        if !(1..=86_400).contains(&self.time_limit_secs)
            || !(1..=86_400).contains(&self.tasks.deadline_secs)
        {
            return bad("time_limit_secs and tasks.deadline_secs must be 1..=86400".into());
        }
        if self.tasks.count as u64 * u64::from(p.devices) > 1_000_000 {
            return bad("tasks.count × project.devices must be at most 1000000 readings".into());
        }
        if !(0.0..=3600.0).contains(&self.faults.downtime_secs)
            || self.faults.crashes.iter().any(|c| {
                !(0.0..=86_400.0).contains(&c.at_secs)
                    || c.restart_after_secs
                        .is_some_and(|r| !(0.0..=86_400.0).contains(&r))
            })
        {
            return bad(
                "faults: at_secs and restart_after_secs must be 0..=86400, downtime_secs 0..=3600"
                    .into(),
            );
        }
        let rate_ok = self.tasks.rate_per_sec > 0.0 && self.tasks.rate_per_sec <= 1000.0;
        if !(1..=100_000).contains(&self.tasks.count) || !rate_ok {
            return bad(
                "tasks.count must be 1..=100000 and tasks.rate_per_sec in (0, 1000]".into(),
            );
        }
        let net = &self.network;
        if !(0.0..0.5).contains(&net.loss) {
            return bad(format!(
                "network.loss must be in [0, 0.5), not {}",
                net.loss
            ));
        }
        if net
            .bandwidth_mbps
            .is_some_and(|b| !(0.001..=1_000_000.0).contains(&b))
        {
            return bad("network.bandwidth_mbps must be 0.001..=1000000".into());
        }
        let latency_ok = match net.latency_ms {
            Latency::Fixed { ms } => (0.0..=10_000.0).contains(&ms),
            Latency::Uniform { min, max } => 0.0 <= min && min <= max && max <= 10_000.0,
            Latency::Normal { mean, sd } => {
                (0.0..=10_000.0).contains(&mean) && (0.0..=10_000.0).contains(&sd)
            }
            Latency::Lognormal { median, sigma } => {
                (0.0..=10_000.0).contains(&median) && (0.0..=3.0).contains(&sigma)
            }
        };
        if !latency_ok {
            return bad("network.latency_ms is out of range (0..=10000 ms)".into());
        }
        for part in &net.partitions {
            if !(0.0 <= part.at_secs && part.at_secs < part.heal_secs && part.heal_secs <= 86_400.0)
            {
                return bad("a partition must heal after it opens (at_secs < heal_secs)".into());
            }
            if part.nodes.iter().any(|&i| i == 0 || i >= n) {
                return bad(format!("partition nodes must be 1..{n} (node 0 stays)"));
            }
            if !(0.0..1.0).contains(&part.fraction) {
                return bad("a partition's fraction must be in [0, 1)".into());
            }
        }
        for crash in &self.faults.crashes {
            if crash.node == 0 || crash.node >= n {
                return bad(format!(
                    "faults.crashes: node must be 1..{n} (node 0 hosts the projects), not {}",
                    crash.node
                ));
            }
        }
        if !(0.0..=60.0).contains(&self.faults.crash_rate_per_min) {
            return bad("faults.crash_rate_per_min must be 0..=60".into());
        }
        if let Some(adv) = &self.adversary {
            if !(0.0..1.0).contains(&adv.stake_share) {
                return bad("adversary.stake_share must be in [0, 1)".into());
            }
            if adv.nodes.iter().any(|&i| i == 0 || i >= n) {
                return bad(format!(
                    "adversary.nodes must be 1..{n} (node 0 hosts the projects)"
                ));
            }
            if adv.nodes.is_empty() == (adv.stake_share == 0.0) {
                return bad("the adversary takes either stake_share or nodes".into());
            }
            if let Some(b) = adv.behaviours.iter().find(|b| !b.simulated()) {
                return bad(format!(
                    "adversary behaviour {b:?} is not built in the simulator yet (the \
                     adversary tests in tests/tests/adversary.rs cover it); the simulator \
                     runs tamper, abort and spam-gossip"
                ));
            }
        }
        Ok(())
    }
}

/// A scheduled change to the simulated world, `at_ms` after the start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub at_ms: u64,
    pub what: EventKind,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    Join { node: usize },
    Leave { node: usize },
    Crash { node: usize },
    Restart { node: usize },
    PartitionOpens { index: usize, nodes: Vec<usize> },
    PartitionHeals { index: usize },
}

/// Every random choice of a run, made from the seed before it starts.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub seed: u64,
    /// Stake of node i, in coins.
    pub stakes: Vec<u64>,
    /// Nodes running from the start.
    pub initial: usize,
    /// The adversary's nodes, ascending.
    pub adversaries: Vec<usize>,
    pub events: Vec<Event>,
    /// Arrival time of each task, ms after the start, ascending.
    pub arrivals_ms: Vec<u64>,
    /// Each task's device readings.
    pub readings: Vec<Vec<i64>>,
    /// Per node, the earlier nodes it dials at its start.
    pub bootstrap: Vec<Vec<usize>>,
}

fn ms(secs: f64) -> u64 {
    (secs * 1000.0).round() as u64
}

impl Plan {
    pub fn new(s: &Scenario, seed: u64) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = s.nodes.count;
        let stakes = match &s.nodes.stake {
            Stake::Equal { coins } => vec![*coins; n],
            Stake::Explicit { coins } => coins.clone(),
            Stake::Zipf { coins, exponent } => {
                let mut ranks: Vec<usize> = (1..=n).collect();
                shuffle(&mut ranks, &mut rng);
                ranks
                    .iter()
                    .map(|&r| {
                        ((*coins as f64) / (r as f64).powf(*exponent))
                            .round()
                            .max(1.0) as u64
                    })
                    .collect()
            }
        };
        let late = s.nodes.join.as_ref().map_or(0, |j| j.count);
        let initial = n - late;
        let mut events = Vec::new();
        if let Some(join) = &s.nodes.join {
            for node in initial..n {
                let at = uniform(&mut rng, join.between_secs);
                events.push(Event {
                    at_ms: ms(at),
                    what: EventKind::Join { node },
                });
            }
        }
        // The adversary: a seeded order of the nodes (never node 0), taken until its share.
        let total: u64 = stakes.iter().sum();
        let mut adversaries = Vec::new();
        if let Some(adv) = &s.adversary {
            let mut order: Vec<usize> = (1..n).collect();
            shuffle(&mut order, &mut rng);
            let mut held = 0u64;
            for i in order {
                if (held as f64) >= adv.stake_share * total as f64 {
                    break;
                }
                held += stakes[i];
                adversaries.push(i);
            }
            adversaries.extend(&adv.nodes);
            adversaries.sort_unstable();
            adversaries.dedup();
        }
        let honest_others: Vec<usize> = (1..initial)
            .filter(|i| adversaries.binary_search(i).is_err())
            .collect();
        let mut leaving = Vec::new();
        if let Some(leave) = &s.nodes.leave {
            let mut order = honest_others.clone();
            shuffle(&mut order, &mut rng);
            for node in order.into_iter().take(leave.count) {
                leaving.push(node);
                events.push(Event {
                    at_ms: ms(uniform(&mut rng, leave.between_secs)),
                    what: EventKind::Leave { node },
                });
            }
        }
        for crash in &s.faults.crashes {
            events.push(Event {
                at_ms: ms(crash.at_secs),
                what: EventKind::Crash { node: crash.node },
            });
            if let Some(after) = crash.restart_after_secs {
                events.push(Event {
                    at_ms: ms(crash.at_secs + after),
                    what: EventKind::Restart { node: crash.node },
                });
            }
        }
        let crashable: Vec<usize> = honest_others
            .iter()
            .copied()
            .filter(|i| !leaving.contains(i))
            .collect();
        if s.faults.crash_rate_per_min > 0.0 && !crashable.is_empty() {
            let rate = s.faults.crash_rate_per_min / 60.0;
            let mut t = exponential(&mut rng, rate);
            while t < s.time_limit_secs as f64 {
                let node = crashable[rng.random_range(0..crashable.len())];
                events.push(Event {
                    at_ms: ms(t),
                    what: EventKind::Crash { node },
                });
                events.push(Event {
                    at_ms: ms(t + s.faults.downtime_secs),
                    what: EventKind::Restart { node },
                });
                t += exponential(&mut rng, rate);
            }
        }
        for (index, part) in s.network.partitions.iter().enumerate() {
            let mut nodes = part.nodes.clone();
            if part.fraction > 0.0 {
                let mut order: Vec<usize> = (1..n).collect();
                shuffle(&mut order, &mut rng);
                let take = ((n as f64) * part.fraction).round() as usize;
                nodes.extend(order.into_iter().take(take));
            }
            nodes.sort_unstable();
            nodes.dedup();
            events.push(Event {
                at_ms: ms(part.at_secs),
                what: EventKind::PartitionOpens { index, nodes },
            });
            events.push(Event {
                at_ms: ms(part.heal_secs),
                what: EventKind::PartitionHeals { index },
            });
        }
        events.sort_by_key(|e| e.at_ms);
        let mut arrivals_ms = Vec::with_capacity(s.tasks.count);
        let mut t = 0.0;
        for _ in 0..s.tasks.count {
            arrivals_ms.push(ms(t));
            t += exponential(&mut rng, s.tasks.rate_per_sec);
        }
        let readings = (0..s.tasks.count)
            .map(|_| {
                (0..s.project.devices)
                    .map(|_| rng.random_range(-1000..=1000))
                    .collect()
            })
            .collect();
        let bootstrap = (0..n)
            .map(|i| {
                let mut earlier: Vec<usize> = (0..i.min(initial.max(1))).collect();
                shuffle(&mut earlier, &mut rng);
                earlier.truncate(s.nodes.bootstrap_peers.max(1));
                earlier
            })
            .collect();
        Plan {
            seed,
            stakes,
            initial,
            adversaries,
            events,
            arrivals_ms,
            readings,
            bootstrap,
        }
    }

    pub fn is_adversary(&self, node: usize) -> bool {
        self.adversaries.binary_search(&node).is_ok()
    }
}

fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

fn uniform(rng: &mut ChaCha8Rng, [from, to]: [f64; 2]) -> f64 {
    from + (to - from) * rng.random::<f64>()
}

/// A draw from the exponential distribution with this rate.
pub fn exponential(rng: &mut impl rand::Rng, rate: f64) -> f64 {
    let u: f64 = rng.random::<f64>();
    -(1.0 - u).ln() / rate
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped scenario reads, passes its checks and plans (a typo in one would only
    /// show when a researcher runs it).
    #[test]
    fn every_shipped_scenario_reads_and_plans() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let scenario = Scenario::read(&path).unwrap_or_else(|e| panic!("{e}"));
                Plan::new(&scenario, scenario.seed);
                names.push(scenario.name);
            }
        }
        names.sort();
        for wanted in [
            "adversary-20pct",
            "churn-200",
            "large-1000",
            "partition",
            "quickstart",
        ] {
            assert!(
                names.iter().any(|n| n == wanted),
                "{wanted} missing: {names:?}"
            );
        }
    }

    const SMALL: &str = r#"
        name = "small"
        [nodes]
        count = 20
        stake = { distribution = "zipf", coins = 50, exponent = 1.0 }
        join = { count = 2, between_secs = [5, 10] }
        [project]
        committee = 5
        threshold = 3
        devices = 4
        [tasks]
        count = 10
        rate_per_sec = 2.0
        [network]
        latency_ms = { distribution = "uniform", min = 1, max = 5 }
        partitions = [{ at_secs = 3, heal_secs = 6, fraction = 0.2 }]
        [faults]
        crashes = [{ node = 3, at_secs = 2, restart_after_secs = 4 }]
        crash_rate_per_min = 2
        [adversary]
        stake_share = 0.2
        behaviours = ["tamper"]
    "#;

    fn small() -> Scenario {
        let s: Scenario = toml::from_str(SMALL).unwrap();
        s.check().unwrap();
        s
    }

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        let s = small();
        let a = serde_json::to_string(&Plan::new(&s, 7)).unwrap();
        let b = serde_json::to_string(&Plan::new(&s, 7)).unwrap();
        let c = serde_json::to_string(&Plan::new(&s, 8)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn adversary_holds_its_share_and_never_node_zero() {
        let s = small();
        let plan = Plan::new(&s, 3);
        let total: u64 = plan.stakes.iter().sum();
        let held: u64 = plan.adversaries.iter().map(|&i| plan.stakes[i]).sum();
        assert!(held as f64 >= 0.2 * total as f64, "{held} of {total}");
        assert!(!plan.adversaries.contains(&0));
        // Crashes pick honest nodes only: an adversary's node never restarts by the plan.
        for e in &plan.events {
            if let EventKind::Crash { node } = e.what
                && node != 3
            {
                assert!(!plan.is_adversary(node));
            }
        }
        assert_eq!(plan.initial, 18);
        assert_eq!(plan.arrivals_ms.len(), 10);
        assert!(plan.arrivals_ms.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn bad_fields_are_named_with_their_range() {
        for (field, value, says) in [
            (
                "threshold = 3",
                "threshold = 6",
                "project.threshold must be 1..=committee",
            ),
            ("count = 20", "count = 0", "nodes.count must be 1..="),
            (
                "behaviours = [\"tamper\"]",
                "behaviours = [\"equivocate\"]",
                "not built in the simulator",
            ),
            ("node = 3,", "node = 0,", "faults.crashes: node must be"),
        ] {
            let text = SMALL.replacen(field, value, 1);
            let s: Scenario = toml::from_str(&text).unwrap();
            let err = s.check().unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
        let unknown = SMALL.replace("name = \"small\"", "name = \"small\"\nnodez = 1");
        assert!(toml::from_str::<Scenario>(&unknown).is_err());
    }
}
