//! What a run writes: `results.json` (scenario, seed, version, plan, every task and event),
//! `tasks.csv` and `attempts.csv`, and the summary table printed on stdout.

use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::runner::{Outcome, RunResult};

/// The figures of a run, as the summary table shows them.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub nodes: usize,
    pub tasks: usize,
    pub published: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub not_run: usize,
    /// Published tasks whose output differs from the plaintext evaluation (must be 0).
    pub wrong: usize,
    /// Committee runs that failed and were re-run.
    pub reruns: usize,
    pub latency_p50_ms: Option<u64>,
    pub latency_p99_ms: Option<u64>,
    pub gossip_p50_ms: Option<u32>,
    pub gossip_p99_ms: Option<u32>,
    /// Attempts with an adversarial seat, and how many of them published.
    pub adversary_attempts: usize,
    pub adversary_attempts_published: usize,
    /// Attempts where the adversary held at least the threshold's seats.
    pub adversary_controlled: usize,
    pub attempts: usize,
    pub setup_s: f64,
    pub wall_s: f64,
    pub tasks_per_min: f64,
    pub peak_rss_mib: Option<u64>,
}

/// The `q`-quantile (0..=1) of `values`, by the nearest-rank method.
pub fn quantile<T: Copy + Ord>(values: &[T], q: f64) -> Option<T> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

impl Summary {
    pub fn of(run: &RunResult) -> Summary {
        let count = |o: Outcome| run.tasks.iter().filter(|t| t.outcome == o).count();
        let latencies: Vec<u64> = run.tasks.iter().filter_map(|t| t.latency_ms).collect();
        let attempts: Vec<_> = run.tasks.iter().flat_map(|t| &t.attempts).collect();
        let threshold = u32::from(run.scenario.project.threshold);
        let adversarial: Vec<_> = attempts.iter().filter(|a| a.adversary_member()).collect();
        let run_s = (run.wall_ms.saturating_sub(run.setup_ms)) as f64 / 1000.0;
        let published = count(Outcome::Published);
        Summary {
            nodes: run.scenario.nodes.count,
            tasks: run.tasks.len(),
            published,
            failed: count(Outcome::Failed),
            timed_out: count(Outcome::TimedOut),
            not_run: count(Outcome::NotRun),
            wrong: run
                .tasks
                .iter()
                .filter(|t| t.correct == Some(false))
                .count(),
            reruns: run
                .tasks
                .iter()
                .map(|t| t.attempts.len().saturating_sub(1))
                .sum(),
            latency_p50_ms: quantile(&latencies, 0.5),
            latency_p99_ms: quantile(&latencies, 0.99),
            gossip_p50_ms: quantile(&run.gossip_delivery_ms, 0.5),
            gossip_p99_ms: quantile(&run.gossip_delivery_ms, 0.99),
            adversary_attempts: adversarial.len(),
            adversary_attempts_published: adversarial
                .iter()
                .filter(|a| a.state == "published")
                .count(),
            adversary_controlled: attempts
                .iter()
                .filter(|a| a.seats > 0 && a.adversary_seats >= threshold)
                .count(),
            attempts: attempts.len(),
            setup_s: run.setup_ms as f64 / 1000.0,
            wall_s: run.wall_ms as f64 / 1000.0,
            tasks_per_min: if run_s > 0.0 {
                published as f64 * 60.0 / run_s
            } else {
                0.0
            },
            peak_rss_mib: run.peak_rss_bytes.map(|b| b >> 20),
        }
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let ms = |v: Option<u64>| v.map_or("-".into(), |v| format!("{v} ms"));
        let rows: Vec<(&str, String)> = vec![
            ("nodes", self.nodes.to_string()),
            (
                "tasks",
                format!(
                    "{} ({} published, {} failed, {} timed out, {} not run)",
                    self.tasks, self.published, self.failed, self.timed_out, self.not_run
                ),
            ),
            ("wrong results", self.wrong.to_string()),
            ("committee re-runs", self.reruns.to_string()),
            (
                "task latency",
                format!(
                    "p50 {}, p99 {}",
                    ms(self.latency_p50_ms),
                    ms(self.latency_p99_ms)
                ),
            ),
            (
                "gossip delivery",
                format!(
                    "p50 {}, p99 {}",
                    ms(self.gossip_p50_ms.map(u64::from)),
                    ms(self.gossip_p99_ms.map(u64::from))
                ),
            ),
            (
                "adversary",
                format!(
                    "seated in {} of {} committee runs ({} published); held ≥ t seats in {}",
                    self.adversary_attempts,
                    self.attempts,
                    self.adversary_attempts_published,
                    self.adversary_controlled
                ),
            ),
            ("throughput", format!("{:.1} tasks/min", self.tasks_per_min)),
            (
                "wall time",
                format!("{:.1} s ({:.1} s setup)", self.wall_s, self.setup_s),
            ),
            (
                "peak memory",
                self.peak_rss_mib
                    .map_or("-".into(), |m| format!("{m} MiB RSS")),
            ),
        ];
        rows.iter()
            .map(|(k, v)| format!("  {k:<18} {v}\n"))
            .collect()
    }
}

