//! A project's program when its code is not a Conclave program: a short TOML manifest whose
//! keccak256 the chain pins as `programHash`. It names the code by its keccak256, so neither can
//! change under a live task, and fixes what the code cannot say itself: how many device records
//! a task takes, how long its input window is, and how large a record may be.
//!
//! - `prover = "wasm"`: a WebAssembly module every seat runs (`docs/wasm.md`).
//! - `prover = "byop"`: code every seat hands to the prover its operator runs for the
//!   manifest's W3bstream VM type, over W3bstream's gRPC protocol (`docs/provers.md`).
//! - `prover = "tee"`: as `byop`, and the prover's answer must carry attestation evidence that
//!   the manifest's `[tee]` policy accepts.
//!
//! ```toml
//! prover = "wasm"
//! module = "0x…"        # keccak256 of the module's (or the byop code's) bytes
//! devices = 10
//! window = 60           # seconds
//! record_bytes = 64     # largest record a device sends
//! module_uri = ""       # optional https URL the code is also fetched from
//! # byop and tee only:
//! vm_type = 4           # W3bstream VM type: 1 risc0, 2 halo2, 3 zkwasm, 4 wasm, or another
//! version = "0.1"       # the project version the prover is told
//! code_param = ""       # W3bstream's codeExpParam, handed over with the code
//! endpoint = ""         # the project's own prover, for nodes that allow project endpoints
//! ```

use alloy::primitives::B256;
use conclave_chain::contracts::ProverKind;
use conclave_provers::tee::Policy;
use serde::{Deserialize, Serialize};

/// Largest record a device sends to a `wasm` task: it is sealed once per member and the copies
/// travel in one HTTP body to the entry node.
pub const MAX_WASM_RECORD: u32 = 2048;

/// Largest module a node keeps: it travels whole in one mesh message.
pub const MAX_MODULE: usize = crate::messages::MAX_MESSAGE - 4096;

/// Largest `code_param` a manifest carries inline.
pub const MAX_CODE_PARAM: usize = 4096;

/// The limits every node runs modules under: a module must fit one mesh message; the fuel,
/// memory and output limits are the engine's defaults, the same at every seat.
pub fn wasm_limits() -> conclave_provers::wasm::WasmLimits {
    conclave_provers::wasm::WasmLimits {
        module_bytes: MAX_MODULE,
        ..Default::default()
    }
}

/// What a manifest's task runs, and its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmSpec {
    /// keccak256 of the module (or of the byop code).
    pub module: B256,
    pub devices: u32,
    pub window_secs: u64,
    pub record_bytes: u32,
    /// Where the module may also be fetched (https only), besides the mesh.
    pub module_uri: String,
    /// Who runs the code.
    pub runner: Runner,
}

/// Who runs a manifest's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runner {
    /// Every seat, under wasmtime.
    Wasm,
    /// A W3bstream VM service each seat's operator points it at.
    Byop(ByopSpec),
}

/// What a `byop` (or `tee`) manifest tells the prover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByopSpec {
    pub vm_type: u64,
    pub version: String,
    pub code_param: String,
    /// The project's own prover endpoint (a node uses it only if its operator allows).
    pub endpoint: String,
    /// The attestation policy of a `tee` project.
    pub tee: Option<Policy>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    prover: String,
    module: String,
    devices: u32,
    window: u64,
    record_bytes: u32,
    #[serde(default)]
    module_uri: String,
    vm_type: Option<u64>,
    version: Option<String>,
    code_param: Option<String>,
    endpoint: Option<String>,
    tee: Option<Policy>,
}

/// The prover kinds a manifest names.
const MANIFEST_PROVERS: [ProverKind; 3] = [ProverKind::Wasm, ProverKind::Byop, ProverKind::Tee];

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is malformed: {0}")]
    Malformed(String),
    #[error("the manifest's module must be 0x and 64 hex digits (its keccak256)")]
    BadModuleHash,
    #[error("a task takes 1 to {max} device records, not {0}", max = crate::program::MAX_INPUTS)]
    Devices(u32),
    #[error("the window must be 1 to 86400 seconds, not {0}")]
    Window(u64),
    #[error("a record is 1 to {MAX_WASM_RECORD} bytes, not {0}")]
    RecordBytes(u32),
    #[error("module_uri must be empty or an https URL of at most 256 bytes")]
    BadUri,
    #[error("{0}")]
    Byop(String),
}

