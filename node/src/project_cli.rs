//! `conclave project register project.toml`: what a project runs (a Tally program for `spdz` and
//! `halo2`, a WebAssembly module for `wasm`, code for an external prover for `byop` and `tee`),
//! registered on chain and handed to this operator's node, which serves it to the mesh by hash. A `halo2` project's verifier is
//! generated from the program's key, compiled and deployed first.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, keccak256};
use anyhow::{Context, bail};
use conclave_chain::contracts::{ProjectSpec, ProverKind};
use conclave_node::program::{ByopSpec, Program, Runner, WasmSpec};
use serde::Deserialize;

/// `project.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// "spdz" (a Tally program computed by MPC), "halo2" (a Tally program proven by one seat,
    /// checked by the others and the chain), "wasm" (a module every seat runs), "byop" (code
    /// every seat's W3bstream VM service runs) or "tee" (byop with attestation evidence).
    prover: String,
    /// `spdz`, `halo2`: the program's Tally file, relative to project.toml.
    program: Option<PathBuf>,
    /// Where nodes may also fetch the program (or the wasm manifest), https; the mesh serves
    /// it otherwise.
    program_url: Option<String>,
    /// `wasm`: the module (`.wasm`, or `.wat` assembled here); `byop`, `tee`: the code as the
    /// prover takes it (W3bstream: the zlib-compressed binary); relative to project.toml.
    module: Option<PathBuf>,
    /// `wasm`, `byop`, `tee`: where nodes may also fetch the module (https).
    module_url: Option<String>,
    /// `wasm`, `byop`, `tee`: device records a task takes, its input window in seconds, and the
    /// largest record in bytes.
    devices: Option<u32>,
    window: Option<u64>,
    record_bytes: Option<u32>,
    /// `byop`, `tee`: the W3bstream VM type whose prover runs the code (1 risc0, 2 halo2,
    /// 3 zkwasm, 4 wasm), the project version and `codeExpParam` the prover is told, and the
    /// project's own prover endpoint (used by nodes whose operator allows project endpoints).
    vm_type: Option<u64>,
    version: Option<String>,
    code_param: Option<String>,
    endpoint: Option<String>,
    /// `tee`: the attestation policy (docs/provers.md).
    tee: Option<conclave_provers::tee::Policy>,
    committee_size: u16,
    threshold: u16,
    receiver: Option<Address>,
}

/// What a project registers: the source whose hash the chain pins, and for `wasm` the module.
pub struct Registration {
    pub spec: ProjectSpec,
    pub source: String,
    pub module: Option<Vec<u8>>,
}

