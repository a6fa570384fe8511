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
//! Determinism: fuel (not time) bounds a run, host functions included (they charge per byte they
//! move); NaNs are canonicalised; relaxed SIMD, multiple memories and threads are off; memory and
//! tables are capped (a module that starts above a cap is refused at load; growing past it fails
//! inside the module like any refused growth). What could still differ between machines — the
//! OS refusing memory, the native stack running out — is a [`WasmError::Host`] failure, which a
//! seat reports and never signs.

use std::collections::BTreeMap;

use wasmtime::{
    Caller, Config, Engine, ExternType, FuncType, Instance, Linker, Memory, Module,
    ResourceLimiter, Store, Trap, ValType,
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

/// Most log bytes and lines kept per run; the rest is dropped.
const MAX_LOG: usize = 64 << 10;
const MAX_LOG_LINES: usize = 1024;
/// Most tables a module defines, and elements in one.
const MAX_TABLES: usize = 4;
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Fuel a host function costs, plus one per byte it moves.
const HOST_CALL_FUEL: u64 = 100;
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
    /// This machine could not run the module (memory the OS refused, the native stack): another
    /// seat may have run it, so this is no result to sign.
    #[error("this seat could not run the module: {0}")]
    Host(String),
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

impl WasmModule {
    /// The host functions the module imports, as `module.name`.
    pub fn imports(&self) -> Vec<String> {
        self.module
            .imports()
            .map(|i| format!("{}.{}", i.module(), i.name()))
            .collect()
    }

    /// The memory the module starts with, in bytes.
    pub fn initial_memory(&self) -> u64 {
        self.module
            .resources_required()
            .max_initial_memory_size
            .unwrap_or(0)
            .saturating_mul(WASM_PAGE)
    }
}

/// A WebAssembly page (custom page sizes are off).
const WASM_PAGE: u64 = 65536;

/// The exported functions each ABI runs, with their exact types (all i32).
const NATIVE_EXPORTS: [(&str, usize, usize); 1] = [("conclave_run", 0, 1)];
const W3BSTREAM_EXPORTS: [(&str, usize, usize); 2] = [("start", 1, 1), ("alloc", 1, 1)];

/// Whether `f` takes `params` i32s and returns `results` i32s.
fn is_i32_func(f: &FuncType, params: usize, results: usize) -> bool {
    f.params().len() == params
        && f.results().len() == results
        && f.params()
            .chain(f.results())
            .all(|t| matches!(t, ValType::I32))
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

/// Memory and table caps every seat applies alike. Growth the OS refuses is a host failure (another
/// seat may have grown), never −1 inside the module.
struct Caps {
    memory_bytes: usize,
    host_failure: Option<String>,
}

impl ResourceLimiter for Caps {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.memory_bytes)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.host_failure = Some(format!("growing memory: {error}"));
        Err(error)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.host_failure = Some(format!("growing a table: {error}"));
        Err(error)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        1
    }
}

/// A run's state, reachable from host functions.
struct RunState {
    caps: Caps,
    input: TaskInput,
    output: Option<Vec<u8>>,
    output_bytes: usize,
    logs: Vec<String>,
    log_bytes: usize,
    db: BTreeMap<Vec<u8>, Vec<u8>>,
    abort: Option<String>,
    /// Set when the module broke the ABI (a second output, one too large): the run fails.
    violation: Option<String>,
    /// The host is inside the module's `alloc`: a host call from there is refused, so host and
    /// module frames never nest more than once.
    in_alloc: bool,
}

impl RunState {
    fn log_full(&self) -> bool {
        self.log_bytes >= MAX_LOG || self.logs.len() >= MAX_LOG_LINES
    }

    fn log(&mut self, line: String) {
        // An empty line counts as one byte: it still costs a slot.
        let cost = line.len().max(1);
        if self.log_bytes + cost <= MAX_LOG && self.logs.len() < MAX_LOG_LINES {
            self.log_bytes += cost;
            self.logs.push(line);
        }
    }

    /// Takes `bytes` as the output: the first (native `output`, once) or the latest (a
    /// W3bstream transaction, `replace`).
    fn set_output(&mut self, bytes: Vec<u8>, replace: bool) -> Result<(), String> {
        if self.output.is_some() && !replace {
            return Err("the module produced a second output".into());
        }
        if bytes.len() > self.output_bytes {
            return Err(format!(
                "an output of {} bytes, more than {}",
                bytes.len(),
                self.output_bytes
            ));
        }
        self.output = Some(bytes);
        Ok(())
    }
}

