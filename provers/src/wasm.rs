//! The `wasm` prover's engine: a project's WebAssembly module, registered by its hash, runs at
//! every seat under wasmtime with fuel, deterministic settings and memory limits, so that honest
//! seats given the same inputs compute the same output (`docs/wasm.md`).
//!
//! Two ABIs, told apart by what the module exports:
//! - **native** (`conclave_run`): imports from module `conclave` — `input_count() -> i32`,
//!   `input_len(i) -> i32`, `input(i, ptr)` (copies record i to `ptr`), `output(ptr, len)` (once),
//!   `log(ptr, len)`; exports `memory` and `conclave_run() -> i32` (0 for success).
//! - **W3bstream applets** (`start`, built e.g. with `@w3bstream/wasm-sdk`): exports `memory`,
//!   `alloc(size) -> ptr` and `start(rid) -> i32`; imports from `env` the `ws_*` host functions
//!   below and AssemblyScript's `abort`. Each device record is one event: `start(rid)` runs once per
//!   record in slot order and `ws_get_data(rid)` returns it; `ws_get_db`/`ws_set_db` keep state
//!   scoped to the task; `ws_get_env` knows `PROJECT_ID`, `TASK_ID` and `CHAIN_ID`; the payload of
//!   the last `ws_send_tx` or `ws_call_contract` of the task becomes its output (an applet that
//!   sends one per event leaves its last), which the chain delivers to the project's receiver; `ws_set_data` is accepted and ignored (there is no stream
//!   to write back to). W3bstream's SQL, metrics and API imports have no Conclave counterpart and
//!   are refused by name when the module is loaded.
//!
//! Determinism: fuel (not time) bounds a run, NaNs are canonicalised, relaxed SIMD is
//! deterministic, threads are off, and memory is capped (a module whose memory starts above the
//! cap is refused at load; growing past it fails inside the module like any refused growth).

use std::collections::BTreeMap;

use wasmtime::{
    Caller, Config, Engine, ExternType, Instance, Linker, Memory, Module, Store, StoreLimits,
    StoreLimitsBuilder, Trap, ValType,
};

/// Limits of one module and one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WasmLimits {
    /// Largest module accepted, in bytes.
    pub module_bytes: usize,
    /// Most linear memory a run may use, in bytes.
    pub memory_bytes: usize,
    /// Fuel (about one unit per instruction) for a whole task.
    pub fuel: u64,
    /// Largest output, in bytes (TaskRouter takes 4096).
    pub output_bytes: usize,
}

impl Default for WasmLimits {
    fn default() -> Self {
        WasmLimits {
            module_bytes: 8 << 20,
            memory_bytes: 64 << 20,
            fuel: 2_000_000_000,
            output_bytes: 4096,
        }
    }
}

/// Most log bytes kept per run; the rest is dropped.
const MAX_LOG: usize = 64 << 10;
/// Most keys, and largest key and value, in a task's `ws_*_db` store.
const MAX_DB_KEYS: usize = 1024;
const MAX_DB_KEY: usize = 256;
const MAX_DB_VALUE: usize = 4096;
/// Largest string a module passes to the host (log line, env key, transaction payload).
const MAX_HOST_STRING: usize = 64 << 10;

/// W3bstream's result codes, as its SDKs read them.
mod code {
    pub const OK: i32 = 0;
    pub const RESOURCE_NOT_FOUND: i32 = 2;
    pub const TRANS_DATA_TO_VM_FAILED: i32 = 5;
    pub const TRANS_DATA_FROM_VM_FAILED: i32 = 6;
    pub const HOST_INTERNAL: i32 = 7;
    pub const ENV_KEY_NOT_FOUND: i32 = 8;
}

/// Why a module was refused or a run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WasmError {
    #[error("the module is {0} bytes, more than the limit of {1}")]
    TooLarge(usize, usize),
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    #[error("the module imports what Conclave does not provide: {}", .0.join(", "))]
    UnsupportedImports(Vec<String>),
    #[error(
        "the module exports neither `conclave_run` (native ABI) nor `start` and `alloc` (W3bstream applet)"
    )]
    NoEntryPoint,
    #[error("the module asks for {asked} bytes of memory at start, more than the limit of {limit}")]
    MemoryTooLarge { asked: u64, limit: usize },
    #[error("the module ran out of fuel ({0} units): it runs too long or forever")]
    OutOfFuel(u64),
    #[error("the module trapped: {0}")]
    Trap(String),
    #[error("the module aborted: {0}")]
    Abort(String),
    #[error("the module returned error code {0}")]
    Failed(i32),
    #[error("the module produced no output")]
    NoOutput,
}

