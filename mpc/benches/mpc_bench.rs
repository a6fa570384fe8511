//! `mpc-bench`: throughput figures for the MPC engine, one JSON object per line.
//!
//! `cargo bench -p conclave-mpc --bench mpc-bench -- online|preprocessing|compare|task [--runs N]
//! [--batch N] [--parties N] [--transport memory|tcp]`
//!
//! `compare`: secret 32-bit comparisons and fixed-point multiplications (fixed<32, 16>, truncated)
//! per second for 2 and 3 parties over the in-memory transport: the online phase (dealt material,
//! `batch` independent operations in one circuit, 1,000 unless given) and MASCOT preprocessing of
//! exactly the triples and random bits those operations consume (a background pool, as nodes run
//! it) apart, with the triples and bits per operation.
//!
//! `online`: SPDZ multiplications per second, including the MAC checks, for 2 and 3 parties over
//! the in-memory transport and loopback TCP. Each run evaluates a circuit of `batch` independent multiplications of
//! random shared values (one layer) whose products are summed and revealed, so the time covers the
//! Beaver round, the MAC check of the 2·batch opened values, the output opening and its check.
//! Preprocessing comes from the test-only dealer and is not timed.
//!
//! `task`: MASCOT preprocessing of one task's material as a node runs it (a pool per party over
//! memory, setup included): `--batch` triples (160 unless given: five devices' 32-bit readings)
//! among 3, 5 and 8 parties, with a setup sized for the task and with one that extends (9,503
//! base VOLEs per ordered pair, then a silent extension); wall time and the bytes the busiest
//! party sent.
//!
//! `preprocessing`: MASCOT triples per second and bytes each party sends per triple, for 2 and 3
//! parties, over the in-memory transport and loopback TCP, each in one process. The setup (base
//! OTs, seed trees, base VOLEs) runs once first and is reported apart (`setup_ms`,
//! `setup_bytes_per_party`); then `--runs` batches of `--batch` triples (1,024 unless given) are
//! timed, with glibc tuned as the conclave binary tunes it ([`conclave_mpc::alloc`]).

mod support;

use std::time::Duration;

struct Args {
    command: String,
    runs: usize,
    /// Multiplications per online run (100,000) or triples per batch (1,024) unless given.
    batch: Option<usize>,
    /// Only this party count / transport, when given.
    parties: Option<usize>,
    transport: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        command: String::new(),
        runs: 5,
        batch: None,
        parties: None,
        transport: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            // cargo bench passes --bench to every bench binary
            "--bench" => {}
            "--runs" => args.runs = number(it.next())?,
            "--batch" => args.batch = Some(number(it.next())?),
            "--parties" => args.parties = Some(number(it.next())?),
            "--transport" => match it.next().as_deref() {
                Some(t @ ("memory" | "tcp")) => args.transport = Some(t.to_string()),
                _ => return Err("--transport takes memory or tcp".into()),
            },
            "online" | "preprocessing" | "compare" | "task" if args.command.is_empty() => {
                args.command = a
            }
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
    // As the conclave binary does.
    conclave_mpc::alloc::keep_bulk_buffers();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "mpc-bench: {e}\nusage: mpc-bench online|preprocessing|compare|task [--runs N] [--batch N] [--parties N] [--transport memory|tcp]"
            );
            std::process::exit(2);
        }
    };
    let wanted = |parties: usize, transport: &str| {
        args.parties.is_none_or(|p| p == parties)
            && args.transport.as_deref().is_none_or(|t| t == transport)
    };
    match args.command.as_str() {
        "online" => {
            for parties in [2, 3] {
                for tcp in [false, true] {
                    if wanted(parties, if tcp { "tcp" } else { "memory" }) {
                        online(parties, tcp, args.batch.unwrap_or(100_000), args.runs);
                    }
                }
            }
        }
        "preprocessing" => {
            let per_batch = args
                .batch
                .unwrap_or(1024)
                .min(conclave_mpc::mascot::batch::MAX_PER_BATCH);
            for parties in [2, 3] {
                for transport in ["memory", "tcp"] {
                    if wanted(parties, transport) {
                        preprocessing(parties, transport, per_batch, args.runs);
                    }
                }
            }
        }
        "task" => {
            for parties in [3, 5, 8] {
                if wanted(parties, "memory") {
                    task(parties, args.batch.unwrap_or(160), args.runs);
                }
            }
        }
        "compare" => {
            for parties in [2, 3] {
                if wanted(parties, "memory") {
                    for op in [Op::LessThan32, Op::FixedMul] {
                        compare(op, parties, args.batch.unwrap_or(1000), args.runs);
                    }
                }
            }
        }
        _ => unreachable!("parse_args accepts only known commands"),
    }
}

