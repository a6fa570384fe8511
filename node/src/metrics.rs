//! The node's Prometheus metrics (served at `/metrics` with libp2p's own).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

/// Counters and gauges the node updates as it works.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabel {
    pub prover: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProverLabel {
    pub prover: String,
}

/// One prover's runs at this member, for `/health`.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ProverRuns {
    pub ok: u64,
    pub failed: u64,
    /// Time spent in successful runs.
    pub seconds: f64,
}

/// Phase durations reach 10 minutes (preprocessing may take that long).
const PHASE_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// A member's run waits at most two minutes for its peers.
const RUN_BUCKETS: [f64; 11] = [
    0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0,
];

pub struct Metrics {
    pub registry: std::sync::Mutex<Registry>,
    pub runs: Family<RunLabel, Counter>,
    pub run_seconds: Family<ProverLabel, Histogram>,
    /// The same runs, summed per prover.
    provers: std::sync::Mutex<std::collections::BTreeMap<String, ProverRuns>>,
    pub tasks: Family<StateLabel, Gauge>,
    pub phase_seconds: Family<PhaseLabel, Histogram>,
    pub inputs_accepted: Counter,
    pub submissions: Family<OutcomeLabel, Counter>,
    pub live_peers: Gauge,
    pub pool_triples: Gauge,
    pub requests_refused_busy: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let tasks = Family::<StateLabel, Gauge>::default();
        let phase_seconds =
            Family::<PhaseLabel, Histogram>::new_with_constructor(|| Histogram::new(PHASE_BUCKETS));
        let inputs_accepted = Counter::default();
        let submissions = Family::<OutcomeLabel, Counter>::default();
        let live_peers = Gauge::default();
        let pool_triples = Gauge::default();
        let requests_refused_busy = Counter::default();
        let runs = Family::<RunLabel, Counter>::default();
        let run_seconds =
            Family::<ProverLabel, Histogram>::new_with_constructor(|| Histogram::new(RUN_BUCKETS));
        let mut registry = Registry::with_prefix("conclave");
        registry.register(
            "prover_runs",
            "Task computations at this member, by prover and outcome",
            runs.clone(),
        );
        registry.register(
            "prover_run_seconds",
            "Duration of successful task computations at this member, by prover",
            run_seconds.clone(),
        );
        registry.register(
            "tasks",
            "Task records in this node's store by state (a member's record stays at its last step)",
            tasks.clone(),
        );
        registry.register(
            "phase_seconds",
            "Duration of successful task phases: committee, preprocessing, online (spdz), compute, submit",
            phase_seconds.clone(),
        );
        registry.register(
            "inputs_accepted",
            "Client inputs stored",
            inputs_accepted.clone(),
        );
        registry.register(
            "chain_submissions",
            "Result submissions by outcome",
            submissions.clone(),
        );
        registry.register(
            "live_peers",
            "Peers with a recent heartbeat",
            live_peers.clone(),
        );
        registry.register(
            "pool_triples",
            "Preprocessed triples held for open tasks",
            pool_triples.clone(),
        );
        registry.register(
            "requests_refused_busy",
            "Peer requests refused at the per-peer, node or in-flight limit",
            requests_refused_busy.clone(),
        );
        Metrics {
            registry: std::sync::Mutex::new(registry),
            runs,
            run_seconds,
            provers: Default::default(),
            tasks,
            phase_seconds,
            inputs_accepted,
            submissions,
            live_peers,
            pool_triples,
            requests_refused_busy,
        }
    }

    pub fn observe_phase(&self, phase: &str, d: Duration) {
        self.phase_seconds
            .get_or_create(&PhaseLabel {
                phase: phase.to_string(),
            })
            .observe(d.as_secs_f64());
    }

    /// A computation this member ran for a task with `prover`, and how long a successful one
    /// took.
    pub fn observe_run(&self, prover: &str, took: Result<Duration, ()>) {
        let outcome = if took.is_ok() { "ok" } else { "failed" };
        self.runs
            .get_or_create(&RunLabel {
                prover: prover.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        let mut provers = self.provers.lock().unwrap_or_else(|p| p.into_inner());
        let summary = provers.entry(prover.to_string()).or_default();
        match took {
            Ok(d) => {
                self.run_seconds
                    .get_or_create(&ProverLabel {
                        prover: prover.to_string(),
                    })
                    .observe(d.as_secs_f64());
                summary.ok += 1;
                summary.seconds += d.as_secs_f64();
            }
            Err(()) => summary.failed += 1,
        }
    }

    /// Runs per prover, for `/health`.
    pub fn prover_runs(&self) -> std::collections::BTreeMap<String, ProverRuns> {
        self.provers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn submission(&self, outcome: &str) {
        self.submissions
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// The node's families, without the closing `# EOF` (the scrape appends libp2p's first).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
