//! The `tee` prover's verifier: offline checks of TEE attestation evidence against a project's
//! policy (DESIGN.md "Provers"). A `tee` answer is a `byop` answer that carries [`Evidence`]; every
//! member runs [`verify`] on it before signing the result.
//!
//! Two stages, so that the costly and the cheap parts stay apart:
//! 1. [`verify_evidence`]: the vendor's signature chain and collateral, at a given time, with
//!    nothing fetched — Intel DCAP quotes (SGX, TDX) with dcap-qvl, AWS Nitro documents with
//!    nitro_attest, AMD SEV-SNP reports with sev. It yields [`Attested`]: what the TEE vouches for.
//! 2. [`Policy::check`]: the project's allowed measurements, minimum TCB status and maximum age,
//!    and the binding of the report to this task and this output ([`report_data_for`]).
//!
//! Freshness, per kind:
//! - Nitro documents carry the enclave's signed time; the policy's `max_age_secs` bounds it.
//! - DCAP quotes carry no time; [`Attested::issued_at`] is the issue date of the collateral (the
//!   oldest of TCB Info and QE Identity), so `max_age_secs` bounds how old Intel's verdict is.
//! - SEV-SNP reports carry no time at all: no age is checked.
//!
//! For every kind the binding is what makes evidence fresh for a task: the report data must start
//! with `sha256("conclave-tee-v1" ‖ context ‖ sha256(output))`, where the context
//! ([`TaskContext::digest`]) names the chain, the router, the project and the task, the hash of
//! the code the enclave ran and a hash of the inputs it was given. A report made for another
//! deployment, task, code, input set or output is refused whatever its age; an enclave must
//! compute the code hash and the inputs hash itself from what it was handed.

mod dcap;
mod nitro;
mod snp;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest encoded [`Evidence`] accepted, in bytes. Real evidence is far smaller (a DCAP quote
/// with its collateral is about 25 KiB, hex-encoded 50 KiB); the cap bounds what a prover can
/// make every member parse.
pub const MAX_EVIDENCE_BYTES: usize = 256 << 10;

/// Domain separation of [`report_data_for`].
const BINDING_DOMAIN: &[u8] = b"conclave-tee-v1";

/// Which TEE produced the evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceKind {
    /// An Intel DCAP quote: SGX (quote v3) or TDX (quote v4/v5).
    Dcap,
    /// An AWS Nitro Enclaves attestation document (COSE_Sign1).
    Nitro,
    /// An AMD SEV-SNP attestation report (1184 bytes).
    SevSnp,
}

impl EvidenceKind {
    /// The name [`TeeError::KindNotAllowed`] gives a kind refused before verification: the
    /// [`Policy`] field's name, or `dcap` when neither `sgx` nor `tdx` lists anything.
    fn name(self) -> &'static str {
        match self {
            EvidenceKind::Dcap => "dcap",
            EvidenceKind::Nitro => "nitro",
            EvidenceKind::SevSnp => "sev_snp",
        }
    }
}

/// Evidence as a BYOP prover ships it: the kind, the raw evidence, and the collateral a verifier
/// needs offline, so that no member has to reach Intel, AWS or AMD while a task runs.
///
/// - `Dcap`: `evidence` is the quote; `collateral` is the quote collateral as JSON (dcap-qvl's
///   `QuoteCollateralV3`, as `dcap-qvl`'s sample files and its PCCS client hold it).
/// - `Nitro`: `evidence` is the COSE document; `collateral` is empty (the document carries its
///   certificate chain up to the AWS root, which nitro_attest pins).
/// - `SevSnp`: `evidence` is the raw report; `collateral` is the VCEK (or VLEK) certificate as
///   DER, or a PEM bundle `VCEK [ASK [ARK]]`. Without ASK/ARK the AMD roots built into the `sev`
///   crate (Milan, Genoa, Turin) are used; a supplied ARK must be one of them.
///
/// JSON, bytes as hex: `{"kind":"dcap","evidence":"03000200…","collateral":"7b22…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub kind: EvidenceKind,
    #[serde(with = "hex_bytes")]
    pub evidence: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub collateral: Vec<u8>,
}