/// Charges a host call its fuel (a base cost plus one per byte it moves), and refuses host calls
/// made from inside the module's `alloc`.
fn enter(c: &mut Caller<'_, RunState>, bytes: usize) -> wasmtime::Result<()> {
    if c.data().in_alloc {
        return Err(wasmtime::Error::msg(
            "a host function was called from inside alloc",
        ));
    }
    let cost = HOST_CALL_FUEL.saturating_add(bytes as u64);
    let fuel = c.get_fuel()?;
    if fuel < cost {
        c.set_fuel(0)?;
        return Err(Trap::OutOfFuel.into());
    }
    c.set_fuel(fuel - cost)
}

impl WasmEngine {
    pub fn new(limits: WasmLimits) -> Result<WasmEngine, WasmError> {
        let mut config = Config::new();
        // Threads are not compiled in (wasmtime without its `threads` feature).
        config
            .consume_fuel(true)
            .cranelift_nan_canonicalization(true)
            // Relaxed SIMD's fused multiply-add is not canonicalised on CPUs without FMA.
            .wasm_relaxed_simd(false)
            .wasm_multi_memory(false)
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
        let exports_all = |list: &[(&str, usize, usize)]| {
            list.iter().all(|(name, params, results)| {
                matches!(module.get_export(name), Some(ExternType::Func(f)) if is_i32_func(&f, *params, *results))
            })
        };
        let abi = if exports_all(&NATIVE_EXPORTS) {
            Abi::Native
        } else if exports_all(&W3BSTREAM_EXPORTS) {
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
        let needs = module.resources_required();
        let asked = needs
            .max_initial_memory_size
            .unwrap_or(0)
            .saturating_mul(WASM_PAGE);
        if asked > self.limits.memory_bytes as u64 {
            return Err(WasmError::MemoryTooLarge {
                asked,
                limit: self.limits.memory_bytes,
            });
        }
        if needs.num_tables as usize > MAX_TABLES
            || needs.max_initial_table_size.unwrap_or(0) > MAX_TABLE_ELEMENTS as u64
        {
            return Err(WasmError::Invalid(format!(
                "at most {MAX_TABLES} tables of {MAX_TABLE_ELEMENTS} elements"
            )));
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
            caps: Caps {
                memory_bytes: self.limits.memory_bytes,
                host_failure: None,
            },
            input,
            output: None,
            output_bytes: self.limits.output_bytes,
            logs: Vec::new(),
            log_bytes: 0,
            db: BTreeMap::new(),
            abort: None,
            violation: None,
            in_alloc: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.caps);
        store
            .set_fuel(self.limits.fuel)
            .map_err(|e| WasmError::Host(e.to_string()))?;
        let mut linker = Linker::new(&self.engine);
        match module.abi {
            Abi::Native => native_host(&mut linker),
            Abi::W3bstream => w3bstream_host(&mut linker),
        }
        .map_err(|e| WasmError::Host(format!("linking the host: {e}")))?;
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
        if let Some(failure) = state.caps.host_failure {
            return Err(WasmError::Host(failure));
        }
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
                    // How deep the native stack reaches depends on the machine.
                    Some(Trap::StackOverflow) => WasmError::Host("the stack overflowed".into()),
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

/// Record `i` of the task, if there is one.
fn record<'a>(c: &'a Caller<'_, RunState>, i: i32) -> Option<&'a [u8]> {
    let i = usize::try_from(i).ok()?;
    c.data().input.records.get(i).map(Vec::as_slice)
}

fn native_host(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "conclave",
        "input_count",
        |mut c: Caller<'_, RunState>| -> wasmtime::Result<i32> {
            enter(&mut c, 0)?;
            Ok(c.data().input.records.len() as i32)
        },
    )?;
    linker.func_wrap(
        "conclave",
        "input_len",
        |mut c: Caller<'_, RunState>, i: i32| -> wasmtime::Result<i32> {
            enter(&mut c, 0)?;
            Ok(record(&c, i).map_or(-1, |r| r.len() as i32))
        },
    )?;
    linker.func_wrap(
        "conclave",
        "input",
        |mut c: Caller<'_, RunState>, i: i32, ptr: i32| -> wasmtime::Result<()> {
            let len = record(&c, i)
                .ok_or_else(|| wasmtime::Error::msg(format!("no input {i}")))?
                .len();
            enter(&mut c, len)?;
            let memory = memory(&mut c)?;
            let (bytes, state) = memory.data_and_store_mut(&mut c);
            let record = &state.input.records[i as usize];
            let at = ptr as u32 as usize;
            bytes
                .get_mut(at..at + record.len())
                .ok_or_else(|| wasmtime::Error::msg("input copied outside memory"))?
                .copy_from_slice(record);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "conclave",
        "output",
        |mut c: Caller<'_, RunState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            enter(&mut c, len.max(0) as usize)?;
            let limit = c.data().output_bytes;
            let bytes = read(&mut c, ptr, len, limit.max(MAX_HOST_STRING))?;
            if let Err(violation) = c.data_mut().set_output(bytes, false) {
                c.data_mut().violation = Some(violation.clone());
                return Err(wasmtime::Error::msg(violation));
            }
            Ok(())
        },
    )?;
    linker.func_wrap(
        "conclave",
        "log",
        |mut c: Caller<'_, RunState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            enter(&mut c, 0)?;
            if c.data().log_full() {
                return Ok(());
            }
            enter(&mut c, len.max(0) as usize)?;
            let line = read(&mut c, ptr, len, MAX_HOST_STRING)?;
            c.data_mut()
                .log(String::from_utf8_lossy(&line).into_owned());
            Ok(())
        },
    )?;
    Ok(())
}