#[derive(Clone, Copy)]
enum Op {
    /// [x < y] for 32-bit signed x, y.
    LessThan32,
    /// ⌊x·y / 2^16⌋ for fixed<32, 16> x, y.
    FixedMul,
}

/// `batch` independent operations on party 0's inputs, the results summed and revealed.
fn op_circuit(op: Op, parties: usize, batch: usize) -> conclave_mpc::Circuit {
    use conclave_mpc::gadgets::{less_than_zero, truncate};
    let mut b = conclave_mpc::CircuitBuilder::new(parties);
    let mut sum = b.constant(conclave_mpc::Fp::ZERO);
    for _ in 0..batch {
        let (x, y) = (b.input(0), b.input(0));
        let r = match op {
            Op::LessThan32 => {
                let d = b.sub(x, y);
                less_than_zero(&mut b, d, 33)
            }
            Op::FixedMul => {
                let p = b.mul(x, y);
                truncate(&mut b, p, 64, 16)
            }
        };
        sum = b.add(sum, r);
    }
    b.reveal(sum);
    b.build()
}

fn compare(op: Op, parties: usize, batch: usize, runs: usize) {
    use rand::RngExt;
    let circuit = op_circuit(op, parties, batch);
    let need = circuit.requirements();
    let mut rng = rand::rng();
    let mut inputs = vec![Vec::new(); parties];
    inputs[0] = (0..2 * batch)
        .map(|_| conclave_mpc::Fp::from_i64(rng.random_range(-(1i64 << 31)..1 << 31)))
        .collect();
    let mut online: Vec<Duration> = (0..runs)
        .map(|seed| support::timed_run_with(&circuit, &inputs, seed as u64, false))
        .collect();
    let online = median(&mut online);
    let mut prep: Vec<Duration> = (0..runs.min(3))
        .map(|_| support::timed_pool(parties, need.triples, need.bits))
        .collect();
    let prep = median(&mut prep);
    let name = match op {
        Op::LessThan32 => "lt32",
        Op::FixedMul => "fixmul32_16",
    };
    println!(
        "{{\"bench\":\"compare\",\"op\":\"{name}\",\"parties\":{parties},\"transport\":\"memory\",\"batch\":{batch},\"runs\":{runs},\"online_ms\":{:.1},\"online_per_sec\":{:.0},\"prep_ms\":{:.1},\"prep_per_sec\":{:.0},\"triples_per_op\":{:.1},\"bits_per_op\":{:.1}}}",
        online.as_secs_f64() * 1e3,
        batch as f64 / online.as_secs_f64(),
        prep.as_secs_f64() * 1e3,
        batch as f64 / prep.as_secs_f64(),
        need.triples as f64 / batch as f64,
        need.bits as f64 / batch as f64,
    );
}

fn task(parties: usize, triples: usize, runs: usize) {
    for sized in [true, false] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..runs.min(3) {
            let (elapsed, sent) = support::timed_pool_sized(parties, triples, 0, sized);
            times.push(elapsed);
            bytes = sent;
        }
        let setup = if sized { "sized" } else { "extending" };
        println!(
            "{{\"bench\":\"task\",\"parties\":{parties},\"transport\":\"memory\",\"triples\":{triples},\"setup\":\"{setup}\",\"runs\":{},\"median_ms\":{:.1},\"bytes_per_party\":{bytes}}}",
            times.len(),
            median(&mut times).as_secs_f64() * 1e3,
        );
    }
}