/// Reads `file` and what it names, and checks that it can run on the mesh.
pub fn read(file: &Path) -> anyhow::Result<Registration> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let p: ProjectFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let byop_fields = p.vm_type.is_some()
        || p.version.is_some()
        || p.code_param.is_some()
        || p.endpoint.is_some();
    match p.prover.as_str() {
        "byop" | "tee" => {}
        other if byop_fields => bail!(
            "vm_type, version, code_param and endpoint are for prover \"byop\" or \"tee\", not \"{other}\""
        ),
        _ => {}
    }
    match (p.prover.as_str(), p.tee.is_some()) {
        ("tee", false) => bail!("prover \"tee\" needs a [tee] policy (docs/provers.md)"),
        (other, true) if other != "tee" => {
            bail!("a [tee] policy is for prover \"tee\", not \"{other}\"")
        }
        _ => {}
    }
    let (kind, source, module, source_path) = match p.prover.as_str() {
        name @ ("spdz" | "halo2") => {
            let (None, None, None, None, None) = (
                &p.module,
                &p.module_url,
                p.devices,
                p.window,
                p.record_bytes,
            ) else {
                bail!(
                    "module, module_url, devices, window and record_bytes are for prover \"wasm\"; a Tally program declares its own"
                );
            };
            let path = dir.join(
                p.program
                    .as_ref()
                    .with_context(|| format!("prover \"{name}\" needs `program`"))?,
            );
            let source = crate::program_cli::read_source(&path)?;
            let kind = if name == "spdz" {
                ProverKind::Spdz
            } else {
                ProverKind::Halo2
            };
            (kind, source, None, path)
        }
        name @ ("wasm" | "byop" | "tee") => {
            if p.program.is_some() {
                bail!("prover \"{name}\" runs `module`, not a Tally `program`");
            }
            let path = dir.join(
                p.module
                    .as_ref()
                    .with_context(|| format!("prover \"{name}\" needs `module`"))?,
            );
            let runner = if name == "wasm" {
                Runner::Wasm
            } else {
                Runner::Byop(ByopSpec {
                    vm_type: p
                        .vm_type
                        .with_context(|| format!("prover \"{name}\" needs `vm_type` (the W3bstream VM type: 1 risc0, 2 halo2, 3 zkwasm, 4 wasm)"))?,
                    version: p.version.clone().unwrap_or_default(),
                    code_param: p.code_param.clone().unwrap_or_default(),
                    endpoint: p.endpoint.clone().unwrap_or_default(),
                    tee: p.tee.clone(),
                })
            };
            let bytes = if name == "wasm" {
                crate::wasm_cli::read_module(&path, &conclave_node::manifest::wasm_limits())?
            } else {
                read_code(&path)?
            };
            let spec = WasmSpec {
                module: keccak256(&bytes),
                devices: p
                    .devices
                    .with_context(|| format!("prover \"{name}\" needs `devices`"))?,
                window_secs: p
                    .window
                    .with_context(|| format!("prover \"{name}\" needs `window` (seconds)"))?,
                record_bytes: p
                    .record_bytes
                    .with_context(|| format!("prover \"{name}\" needs `record_bytes`"))?,
                module_uri: p.module_url.clone().unwrap_or_default(),
                runner,
            };
            if name == "wasm" {
                crate::wasm_cli::check_loads(&path, &bytes)?;
            }
            (spec.kind(), spec.render(), Some(bytes), path)
        }
        other => {
            bail!("unknown prover \"{other}\": \"spdz\", \"halo2\", \"wasm\", \"byop\" or \"tee\"")
        }
    };
    check_committee_shape(p.committee_size, p.threshold)?;
    let program = Program::from_source(&source)
        .with_context(|| format!("{} cannot run on the mesh", source_path.display()))?;
    program
        .task_shape(kind as u8)
        .with_context(|| format!("{} cannot run as {}", source_path.display(), p.prover))?;
    Ok(Registration {
        spec: ProjectSpec {
            program_hash: program.hash,
            program_uri: p.program_url.unwrap_or_default(),
            prover_kind: kind,
            committee_size: p.committee_size,
            threshold: p.threshold,
            receiver: p.receiver.unwrap_or(Address::ZERO),
            verifier: Address::ZERO,
            output_words: program.proof_output_words(kind as u8),
        },
        source,
        module,
    })
}

/// The most seats a project's committee may expect (`ProjectRegistry.MAX_COMMITTEE`).
pub const MAX_COMMITTEE: u16 = 32;

/// `committee_size` and `threshold` as the registry takes them, said before a transaction.
fn check_committee_shape(committee_size: u16, threshold: u16) -> anyhow::Result<()> {
    if !(1..=MAX_COMMITTEE).contains(&committee_size) {
        bail!(
            "committee_size is {committee_size}; it must be 1 to {MAX_COMMITTEE} (expected seats)"
        );
    }
    if !(1..=committee_size).contains(&threshold) {
        bail!(
            "threshold is {threshold}; it must be 1 to committee_size ({committee_size}): the seats whose signatures publish a result"
        );
    }
    Ok(())
}

/// Refuses a project whose committee the registered stake cannot form (see [`seating`]).
pub async fn check_committee_formable(
    contracts: &conclave_chain::Contracts,
    committee_size: u16,
    threshold: u16,
) -> anyhow::Result<()> {
    let nodes = contracts.active_nodes().await?;
    let now = contracts.chain().block_number().await?;
    let mut units = 0u64;
    for (operator, _) in &nodes {
        units += contracts.units_at(*operator, now).await?;
    }
    if let Some(note) = seating(nodes.len() as u64, units, committee_size, threshold)? {
        eprintln!("note: {note}");
    }
    Ok(())
}

