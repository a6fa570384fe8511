//! The committee-security study (`conclave-sim security`): how often an adversary holding a
//! share of the stake wins at least the threshold's seats of a task's committee. Draws use the
//! chain's sortition code ([`conclave_chain::sortition::Draw`]) on random seeds and task ids;
//! next to each Monte-Carlo estimate stands the exact figure. Every unit of stake wins a seat
//! independently with probability p = c / N (c the expected seats, N the registry's units), so
//! the adversary's seats are Binomial(A, p) for its A units.

use alloy::primitives::{Address, B256, U256};
use conclave_chain::sortition::{Draw, seat_count};
use plotters::coord::Shift;
use plotters::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::plots::Plot;

/// What to study.
#[derive(Clone, Debug, Serialize)]
pub struct Study {
    pub stake_shares: Vec<f64>,
    pub committees: Vec<u16>,
    pub threshold_ratios: Vec<f64>,
    pub trials: u32,
    /// Registered nodes, each with `units_per_node` units of stake.
    pub nodes: u32,
    pub units_per_node: u64,
    pub seed: u64,
}

/// One configuration's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub stake_share: f64,
    pub committee: u16,
    pub threshold_ratio: f64,
    /// Seats that must sign: ⌊ratio · committee⌋ + 1, at most the committee.
    pub threshold: u32,
    pub adversary_units: u64,
    pub total_units: u64,
    /// P(adversary seats ≥ threshold), estimated and exact.
    pub monte_carlo: f64,
    /// The estimate's standard error.
    pub std_error: f64,
    pub exact: f64,
    /// Mean seats drawn in all (to check the draw against the committee size).
    pub mean_seats: f64,
}

/// The threshold for a ratio: more than `ratio` of the expected seats (0.5 → a strict
/// majority, the projects' default).
pub fn threshold(committee: u16, ratio: f64) -> u32 {
    ((f64::from(committee) * ratio).floor() as u32 + 1).min(u32::from(committee))
}

/// P(X ≥ t) for X ~ Binomial(n, p), summed in log space.
pub fn binomial_tail(n: u64, p: f64, t: u32) -> f64 {
    if u64::from(t) > n {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let ln_choose = |k: u64| ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k);
    (u64::from(t)..=n)
        .map(|k| (ln_choose(k) + k as f64 * lp + (n - k) as f64 * lq).exp())
        .sum::<f64>()
        .min(1.0)
}

fn ln_factorial(n: u64) -> f64 {
    (2..=n).map(|k| (k as f64).ln()).sum()
}

impl Study {
    pub fn points(&self) -> usize {
        self.stake_shares.len() * self.committees.len() * self.threshold_ratios.len()
    }

    /// Runs every configuration; `tick` after each.
    pub fn run(&self, mut tick: impl FnMut()) -> Vec<Point> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        // Fixed operators: the first `adversary_nodes` of them are the adversary's.
        let operators: Vec<Address> = (0..self.nodes)
            .map(|i| Address::left_padding_from(&(u64::from(i) + 1).to_be_bytes()))
            .collect();
        let total_units = u64::from(self.nodes) * self.units_per_node;
        let mut out = Vec::new();
        for &share in &self.stake_shares {
            let adversary_nodes = ((f64::from(self.nodes) * share).round() as usize).max(1);
            let adversary: Vec<(Address, u64)> = operators[..adversary_nodes]
                .iter()
                .map(|&a| (a, self.units_per_node))
                .collect();
            let honest: Vec<(Address, u64)> = operators[adversary_nodes..]
                .iter()
                .map(|&a| (a, self.units_per_node))
                .collect();
            let adversary_units = adversary_nodes as u64 * self.units_per_node;
            for &committee in &self.committees {
                // One set of draws serves every ratio of this committee size.
                let mut held = Vec::with_capacity(self.trials as usize);
                let mut seats_total = 0u64;
                for _ in 0..self.trials {
                    let draw = Draw {
                        seed: B256::from(rng.random::<[u8; 32]>()),
                        task_id: U256::from_be_bytes(rng.random::<[u8; 32]>()),
                        total_units: U256::from(total_units),
                        expected: U256::from(committee),
                    };
                    let mine: u32 = draw
                        .committee(&adversary)
                        .iter()
                        .map(|(_, m)| seat_count(*m))
                        .sum();
                    let theirs: u32 = draw
                        .committee(&honest)
                        .iter()
                        .map(|(_, m)| seat_count(*m))
                        .sum();
                    seats_total += u64::from(mine + theirs);
                    held.push(mine);
                }
                let p = f64::from(committee) / total_units as f64;
                for &ratio in &self.threshold_ratios {
                    let t = threshold(committee, ratio);
                    let hits = held.iter().filter(|&&s| s >= t).count() as f64;
                    let n = f64::from(self.trials.max(1));
                    let estimate = hits / n;
                    out.push(Point {
                        stake_share: share,
                        committee,
                        threshold_ratio: ratio,
                        threshold: t,
                        adversary_units,
                        total_units,
                        monte_carlo: estimate,
                        std_error: (estimate * (1.0 - estimate) / n).sqrt(),
                        exact: binomial_tail(adversary_units, p, t),
                        mean_seats: seats_total as f64 / n,
                    });
                }
                tick();
            }
        }
        out
    }
}

