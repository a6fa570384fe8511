//! `mpc-bench`: throughput figures for the MPC engine, one JSON object per line.
//!
//! `cargo bench -p conclave-mpc --bench mpc-bench -- online [--runs N] [--batch N]`
//!
//! `online`: SPDZ multiplications per second, including the MAC checks, for 2 and 3 parties over
//! the in-memory transport. Each run evaluates a circuit of `batch` independent multiplications of
//! random shared values (one layer) whose products are summed and revealed, so the time covers the
//! Beaver round, the MAC check of the 2·batch opened values, the output opening and its check.
//! Preprocessing comes from the test-only dealer and is not timed.

mod support;

use std::time::Duration;

struct Args {
    command: String,
    runs: usize,
    batch: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        command: String::new(),
        runs: 5,
        batch: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            // cargo bench passes --bench to every bench binary
            "--bench" => {}
            "--runs" => args.runs = number(it.next())?,
            "--batch" => args.batch = number(it.next())?,
            "online" if args.command.is_empty() => args.command = a,
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if args.command.is_empty() {
        args.command = "online".into();
    }
    Ok(args)
}

fn number(v: Option<String>) -> Result<usize, String> {
    v.as_deref()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| "expected a positive number".to_string())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mpc-bench: {e}\nusage: mpc-bench online [--runs N] [--batch N]");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match args.command.as_str() {
        "online" => {
            for parties in [2, 3] {
                online(&rt, parties, args.batch, args.runs);
            }
        }
        _ => unreachable!("parse_args accepts only known commands"),
    }
}

fn online(rt: &tokio::runtime::Runtime, parties: usize, batch: usize, runs: usize) {
    let circuit = support::multiplication_batch(parties, batch);
    let mut times: Vec<Duration> = (0..runs)
        .map(|seed| support::timed_run(rt, &circuit, seed as u64))
        .collect();
    let median = median(&mut times);
    println!(
        "{{\"bench\":\"online\",\"parties\":{parties},\"transport\":\"memory\",\"batch\":{batch},\"runs\":{runs},\"median_ms\":{:.1},\"mults_per_sec\":{:.0}}}",
        median.as_secs_f64() * 1e3,
        batch as f64 / median.as_secs_f64()
    );
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
