//! The run's plots, each written as SVG and PNG: task latency CDF, throughput over time,
//! failures by reason, and (with an adversary) its seats per committee run against the
//! threshold. Text is set in the bundled DejaVu Sans (assets/), so PNGs need no system fonts.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::reason_kind;
use crate::runner::RunResult;

const SIZE: (u32, u32) = (900, 560);
const FONT: &str = "sans-serif";

/// A plot that draws itself on any backend.
pub trait Plot {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e:?}")
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let font = include_bytes!("../assets/DejaVuSans.ttf");
        // The bundled font parses; a failure would only leave text out.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, font);
    });
}

/// Writes `plot` as `dir/name.svg` and `dir/name.png`.
pub fn save(plot: &impl Plot, dir: &Path, name: &str) -> anyhow::Result<()> {
    register_font();
    {
        let path = dir.join(format!("{name}.svg"));
        let svg = SVGBackend::new(&path, SIZE).into_drawing_area();
        plot.draw(&svg)?;
        svg.present().map_err(err)?;
    }
    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let png = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        plot.draw(&png)?;
        png.present().map_err(err)?;
    }
    std::fs::write(dir.join(format!("{name}.png")), encode_png(&rgb, SIZE)?)?;
    Ok(())
}

/// An 8-bit RGB image as PNG (stored scanlines, zlib-compressed).
fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> anyhow::Result<Vec<u8>> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&w.to_be_bytes());
    header.extend_from_slice(&h.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    for row in rgb.chunks(w as usize * 3) {
        std::io::Write::write_all(&mut z, &[0])?;
        std::io::Write::write_all(&mut z, row)?;
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &z.finish()?);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

fn caption_style() -> TextStyle<'static> {
    (FONT, 24).into_font().into()
}

/// Fraction of published tasks at or under each latency.
pub struct LatencyCdf<'a>(pub &'a RunResult);

impl Plot for LatencyCdf<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        area.fill(&WHITE).map_err(err)?;
        let mut secs: Vec<f64> = self
            .0
            .tasks
            .iter()
            .filter_map(|t| t.latency_ms)
            .map(|ms| ms as f64 / 1000.0)
            .collect();
        secs.sort_by(f64::total_cmp);
        let max = secs.last().copied().unwrap_or(1.0).max(0.1) * 1.05;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "Task latency, {} ({} published)",
                    self.0.scenario.name,
                    secs.len()
                ),
                caption_style(),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max, 0.0..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("task start → result on chain (s)")
            .y_desc("fraction of tasks")
            .label_style((FONT, 16))
            .draw()
            .map_err(err)?;
        let n = secs.len().max(1) as f64;
        let mut points = vec![(0.0, 0.0)];
        for (i, s) in secs.iter().enumerate() {
            points.push((*s, i as f64 / n));
            points.push((*s, (i + 1) as f64 / n));
        }
        chart
            .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
            .map_err(err)?
            .label("published tasks")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        legend(&mut chart)
    }
}

fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 16))
        .draw()
        .map_err(err)
}

/// Tasks published per 10-second interval over the run, with the fault events marked.
pub struct Throughput<'a>(pub &'a RunResult);

const BUCKET_MS: u64 = 10_000;

impl Plot for Throughput<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        area.fill(&WHITE).map_err(err)?;
        let run = self.0;
        let end_ms = run
            .tasks
            .iter()
            .filter_map(|t| t.finished_ms)
            .max()
            .unwrap_or(BUCKET_MS);
        let buckets = (end_ms / BUCKET_MS + 1) as usize;
        let mut counts = vec![0u32; buckets];
        for t in &run.tasks {
            if let (Some(f), Some(_)) = (t.finished_ms, t.latency_ms) {
                counts[(f / BUCKET_MS) as usize] += 1;
            }
        }
        let per_min = |c: u32| f64::from(c) * 60_000.0 / BUCKET_MS as f64;
        let top = counts.iter().map(|&c| per_min(c)).fold(1.0, f64::max) * 1.15;
        let end_s = (buckets as u64 * BUCKET_MS) as f64 / 1000.0;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("Throughput over time, {}", run.scenario.name),
                caption_style(),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end_s, 0.0..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since the tasks started (s)")
            .y_desc("tasks published per minute")
            .label_style((FONT, 16))
            .draw()
            .map_err(err)?;
        let step: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .flat_map(|(i, &c)| {
                let from = (i as u64 * BUCKET_MS) as f64 / 1000.0;
                let to = from + BUCKET_MS as f64 / 1000.0;
                [(from, per_min(c)), (to, per_min(c))]
            })
            .collect();
        chart
            .draw_series(LineSeries::new(step, BLUE.stroke_width(2)))
            .map_err(err)?
            .label("published (10 s intervals)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        let faults: Vec<f64> = run
            .events
            .iter()
            .map(|e| e.at_ms as f64 / 1000.0)
            .filter(|&s| s <= end_s)
            .collect();
        if !faults.is_empty() {
            chart
                .draw_series(
                    faults.iter().map(|&s| {
                        PathElement::new([(s, 0.0), (s, top)], RED.mix(0.5).stroke_width(1))
                    }),
                )
                .map_err(err)?
                .label("churn, crash or partition event")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.mix(0.5)));
        }
        legend(&mut chart)
    }
}

