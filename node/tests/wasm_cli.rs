//! `conclave wasm check` and `conclave wasm run` as a project author uses them: the examples
//! check and run; a module importing what Conclave does not provide, or asking for 4 GiB of
//! memory, is refused with the reason.

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_conclave");

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/wasm")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("conclave runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_applet_checks_and_runs() {
    let applet = examples().join("applet.wasm");
    let applet = applet.to_str().unwrap();
    let out = run(&["wasm", "check", applet]);
    assert!(out.status.success(), "{}", text(&out));
    for line in [
        "hash      0x",
        "W3bstream applet",
        "import    env.ws_send_tx",
    ] {
        assert!(text(&out).contains(line), "no {line:?} in\n{}", text(&out));
    }
    let out = run(&["wasm", "run", applet, "--record", "5", "--record", "7"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(r#""data": "c""#), "{}", text(&out));
    assert!(text(&out).contains("reading 7, sum 12"), "{}", text(&out));
    // The WAT example, assembled as it is loaded; its records are little-endian i64s.
    let sum = examples().join("sum.wat");
    let out = run(&[
        "wasm",
        "run",
        sum.to_str().unwrap(),
        "--record",
        "0x0500000000000000",
        "--record",
        "0xfeffffffffffffff",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("output    0x0300000000000000"),
        "{}",
        text(&out)
    );
}

#[test]
fn modules_it_cannot_run_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (wat, reason) in [
        (
            r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                 (memory (export "memory") 1)
                 (func (export "conclave_run") (result i32) (i32.const 0)))"#,
            "wasi_snapshot_preview1.fd_write",
        ),
        (
            r#"(module (memory (export "memory") 65536)
                 (func (export "conclave_run") (result i32) (i32.const 0)))"#,
            "4294967296 bytes of memory",
        ),
    ] {
        let file = dir.path().join("m.wasm");
        std::fs::write(&file, wat::parse_str(wat).unwrap()).unwrap();
        let out = run(&["wasm", "check", file.to_str().unwrap()]);
        assert!(!out.status.success());
        assert!(
            text(&out).contains(reason),
            "no {reason:?} in\n{}",
            text(&out)
        );
    }
}
