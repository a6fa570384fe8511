//! W3bstream project files, imported unchanged (`conclave project import project.json`).
//!
//! A W3bstream project file lists versions of a project's code, each with its VM type
//! (`vmTypeID`: 1 risc0, 2 halo2, 3 zkwasm, 4 wasm), the code (hex of the zlib-compressed
//! binary), its `codeExpParam` and where W3bstream sent the output. The import picks one version
//! and says what runs it in Conclave:
//! - a wasm applet (type 4) that Conclave's wasm engine loads runs as a `wasm` project: every
//!   seat runs it, no external prover is needed;
//! - anything else runs as a `byop` project: every seat hands the code, unchanged, to the prover
//!   its operator runs for that VM type (W3bstream's own VM services speak the same protocol).
//!
//! What has no equivalent (the output contract, the data source, aggregation, other versions)
//! is listed in [`Imported::not_carried`], never silently dropped.

use serde::Deserialize;

use crate::manifest::{ByopSpec, Runner};

/// Largest project file read.
pub const MAX_PROJECT_FILE: usize = 32 << 20;

/// W3bstream's VM type ids.
pub const VM_RISC0: u64 = 1;
pub const VM_HALO2: u64 = 2;
pub const VM_ZKWASM: u64 = 3;
pub const VM_WASM: u64 = 4;

/// A project file: the newer layout (`versions`, or `config` in some releases), or the older
/// one (a bare list of configs, or one config).
#[derive(Deserialize)]
#[serde(untagged)]
enum ProjectFile {
    Versioned(Versioned),
    List(Vec<Config>),
    One(Config),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Versioned {
    #[serde(default)]
    default_version: String,
    #[serde(alias = "config")]
    versions: Vec<Config>,
    #[serde(default, rename = "datasourceURI")]
    datasource_uri: String,
    #[serde(default, rename = "datasourcePublicKey")]
    datasource_public_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    version: String,
    #[serde(default, rename = "vmTypeID")]
    vm_type_id: Option<u64>,
    /// The older layout's VM name.
    #[serde(default)]
    vm_type: Option<String>,
    code: String,
    #[serde(default)]
    code_exp_param: String,
    /// Some releases call the parameter `metadata`.
    #[serde(default)]
    metadata: String,
    #[serde(default)]
    output: serde_json::Value,
    #[serde(default)]
    aggregation: serde_json::Value,
}

/// A W3bstream project as Conclave runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The version imported.
    pub version: String,
    pub vm_type: u64,
    /// What runs the code.
    pub runner: Runner,
    /// The module (`wasm`) or the code as the prover takes it (`byop`).
    pub code: Vec<u8>,
    /// What the file says that Conclave does not carry over, one line each.
    pub not_carried: Vec<String>,
}

/// Why a project file cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the project file is larger than {MAX_PROJECT_FILE} bytes")]
    TooLarge,
    #[error("not a W3bstream project file: {0}")]
    Malformed(String),
    #[error("the project file has no versions")]
    Empty,
    #[error("the project has no version {0:?} (it has {1})")]
    NoSuchVersion(String, String),
    #[error("version {0:?} names no VM type (vmTypeID or vmType)")]
    NoVmType(String),
    #[error("unknown vmType {0:?} (risc0, halo2, zkwasm or wasm)")]
    UnknownVmType(String),
    #[error(
        "the code of version {0:?} is a URL ({1}): W3bstream fetched it at run time; Conclave pins code by hash, so fetch it and put its hex in `code`"
    )]
    RemoteCode(String, String),
    #[error("the code of version {0:?}: {1}")]
    BadCode(String, String),
}