/// Copies `bytes` into memory the module allocates (its `alloc` export) and writes the address
/// and size to `ptr_out` and `size_out`, as W3bstream hosts return data. The caller charged the
/// bytes' fuel.
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
    c.data_mut().in_alloc = true;
    let at = alloc.call(&mut *c, size);
    c.data_mut().in_alloc = false;
    let at = at?;
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
        |mut c: Caller<'_, RunState>, level: i32, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            enter(&mut c, 0)?;
            if c.data().log_full() {
                return Ok(code::OK);
            }
            enter(&mut c, len.max(0) as usize)?;
            Ok(match read(&mut c, ptr, len, MAX_HOST_STRING) {
                Ok(line) => {
                    let line = format!("[{level}] {}", String::from_utf8_lossy(&line));
                    c.data_mut().log(line);
                    code::OK
                }
                Err(_) => code::TRANS_DATA_FROM_VM_FAILED,
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "ws_get_data",
        |mut c: Caller<'_, RunState>, rid: i32, ptr_out: i32, size_out: i32| {
            let i = rid.wrapping_sub(1);
            let len = record(&c, i).map_or(0, <[u8]>::len);
            enter(&mut c, len)?;
            match record(&c, i).map(<[u8]>::to_vec) {
                Some(record) => hand_over(&mut c, &record, ptr_out, size_out),
                None => Ok(code::RESOURCE_NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "ws_set_data",
        |mut c: Caller<'_, RunState>, _rid: i32, _ptr: i32, _len: i32| -> wasmtime::Result<i32> {
            enter(&mut c, 0)?;
            Ok(code::OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "ws_get_env",
        |mut c: Caller<'_, RunState>, kptr: i32, klen: i32, ptr_out: i32, size_out: i32| {
            enter(&mut c, klen.max(0) as usize)?;
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
            enter(&mut c, klen.max(0) as usize)?;
            let Ok(key) = read(&mut c, kptr, klen, MAX_DB_KEY) else {
                return Ok(code::TRANS_DATA_FROM_VM_FAILED);
            };
            let Some(value) = c.data().db.get(&key).cloned() else {
                return Ok(code::RESOURCE_NOT_FOUND);
            };
            enter(&mut c, value.len())?;
            hand_over(&mut c, &value, ptr_out, size_out)
        },
    )?;
    linker.func_wrap(
        "env",
        "ws_set_db",
        |mut c: Caller<'_, RunState>,
         kptr: i32,
         klen: i32,
         vptr: i32,
         vlen: i32|
         -> wasmtime::Result<i32> {
            enter(&mut c, klen.max(0) as usize + vlen.max(0) as usize)?;
            let (Ok(key), Ok(value)) = (
                read(&mut c, kptr, klen, MAX_DB_KEY),
                read(&mut c, vptr, vlen, MAX_DB_VALUE),
            ) else {
                return Ok(code::TRANS_DATA_FROM_VM_FAILED);
            };
            let db = &mut c.data_mut().db;
            if db.len() >= MAX_DB_KEYS && !db.contains_key(&key) {
                return Ok(code::HOST_INTERNAL);
            }
            db.insert(key, value);
            Ok(code::OK)
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
                enter(&mut c, len.max(0) as usize)?;
                let Ok(payload) = read(&mut c, ptr, len, MAX_HOST_STRING) else {
                    return Ok(code::TRANS_DATA_FROM_VM_FAILED);
                };
                // Too large a payload is the applet's to handle, like any refused call.
                if c.data_mut().set_output(payload, true).is_err() {
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
            enter(&mut c, 0)?;
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
