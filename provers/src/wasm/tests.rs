use super::*;

/// Small fuel, so that a module that loops forever stops quickly.
fn engine() -> WasmEngine {
    WasmEngine::new(WasmLimits {
        fuel: 5_000_000,
        memory_bytes: 4 << 20,
        ..WasmLimits::default()
    })
    .unwrap()
}

/// Loads `wat` on a fresh engine, returned beside the module (a module runs on its engine).
fn load(wat: &str) -> Result<(WasmEngine, WasmModule), WasmError> {
    let engine = engine();
    let module = engine.load(&wat::parse_str(wat).unwrap())?;
    Ok((engine, module))
}

fn input(records: &[&[u8]]) -> TaskInput {
    TaskInput {
        project_id: 7,
        task_id: [1; 32],
        chain_id: 31337,
        records: records.iter().map(|r| r.to_vec()).collect(),
    }
}

/// Native ABI: the sum of the records, each an i64 (little-endian).
const SUM: &str = include_str!("../../../examples/wasm/sum.wat");

#[test]
fn a_native_module_computes_the_same_output_every_time() {
    let (engine, module) = load(SUM).unwrap();
    assert_eq!(module.abi, Abi::Native);
    let records = [
        5i64.to_le_bytes(),
        (-2i64).to_le_bytes(),
        40i64.to_le_bytes(),
    ];
    let refs: Vec<&[u8]> = records.iter().map(|r| r.as_slice()).collect();
    let first = engine.run(&module, input(&refs)).unwrap();
    assert_eq!(first.output, 43i64.to_le_bytes());
    let again = engine.run(&module, input(&refs)).unwrap();
    assert_eq!(first, again, "same output, logs and fuel");
    assert!(first.fuel_used > 0);
}

#[test]
fn a_module_that_loops_forever_runs_out_of_fuel() {
    let (engine, module) = load(
        r#"(module (memory (export "memory") 1)
             (func (export "conclave_run") (result i32) (loop $l (br $l)) (i32.const 0)))"#,
    )
    .unwrap();
    assert_eq!(
        engine.run(&module, input(&[])),
        Err(WasmError::OutOfFuel(5_000_000))
    );
}

#[test]
fn memory_beyond_the_limit_is_refused() {
    // 65536 pages: 4 GiB at start.
    assert!(matches!(
        load(
            r#"(module (memory (export "memory") 65536)
                 (func (export "conclave_run") (result i32) (i32.const 0)))"#
        ),
        Err(WasmError::MemoryTooLarge { asked, .. }) if asked == 4 << 30
    ));
    // Growing to 4 GiB at run time fails inside the module (memory.grow gives -1).
    let (engine, module) = load(
        r#"(module (memory (export "memory") 1)
             (func (export "conclave_run") (result i32)
               (if (i32.eq (memory.grow (i32.const 65535)) (i32.const -1))
                 (then (return (i32.const 12))))
               (i32.const 0)))"#,
    )
    .unwrap();
    assert_eq!(engine.run(&module, input(&[])), Err(WasmError::Failed(12)));
}

#[test]
fn unsupported_imports_are_named_at_load() {
    let refused = load(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (import "env" "ws_log" (func (param i32 i32) (result i32)))
             (import "env" "ws_get_sql_db" (func (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "start") (param i32) (result i32) (i32.const 0)))"#,
    );
    assert_eq!(
        refused.err(),
        Some(WasmError::UnsupportedImports(vec![
            "wasi_snapshot_preview1.fd_write".into(),
            "env.ws_log".into(),
            "env.ws_get_sql_db".into(),
        ]))
    );
    assert_eq!(
        load(r#"(module (memory (export "memory") 1))"#).err(),
        Some(WasmError::NoEntryPoint)
    );
    assert!(matches!(
        engine().load(b"\0asm garbage"),
        Err(WasmError::Invalid(_))
    ));
    let big = WasmEngine::new(WasmLimits {
        module_bytes: 8,
        ..WasmLimits::default()
    })
    .unwrap();
    assert!(matches!(
        big.load(&wat::parse_str(SUM).unwrap()),
        Err(WasmError::TooLarge(..))
    ));
}

/// A W3bstream applet: each event adds its record's first byte to a sum kept in the task's db,
/// logs, and sends the sum as a transaction; the last transaction is the output.
const APPLET: &str = r#"
(module
  (import "env" "ws_get_data" (func $get_data (param i32 i32 i32) (result i32)))
  (import "env" "ws_get_db" (func $get_db (param i32 i32 i32 i32) (result i32)))
  (import "env" "ws_set_db" (func $set_db (param i32 i32 i32 i32) (result i32)))
  (import "env" "ws_get_env" (func $get_env (param i32 i32 i32 i32) (result i32)))
  (import "env" "ws_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "ws_send_tx" (func $send_tx (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "s")
  (data (i32.const 210) "event")
  (data (i32.const 220) "TASK_ID")
  (global $next (mut i32) (i32.const 1024))
  (func (export "alloc") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $size)))
    (local.get $at))
  (func (export "start") (param $rid i32) (result i32)
    (local $sum i32)
    (if (call $get_data (local.get $rid) (i32.const 0) (i32.const 4))
      (then (return (i32.const 1))))
    (if (i32.eqz (call $get_db (i32.const 200) (i32.const 1) (i32.const 8) (i32.const 12)))
      (then (local.set $sum (i32.load8_u (i32.load (i32.const 8))))))
    (local.set $sum (i32.add (local.get $sum) (i32.load8_u (i32.load (i32.const 0)))))
    (i32.store8 (i32.const 100) (local.get $sum))
    (drop (call $set_db (i32.const 200) (i32.const 1) (i32.const 100) (i32.const 1)))
    (if (call $get_env (i32.const 220) (i32.const 7) (i32.const 24) (i32.const 28))
      (then (return (i32.const 2))))
    (drop (call $log (i32.const 3) (i32.const 210) (i32.const 5)))
    (call $send_tx (i32.const 4690) (i32.const 100) (i32.const 1) (i32.const 16) (i32.const 20))))
