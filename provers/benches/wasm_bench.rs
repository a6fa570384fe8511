//! The wasm engine on the examples: compiling a module, and running it over 100 device records
//! (the median of 21 runs), with the fuel it used. Prints one JSON line per example.
//!
//! `cargo bench -p conclave-provers --bench wasm-bench`

use std::time::{Duration, Instant};

use conclave_provers::wasm::{TaskInput, WasmEngine, WasmLimits};

const RUNS: usize = 21;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wasm");
    let applet = std::fs::read(examples.join("applet.wasm")).expect("examples/wasm/applet.wasm");
    let sum = wat::parse_file(examples.join("sum.wat")).expect("examples/wasm/sum.wat");
    let cases = [
        (
            "applet",
            applet,
            (1..=100).map(|i: i64| i.to_string().into_bytes()).collect(),
        ),
        (
            "sum_wat",
            sum,
            (1..=100).map(|i: i64| i.to_le_bytes().to_vec()).collect(),
        ),
    ];
    let engine = WasmEngine::new(WasmLimits::default()).expect("engine");
    for (name, bytes, records) in cases {
        let compile = median(
            (0..RUNS)
                .map(|_| {
                    let started = Instant::now();
                    engine.load(&bytes).expect("loads");
                    started.elapsed()
                })
                .collect(),
        );
        let module = engine.load(&bytes).expect("loads");
        let input = TaskInput {
            records,
            ..TaskInput::default()
        };
        let mut fuel = 0;
        let run = median(
            (0..RUNS)
                .map(|_| {
                    let started = Instant::now();
                    fuel = engine.run(&module, input.clone()).expect("runs").fuel_used;
                    started.elapsed()
                })
                .collect(),
        );
        println!(
            "{}",
            serde_json::json!({
                "bench": "wasm_engine",
                "module": name,
                "module_bytes": bytes.len(),
                "records": 100,
                "compile_ms": compile.as_secs_f64() * 1e3,
                "run_ms": run.as_secs_f64() * 1e3,
                "fuel": fuel,
            })
        );
    }
}