/// Which ABI a module speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    Native,
    W3bstream,
}

/// What a task gives a module.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskInput {
    pub project_id: u64,
    pub task_id: [u8; 32],
    pub chain_id: u64,
    /// The devices' records in slot order.
    pub records: Vec<Vec<u8>>,
}

/// What a run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmRun {
    pub output: Vec<u8>,
    pub logs: Vec<String>,
    pub fuel_used: u64,
}

/// The engine every module of a node compiles and runs on, configured for deterministic runs.
#[derive(Clone)]
pub struct WasmEngine {
    engine: Engine,
    limits: WasmLimits,
}

/// A loaded module: compiled, its imports and exports checked.
#[derive(Clone)]
pub struct WasmModule {
    module: Module,
    pub abi: Abi,
}

/// Host functions a module may import: (module, name, parameter count, result count), all i32.
const NATIVE_IMPORTS: [(&str, &str, usize, usize); 5] = [
    ("conclave", "input_count", 0, 1),
    ("conclave", "input_len", 1, 1),
    ("conclave", "input", 2, 0),
    ("conclave", "output", 2, 0),
    ("conclave", "log", 2, 0),
];
const W3BSTREAM_IMPORTS: [(&str, &str, usize, usize); 9] = [
    ("env", "ws_log", 3, 1),
    ("env", "ws_get_data", 3, 1),
    ("env", "ws_set_data", 3, 1),
    ("env", "ws_get_env", 4, 1),
    ("env", "ws_get_db", 4, 1),
    ("env", "ws_set_db", 4, 1),
    ("env", "ws_send_tx", 5, 1),
    ("env", "ws_call_contract", 5, 1),
    ("env", "abort", 4, 0),
];

/// A run's state, reachable from host functions.
struct RunState {
    limits: StoreLimits,
    input: TaskInput,
    /// The record `ws_get_data` serves for each resource id.
    output: Option<Vec<u8>>,
    output_bytes: usize,
    logs: Vec<String>,
    log_bytes: usize,
    db: BTreeMap<Vec<u8>, Vec<u8>>,
    abort: Option<String>,
    /// Set when the module broke the ABI (a second output, one too large): the run fails.
    violation: Option<String>,
}

impl RunState {
    fn log(&mut self, line: String) {
        if self.log_bytes + line.len() <= MAX_LOG {
            self.log_bytes += line.len();
            self.logs.push(line);
        }
    }

    /// Takes `bytes` as the output: the first (native `output`, once) or the latest (a
    /// W3bstream transaction, `replace`).
    fn set_output(&mut self, bytes: Vec<u8>, replace: bool) -> bool {
        if self.output.is_some() && !replace {
            self.violation = Some("the module produced a second output".into());
            return false;
        }
        if bytes.len() > self.output_bytes {
            self.violation = Some(format!(
                "an output of {} bytes, more than {}",
                bytes.len(),
                self.output_bytes
            ));
            return false;
        }
        self.output = Some(bytes);
        true
    }
}

impl WasmEngine {
    pub fn new(limits: WasmLimits) -> Result<WasmEngine, WasmError> {
        let mut config = Config::new();
        // Threads are not compiled in (wasmtime without its `threads` feature).
        config
            .consume_fuel(true)
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .wasm_memory64(false);
        let engine = Engine::new(&config).map_err(|e| WasmError::Invalid(e.to_string()))?;
        Ok(WasmEngine { engine, limits })
    }

    pub fn limits(&self) -> WasmLimits {
        self.limits
    }