impl Evidence {
    /// Reads evidence from its JSON form; refuses more than [`MAX_EVIDENCE_BYTES`] before parsing.
    pub fn decode(bytes: &[u8]) -> Result<Self, TeeError> {
        if bytes.len() > MAX_EVIDENCE_BYTES {
            return Err(TeeError::TooLarge {
                len: bytes.len(),
                max: MAX_EVIDENCE_BYTES,
            });
        }
        serde_json::from_slice(bytes).map_err(|e| TeeError::Malformed(format!("evidence: {e}")))
    }

    /// The JSON form [`Evidence::decode`] reads.
    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: a struct of an enum and two strings always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Serde for bytes as a hex string: compact in JSON and readable in logs.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

/// A TCB (trusted computing base) verdict, declared worst to best so that `<` reads "worse than".
///
/// These are Intel's statuses (DCAP). Nitro and SEV-SNP give no verdict offline: their evidence
/// maps to `UpToDate` once its chain verifies, so a policy's `min_tcb` constrains DCAP only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TcbStatus {
    /// The platform's keys are compromised. dcap-qvl refuses such quotes outright.
    Revoked,
    OutOfDateConfigurationNeeded,
    OutOfDate,
    /// TDX 1.5: the TD launched on an out-of-date TCB (and needs configuration); relaunch it.
    #[serde(rename = "TDRelaunchAdvisedConfigurationNeeded")]
    TdRelaunchAdvisedConfigurationNeeded,
    /// TDX 1.5: the TD launched on an out-of-date TCB that has since been updated; relaunch it.
    #[serde(rename = "TDRelaunchAdvised")]
    TdRelaunchAdvised,
    #[serde(rename = "ConfigurationAndSWHardeningNeeded")]
    ConfigurationAndSwHardeningNeeded,
    ConfigurationNeeded,
    #[serde(rename = "SWHardeningNeeded")]
    SwHardeningNeeded,
    UpToDate,
}

impl TcbStatus {
    /// Intel's name of the status (what collateral and dcap-qvl print).
    pub fn intel_name(self) -> &'static str {
        match self {
            TcbStatus::Revoked => "Revoked",
            TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbStatus::OutOfDate => "OutOfDate",
            TcbStatus::TdRelaunchAdvisedConfigurationNeeded => {
                "TDRelaunchAdvisedConfigurationNeeded"
            }
            TcbStatus::TdRelaunchAdvised => "TDRelaunchAdvised",
            TcbStatus::ConfigurationAndSwHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
            TcbStatus::SwHardeningNeeded => "SWHardeningNeeded",
            TcbStatus::UpToDate => "UpToDate",
        }
    }

    /// The status Intel calls `name`, if any.
    pub fn from_intel_name(name: &str) -> Option<Self> {
        const ALL: [TcbStatus; 9] = [
            TcbStatus::Revoked,
            TcbStatus::OutOfDateConfigurationNeeded,
            TcbStatus::OutOfDate,
            TcbStatus::TdRelaunchAdvisedConfigurationNeeded,
            TcbStatus::TdRelaunchAdvised,
            TcbStatus::ConfigurationAndSwHardeningNeeded,
            TcbStatus::ConfigurationNeeded,
            TcbStatus::SwHardeningNeeded,
            TcbStatus::UpToDate,
        ];
        ALL.into_iter().find(|status| status.intel_name() == name)
    }
}

impl fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.intel_name())
    }
}

/// The measurements a TEE vouches for, per platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Measurements {
    /// An SGX enclave: its code and data (MRENCLAVE) and its signer's key (MRSIGNER).
    Sgx {
        mrenclave: [u8; 32],
        mrsigner: [u8; 32],
    },
    /// A TDX guest: its initial image (MRTD) and run-time registers RTMR0..3 (firmware
    /// configuration, kernel and command line, application).
    Tdx { mrtd: [u8; 48], rtmr: [[u8; 48]; 4] },
    /// A Nitro enclave's PCRs by index (all-zero PCRs left out, as nitro_attest does): PCR0 is
    /// the enclave image, PCR1 the kernel, PCR2 the application, PCR8 the signing certificate.
    Nitro { pcrs: BTreeMap<u16, Vec<u8>> },
    /// An SEV-SNP guest's launch digest (MEASUREMENT).
    SevSnp { measurement: [u8; 48] },
}