impl WasmSpec {
    /// Reads `source` as a manifest: `None` if it is not one (a Tally program), else the
    /// manifest or why it is refused. A manifest is a TOML table whose `prover` is `"wasm"`,
    /// `"byop"` or `"tee"`.
    pub fn parse(source: &str) -> Option<Result<WasmSpec, ManifestError>> {
        let table: toml::Table = toml::from_str(source).ok()?;
        let prover = table.get("prover").and_then(|p| p.as_str())?;
        if !MANIFEST_PROVERS.iter().any(|k| k.name() == prover) {
            return None;
        }
        Some(Self::check(source))
    }

    fn check(source: &str) -> Result<WasmSpec, ManifestError> {
        let m: Manifest =
            toml::from_str(source).map_err(|e| ManifestError::Malformed(e.message().into()))?;
        let hex = m
            .module
            .strip_prefix("0x")
            .ok_or(ManifestError::BadModuleHash)?;
        let mut module = [0u8; 32];
        if hex.len() != 64 || hex::decode_to_slice(hex, &mut module).is_err() {
            return Err(ManifestError::BadModuleHash);
        }
        if !(1..=crate::program::MAX_INPUTS).contains(&m.devices) {
            return Err(ManifestError::Devices(m.devices));
        }
        if !(1..=86_400).contains(&m.window) {
            return Err(ManifestError::Window(m.window));
        }
        if !(1..=MAX_WASM_RECORD).contains(&m.record_bytes) {
            return Err(ManifestError::RecordBytes(m.record_bytes));
        }
        if !(m.module_uri.is_empty() || m.module_uri.starts_with("https://"))
            || m.module_uri.len() > 256
        {
            return Err(ManifestError::BadUri);
        }
        let runner = Self::runner(&m)?;
        Ok(WasmSpec {
            module: B256::from(module),
            devices: m.devices,
            window_secs: m.window,
            record_bytes: m.record_bytes,
            module_uri: m.module_uri,
            runner,
        })
    }

    /// The runner the manifest's `prover` names, its fields checked.
    fn runner(m: &Manifest) -> Result<Runner, ManifestError> {
        let bad = |why: &str| Err(ManifestError::Byop(why.to_string()));
        let byop_fields = m.vm_type.is_some()
            || m.version.is_some()
            || m.code_param.is_some()
            || m.endpoint.is_some();
        match m.prover.as_str() {
            "wasm" if byop_fields || m.tee.is_some() => bad(
                "vm_type, version, code_param, endpoint and [tee] are for byop and tee manifests",
            ),
            "wasm" => Ok(Runner::Wasm),
            prover => {
                let Some(vm_type) = m.vm_type else {
                    return bad(
                        "a byop manifest names its W3bstream vm_type (1 risc0, 2 halo2, 3 zkwasm, 4 wasm, ...)",
                    );
                };
                let version = m.version.clone().unwrap_or_default();
                let code_param = m.code_param.clone().unwrap_or_default();
                let endpoint = m.endpoint.clone().unwrap_or_default();
                if version.len() > 64 || !version.chars().all(|c| c.is_ascii_graphic()) {
                    return bad("version is at most 64 printable ASCII characters");
                }
                if code_param.len() > MAX_CODE_PARAM {
                    return bad("code_param is at most 4096 bytes");
                }
                if !(endpoint.is_empty() || endpoint.starts_with("http://")) || endpoint.len() > 256
                {
                    return bad(
                        "endpoint must be empty or an http:// URL of at most 256 bytes (provers speak plain gRPC)",
                    );
                }
                let tee = match (prover, &m.tee) {
                    ("tee", Some(policy)) => {
                        policy
                            .validate()
                            .map_err(|e| ManifestError::Byop(format!("the [tee] policy: {e}")))?;
                        Some(policy.clone())
                    }
                    ("tee", None) => return bad("a tee manifest has a [tee] policy"),
                    (_, Some(_)) => return bad("[tee] is for tee manifests"),
                    (_, None) => None,
                };
                Ok(Runner::Byop(ByopSpec {
                    vm_type,
                    version,
                    code_param,
                    endpoint,
                    tee,
                }))
            }
        }
    }