fn online(parties: usize, tcp: bool, batch: usize, runs: usize) {
    let circuit = support::multiplication_batch(parties, batch);
    let mut times: Vec<Duration> = (0..runs)
        .map(|seed| support::timed_run(&circuit, seed as u64, tcp))
        .collect();
    let median = median(&mut times);
    let transport = if tcp { "tcp" } else { "memory" };
    println!(
        "{{\"bench\":\"online\",\"parties\":{parties},\"transport\":\"{transport}\",\"batch\":{batch},\"runs\":{runs},\"median_ms\":{:.1},\"mults_per_sec\":{:.0}}}",
        median.as_secs_f64() * 1e3,
        batch as f64 / median.as_secs_f64()
    );
}

/// MASCOT: setup once (base OTs, seed trees and base VOLEs; timed and counted apart), then
/// `batches` batches of `per_batch` triples.
fn preprocessing(parties: usize, transport: &str, per_batch: usize, batches: usize) {
    use conclave_mpc::driver::run;
    use conclave_mpc::mascot::batch::{Batch, BatchSpec};
    use conclave_mpc::mascot::setup::Setup;
    use conclave_mpc::share::MacKeyShare;
    use conclave_mpc::transport::{MemoryTransport, Transport};
    use conclave_mpc::wire::SessionId;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    async fn party<T: Transport + 'static>(
        t: &mut support::Counting<T>,
        per_batch: usize,
        batches: usize,
    ) -> (Duration, Duration, u64, u64) {
        let (me, n) = (t.party(), t.parties());
        let key = MacKeyShare::new(conclave_mpc::Fp::random(&mut rand::rng()));
        let start = Instant::now();
        let mut keys = run(Setup::new(SessionId([2; 16]), me, n, key), &mut *t)
            .await
            .expect("setup");
        let setup = start.elapsed();
        let setup_sent = t.sent.swap(0, Ordering::SeqCst);
        let start = Instant::now();
        let spec = BatchSpec {
            triples: per_batch,
            randoms: 0,
            masks: vec![0; n],
        };
        for _ in 0..batches {
            let batch = Batch::new(&mut keys, spec.clone()).expect("batch");
            run(batch, &mut *t).await.expect("honest batch");
        }
        (
            setup,
            start.elapsed(),
            t.sent.load(Ordering::SeqCst),
            setup_sent,
        )
    }

    let results = if transport == "tcp" {
        let jobs: Vec<_> = support::tcp::mesh(parties)
            .into_iter()
            .enumerate()
            .map(|(me, streams)| {
                let sent = Arc::new(AtomicU64::new(0));
                move || async move {
                    let inner = support::tcp::TcpTransport::new(me, streams);
                    let mut t = support::Counting { inner, sent };
                    let times = party(&mut t, per_batch, batches).await;
                    t.inner.close().await;
                    times
                }
            })
            .collect();
        support::on_own_threads(jobs)
    } else {
        let jobs: Vec<_> = MemoryTransport::mesh(parties)
            .into_iter()
            .map(|inner| {
                let sent = Arc::new(AtomicU64::new(0));
                move || async move {
                    party(&mut support::Counting { inner, sent }, per_batch, batches).await
                }
            })
            .collect();
        support::on_own_threads(jobs)
    };
    let (setup, elapsed, sent, setup_sent) = results.into_iter().fold(
        (Duration::ZERO, Duration::ZERO, 0, 0),
        |w, (s, e, b, sb)| (w.0.max(s), w.1.max(e), w.2 + b, w.3 + sb),
    );
    let triples = (per_batch * batches) as f64;
    println!(
        "{{\"bench\":\"preprocessing\",\"parties\":{parties},\"transport\":\"{transport}\",\"batch\":{per_batch},\"batches\":{batches},\"setup_ms\":{:.1},\"setup_bytes_per_party\":{},\"elapsed_ms\":{:.1},\"triples_per_sec\":{:.0},\"bytes_per_triple_per_party\":{:.0}}}",
        setup.as_secs_f64() * 1e3,
        setup_sent / parties as u64,
        elapsed.as_secs_f64() * 1e3,
        triples / elapsed.as_secs_f64(),
        sent as f64 / triples / parties as f64,
    );
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
