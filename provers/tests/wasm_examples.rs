//! The examples in `examples/wasm/`: the native-ABI module and the AssemblyScript applet written
//! against `@w3bstream/wasm-sdk` run and give their outputs, and the committed applet is what
//! its source builds to (`examples/wasm/build`, which installs the pinned npm packages).

use std::path::PathBuf;

use conclave_provers::wasm::{Abi, TaskInput, WasmEngine, WasmLimits};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/wasm")
}

fn task(records: &[&[u8]]) -> TaskInput {
    TaskInput {
        project_id: 1,
        task_id: [2; 32],
        chain_id: 31337,
        records: records.iter().map(|r| r.to_vec()).collect(),
    }
}

#[test]
fn the_native_example_sums_its_records() {
    let engine = WasmEngine::new(WasmLimits::default()).unwrap();
    let wat = std::fs::read_to_string(examples().join("sum.wat")).unwrap();
    let module = engine.load(&wat::parse_str(&wat).unwrap()).unwrap();
    let records = [3i64.to_le_bytes(), (-10i64).to_le_bytes()];
    let run = engine
        .run(&module, task(&[&records[0], &records[1]]))
        .unwrap();
    assert_eq!(run.output, (-7i64).to_le_bytes());
}

#[test]
fn the_assemblyscript_applet_runs_and_sends_the_running_sum() {
    let engine = WasmEngine::new(WasmLimits::default()).unwrap();
    let bytes = std::fs::read(examples().join("applet.wasm")).unwrap();
    let module = engine.load(&bytes).unwrap();
    assert_eq!(module.abi, Abi::W3bstream);
    let run = engine.run(&module, task(&[b"5", b"7", b"-2"])).unwrap();
    let output = String::from_utf8(run.output).unwrap();
    // The last event's transaction: the sum 10, as hex calldata.
    assert!(output.contains(r#""data": "a""#), "{output}");
    assert!(
        run.logs.iter().any(|l| l.ends_with("reading -2, sum 10")),
        "{:?}",
        run.logs
    );
}

#[test]
fn the_committed_applet_is_its_source_built() {
    let out = tempfile::tempdir().unwrap();
    let built = out.path().join("applet.wasm");
    let status = std::process::Command::new(examples().join("build"))
        .arg(&built)
        .status()
        .expect("examples/wasm/build runs (it needs node and npm)");
    assert!(status.success(), "examples/wasm/build failed");
    assert_eq!(
        std::fs::read(&built).unwrap(),
        std::fs::read(examples().join("applet.wasm")).unwrap(),
        "examples/wasm/applet.wasm is stale: run examples/wasm/build and commit it"
    );
}