    /// The chain's prover kind for this manifest.
    pub fn kind(&self) -> ProverKind {
        match &self.runner {
            Runner::Wasm => ProverKind::Wasm,
            Runner::Byop(b) if b.tee.is_some() => ProverKind::Tee,
            Runner::Byop(_) => ProverKind::Byop,
        }
    }

    /// The byop fields, if the code runs at an external prover.
    pub fn byop(&self) -> Option<&ByopSpec> {
        match &self.runner {
            Runner::Byop(b) => Some(b),
            Runner::Wasm => None,
        }
    }

    /// The manifest's text, in the one layout `conclave project register` writes.
    pub fn render(&self) -> String {
        let prover = self.kind().name();
        let mut text = format!(
            "# A Conclave {prover} task (docs/wasm.md, docs/provers.md); the chain pins keccak256 of this text.\nprover = \"{prover}\"\nmodule = \"{}\"\ndevices = {}\nwindow = {}\nrecord_bytes = {}\n",
            self.module, self.devices, self.window_secs, self.record_bytes
        );
        if !self.module_uri.is_empty() {
            text.push_str(&format!("module_uri = \"{}\"\n", self.module_uri));
        }
        if let Some(b) = self.byop() {
            let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
            text.push_str(&format!(
                "vm_type = {}\nversion = {}\ncode_param = {}\n",
                b.vm_type,
                quoted(&b.version),
                quoted(&b.code_param)
            ));
            if !b.endpoint.is_empty() {
                text.push_str(&format!("endpoint = {}\n", quoted(&b.endpoint)));
            }
            if let Some(policy) = &b.tee {
                #[derive(Serialize)]
                struct Tee<'a> {
                    tee: &'a Policy,
                }
                text.push_str(&toml::to_string(&Tee { tee: policy }).unwrap_or_default());
            }
        }
        text
    }
}

/// Bytes of the random salt before a sealed record.
pub const RECORD_SALT: usize = 32;

/// The size of what a device seals to each member for a task of `record_bytes`.
pub fn padded_len(record_bytes: u32) -> usize {
    RECORD_SALT + 4 + record_bytes as usize
}

/// What a device seals to each member: a random salt (the same for every member, so that their
/// digests of the record agree, and unguessable, so that a digest of a short record cannot be
/// searched for it), the record's length, the record, and zeros up to `record_bytes` (so that an
/// envelope's size says nothing of its record). `None` if the record is too long.
pub fn pad_record(record: &[u8], record_bytes: u32, salt: [u8; RECORD_SALT]) -> Option<Vec<u8>> {
    if record.len() > record_bytes as usize {
        return None;
    }
    let mut padded = Vec::with_capacity(padded_len(record_bytes));
    padded.extend(salt);
    padded.extend((record.len() as u32).to_be_bytes());
    padded.extend(record);
    padded.resize(padded_len(record_bytes), 0);
    Some(padded)
}

/// The record in what [`pad_record`] made, if it is well formed for `record_bytes`.
pub fn unpad_record(padded: &[u8], record_bytes: u32) -> Option<Vec<u8>> {
    if padded.len() != padded_len(record_bytes) {
        return None;
    }
    let body = &padded[RECORD_SALT..];
    let len = u32::from_be_bytes(body[..4].try_into().expect("4 bytes")) as usize;
    let rest = &body[4..];
    if len > rest.len() || rest[len..].iter().any(|b| *b != 0) {
        return None;
    }
    Some(rest[..len].to_vec())
}

/// Bytes as a member stores them: their length, then the bytes in 32-byte words (zero-padded),
/// so that a sealed record shares the store and the input digest with masked inputs.
pub fn record_words(record: &[u8]) -> Vec<[u8; 32]> {
    let mut words = vec![[0u8; 32]];
    words[0][28..].copy_from_slice(&(record.len() as u32).to_be_bytes());
    for chunk in record.chunks(32) {
        let mut word = [0u8; 32];
        word[..chunk.len()].copy_from_slice(chunk);
        words.push(word);
    }
    words
}