/// Failed committee runs (re-run or not) grouped by reason.
pub struct Failures<'a>(pub &'a RunResult);

impl Failures<'_> {
    fn counts(&self) -> Vec<(String, u32)> {
        let mut by: BTreeMap<String, u32> = BTreeMap::new();
        for t in &self.0.tasks {
            for a in t.attempts.iter().filter(|a| a.state != "published") {
                *by.entry(reason_kind(a.reason.as_deref().unwrap_or("")))
                    .or_default() += 1;
            }
            if t.attempts.is_empty() && t.outcome != crate::runner::Outcome::Published {
                *by.entry(reason_kind(t.reason.as_deref().unwrap_or("")))
                    .or_default() += 1;
            }
        }
        let mut v: Vec<_> = by.into_iter().collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.1));
        v.truncate(8);
        v
    }
}

impl Plot for Failures<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        area.fill(&WHITE).map_err(err)?;
        let counts = self.counts();
        let top = counts.iter().map(|c| c.1).max().unwrap_or(1).max(1);
        // Ten units per row: a bar fills the middle six, its label sits at the fifth.
        let rows = counts.len().max(1) as u32;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("Failed committee runs by reason, {}", self.0.scenario.name),
                caption_style(),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(330)
            .build_cartesian_2d(0u32..top + 1, 0u32..rows * 10)
            .map_err(err)?;
        let labels: Vec<String> = counts.iter().map(|c| c.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("committee runs")
            .y_labels(rows as usize * 10 + 1)
            .y_label_formatter(&|&y| {
                let row = (y / 10) as usize;
                if y % 10 == 5 {
                    labels.get(row).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .label_style((FONT, 15))
            .draw()
            .map_err(err)?;
        if counts.is_empty() {
            area.draw_text(
                "no committee run failed",
                &(FONT, 22).into_text_style(area),
                (SIZE.0 as i32 / 2 - 100, SIZE.1 as i32 / 2),
            )
            .map_err(err)?;
            return Ok(());
        }
        chart
            .draw_series(counts.iter().enumerate().map(|(i, (_, c))| {
                let row = i as u32 * 10;
                Rectangle::new([(0, row + 2), (*c, row + 8)], RED.mix(0.6).filled())
            }))
            .map_err(err)?;
        Ok(())
    }
}

/// How many committee runs seated the adversary with each number of seats, against the
/// threshold: runs at or right of the line are ones it could have decided alone.
pub struct AdversarySeats<'a>(pub &'a RunResult);

impl Plot for AdversarySeats<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        area.fill(&WHITE).map_err(err)?;
        let run = self.0;
        let t = u32::from(run.scenario.project.threshold);
        let seats: Vec<u32> = run
            .tasks
            .iter()
            .flat_map(|task| &task.attempts)
            .filter(|a| a.seats > 0)
            .map(|a| a.adversary_seats)
            .collect();
        let max = seats.iter().copied().max().unwrap_or(0).max(t) + 1;
        let mut hist = vec![0u32; max as usize + 1];
        for s in &seats {
            hist[*s as usize] += 1;
        }
        let top = hist.iter().copied().max().unwrap_or(1).max(1) + 1;
        let controlled = seats.iter().filter(|&&s| s >= t).count();
        let stake = |nodes: &mut dyn Iterator<Item = usize>| -> u64 {
            nodes.map(|i| run.plan.stakes[i]).sum()
        };
        let share = stake(&mut run.plan.adversaries.iter().copied()) as f64
            / stake(&mut (0..run.plan.stakes.len())).max(1) as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "Adversary ({:.0}% of stake): seats per committee run; ≥ t = {t} in {controlled} of {}",
                    share * 100.0,
                    seats.len()
                ),
                (FONT, 20),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..f64::from(max) - 0.5, 0u32..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(max as usize)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("adversary's seats in the committee")
            .y_desc("committee runs")
            .label_style((FONT, 16))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(hist.iter().enumerate().map(|(s, &c)| {
                let color = if s as u32 >= t { RED } else { BLUE };
                let s = s as f64;
                Rectangle::new([(s - 0.35, 0), (s + 0.35, c)], color.mix(0.6).filled())
            }))
            .map_err(err)?;
        let line = f64::from(t) - 0.5;
        chart
            .draw_series(std::iter::once(PathElement::new(
                [(line, 0), (line, top)],
                BLACK.stroke_width(2),
            )))
            .map_err(err)?
            .label(format!("threshold t = {t} seats"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        legend(&mut chart)
    }
}

/// Writes every plot of `run` into `dir`; returns the names written.
pub fn write_all(run: &RunResult, dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = vec!["latency_cdf", "throughput", "failures"];
    save(&LatencyCdf(run), dir, names[0])?;
    save(&Throughput(run), dir, names[1])?;
    save(&Failures(run), dir, names[2])?;
    if run.scenario.adversary.is_some() {
        save(&AdversarySeats(run), dir, "adversary_seats")?;
        names.push("adversary_seats");
    }
    Ok(names.into_iter().map(String::from).collect())
}