/// Whether `nodes` active nodes holding `units` lottery units can seat a committee of
/// `committee_size` expected seats and `threshold`: a task needs `threshold` seats held by at
/// least two nodes; each unit wins a seat with probability committee_size / units, so a
/// draw's seats are Binomial(units, that). A coordinator tries up to
/// [`conclave_node::coordinator::MAX_DRAWS`] draws: a project whose draw seats its threshold
/// less than a quarter of the time would mostly fail (0.75¹⁶ ≈ 1 %). An error says what is
/// missing; `Some` is a note worth printing.
pub fn seating(
    nodes: u64,
    units: u64,
    committee_size: u16,
    threshold: u16,
) -> anyhow::Result<Option<String>> {
    let more = 2u64
        .saturating_sub(nodes)
        .max(u64::from(threshold).saturating_sub(units));
    if more > 0 {
        bail!(
            "the registry cannot seat this committee: {nodes} active node(s) with {units} unit(s) of stake, and a task needs {threshold} seats (threshold) held by at least two nodes; register at least {more} more node(s) with the minimum stake (or more stake), or lower the threshold"
        );
    }
    let chance = seats_at_least(units, committee_size, threshold);
    if chance < 0.25 {
        bail!(
            "a committee draw over the {units} registered unit(s) gives the threshold's {threshold} seats with probability {:.1} %: most tasks would fail to form; raise committee_size (expected seats, {committee_size}) or lower the threshold",
            chance * 100.0
        );
    }
    Ok(if u64::from(committee_size) >= units {
        Some(format!(
            "committee_size {committee_size} is at least the {units} unit(s) registered: every active node sits every task"
        ))
    } else if chance < 0.9 {
        Some(format!(
            "a draw gives the threshold's {threshold} seats with probability {:.0} %; the others are drawn again",
            chance * 100.0
        ))
    } else {
        None
    })
}

/// P(Binomial(units, min(1, expected / units)) ≥ threshold), summed in log space (units may be
/// thousands).
fn seats_at_least(units: u64, expected: u16, threshold: u16) -> f64 {
    let (n, t) = (units as f64, u64::from(threshold));
    let p = (f64::from(expected) / n).min(1.0);
    if p >= 1.0 {
        return if units >= t { 1.0 } else { 0.0 };
    }
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    // ln C(n, k) built up step by step.
    let mut ln_choose = 0.0;
    let mut tail = 0.0;
    for k in 0..=units {
        if k > 0 {
            ln_choose += ((n - (k - 1) as f64) / k as f64).ln();
        }
        if k >= t {
            tail += (ln_choose + k as f64 * ln_p + (n - k as f64) * ln_q).exp();
        }
    }
    tail.min(1.0)
}

/// Reads a `byop` project's code: bytes the prover takes as they are (a node keeps and serves
/// at most one mesh message of them).
fn read_code(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let max = conclave_node::manifest::MAX_MODULE;
    if bytes.is_empty() || bytes.len() > max {
        bail!(
            "{} is {} bytes; code is 1 to {max} bytes",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes)
}

/// Makes a `halo2` project's verifier from the program's key under the KZG parameters at `srs`
/// (the ones the nodes prove with), compiles it with the pinned solc-js under `tools`, and
/// deploys it: the address the project records.
pub async fn deploy_verifier(
    registration: &Registration,
    srs: &Path,
    tools: &Path,
    contracts: &conclave_chain::Contracts,
    owner: &alloy::signers::local::PrivateKeySigner,
) -> anyhow::Result<Address> {
    let program = Program::from_source(&registration.source)?;
    let (srs, tools) = (srs.to_path_buf(), tools.to_path_buf());
    println!("generating the program's keys and verifier (seconds to minutes)...");
    let bytecode = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let srs = conclave_provers::halo2::Srs::read(&srs)?;
        conclave_node::halo2::verifier_bytecode(&srs, &program, &tools).map_err(anyhow::Error::msg)
    })
    .await??;
    let address = contracts
        .deploy_verifier(owner, &bytecode.into())
        .await
        .context("deploying the verifier")?;
    println!("verifier deployed at {address}");
    Ok(address)
}