/// The record [`record_words`] stored, if the words are one.
pub fn words_record(words: &[[u8; 32]]) -> Option<Vec<u8>> {
    let (head, body) = words.split_first()?;
    if head[..28].iter().any(|b| *b != 0) {
        return None;
    }
    let len = u32::from_be_bytes(head[28..].try_into().expect("4 bytes")) as usize;
    if body.len() != len.div_ceil(32) {
        return None;
    }
    let mut record: Vec<u8> = body.concat();
    if record[len..].iter().any(|b| *b != 0) {
        return None;
    }
    record.truncate(len);
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WasmSpec {
        WasmSpec {
            module: B256::repeat_byte(0xab),
            devices: 10,
            window_secs: 60,
            record_bytes: 64,
            module_uri: String::new(),
            runner: Runner::Wasm,
        }
    }

    #[test]
    fn a_manifest_round_trips_and_tally_is_not_one() {
        let text = spec().render();
        assert_eq!(WasmSpec::parse(&text), Some(Ok(spec())));
        let with_uri = WasmSpec {
            module_uri: "https://example.org/m.wasm".into(),
            ..spec()
        };
        assert_eq!(WasmSpec::parse(&with_uri.render()), Some(Ok(with_uri)));
        assert_eq!(
            WasmSpec::parse(&crate::program::Program::sum_source(3, 60, 32)),
            None
        );
        assert_eq!(WasmSpec::parse("prover = \"spdz\"\n"), None);
    }

    #[test]
    fn bad_manifests_are_refused_with_their_reason() {
        let text = spec().render();
        let refused = |t: &str| WasmSpec::parse(t).unwrap().unwrap_err();
        assert!(matches!(
            refused(&format!("{text}extra = 1\n")),
            ManifestError::Malformed(_)
        ));
        assert_eq!(
            refused(&text.replace("0xabab", "0xzzab")),
            ManifestError::BadModuleHash
        );
        assert_eq!(
            refused(&text.replace("devices = 10", "devices = 0")),
            ManifestError::Devices(0)
        );
        assert_eq!(
            refused(&text.replace("window = 60", "window = 0")),
            ManifestError::Window(0)
        );
        assert_eq!(
            refused(&text.replace("record_bytes = 64", "record_bytes = 4096")),
            ManifestError::RecordBytes(4096)
        );
        assert_eq!(
            refused(&format!("{text}module_uri = \"http://plain\"\n")),
            ManifestError::BadUri
        );
    }

    #[test]
    fn padded_records_hide_their_length_and_refuse_tampering() {
        let salt = [7u8; RECORD_SALT];
        let short = pad_record(b"1", 64, salt).unwrap();
        let long = pad_record(&[1u8; 64], 64, salt).unwrap();
        assert_eq!(short.len(), long.len());
        assert_eq!(unpad_record(&short, 64).unwrap(), b"1");
        assert_eq!(unpad_record(&long, 64).unwrap(), vec![1u8; 64]);
        assert_eq!(
            unpad_record(&pad_record(b"", 64, salt).unwrap(), 64).unwrap(),
            b""
        );
        assert!(pad_record(&[0u8; 65], 64, salt).is_none());
        // Another width, a length past the end, or bytes in the padding are refused.
        assert!(unpad_record(&short, 63).is_none());
        let mut past = short.clone();
        past[RECORD_SALT + 3] = 65;
        assert!(unpad_record(&past, 64).is_none());
        let mut dirty = short;
        dirty[RECORD_SALT + 4 + 10] = 1;
        assert!(unpad_record(&dirty, 64).is_none());
    }

    #[test]
    fn records_survive_the_store_and_malformed_words_do_not() {
        for record in [&b""[..], b"1", &[7u8; 32], &[9u8; 33], &[1u8; 2048]] {
            assert_eq!(words_record(&record_words(record)).unwrap(), record);
        }
        let mut words = record_words(b"abc");
        words[1][5] = 1;
        assert_eq!(words_record(&words), None);
        let mut words = record_words(b"abc");
        words[0][0] = 1;
        assert_eq!(words_record(&words), None);
        assert_eq!(words_record(&record_words(b"abc")[..1]), None);
        assert_eq!(words_record(&[]), None);
    }
}