/// The study's plot: P(adversary holds ≥ t seats) against committee size, exact lines and
/// Monte-Carlo points, one colour per (stake share, threshold ratio).
pub struct SecurityPlot<'a> {
    pub study: &'a Study,
    pub points: &'a [Point],
}

/// The plot's floor.
const FLOOR: f64 = 1e-7;

impl Plot for SecurityPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let err = |e: &dyn std::fmt::Debug| anyhow::anyhow!("plotting: {e:?}");
        area.fill(&WHITE).map_err(|e| err(&e))?;
        let max_c = self.study.committees.iter().copied().max().unwrap_or(1);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "P(adversary holds ≥ t seats): exact (lines), {} draws (dots, when > 0)",
                    self.study.trials
                ),
                ("sans-serif", 20),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0u32..u32::from(max_c) + 2, (FLOOR..1.0).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("committee size (expected seats)")
            .y_desc("probability (log scale)")
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .label_style(("sans-serif", 16))
            .draw()
            .map_err(|e| err(&e))?;
        let mut k = 0;
        for &share in &self.study.stake_shares {
            for &ratio in &self.study.threshold_ratios {
                let color = Palette99::pick(k).to_rgba();
                k += 1;
                let mine: Vec<&Point> = self
                    .points
                    .iter()
                    .filter(|p| p.stake_share == share && p.threshold_ratio == ratio)
                    .collect();
                chart
                    .draw_series(LineSeries::new(
                        mine.iter()
                            .map(|p| (u32::from(p.committee), p.exact.max(FLOOR))),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| err(&e))?
                    .label(format!(
                        "{:.0}% stake, t > {:.0}% of seats",
                        share * 100.0,
                        ratio * 100.0
                    ))
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(mine.iter().filter(|p| p.monte_carlo > 0.0).map(|p| {
                        Circle::new((u32::from(p.committee), p.monte_carlo), 4, color.filled())
                    }))
                    .map_err(|e| err(&e))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| err(&e))?;
        Ok(())
    }
}

/// `security.csv`: one row per configuration.
pub fn csv(points: &[Point]) -> String {
    let mut s = String::from(
        "stake_share,committee,threshold_ratio,threshold,adversary_units,total_units,monte_carlo,std_error,exact,mean_seats\n",
    );
    for p in points {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            p.stake_share,
            p.committee,
            p.threshold_ratio,
            p.threshold,
            p.adversary_units,
            p.total_units,
            p.monte_carlo,
            p.std_error,
            p.exact,
            p.mean_seats
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_more_than_the_ratio() {
        assert_eq!(threshold(3, 0.5), 2);
        assert_eq!(threshold(16, 0.5), 9);
        assert_eq!(threshold(9, 0.67), 7);
        assert_eq!(threshold(1, 0.67), 1);
    }

    #[test]
    fn binomial_tail_matches_small_cases() {
        // X ~ Bin(2, 0.5): P(X ≥ 1) = 3/4, P(X ≥ 2) = 1/4.
        assert!((binomial_tail(2, 0.5, 1) - 0.75).abs() < 1e-12);
        assert!((binomial_tail(2, 0.5, 2) - 0.25).abs() < 1e-12);
        assert_eq!(binomial_tail(2, 0.5, 3), 0.0);
        assert!((binomial_tail(10, 0.3, 0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn monte_carlo_agrees_with_the_formula() {
        let study = Study {
            stake_shares: vec![0.33],
            committees: vec![5],
            threshold_ratios: vec![0.5],
            trials: 3000,
            nodes: 30,
            units_per_node: 4,
            seed: 9,
        };
        let points = study.run(|| {});
        let p = &points[0];
        // Exact ≈ 0.2; the estimate is within 4 standard errors.
        assert!(p.exact > 0.1 && p.exact < 0.4, "{p:?}");
        assert!(
            (p.monte_carlo - p.exact).abs() < 4.0 * p.std_error.max(0.005),
            "{p:?}"
        );
        assert!((p.mean_seats - 5.0).abs() < 0.3, "{p:?}");
    }
}