    /// Compiles `bytes` and checks it against the ABIs and limits: every import must be one of
    /// the ABI's host functions with its exact type, the entry points must be there, and no
    /// memory may start above the limit.
    pub fn load(&self, bytes: &[u8]) -> Result<WasmModule, WasmError> {
        if bytes.len() > self.limits.module_bytes {
            return Err(WasmError::TooLarge(bytes.len(), self.limits.module_bytes));
        }
        let module =
            Module::new(&self.engine, bytes).map_err(|e| WasmError::Invalid(format!("{e:#}")))?;
        let exported = |name: &str| module.get_export(name).is_some();
        let abi = if exported("conclave_run") {
            Abi::Native
        } else if exported("start") && exported("alloc") {
            Abi::W3bstream
        } else {
            return Err(WasmError::NoEntryPoint);
        };
        if !matches!(module.get_export("memory"), Some(ExternType::Memory(_))) {
            return Err(WasmError::Invalid("the module exports no `memory`".into()));
        }
        let allowed: &[(&str, &str, usize, usize)] = match abi {
            Abi::Native => &NATIVE_IMPORTS,
            Abi::W3bstream => &W3BSTREAM_IMPORTS,
        };
        let mut unsupported = Vec::new();
        for import in module.imports() {
            let name = format!("{}.{}", import.module(), import.name());
            let fits = match import.ty() {
                ExternType::Func(f) => allowed.iter().any(|(m, n, params, results)| {
                    *m == import.module()
                        && *n == import.name()
                        && f.params().len() == *params
                        && f.results().len() == *results
                        && f.params()
                            .chain(f.results())
                            .all(|t| matches!(t, ValType::I32))
                }),
                _ => false,
            };
            if !fits {
                unsupported.push(name);
            }
        }
        if !unsupported.is_empty() {
            return Err(WasmError::UnsupportedImports(unsupported));
        }
        for export in module.exports() {
            if let ExternType::Memory(m) = export.ty() {
                let asked = m.minimum().saturating_mul(65536);
                if asked > self.limits.memory_bytes as u64 {
                    return Err(WasmError::MemoryTooLarge {
                        asked,
                        limit: self.limits.memory_bytes,
                    });
                }
            }
        }
        Ok(WasmModule { module, abi })
    }

    /// Runs `module` over a task's input; the same module and input give the same result at
    /// every seat.
    pub fn run(&self, module: &WasmModule, input: TaskInput) -> Result<WasmRun, WasmError> {
        if !Engine::same(module.module.engine(), &self.engine) {
            return Err(WasmError::Invalid(
                "the module was loaded by another engine".into(),
            ));
        }
        let state = RunState {
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .instances(1)
                .memories(1)
                .tables(4)
                .table_elements(100_000)
                .build(),
            input,
            output: None,
            output_bytes: self.limits.output_bytes,
            logs: Vec::new(),
            log_bytes: 0,
            db: BTreeMap::new(),
            abort: None,
            violation: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store
            .set_fuel(self.limits.fuel)
            .map_err(|e| WasmError::Trap(e.to_string()))?;
        let mut linker = Linker::new(&self.engine);
        match module.abi {
            Abi::Native => native_host(&mut linker),
            Abi::W3bstream => w3bstream_host(&mut linker),
        }
        .map_err(|e| WasmError::Trap(format!("linking the host: {e}")))?;
        let outcome = linker
            .instantiate(&mut store, &module.module)
            .and_then(|instance| match module.abi {
                Abi::Native => instance
                    .get_typed_func::<(), i32>(&mut store, "conclave_run")?
                    .call(&mut store, ())
                    .map(|code| vec![code]),
                Abi::W3bstream => run_events(&mut store, &instance),
            });
        let fuel_used = self.limits.fuel - store.get_fuel().unwrap_or(0);
        let state = store.into_data();
        let codes = match outcome {
            Ok(codes) => codes,
            Err(e) => {
                if let Some(message) = state.abort {
                    return Err(WasmError::Abort(message));
                }
                if let Some(violation) = state.violation {
                    return Err(WasmError::Trap(violation));
                }
                return Err(match e.downcast_ref::<Trap>() {
                    Some(Trap::OutOfFuel) => WasmError::OutOfFuel(self.limits.fuel),
                    _ => WasmError::Trap(format!("{e:#}")),
                });
            }
        };
        if let Some(violation) = state.violation {
            return Err(WasmError::Trap(violation));
        }
        if let Some(code) = codes.into_iter().find(|c| *c != 0) {
            return Err(WasmError::Failed(code));
        }
        Ok(WasmRun {
            output: state.output.ok_or(WasmError::NoOutput)?,
            logs: state.logs,
            fuel_used,
        })
    }
}

/// `start(rid)` for each record in order (rid = slot + 1); the return codes.
fn run_events(store: &mut Store<RunState>, instance: &Instance) -> wasmtime::Result<Vec<i32>> {
    let start = instance.get_typed_func::<i32, i32>(&mut *store, "start")?;
    let events = store.data().input.records.len();
    let mut codes = Vec::with_capacity(events);
    for rid in 1..=events as i32 {
        codes.push(start.call(&mut *store, rid)?);
    }
    Ok(codes)
}

fn memory(caller: &mut Caller<'_, RunState>) -> wasmtime::Result<Memory> {
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or_else(|| wasmtime::Error::msg("the module exports no memory"))
}

/// `len` bytes at `ptr` of the module's memory, at most `limit`.
fn read(
    caller: &mut Caller<'_, RunState>,
    ptr: i32,
    len: i32,
    limit: usize,
) -> wasmtime::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| wasmtime::Error::msg("a negative length"))?;
    if len > limit {
        return Err(wasmtime::Error::msg(format!(
            "{len} bytes passed to the host, more than {limit}"
        )));
    }
    let mut buf = vec![0; len];
    memory(caller)?.read(&*caller, ptr as u32 as usize, &mut buf)?;
    Ok(buf)
}