/// Hands a registered project's source, then its module if it has one, to the node at `api`.
pub async fn publish(api: &str, project: u64, registration: Registration) -> anyhow::Result<()> {
    publish_source(api, project, &registration.source).await?;
    if let Some(module) = registration.module {
        let hash = publish_module(api, project, module).await?;
        println!("module {hash}");
    }
    Ok(())
}

/// Hands a registered program's source to the node at `api`.
pub async fn publish_source(api: &str, project: u64, source: &str) -> anyhow::Result<()> {
    let url = format!(
        "{}/v1/projects/{project}/program",
        api.trim_end_matches('/')
    );
    let response = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({ "hash": "", "source": source }))
        .send()
        .await
        .with_context(|| format!("is a node running at {api}?"))?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Hands a registered `wasm` project's module to the node at `api` (after its manifest).
async fn publish_module(api: &str, project: u64, module: Vec<u8>) -> anyhow::Result<B256> {
    let hash = keccak256(&module);
    let url = format!("{}/v1/projects/{project}/module", api.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/wasm")
        .body(module)
        .send()
        .await
        .with_context(|| format!("is a node running at {api}?"))?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.text().await.unwrap_or_default());
    }
    Ok(hash)
}

/// A task's shape and committee, which a W3bstream project file does not say.
pub struct Shape {
    pub committee: u16,
    pub threshold: u16,
    pub devices: u32,
    pub window: u64,
    pub record_bytes: u32,
}

