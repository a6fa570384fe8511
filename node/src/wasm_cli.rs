//! `conclave wasm check|run`: a WebAssembly module loaded and run by the `wasm` prover's engine
//! on this machine, under the limits nodes use (`docs/wasm.md`), to try a module before a
//! project registers it.

use std::path::Path;

use alloy::primitives::keccak256;
use anyhow::{Context, bail};
use conclave_provers::wasm::{Abi, TaskInput, WasmEngine, WasmLimits, WasmModule};

/// Reads a module (a `.wat` file is assembled to the binary a project registers), refusing
/// files over the engine's limit before reading them whole.
pub fn read_module(file: &Path, limits: &WasmLimits) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if len > limits.module_bytes as u64 {
        bail!(
            "{} is {len} bytes, more than the limit of {}",
            file.display(),
            limits.module_bytes
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if file.extension().is_some_and(|e| e == "wat") {
        return wat::parse_bytes(&bytes)
            .map(|b| b.into_owned())
            .with_context(|| format!("assembling {}", file.display()));
    }
    Ok(bytes)
}

/// Refuses a module the nodes' engine refuses (imports it does not provide, no entry point,
/// too much memory at start).
pub fn check_loads(file: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    WasmEngine::new(conclave_node::manifest::wasm_limits())?
        .load(bytes)
        .with_context(|| format!("{} cannot run", file.display()))?;
    Ok(())
}

fn load(file: &Path) -> anyhow::Result<(WasmEngine, WasmModule, Vec<u8>)> {
    let engine = WasmEngine::new(conclave_node::manifest::wasm_limits())?;
    let bytes = read_module(file, &engine.limits())?;
    let module = engine
        .load(&bytes)
        .with_context(|| format!("{} cannot run", file.display()))?;
    Ok((engine, module, bytes))
}

/// `conclave wasm check FILE`: the hash, the ABI, imports and memory, or why it cannot run.
pub fn check(file: &Path) -> anyhow::Result<()> {
    let (engine, module, bytes) = load(file)?;
    let limits = engine.limits();
    println!("module    {}", file.display());
    println!("hash      {}", keccak256(&bytes));
    println!(
        "abi       {}",
        match module.abi {
            Abi::Native => "native (conclave_run)",
            Abi::W3bstream => "W3bstream applet (alloc, start)",
        }
    );
    for import in module.imports() {
        println!("import    {import}");
    }
    println!(
        "memory    {} KiB at start, at most {} MiB",
        module.initial_memory() / 1024,
        limits.memory_bytes >> 20
    );
    println!(
        "limits    {} fuel per task, outputs of at most {} bytes",
        limits.fuel, limits.output_bytes
    );
    Ok(())
}

/// A record from the command line: `0x…` is hex, anything else its UTF-8 bytes.
pub fn record(arg: &str) -> anyhow::Result<Vec<u8>> {
    match arg.strip_prefix("0x") {
        Some(digits) => hex::decode(digits).with_context(|| format!("{arg} is not hex")),
        None => Ok(arg.as_bytes().to_vec()),
    }
}

/// A module's output as text if it is printable UTF-8, else as hex.
pub fn shown(output: &[u8]) -> String {
    match std::str::from_utf8(output) {
        Ok(text) if text.chars().all(|c| !c.is_control() || c.is_whitespace()) => text.into(),
        _ => format!("0x{}", hex::encode(output)),
    }
}

/// `conclave wasm run FILE --record …`: runs the module over the records as a task would and
/// prints its output, logs and fuel.
pub fn run(file: &Path, records: Vec<Vec<u8>>) -> anyhow::Result<()> {
    let (engine, module, _) = load(file)?;
    let run = engine.run(
        &module,
        TaskInput {
            records,
            ..TaskInput::default()
        },
    )?;
    for line in &run.logs {
        println!("log       {line}");
    }
    println!("output    {}", shown(&run.output));
    println!("fuel      {}", run.fuel_used);
    Ok(())
}