fn write(caller: &mut Caller<'_, RunState>, ptr: i32, bytes: &[u8]) -> wasmtime::Result<()> {
    Ok(memory(caller)?.write(&mut *caller, ptr as u32 as usize, bytes)?)
}

fn native_host(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap("conclave", "input_count", |c: Caller<'_, RunState>| {
        c.data().input.records.len() as i32
    })?;
    linker.func_wrap(
        "conclave",
        "input_len",
        |c: Caller<'_, RunState>, i: i32| -> i32 {
            usize::try_from(i)
                .ok()
                .and_then(|i| c.data().input.records.get(i))
                .map_or(-1, |r| r.len() as i32)
        },
    )?;
    linker.func_wrap(
        "conclave",
        "input",
        |mut c: Caller<'_, RunState>, i: i32, ptr: i32| -> wasmtime::Result<()> {
            let record = usize::try_from(i)
                .ok()
                .and_then(|i| c.data().input.records.get(i).cloned())
                .ok_or_else(|| wasmtime::Error::msg(format!("no input {i}")))?;
            write(&mut c, ptr, &record)
        },
    )?;
    linker.func_wrap(
        "conclave",
        "output",
        |mut c: Caller<'_, RunState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let limit = c.data().output_bytes;
            let bytes = read(&mut c, ptr, len, limit.max(MAX_HOST_STRING))?;
            if !c.data_mut().set_output(bytes, false) {
                return Err(wasmtime::Error::msg("output refused"));
            }
            Ok(())
        },
    )?;
    linker.func_wrap(
        "conclave",
        "log",
        |mut c: Caller<'_, RunState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let line = read(&mut c, ptr, len, MAX_HOST_STRING)?;
            c.data_mut()
                .log(String::from_utf8_lossy(&line).into_owned());
            Ok(())
        },
    )?;
    Ok(())
}

/// Copies `bytes` into memory the module allocates (its `alloc` export) and writes the address
/// and size to `ptr_out` and `size_out`, as W3bstream hosts return data.
fn hand_over(
    c: &mut Caller<'_, RunState>,
    bytes: &[u8],
    ptr_out: i32,
    size_out: i32,
) -> wasmtime::Result<i32> {
    let alloc = c
        .get_export("alloc")
        .and_then(|e| e.into_func())
        .ok_or_else(|| wasmtime::Error::msg("the applet exports no alloc"))?
        .typed::<i32, i32>(&*c)?;
    let Ok(size) = i32::try_from(bytes.len()) else {
        return Ok(code::TRANS_DATA_TO_VM_FAILED);
    };
    let at = alloc.call(&mut *c, size)?;
    if write(c, at, bytes).is_err()
        || write(c, ptr_out, &at.to_le_bytes()).is_err()
        || write(c, size_out, &size.to_le_bytes()).is_err()
    {
        return Ok(code::TRANS_DATA_TO_VM_FAILED);
    }
    Ok(code::OK)
}