"#;

#[test]
fn a_w3bstream_applet_runs_once_per_record_and_its_last_transaction_is_the_output() {
    let (engine, module) = load(APPLET).unwrap();
    assert_eq!(module.abi, Abi::W3bstream);
    let run = engine.run(&module, input(&[&[5], &[7], &[9]])).unwrap();
    assert_eq!(run.output, vec![21]);
    assert_eq!(run.logs, vec!["[3] event"; 3]);
    // A resource that does not exist is the applet's to handle: this one fails with code 1.
    let none = engine.run(&module, input(&[])).unwrap_err();
    assert_eq!(none, WasmError::NoOutput);
}

#[test]
fn an_assemblyscript_abort_is_reported_with_its_message() {
    // "hi" as AssemblyScript lays out a string: its byte length, then UTF-16 code units.
    let (engine, module) = load(
        r#"(module
             (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
             (memory (export "memory") 1)
             (data (i32.const 300) "\04\00\00\00h\00i\00")
             (data (i32.const 320) "\06\00\00\00a\00.\00t\00s\00")
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "start") (param i32) (result i32)
               (call $abort (i32.const 304) (i32.const 324) (i32.const 3) (i32.const 9))
               (i32.const 0)))"#,
    )
    .unwrap();
    assert_eq!(
        engine.run(&module, input(&[b"x"])),
        Err(WasmError::Abort("hi at a.t:3:9".into()))
    );
}

#[test]
fn floating_point_nans_are_canonical() {
    // 0/0 gives a NaN whose bits depend on the CPU unless canonicalised.
    let (engine, module) = load(
        r#"(module
             (import "conclave" "output" (func $output (param i32 i32)))
             (memory (export "memory") 1)
             (func (export "conclave_run") (result i32)
               (f32.store (i32.const 0) (f32.div (f32.const 0) (f32.const 0)))
               (call $output (i32.const 0) (i32.const 4))
               (i32.const 0)))"#,
    )
    .unwrap();
    let run = engine.run(&module, input(&[])).unwrap();
    assert_eq!(
        u32::from_le_bytes(run.output.try_into().unwrap()),
        0x7fc0_0000
    );
}

#[test]
fn outputs_are_bounded_and_given_once() {
    let run = |len: u32, twice: bool| {
        let (engine, module) = load(&format!(
            r#"(module
                 (import "conclave" "output" (func $output (param i32 i32)))
                 (memory (export "memory") 1)
                 (func (export "conclave_run") (result i32)
                   (call $output (i32.const 0) (i32.const {len}))
                   {}
                   (i32.const 0)))"#,
            if twice {
                "(call $output (i32.const 0) (i32.const 1))"
            } else {
                ""
            }
        ))
        .unwrap();
        engine.run(&module, input(&[]))
    };
    assert!(run(4096, false).is_ok());
    assert!(matches!(run(4097, false), Err(WasmError::Trap(_))));
    assert!(matches!(
        run(8, true),
        Err(WasmError::Trap(m)) if m.contains("second output")
    ));
    // A length beyond memory is a trap, not a host panic.
    assert!(matches!(run(70_000, false), Err(WasmError::Trap(_))));
    // A module loaded by another engine is refused, not run.
    let (_, foreign) = load(SUM).unwrap();
    assert!(matches!(
        engine().run(&foreign, input(&[])),
        Err(WasmError::Invalid(_))
    ));
}

