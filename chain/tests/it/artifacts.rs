//! The committed artifacts are exactly what the pinned solc-js makes of the sources.
//! Needs Node and `.tools/node_modules/solc` (the README's test command installs them).

use std::path::Path;
use std::process::Command;

#[test]
fn committed_artifacts_match_a_fresh_compile() {
    let chain = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("node")
        .arg(chain.join("scripts/compile.mjs"))
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("node must be installed to check the artifacts (see scripts/test)");
    assert!(status.success(), "compile.mjs failed: {status}");

    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let committed = chain.join("artifacts");
    assert_eq!(
        names(&committed),
        names(out.path()),
        "artifact files differ; run `node chain/scripts/compile.mjs` and commit"
    );
    for name in names(&committed) {
        let a = std::fs::read_to_string(committed.join(&name)).unwrap();
        let b = std::fs::read_to_string(out.path().join(&name)).unwrap();
        assert!(
            a == b,
            "{name} differs from a fresh compile; run `node chain/scripts/compile.mjs` and commit"
        );
    }
}