fn w3bstream_host(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "ws_log",
        |mut c: Caller<'_, RunState>, level: i32, ptr: i32, len: i32| -> i32 {
            match read(&mut c, ptr, len, MAX_HOST_STRING) {
                Ok(line) => {
                    let line = format!("[{level}] {}", String::from_utf8_lossy(&line));
                    c.data_mut().log(line);
                    code::OK
                }
                Err(_) => code::TRANS_DATA_FROM_VM_FAILED,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "ws_get_data",
        |mut c: Caller<'_, RunState>, rid: i32, ptr_out: i32, size_out: i32| {
            let record = usize::try_from(rid)
                .ok()
                .and_then(|rid| rid.checked_sub(1))
                .and_then(|i| c.data().input.records.get(i).cloned());
            match record {
                Some(record) => hand_over(&mut c, &record, ptr_out, size_out),
                None => Ok(code::RESOURCE_NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "ws_set_data",
        |_c: Caller<'_, RunState>, _rid: i32, _ptr: i32, _len: i32| code::OK,
    )?;
    linker.func_wrap(
        "env",
        "ws_get_env",
        |mut c: Caller<'_, RunState>, kptr: i32, klen: i32, ptr_out: i32, size_out: i32| {
            let Ok(key) = read(&mut c, kptr, klen, MAX_DB_KEY) else {
                return Ok(code::TRANS_DATA_FROM_VM_FAILED);
            };
            let input = &c.data().input;
            let value = match key.as_slice() {
                b"PROJECT_ID" => input.project_id.to_string(),
                b"TASK_ID" => format!("0x{}", hex::encode(input.task_id)),
                b"CHAIN_ID" => input.chain_id.to_string(),
                _ => return Ok(code::ENV_KEY_NOT_FOUND),
            };
            hand_over(&mut c, value.as_bytes(), ptr_out, size_out)
        },
    )?;
    linker.func_wrap(
        "env",
        "ws_get_db",
        |mut c: Caller<'_, RunState>, kptr: i32, klen: i32, ptr_out: i32, size_out: i32| {
            let Ok(key) = read(&mut c, kptr, klen, MAX_DB_KEY) else {
                return Ok(code::TRANS_DATA_FROM_VM_FAILED);
            };
            match c.data().db.get(&key).cloned() {
                Some(value) => hand_over(&mut c, &value, ptr_out, size_out),
                None => Ok(code::RESOURCE_NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "ws_set_db",
        |mut c: Caller<'_, RunState>, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> i32 {
            let (Ok(key), Ok(value)) = (
                read(&mut c, kptr, klen, MAX_DB_KEY),
                read(&mut c, vptr, vlen, MAX_DB_VALUE),
            ) else {
                return code::TRANS_DATA_FROM_VM_FAILED;
            };
            let db = &mut c.data_mut().db;
            if db.len() >= MAX_DB_KEYS && !db.contains_key(&key) {
                return code::HOST_INTERNAL;
            }
            db.insert(key, value);
            code::OK
        },
    )?;
    for name in ["ws_send_tx", "ws_call_contract"] {
        linker.func_wrap(
            "env",
            name,
            |mut c: Caller<'_, RunState>,
             _chain: i32,
             ptr: i32,
             len: i32,
             ptr_out: i32,
             size_out: i32|
             -> wasmtime::Result<i32> {
                let Ok(payload) = read(&mut c, ptr, len, MAX_HOST_STRING) else {
                    return Ok(code::TRANS_DATA_FROM_VM_FAILED);
                };
                if !c.data_mut().set_output(payload, true) {
                    return Ok(code::HOST_INTERNAL);
                }
                // No transaction is sent from here (the committee publishes the output), so
                // there is no hash to return: an empty string, which the SDKs read back.
                hand_over(&mut c, b"", ptr_out, size_out)
            },
        )?;
    }
    linker.func_wrap(
        "env",
        "abort",
        |mut c: Caller<'_, RunState>,
         message: i32,
         file: i32,
         line: i32,
         column: i32|
         -> wasmtime::Result<()> {
            let text = |c: &mut Caller<'_, RunState>, ptr: i32| {
                assemblyscript_string(c, ptr).unwrap_or_else(|| "?".into())
            };
            let (message, file) = (text(&mut c, message), text(&mut c, file));
            c.data_mut().abort = Some(format!("{message} at {file}:{line}:{column}"));
            Err(wasmtime::Error::msg("abort"))
        },
    )?;
    Ok(())
}

/// An AssemblyScript string at `ptr`: UTF-16 code units whose byte length is stored just before.
fn assemblyscript_string(c: &mut Caller<'_, RunState>, ptr: i32) -> Option<String> {
    let at = (ptr as u32 as usize).checked_sub(4)?;
    let mut len = [0u8; 4];
    memory(c).ok()?.read(&*c, at, &mut len).ok()?;
    let len = (u32::from_le_bytes(len) as usize).min(1024) & !1;
    let mut units = vec![0u8; len];
    memory(c).ok()?.read(&*c, at + 4, &mut units).ok()?;
    let utf16: Vec<u16> = units
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    Some(String::from_utf16_lossy(&utf16))
}

#[cfg(test)]
mod tests;