/// `conclave project import`: maps a W3bstream project file to a project.toml and its code in
/// `out` (default: `<file stem>.conclave/` beside it), checks that it reads as a project, prints
/// what was not carried over, and returns the project.toml's path.
pub fn import(
    file: &Path,
    version: Option<&str>,
    byop: bool,
    shape: Shape,
    out: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let engine = conclave_provers::wasm::WasmEngine::new(conclave_node::manifest::wasm_limits())?;
    let imported = conclave_node::w3bstream::import(&bytes, version, byop, &engine)
        .with_context(|| format!("importing {}", file.display()))?;
    let out = out.unwrap_or_else(|| {
        let stem = file.file_stem().unwrap_or_default().to_string_lossy();
        file.with_file_name(format!("{stem}.conclave"))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    let (prover, code_file, byop_lines) = match &imported.runner {
        Runner::Wasm => ("wasm", "module.wasm", String::new()),
        Runner::Byop(b) => (
            "byop",
            "code.bin",
            format!(
                "vm_type = {}\nversion = {}\ncode_param = {}\n",
                b.vm_type,
                quoted(&b.version),
                quoted(&b.code_param)
            ),
        ),
    };
    std::fs::write(out.join(code_file), &imported.code)?;
    let toml = format!(
        "# Imported from the W3bstream project file {} (version {}, VM type {}).\n\
         prover = \"{prover}\"\nmodule = \"{code_file}\"\ndevices = {}\nwindow = {}\nrecord_bytes = {}\n\
         committee_size = {}\nthreshold = {}\n{byop_lines}",
        file.display(),
        quoted(&imported.version),
        imported.vm_type,
        shape.devices,
        shape.window,
        shape.record_bytes,
        shape.committee,
        shape.threshold,
    );
    let project_toml = out.join("project.toml");
    std::fs::write(&project_toml, toml)?;
    read(&project_toml).with_context(|| format!("the imported {}", project_toml.display()))?;
    println!(
        "imported version {:?} (VM type {}) as a {prover} project: {}",
        imported.version,
        imported.vm_type,
        project_toml.display()
    );
    if prover == "byop" {
        println!(
            "  each member's operator needs a prover for VM type {} ([[provers.byop]] in node.toml; docs/provers.md)",
            imported.vm_type
        );
    }
    for note in &imported.not_carried {
        println!("  not carried over: {note}");
    }
    Ok(project_toml)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `conclave project import` on the shipped W3bstream file writes a project.toml that reads
    /// as a wasm project (or a byop one for VM type 4) beside the inflated module.
    #[test]
    fn the_shipped_w3bstream_file_imports_as_a_project_that_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/w3bstream/project.json");
        let shape = || Shape {
            committee: 3,
            threshold: 2,
            devices: 4,
            window: 60,
            record_bytes: 64,
        };
        let wasm = import(&file, None, false, shape(), Some(dir.path().join("wasm"))).unwrap();
        let text = std::fs::read_to_string(&wasm).unwrap();
        assert!(text.contains("prover = \"wasm\""), "{text}");
        let module = std::fs::read(dir.path().join("wasm/module.wasm")).unwrap();
        assert_eq!(&module[..4], b"\0asm", "the module is stored inflated");

        let byop = import(&file, None, true, shape(), Some(dir.path().join("byop"))).unwrap();
        let text = std::fs::read_to_string(&byop).unwrap();
        assert!(
            text.contains("prover = \"byop\"") && text.contains("vm_type = 4"),
            "{text}"
        );
        assert!(read(&byop).is_ok());
    }

    fn refused(toml: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("project.toml");
        std::fs::write(&file, toml).unwrap();
        match read(&file) {
            Ok(_) => panic!("accepted:\n{toml}"),
            Err(e) => format!("{e:#}"),
        }
    }

    /// A project.toml whose prover and policy disagree is refused: a `tee` project without its
    /// policy would otherwise register as plain `byop`, with no attestation at all.
    #[test]
    fn prover_fields_must_match_the_prover() {
        let shape = "module = \"code.bin\"\ndevices = 3\nwindow = 60\nrecord_bytes = 8\ncommittee_size = 3\nthreshold = 2\n";
        let e = refused(&format!("prover = \"tee\"\nvm_type = 4\n{shape}"));
        assert!(e.contains("needs a [tee] policy"), "{e}");
        let policy = "[tee]\nsgx = []\nmin_tcb = \"UpToDate\"\nmax_age_secs = 60\n";
        let e = refused(&format!("prover = \"byop\"\nvm_type = 4\n{shape}{policy}"));
        assert!(e.contains("is for prover \"tee\""), "{e}");
        let e = refused(&format!("prover = \"wasm\"\nvm_type = 4\n{shape}"));
        assert!(e.contains("are for prover \"byop\""), "{e}");
        let e = refused(&format!("prover = \"byop\"\n{shape}"));
        assert!(e.contains("needs `vm_type`"), "{e}");
    }

    #[test]
    fn seat_chances_match_the_binomial_tail() {
        // Bin(4, 0.5) ≥ 2: 11/16.
        assert!((seats_at_least(4, 2, 2) - 11.0 / 16.0).abs() < 1e-12);
        // Every unit wins when the committee expects at least all of them.
        assert_eq!(seats_at_least(4, 10, 4), 1.0);
        assert_eq!(seats_at_least(4, 10, 5), 0.0);
        // Thousands of units do not underflow: Bin(2560, 3/2560) ≥ 2 = 1 − e⁻³(1 + 3).
        let want = 1.0 - (-3f64).exp() * 4.0;
        assert!((seats_at_least(2560, 3, 2) - want).abs() < 1e-3);
    }

    #[test]
    fn committees_the_stake_cannot_seat_are_refused_saying_what_is_missing() {
        let e = seating(4, 4, 10, 7).unwrap_err().to_string();
        assert!(e.contains("4 active node(s) with 4 unit(s)"), "{e}");
        assert!(e.contains("register at least 3 more node(s)"), "{e}");
        let e = seating(1, 10, 3, 2).unwrap_err().to_string();
        assert!(e.contains("register at least 1 more node(s)"), "{e}");
        // 100 units, 3 expected seats, threshold 9: about 0.1 % of draws.
        let e = seating(10, 100, 3, 9).unwrap_err().to_string();
        assert!(e.contains("raise committee_size"), "{e}");
        // Fine, with notes where useful.
        assert!(seating(4, 40, 10, 2).unwrap().is_none());
        let note = seating(4, 4, 10, 3).unwrap().unwrap();
        assert!(note.contains("every active node sits every task"), "{note}");
    }
}