impl Measurements {
    /// The platform's name, as the [`Policy`] field that lists its allowed measurements.
    pub fn platform(&self) -> &'static str {
        match self {
            Measurements::Sgx { .. } => "sgx",
            Measurements::Tdx { .. } => "tdx",
            Measurements::Nitro { .. } => "nitro",
            Measurements::SevSnp { .. } => "sev_snp",
        }
    }

    /// The value a policy lists, lowercase hex: SGX MRENCLAVE; TDX MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖
    /// RTMR3 (the whole boot chain, not only the firmware); Nitro PCR0 (empty when absent, which
    /// never matches: a debug enclave's PCRs are all zero); SEV-SNP MEASUREMENT.
    pub fn policy_value(&self) -> String {
        match self {
            Measurements::Sgx { mrenclave, .. } => hex::encode(mrenclave),
            Measurements::Tdx { mrtd, rtmr } => {
                let mut all = mrtd.to_vec();
                for register in rtmr {
                    all.extend_from_slice(register);
                }
                hex::encode(all)
            }
            Measurements::Nitro { pcrs } => pcrs.get(&0).map(hex::encode).unwrap_or_default(),
            Measurements::SevSnp { measurement } => hex::encode(measurement),
        }
    }
}

/// What a verified piece of evidence says, before the policy is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attested {
    pub kind: EvidenceKind,
    pub measurements: Measurements,
    /// Intel's verdict for DCAP; `UpToDate` for Nitro and SEV-SNP whose chain verified.
    pub tcb_status: TcbStatus,
    /// The data the TEE signed on the guest's behalf: REPORTDATA (64 bytes) for SGX, TDX and
    /// SEV-SNP; `user_data`, else `nonce`, else nothing for Nitro.
    pub report_data: Vec<u8>,
    /// Unix seconds: the Nitro document's time; the DCAP collateral's (oldest) issue date;
    /// `None` for SEV-SNP, whose reports carry no time.
    pub issued_at: Option<u64>,
}

/// A project's TEE policy, deserialised from TOML or JSON by the caller:
///
/// ```toml
/// sgx = ["33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"]
/// min_tcb = "SWHardeningNeeded"
/// max_age_secs = 2592000
/// ```
///
/// A platform with an empty list is not allowed at all. Unknown fields are refused, so that a
/// misspelt field cannot silently loosen the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Allowed SGX enclaves: MRENCLAVE, hex (32 bytes).
    #[serde(default)]
    pub sgx: Vec<String>,
    /// Allowed TDX guests: MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3, hex (240 bytes).
    #[serde(default)]
    pub tdx: Vec<String>,
    /// Allowed Nitro enclaves: PCR0, hex (48 bytes with SHA-384).
    #[serde(default)]
    pub nitro: Vec<String>,
    /// Allowed SEV-SNP guests: MEASUREMENT, hex (48 bytes).
    #[serde(default)]
    pub sev_snp: Vec<String>,
    /// Worst TCB status accepted.
    pub min_tcb: TcbStatus,
    /// Oldest evidence accepted, in seconds, where the evidence carries a time (see the module
    /// documentation for what "time" is per kind).
    pub max_age_secs: u64,
}

impl Policy {
    /// The allowed measurements of a platform ([`Measurements::platform`]).
    fn allowed(&self, platform: &str) -> &[String] {
        match platform {
            "sgx" => self.sgx.as_slice(),
            "tdx" => self.tdx.as_slice(),
            "nitro" => self.nitro.as_slice(),
            "sev_snp" => self.sev_snp.as_slice(),
            _ => &[],
        }
    }

    /// Whether any platform of `kind` is allowed; checked before the costly stage 1.
    fn allows_kind(&self, kind: EvidenceKind) -> bool {
        fn listed(entries: &[String]) -> bool {
            entries.iter().any(|entry| !normalise(entry).is_empty())
        }
        match kind {
            EvidenceKind::Dcap => listed(&self.sgx) || listed(&self.tdx),
            EvidenceKind::Nitro => listed(&self.nitro),
            EvidenceKind::SevSnp => listed(&self.sev_snp),
        }
    }