#[test]
fn host_calls_pay_fuel_per_byte_and_logs_are_bounded() {
    // One call copying the task's only record: a longer record costs at least its length more.
    let (engine, module) = load(
        r#"(module
             (import "conclave" "input" (func $input (param i32 i32)))
             (import "conclave" "output" (func $output (param i32 i32)))
             (memory (export "memory") 1)
             (func (export "conclave_run") (result i32)
               (call $input (i32.const 0) (i32.const 0))
               (call $output (i32.const 0) (i32.const 1))
               (i32.const 0)))"#,
    )
    .unwrap();
    let small = engine.run(&module, input(&[&[1; 10]])).unwrap();
    let large = engine.run(&module, input(&[&[1; 50_000]])).unwrap();
    assert!(large.fuel_used >= small.fuel_used + 49_990);
    // 5000 empty log lines: kept up to the line limit, the rest dropped.
    let (engine, module) = load(
        r#"(module
             (import "conclave" "log" (func $log (param i32 i32)))
             (import "conclave" "output" (func $output (param i32 i32)))
             (memory (export "memory") 1)
             (func (export "conclave_run") (result i32)
               (local $i i32)
               (loop $l
                 (call $log (i32.const 0) (i32.const 0))
                 (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br_if $l (i32.lt_u (local.get $i) (i32.const 5000))))
               (call $output (i32.const 0) (i32.const 1))
               (i32.const 0)))"#,
    )
    .unwrap();
    assert_eq!(engine.run(&module, input(&[])).unwrap().logs.len(), 1024);
}

#[test]
fn a_host_call_from_inside_alloc_is_refused() {
    let (engine, module) = load(
        r#"(module
             (import "env" "ws_get_data" (func $get_data (param i32 i32 i32) (result i32)))
             (import "env" "ws_log" (func $log (param i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "alloc") (param i32) (result i32)
               (drop (call $log (i32.const 3) (i32.const 0) (i32.const 1)))
               (i32.const 1024))
             (func (export "start") (param $rid i32) (result i32)
               (call $get_data (local.get $rid) (i32.const 0) (i32.const 4))))"#,
    )
    .unwrap();
    assert!(matches!(
        engine.run(&module, input(&[b"x"])),
        Err(WasmError::Trap(m)) if m.contains("inside alloc")
    ));
}

#[test]
fn features_that_could_differ_between_machines_are_refused_at_load() {
    for (wat, why) in [
        // An entry point of the wrong type.
        (
            r#"(module (memory (export "memory") 1)
                 (func (export "conclave_run") (param i32) (result i32) (i32.const 0)))"#,
            "entry type",
        ),
        // Two memories (multi-memory is off).
        (
            r#"(module (memory (export "memory") 1) (memory 1)
                 (func (export "conclave_run") (result i32) (i32.const 0)))"#,
            "two memories",
        ),
        // Relaxed SIMD (its fused multiply-add is not canonicalised everywhere).
        (
            r#"(module (memory (export "memory") 1)
                 (func (export "conclave_run") (result i32)
                   (drop (f32x4.relaxed_madd (v128.const i32x4 0 0 0 0) (v128.const i32x4 0 0 0 0) (v128.const i32x4 0 0 0 0)))
                   (i32.const 0)))"#,
            "relaxed SIMD",
        ),
        // A table above the element cap.
        (
            r#"(module (memory (export "memory") 1) (table 200000 funcref)
                 (func (export "conclave_run") (result i32) (i32.const 0)))"#,
            "table",
        ),
    ] {
        assert!(
            matches!(
                load(wat),
                Err(WasmError::Invalid(_) | WasmError::NoEntryPoint)
            ),
            "{why} was accepted"
        );
    }
}

#[test]
fn a_refused_transaction_leaves_the_applet_its_next_one() {
    // The first payload is over the output limit (code 7), the second is taken.
    let (engine, module) = load(
        r#"(module
             (import "env" "ws_send_tx" (func $send (param i32 i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (global $next (mut i32) (i32.const 8192))
             (func (export "alloc") (param $n i32) (result i32)
               (global.get $next))
             (func (export "start") (param i32) (result i32)
               (if (i32.ne (call $send (i32.const 1) (i32.const 0) (i32.const 5000) (i32.const 16) (i32.const 20))
                           (i32.const 7))
                 (then (return (i32.const 1))))
               (call $send (i32.const 1) (i32.const 0) (i32.const 3) (i32.const 16) (i32.const 20))))"#,
    )
    .unwrap();
    let run = engine.run(&module, input(&[b"x"])).unwrap();
    assert_eq!(run.output, vec![0, 0, 0]);
}
