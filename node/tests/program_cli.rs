//! `conclave program check` and `conclave program eval` as a user runs them: every example checks;
//! a file with a type error, an unknown name and a secret `if` condition prints each error with
//! its line, column and a caret and exits non-zero; `eval` prints the plaintext result.

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_conclave");

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/programs")
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("conclave runs")
}

#[test]
fn every_example_checks() {
    for name in [
        "average",
        "auction",
        "threshold-count",
        "histogram",
        "score",
        "variance",
    ] {
        let file = examples().join(format!("{name}.tally"));
        let out = run(&["program", "check", file.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in ["hash      0x", "circuit   ", "needs     ", "mesh      "] {
            assert!(text.contains(line), "{name}: no {line:?} in\n{text}");
        }
    }
}

#[test]
fn errors_are_shown_at_their_line_and_column_and_fail_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.tally");
    std::fs::write(
        &file,
        "devices 3;\nwindow 10;\ninput x: int8 from devices;\nlet y: int8 = x[0] * 1000;\nlet z = nope + 1;\nif x[0] > 1 { let w = 1; }\noutput y = y;\n",
    )
    .unwrap();
    let out = run(&["program", "check", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for (message, at, caret) in [
        ("may not fit its declared type", "bad.tally:4:1", "| ^^^^"),
        ("unknown name `nope`", "bad.tally:5:9", "|         ^^^^"),
        (
            "an `if` condition must be public",
            "bad.tally:6:4",
            "|    ^^^^^^^^",
        ),
    ] {
        let start = err
            .find(message)
            .unwrap_or_else(|| panic!("{message} missing:\n{err}"));
        let block = &err[start..];
        let block = &block[..block.find("\n\n").unwrap_or(block.len())];
        assert!(block.contains(at), "{message} not at {at}:\n{block}");
        assert!(
            block.contains(caret),
            "{message} has no caret {caret:?}:\n{block}"
        );
    }
}

#[test]
fn eval_prints_the_plaintext_result() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("bids.json");
    std::fs::write(
        &inputs,
        r#"{"devices": [{"bid": 300}, {"bid": 0}, {"bid": 700}, {"bid": 650}]}"#,
    )
    .unwrap();
    let file = examples().join("auction.tally");
    let out = run(&[
        "program",
        "eval",
        file.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "winner = 2\nprice = 650\nexcluded = 1\n"
    );
    std::fs::write(&inputs, r#"{"devices": [{"bid": 300}, {"price": 1}]}"#).unwrap();
    let out = run(&[
        "program",
        "eval",
        file.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success(),
        "a record without the program's field is refused"
    );
}

/// `program receiver-key` writes a key it never overwrites and prints the line a program takes;
/// the score example's demo key is the committed secret's.
#[test]
fn receiver_keys_are_made_and_the_demo_key_matches_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("receiver.key");
    let out = run(&["program", "receiver-key", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("receiver \""))
        .expect("the line to put in a program");
    let secret = conclave_node::keys::receiver_key(&file).unwrap();
    assert_eq!(
        line,
        format!("receiver \"{}\";", hex::encode(secret.public()))
    );
    let again = run(&["program", "receiver-key", file.to_str().unwrap()]);
    assert!(!again.status.success(), "an existing key was overwritten");

    let demo = conclave_node::keys::receiver_key(&examples().join("score.receiver.key")).unwrap();
    let score = std::fs::read_to_string(examples().join("score.tally")).unwrap();
    assert!(score.contains(&format!("receiver \"{}\";", hex::encode(demo.public()))));
}