/// Writes `results.json`, `tasks.csv` and `attempts.csv` into `dir`.
pub fn write(run: &RunResult, summary: &Summary, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut json = serde_json::to_value(run)?;
    json["summary"] = serde_json::to_value(summary)?;
    std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(&json)?)?;
    let mut tasks = std::fs::File::create(dir.join("tasks.csv"))?;
    writeln!(
        tasks,
        "index,project,arrival_ms,started_ms,finished_ms,latency_ms,outcome,attempts,correct,reason"
    )?;
    for t in &run.tasks {
        let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        writeln!(
            tasks,
            "{},{},{},{},{},{},{},{},{},{}",
            t.index,
            opt(t.project),
            t.arrival_ms,
            opt(t.started_ms),
            opt(t.finished_ms),
            opt(t.latency_ms),
            serde_json::to_value(t.outcome)?
                .as_str()
                .unwrap_or_default(),
            t.attempts.len(),
            t.correct.map_or(String::new(), |c| c.to_string()),
            csv_text(t.reason.as_deref().unwrap_or_default()),
        )?;
    }
    let mut attempts = std::fs::File::create(dir.join("attempts.csv"))?;
    writeln!(
        attempts,
        "task_index,attempt,task_id,coordinator,members,seats,adversary_seats,inputs,unconfirmed,state,reason,touched_by_faults,device_errors"
    )?;
    for t in &run.tasks {
        for (k, a) in t.attempts.iter().enumerate() {
            writeln!(
                attempts,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                t.index,
                k + 1,
                a.task_id,
                a.coordinator.map_or(String::new(), |c| c.to_string()),
                a.committee.len(),
                a.seats,
                a.adversary_seats,
                a.inputs,
                a.unconfirmed,
                a.state,
                csv_text(a.reason.as_deref().unwrap_or_default()),
                csv_text(
                    &a.touched_by_faults
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                csv_text(&a.device_errors.join("; ")),
            )?;
        }
    }
    Ok(())
}

/// A CSV field: quoted, with quotes doubled.
fn csv_text(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The failure reason's kind for grouping: its first two clauses, without ids (words with digits)
/// and without the wrappers "peer … refused" and "MPC aborted".
pub fn reason_kind(reason: &str) -> String {
    // "peer X refused: preprocessing failed: MPC aborted: base OT with party 4 failed: …"
    // → "preprocessing failed: base OT with party failed": what failed, then how.
    let parts: Vec<String> = reason
        .split([':', '('])
        .map(|part| {
            part.split_whitespace()
                .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
                .take(6)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|p| !p.is_empty() && p != "MPC aborted" && !p.ends_with(" refused"))
        .take(2)
        .collect();
    if parts.is_empty() {
        "unknown".into()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile::<u64>(&[], 0.5), None);
        assert_eq!(quantile(&[7u64], 0.99), Some(7));
    }

    #[test]
    fn reasons_group_without_ids() {
        assert_eq!(
            reason_kind("member 3 cheated: MAC check failed"),
            "member cheated: MAC check failed"
        );
        assert_eq!(
            reason_kind(
                "peer 12D3KooWQ8 refused: preprocessing failed: MPC aborted: base OT with \
                 party 4 failed: the sender's point is not valid"
            ),
            "preprocessing failed: base OT with party failed"
        );
        assert_eq!(
            reason_kind("committee member 12D3KooWGp lost"),
            "committee member lost"
        );
        assert_eq!(reason_kind(""), "unknown");
    }
}