/// Reads a W3bstream project file and maps `version` (default: the file's `defaultVersion`,
/// else its first) to a Conclave project. `prefer_byop` runs a wasm applet at the operators'
/// provers instead of at every seat.
pub fn import(
    file: &[u8],
    version: Option<&str>,
    prefer_byop: bool,
    wasm: &conclave_provers::wasm::WasmEngine,
) -> Result<Imported, ImportError> {
    if file.len() > MAX_PROJECT_FILE {
        return Err(ImportError::TooLarge);
    }
    let parsed: ProjectFile =
        serde_json::from_slice(file).map_err(|e| ImportError::Malformed(e.to_string()))?;
    let mut not_carried = Vec::new();
    let (default_version, configs) = match parsed {
        ProjectFile::Versioned(v) => {
            if !v.datasource_uri.is_empty() || !v.datasource_public_key.is_empty() {
                not_carried.push(format!(
                    "datasourceURI {:?}: devices submit through a Conclave node's API instead",
                    v.datasource_uri
                ));
            }
            (v.default_version, v.versions)
        }
        ProjectFile::List(list) => (String::new(), list),
        ProjectFile::One(one) => (String::new(), vec![one]),
    };
    let wanted = version.unwrap_or(&default_version);
    let index = if wanted.is_empty() {
        (!configs.is_empty())
            .then_some(0)
            .ok_or(ImportError::Empty)?
    } else {
        configs
            .iter()
            .position(|c| c.version == wanted)
            .ok_or_else(|| {
                let known: Vec<&str> = configs.iter().map(|c| c.version.as_str()).collect();
                ImportError::NoSuchVersion(wanted.to_string(), known.join(", "))
            })?
    };
    for (i, other) in configs.iter().enumerate() {
        if i != index {
            not_carried.push(format!(
                "version {:?}: a Conclave project runs one version; import it again with --project-version {:?} as another project",
                other.version, other.version
            ));
        }
    }
    let config = &configs[index];
    let vm_type = match (config.vm_type_id, config.vm_type.as_deref()) {
        (Some(id), _) => id,
        (None, Some("risc0")) => VM_RISC0,
        (None, Some("halo2")) => VM_HALO2,
        (None, Some("zkwasm")) => VM_ZKWASM,
        (None, Some("wasm")) => VM_WASM,
        (None, Some(other)) => return Err(ImportError::UnknownVmType(other.to_string())),
        (None, None) => return Err(ImportError::NoVmType(config.version.clone())),
    };
    if config.code.contains("://") {
        return Err(ImportError::RemoteCode(
            config.version.clone(),
            config.code.clone(),
        ));
    }
    let bad_code = |e: String| ImportError::BadCode(config.version.clone(), e);
    let binary = conclave_provers::byop::server::decode_hex_code(&config.code)
        .map_err(|e| bad_code(e.to_string()))?;
    if binary.is_empty() {
        return Err(bad_code("the code is empty".into()));
    }
    let param = if config.code_exp_param.is_empty() {
        config.metadata.clone()
    } else {
        config.code_exp_param.clone()
    };
    if !config.output.is_null() && config.output != serde_json::json!({}) {
        not_carried.push(format!(
            "output {}: Conclave publishes the result to its TaskRouter, which calls the project's receiver contract; set `receiver` in project.toml to the contract that should get it",
            config.output
        ));
    }
    if !config.aggregation.is_null() && config.aggregation != serde_json::json!({}) {
        not_carried.push(format!(
            "aggregation {}: a Conclave task takes `devices` records (set in project.toml)",
            config.aggregation
        ));
    }
    let byop = |not_carried: Vec<String>| Imported {
        version: config.version.clone(),
        vm_type,
        runner: Runner::Byop(ByopSpec {
            vm_type,
            version: config.version.clone(),
            code_param: param.clone(),
            endpoint: String::new(),
            tee: None,
        }),
        code: binary.clone(),
        not_carried,
    };
    if vm_type != VM_WASM || prefer_byop {
        if vm_type != VM_WASM {
            not_carried.push(format!(
                "one prover per task: W3bstream had one prover answer; here t seats must receive the same answer from their own provers, and VM type {vm_type} answers with a proof, which is the same across provers only if it is deterministic (else use threshold 1, trusting one seat's prover)"
            ));
        }
        return Ok(byop(not_carried));
    }
    let module = conclave_provers::byop::server::inflate_code(&binary)
        .map_err(|e| bad_code(e.to_string()))?;
    wasm.load(&module).map_err(|e| {
        bad_code(format!(
            "it does not run under Conclave's wasm engine ({e}); import it with --prover byop to hand it to a W3bstream wasm VM"
        ))
    })?;
    if !param.is_empty() {
        not_carried.push(format!(
            "codeExpParam {param:?}: a wasm applet run by every seat gets no parameter (import with --prover byop to hand it to a VM service)"
        ));
    }
    Ok(Imported {
        version: config.version.clone(),
        vm_type,
        runner: Runner::Wasm,
        code: module,
        not_carried,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> conclave_provers::wasm::WasmEngine {
        conclave_provers::wasm::WasmEngine::new(crate::manifest::wasm_limits()).unwrap()
    }

    fn zlib_hex(bytes: &[u8]) -> String {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(bytes).unwrap();
        hex::encode(z.finish().unwrap())
    }

    const SUM_WAT: &str = include_str!("../../examples/wasm/sum.wat");

    #[test]
    fn a_wasm_version_runs_at_every_seat_and_the_rest_is_listed() {
        let module = wat::parse_str(SUM_WAT).unwrap();
        let file = serde_json::json!({
            "defaultVersion": "0.2",
            "datasourceURI": "postgres://x",
            "versions": [
                {"version": "0.1", "vmTypeID": 1, "code": "00"},
                {"version": "0.2", "vmTypeID": 4, "code": zlib_hex(&module), "codeExpParam": "",
                 "output": {"type": "ethereumContract", "ethereum": {"contractAddress": "0x12"}}}
            ]
        });
        let imported = import(file.to_string().as_bytes(), None, false, &engine()).unwrap();
        assert_eq!(imported.version, "0.2");
        assert_eq!(imported.runner, Runner::Wasm);
        assert_eq!(imported.code, module);
        let notes = imported.not_carried.join("\n");
        for expected in ["datasourceURI", "version \"0.1\"", "output"] {
            assert!(notes.contains(expected), "{notes}");
        }
        // The same version at the operators' provers: the code goes unchanged.
        let byop = import(file.to_string().as_bytes(), None, true, &engine()).unwrap();
        assert!(
            matches!(byop.runner, Runner::Byop(ref b) if b.vm_type == VM_WASM && b.version == "0.2")
        );
        assert_eq!(byop.code[0], 0x78, "still compressed");
    }

    #[test]
    fn zk_versions_go_to_byop_with_their_parameter() {
        let file = serde_json::json!({
            "versions": [{"version": "v1", "vmTypeID": 1, "code": "0x0102", "codeExpParam": "{\"image_id\":\"1\"}"}]
        });
        let imported = import(file.to_string().as_bytes(), Some("v1"), false, &engine()).unwrap();
        assert_eq!(imported.code, vec![1, 2]);
        let Runner::Byop(b) = imported.runner else {
            panic!("byop")
        };
        assert_eq!(
            (b.vm_type, b.code_param.as_str()),
            (VM_RISC0, "{\"image_id\":\"1\"}")
        );
        // zkWASM by number goes to the operators' provers too.
        let zkwasm =
            serde_json::json!({"versions": [{"version": "1", "vmTypeID": 3, "code": "0a"}]});
        assert_eq!(
            import(zkwasm.to_string().as_bytes(), None, false, &engine())
                .unwrap()
                .vm_type,
            VM_ZKWASM
        );
        // The older layout: one config with a VM name.
        let old = serde_json::json!({"vmType": "halo2", "code": "aa", "version": "0.1"});
        assert_eq!(
            import(old.to_string().as_bytes(), None, false, &engine())
                .unwrap()
                .vm_type,
            VM_HALO2
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let refused = |v: serde_json::Value, version: Option<&str>| {
            import(v.to_string().as_bytes(), version, false, &engine()).unwrap_err()
        };
        assert!(matches!(
            import(b"{", None, false, &engine()).unwrap_err(),
            ImportError::Malformed(_)
        ));
        assert_eq!(
            refused(serde_json::json!({"versions": []}), None),
            ImportError::Empty
        );
        assert!(matches!(
            refused(
                serde_json::json!({"versions": [{"version": "1", "vmTypeID": 4, "code": "00"}]}),
                Some("2")
            ),
            ImportError::NoSuchVersion(..)
        ));
        assert!(matches!(
            refused(
                serde_json::json!({"versions": [{"version": "1", "vmTypeID": 1, "code": "ipfs://Qm"}]}),
                None
            ),
            ImportError::RemoteCode(..)
        ));
        assert!(matches!(
            refused(
                serde_json::json!({"versions": [{"version": "1", "vmTypeID": 1, "code": "zz"}]}),
                None
            ),
            ImportError::BadCode(..)
        ));
        assert!(matches!(
            refused(
                serde_json::json!({"versions": [{"version": "1", "vmTypeID": 4, "code": zlib_hex(b"not wasm")}]}),
                None
            ),
            ImportError::BadCode(..)
        ));
        assert_eq!(
            refused(serde_json::json!({"vmType": "sgx", "code": "00"}), None),
            ImportError::UnknownVmType("sgx".into())
        );
    }
}