    /// Refuses entries that can never match (not hex, or not a measurement's length), so that a
    /// typo is caught when the policy is registered rather than when every report is refused.
    pub fn validate(&self) -> Result<(), TeeError> {
        let lists: [(&str, &[String], &[usize]); 4] = [
            ("sgx", self.sgx.as_slice(), &[32][..]),
            ("tdx", self.tdx.as_slice(), &[240][..]),
            ("nitro", self.nitro.as_slice(), &[32, 48, 64][..]),
            ("sev_snp", self.sev_snp.as_slice(), &[48][..]),
        ];
        for (platform, entries, lengths) in lists {
            for entry in entries {
                let bytes = hex::decode(normalise(entry)).map_err(|e| {
                    TeeError::BadPolicy(format!("{platform} entry {entry:?} is not hex: {e}"))
                })?;
                if !lengths.contains(&bytes.len()) {
                    return Err(TeeError::BadPolicy(format!(
                        "{platform} entry {entry:?} is {} bytes, expected {lengths:?}",
                        bytes.len()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Stage 2: is this attested platform allowed, with this measurement, TCB and age, and is
    /// its report bound to `binding` ([`report_data_for`] of the task and output)? The binding
    /// is checked last so that each refusal names the first rule broken.
    pub fn check(&self, attested: &Attested, binding: &[u8; 32], now: u64) -> Result<(), TeeError> {
        let platform = attested.measurements.platform();
        let allowed = self.allowed(platform);
        if allowed.iter().all(|entry| normalise(entry).is_empty()) {
            return Err(TeeError::KindNotAllowed { kind: platform });
        }
        let measurement = attested.measurements.policy_value();
        if measurement.is_empty() || !allowed.iter().any(|entry| normalise(entry) == measurement) {
            return Err(TeeError::MeasurementNotAllowed {
                kind: platform,
                measurement,
            });
        }
        if attested.tcb_status < self.min_tcb {
            return Err(TeeError::TcbTooLow {
                got: attested.tcb_status,
                min: self.min_tcb,
            });
        }
        if let Some(issued_at) = attested.issued_at {
            // A time ahead of ours is clock skew, not staleness: its age counts as zero.
            let age = now.saturating_sub(issued_at);
            if age > self.max_age_secs {
                return Err(TeeError::Stale {
                    age,
                    max: self.max_age_secs,
                });
            }
        }
        match attested.report_data.get(..32) {
            Some(prefix) if prefix == binding.as_slice() => Ok(()),
            _ => Err(TeeError::BindingMismatch),
        }
    }
}

/// A policy entry as compared: trimmed, without `0x`, lowercase.
fn normalise(entry: &str) -> String {
    let entry = entry.trim();
    entry
        .strip_prefix("0x")
        .unwrap_or(entry)
        .to_ascii_lowercase()
}

/// Why evidence was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TeeError {
    /// The evidence or its collateral cannot be parsed.
    #[error("malformed evidence: {0}")]
    Malformed(String),
    #[error("evidence is {len} bytes, more than {max}")]
    TooLarge { len: usize, max: usize },
    /// A signature or certificate chain does not verify (or does not end at the vendor's root).
    #[error("signature or certificate chain does not verify: {0}")]
    BadSignature(String),
    /// The collateral or a certificate is not valid at the verification time.
    #[error("collateral or certificate not valid at this time: {0}")]
    CollateralExpired(String),
    /// The chain verifies but the vendor's rules refuse the evidence: a debug enclave or guest,
    /// a revoked platform, a quoting enclave Intel does not list, no matching TCB level.
    #[error("refused by the vendor's rules: {0}")]
    Refused(String),
    /// The policy lists no measurement for this platform (`sgx`, `tdx`, `nitro`, `sev_snp`, or
    /// `dcap` for a DCAP quote refused before it is parsed).
    #[error("{kind} evidence is not allowed by the policy")]
    KindNotAllowed { kind: &'static str },
    #[error("{kind} measurement {measurement} is not allowed by the policy")]
    MeasurementNotAllowed {
        kind: &'static str,
        measurement: String,
    },
    #[error("TCB status {got} is worse than the policy's minimum {min}")]
    TcbTooLow { got: TcbStatus, min: TcbStatus },
    #[error("evidence is {age} s old; the policy accepts {max} s")]
    Stale { age: u64, max: u64 },
    /// The report data does not start with this task's binding: the report was made for
    /// another task or another output.
    #[error("report data is not bound to this task and output")]
    BindingMismatch,
    /// A policy entry can never match ([`Policy::validate`]).
    #[error("bad policy: {0}")]
    BadPolicy(String),
}

/// What a TEE's answer is bound to besides its output: where and for which task it ran, which
/// code, over which inputs.
#[derive(Clone, Copy, Debug)]
pub struct TaskContext<'a> {
    pub chain_id: u64,
    /// The `TaskRouter` the task was opened at.
    pub router: [u8; 20],
    pub project_id: u64,
    pub task_id: [u8; 32],
    /// keccak256 of the code as the prover was handed it.
    pub code_hash: [u8; 32],
    /// The inputs in the order the prover got them.
    pub payloads: &'a [Vec<u8>],
}

impl TaskContext<'_> {
    /// `sha256("conclave-tee-task-v1" ‖ chain id ‖ router ‖ project id ‖ task id ‖ code hash ‖
    /// sha256(for each payload: its length (u64, big-endian) ‖ the payload))`: fixed-length
    /// parts and length-prefixed inputs, so no two contexts hash the same bytes.
    pub fn digest(&self) -> [u8; 32] {
        let mut inputs = Sha256::new();
        for payload in self.payloads {
            inputs.update((payload.len() as u64).to_be_bytes());
            inputs.update(payload);
        }
        let mut hasher = Sha256::new();
        hasher.update(b"conclave-tee-task-v1");
        hasher.update(self.chain_id.to_be_bytes());
        hasher.update(self.router);
        hasher.update(self.project_id.to_be_bytes());
        hasher.update(self.task_id);
        hasher.update(self.code_hash);
        hasher.update(inputs.finalize());
        hasher.finalize().into()
    }
}

/// The 32 bytes a TEE must put at the start of its report data (Nitro: `user_data`, else
/// `nonce`): `sha256("conclave-tee-v1" ‖ context ‖ sha256(output))`, `context` being the task's
/// [`TaskContext::digest`]. All three parts have fixed lengths, so no two (context, output) pairs
/// hash the same input.
pub fn report_data_for(context: &[u8; 32], output: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(BINDING_DOMAIN);
    hasher.update(context);
    hasher.update(Sha256::digest(output));
    hasher.finalize().into()
}

/// Stage 1: the signature chain and the collateral, at time `now` (unix seconds). Offline:
/// nothing is fetched.
pub fn verify_evidence(evidence: &Evidence, now: u64) -> Result<Attested, TeeError> {
    let len = evidence
        .evidence
        .len()
        .saturating_add(evidence.collateral.len());
    if len > MAX_EVIDENCE_BYTES {
        return Err(TeeError::TooLarge {
            len,
            max: MAX_EVIDENCE_BYTES,
        });
    }
    match evidence.kind {
        EvidenceKind::Dcap => dcap::verify(&evidence.evidence, &evidence.collateral, now),
        EvidenceKind::Nitro => nitro::verify(&evidence.evidence, &evidence.collateral, now),
        EvidenceKind::SevSnp => snp::verify(&evidence.evidence, &evidence.collateral, now),
    }
}

/// Both stages: what a member runs before signing a `tee` task's result. A kind the policy does
/// not allow is refused before any signature is checked.
pub fn verify(
    evidence: &Evidence,
    policy: &Policy,
    binding: &[u8; 32],
    now: u64,
) -> Result<Attested, TeeError> {
    if !policy.allows_kind(evidence.kind) {
        return Err(TeeError::KindNotAllowed {
            kind: evidence.kind.name(),
        });
    }
    let attested = verify_evidence(evidence, now)?;
    policy.check(&attested, binding, now)?;
    Ok(attested)
}

/// Unix seconds of a UTC calendar time, or `None` if a field is out of range or the time is
/// before 1970. Shared by the DCAP (RFC 3339) and SEV-SNP (X.509) date readers.
fn unix_time(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<u64> {
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days
        .checked_mul(86_400)?
        .checked_add(i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))?;
    u64::try_from(seconds).ok()
}

/// The decimal number in `bytes`, if it is all ASCII digits (at most 9 of them).
fn digits(bytes: Option<&[u8]>) -> Option<u32> {
    let bytes = bytes?;
    if bytes.is_empty() || bytes.len() > 9 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        bytes
            .iter()
            .fold(0u32, |acc, digit| acc * 10 + u32::from(digit - b'0')),
    )
}
