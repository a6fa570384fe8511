//! A project's program: Tally source whose keccak256 the chain pins as `programHash`
//! (`docs/programs.md`). Nodes compile it deterministically. Inputs come from devices (one slot
//! each) and from the project owner (one slot per task); outputs are ABI-encoded as one 32-byte
//! word each: `int256` for integers and fixed point (the scaled value), `bool` for booleans, and
//! for a private output the field element value + mask (big-endian), which only the receiver,
//! holding the mask, can read (`crate::receiver`).

use alloy::primitives::{B256, keccak256};
use conclave_mpc::Fp;
use conclave_mpc::lang::{FieldSpec, Kind, OutputValue, Parsed, PartyInputs};
pub use conclave_provers::Opened;

pub use crate::manifest::{ByopSpec, ManifestError, Runner, WasmSpec};
use conclave_chain::contracts::ProverKind;

/// Largest number of device slots a task may take.
pub const MAX_INPUTS: u32 = 10_000;

/// Largest record a device or the owner sends, in bits: its sealed shares (three field elements
/// a bit) must fit one envelope, and its masked bits one HTTP body for every member.
pub const MAX_RECORD_BITS: u32 = 256;

/// Largest amount of preprocessed material (triples and random bits) one task may ask for: it
/// bounds a member's storage and the MASCOT work a registered program can demand.
pub const MAX_TASK_MATERIAL: u64 = 400_000;

/// Most outputs a program may have: TaskRouter takes results of up to 4096 bytes, one 32-byte
/// word per output.
pub const MAX_OUTPUTS: usize = 128;

/// Largest program source a node fetches or stores.
pub const MAX_SOURCE: usize = conclave_mpc::lang::lexer::MAX_SOURCE;

/// A program a node can run, checked once when loaded.
#[derive(Clone, Debug)]
pub struct Program {
    pub source: String,
    pub hash: B256,
    pub body: Body,
    /// The most device slots a task takes (`devices N;`).
    pub max_inputs: u32,
    pub window_secs: u64,
    /// The fields of a device's record, in the order it encodes them.
    pub device_fields: Vec<FieldSpec>,
    /// Bits of one record: the sum of its fields' widths.
    pub record_bits: u32,
    /// The fields of the owner's parameters, and their bits (0 for a program without them).
    pub owner_fields: Vec<FieldSpec>,
    pub owner_bits: u32,
    /// The X25519 key private outputs are sealed to.
    pub receiver: Option<[u8; 32]>,
    pub outputs: Vec<OutputField>,
    /// Triples and random bits the program itself consumes with every slot filled (one triple
    /// per private output masks it).
    pub program_triples: u64,
    pub program_bits: u64,
}

/// What a program runs: a Tally program by SPDZ, or a WebAssembly module named by a manifest.
#[derive(Clone, Debug)]
pub enum Body {
    Tally(Parsed),
    Wasm(WasmSpec),
}

/// One output of a program as the chain carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputField {
    pub name: String,
    pub kind: Kind,
    pub private: bool,
}

/// Why a program was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("the program does not compile:\n{0}")]
    Compile(String),
    #[error("the program must declare `devices N;` and `window S;`")]
    MissingHeader,
    #[error("{0} outputs, more than the {MAX_OUTPUTS} a result on chain holds")]
    TooManyOutputs(usize),
    #[error("the receiver key is not a usable X25519 public key")]
    BadReceiver,
    #[error("a record of {0} bits exceeds the limit of {MAX_RECORD_BITS}")]
    RecordTooWide(u32),
    #[error(
        "the program needs {0} triples and random bits, more than a task's {MAX_TASK_MATERIAL}"
    )]
    TooLarge(u64),
    #[error("program hash {found} does not match keccak256 of the source {expected}")]
    HashMismatch { expected: B256, found: B256 },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("this program does not run under prover kind {0}")]
    WrongProver(u8),
    #[error(
        "the halo2 prover takes programs without owner inputs or private outputs (a proof has no receiver to hide a value from its prover)"
    )]
    NotProvable,
}

/// What a task of a program asks of devices under one prover kind, as its `TaskInfo` carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskShape {
    /// Bits of a device's secret-shared record (`spdz`); 0 when records are sealed whole.
    pub input_bits: u32,
    pub owner_bits: u32,
    /// Bytes of a record sealed whole to every seat (`halo2`, `wasm`); 0 for `spdz`.
    pub record_bytes: u32,
}

impl Program {
    /// Compiles and checks `source` (Tally, or a wasm manifest) for running on the mesh.
    pub fn from_source(source: &str) -> Result<Program, ProgramError> {
        if let Some(spec) = WasmSpec::parse(source) {
            return Ok(Program::wasm(source, spec?));
        }
        let parsed =
            Parsed::new(source).map_err(|d| ProgramError::Compile(d.render("program", source)))?;
        let mut inputs = PartyInputs::new(2);
        let lowered = parsed
            .lower(2, None, &mut inputs)
            .map_err(|d| ProgramError::Compile(d.render("program", source)))?;
        let (Some(window_secs), true) = (lowered.window_secs, lowered.max_devices > 0) else {
            return Err(ProgramError::MissingHeader);
        };
        let record_bits: u32 = lowered.device_fields.iter().map(|f| f.bits).sum();
        let owner_bits: u32 = lowered.owner_fields.iter().map(|f| f.bits).sum();
        if record_bits == 0 {
            return Err(ProgramError::Compile(
                "the program reads no device input".into(),
            ));
        }
        if let Some(wide) = [record_bits, owner_bits]
            .into_iter()
            .find(|b| *b > MAX_RECORD_BITS)
        {
            return Err(ProgramError::RecordTooWide(wide));
        }
        if lowered.outputs.len() > MAX_OUTPUTS {
            return Err(ProgramError::TooManyOutputs(lowered.outputs.len()));
        }
        let receiver = parsed.receiver();
        if receiver.is_some_and(|k| crate::envelope::check_public_key(&k).is_err()) {
            return Err(ProgramError::BadReceiver);
        }
        let private_outputs = lowered.outputs.iter().filter(|o| o.private).count() as u64;
        // A task runs over the well-formed records that arrived, at least two.
        if lowered.max_devices >= 2 {
            parsed
                .lower(2, Some(2), &mut PartyInputs::new(2))
                .map_err(|d| ProgramError::Compile(d.render("program (for 2 devices)", source)))?;
        }
        let need = lowered.circuit.requirements();
        let max_inputs = lowered.max_devices as u32;
        let program_triples = need.triples as u64 + private_outputs;
        let total = u64::from(max_inputs) * u64::from(record_bits)
            + u64::from(owner_bits)
            + program_triples
            + need.bits as u64;
        if total > MAX_TASK_MATERIAL {
            return Err(ProgramError::TooLarge(total));
        }
        Ok(Program {
            source: source.to_string(),
            hash: keccak256(source.as_bytes()),
            body: Body::Tally(parsed),
            max_inputs,
            window_secs,
            record_bits,
            owner_bits,
            receiver,
            outputs: lowered
                .outputs
                .iter()
                .map(|o| OutputField {
                    name: o.name.clone(),
                    kind: o.kind,
                    private: o.private,
                })
                .collect(),
            device_fields: lowered.device_fields,
            owner_fields: lowered.owner_fields,
            program_triples,
            program_bits: need.bits as u64,
        })
    }

    /// A wasm manifest's program: no fields, no preprocessing; its output is the module's.
    fn wasm(source: &str, spec: WasmSpec) -> Program {
        Program {
            source: source.to_string(),
            hash: keccak256(source.as_bytes()),
            max_inputs: spec.devices,
            window_secs: spec.window_secs,
            device_fields: Vec::new(),
            record_bits: 0,
            owner_fields: Vec::new(),
            owner_bits: 0,
            receiver: None,
            outputs: Vec::new(),
            program_triples: 0,
            program_bits: 0,
            body: Body::Wasm(spec),
        }
    }

    /// The task shape of this program under prover kind `kind` (as the chain numbers it): a
    /// Tally program runs under `spdz` (records secret-shared bit by bit) or `halo2` (records
    /// sealed whole to every seat, as their bits packed in bytes), a wasm manifest under `wasm`.
    pub fn task_shape(&self, kind: u8) -> Result<TaskShape, ProgramError> {
        match (&self.body, kind) {
            (Body::Tally(_), k) if k == ProverKind::Spdz as u8 => Ok(TaskShape {
                input_bits: self.record_bits,
                owner_bits: self.owner_bits,
                record_bytes: 0,
            }),
            (Body::Tally(_), k) if k == ProverKind::Halo2 as u8 => {
                if self.owner_bits > 0 || self.outputs.iter().any(|o| o.private) {
                    return Err(ProgramError::NotProvable);
                }
                Ok(TaskShape {
                    input_bits: 0,
                    owner_bits: 0,
                    record_bytes: self.record_bits.div_ceil(8),
                })
            }
            (Body::Wasm(spec), k) if k == spec.kind() as u8 => Ok(TaskShape {
                input_bits: 0,
                owner_bits: 0,
                record_bytes: spec.record_bytes,
            }),
            _ => Err(ProgramError::WrongProver(kind)),
        }
    }

    /// The output words a project of prover kind `kind` registers (`ProjectRegistry`
    /// `outputWords`): the program's outputs under `halo2`, none otherwise.
    pub fn proof_output_words(&self, kind: u8) -> u16 {
        if kind == ProverKind::Halo2 as u8 {
            self.outputs.len() as u16
        } else {
            0
        }
    }

    /// A record's bits packed eight to a byte, least significant first (how a `halo2` task's
    /// record is sealed).
    pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
        bits.chunks(8)
            .map(|byte| {
                byte.iter()
                    .enumerate()
                    .fold(0u8, |acc, (i, b)| acc | (u8::from(*b) << i))
            })
            .collect()
    }

    /// A `halo2` record's values from its packed bits (the spare bits of the last byte are
    /// ignored, so every record of the right length reads as values of the fields' types, and
    /// a range check decides what counts); `None` for another length.
    pub fn unpack_record(&self, packed: &[u8]) -> Option<Vec<i128>> {
        let width = self.record_bits as usize;
        if packed.len() != width.div_ceil(8) {
            return None;
        }
        let bits: Vec<bool> = (0..width)
            .map(|i| packed[i / 8] >> (i % 8) & 1 == 1)
            .collect();
        let mut at = 0;
        self.device_fields
            .iter()
            .map(|f| {
                let value = f.decode(&bits[at..at + f.bits as usize]);
                at += f.bits as usize;
                value
            })
            .collect()
    }

    /// Checks `source` against the hash the chain pins, then loads it.
    pub fn from_chain(source: &str, hash: B256) -> Result<Program, ProgramError> {
        let expected = keccak256(source.as_bytes());
        if expected != hash {
            return Err(ProgramError::HashMismatch {
                expected,
                found: hash,
            });
        }
        Program::from_source(source)
    }

    /// The bits a device sends for its record (one value per field, as a real number), least
    /// significant first, field by field.
    pub fn record_bits(&self, values: &[f64]) -> Result<Vec<bool>, RecordError> {
        encode_record(&self.device_fields, values)
    }

    /// The bits the owner sends for its parameters, like a device's record.
    pub fn owner_record_bits(&self, values: &[f64]) -> Result<Vec<bool>, RecordError> {
        encode_record(&self.owner_fields, values)
    }
    /// The field names of a record, for messages.
    pub fn field_names(&self) -> Vec<String> {
        self.device_fields.iter().map(|f| f.name.clone()).collect()
    }

    /// Reads published output bytes as this program's outputs.
    pub fn decode_outputs(&self, bytes: &[u8]) -> Option<Vec<Opened>> {
        decode_outputs(&self.outputs, bytes)
    }

    /// A program of sum and count over one signed integer input of `bits` bits (the whole type
    /// is its range): the output has the layout of [`Average`].
    pub fn sum_source(max_inputs: u32, window_secs: u64, bits: u32) -> String {
        format!(
            "// The sum and count of the devices' readings.\ndevices {max_inputs};\nwindow {window_secs};\n\ninput reading: int{bits} from devices;\n\noutput sum = sum(reading);\noutput counted = sum(valid);\n"
        )
    }
}

/// The bits of a record of `fields` (one real number each), least significant first.
fn encode_record(fields: &[FieldSpec], values: &[f64]) -> Result<Vec<bool>, RecordError> {
    if values.len() != fields.len() {
        return Err(RecordError::FieldCount {
            expected: fields.len(),
            got: values.len(),
        });
    }
    let mut bits = Vec::new();
    for (f, v) in fields.iter().zip(values) {
        if !v.is_finite() {
            return Err(RecordError::OutOfRange {
                field: f.name.clone(),
                value: *v,
            });
        }
        let encoded = f.encode(f.scale(*v)).map_err(|_| RecordError::OutOfRange {
            field: f.name.clone(),
            value: *v,
        })?;
        bits.extend(encoded);
    }
    Ok(bits)
}

/// Why a device's record cannot go into a task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("the program's record has {expected} fields, {got} values were given")]
    FieldCount { expected: usize, got: usize },
    #[error("{value} does not fit the type of field {field}")]
    OutOfRange { field: String, value: f64 },
}

/// One 32-byte ABI word per output: two's complement for numbers, 0 or 1 for booleans, and the
/// masked field element (big-endian) for a private output.
pub fn encode_outputs(values: &[Opened]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 * values.len());
    for v in values {
        match v {
            Opened::Public(v) => {
                let fill = if v.scaled < 0 { 0xff } else { 0 };
                out.extend([fill; 16]);
                out.extend(v.scaled.to_be_bytes());
            }
            Opened::Masked { masked, .. } => {
                let mut word = masked.to_bytes();
                word.reverse();
                out.extend(word);
            }
        }
    }
    out
}

/// The outputs named in `specs` from published bytes, if they have the right layout.
pub fn decode_outputs(specs: &[OutputField], bytes: &[u8]) -> Option<Vec<Opened>> {
    if bytes.len() != 32 * specs.len() {
        return None;
    }
    specs
        .iter()
        .zip(bytes.chunks_exact(32))
        .map(|(spec, word)| {
            if spec.private {
                let mut le: [u8; 32] = word.try_into().expect("32 bytes");
                le.reverse();
                return Some(Opened::Masked {
                    name: spec.name.clone(),
                    kind: spec.kind,
                    masked: Fp::from_bytes(&le).ok()?,
                });
            }
            let (high, low) = word.split_at(16);
            let scaled = i128::from_be_bytes(low.try_into().expect("16 bytes"));
            let fill = if scaled < 0 { 0xff } else { 0 };
            if high.iter().any(|b| *b != fill)
                || (spec.kind == Kind::Bool && !(0..=1).contains(&scaled))
            {
                return None;
            }
            Some(Opened::Public(OutputValue {
                name: spec.name.clone(),
                kind: spec.kind,
                private: false,
                scaled,
            }))
        })
        .collect()
}

/// The outputs of a [`Program::sum_source`] program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Average {
    pub sum: i64,
    pub count: u64,
}

impl Average {
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// `abi.encode(int256 sum, uint256 count)`.
    pub fn encode(&self) -> Vec<u8> {
        let value = |name: &str, scaled: i128| {
            Opened::Public(OutputValue {
                name: name.into(),
                kind: Kind::Int,
                private: false,
                scaled,
            })
        };
        encode_outputs(&[
            value("sum", self.sum.into()),
            value("counted", self.count.into()),
        ])
    }

    pub fn decode(bytes: &[u8]) -> Option<Average> {
        let field = |name: &str| OutputField {
            name: name.into(),
            kind: Kind::Int,
            private: false,
        };
        let v = decode_outputs(&[field("sum"), field("counted")], bytes)?;
        Some(Average {
            sum: i64::try_from(v[0].value()?.scaled).ok()?,
            count: u64::try_from(v[1].value()?.scaled).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_load_and_bad_ones_are_refused() {
        let source = Program::sum_source(20, 30, 32);
        let p = Program::from_chain(&source, keccak256(source.as_bytes())).unwrap();
        assert_eq!((p.max_inputs, p.window_secs, p.record_bits), (20, 30, 32));
        assert!(matches!(
            Program::from_chain(&source, B256::ZERO),
            Err(ProgramError::HashMismatch { .. })
        ));
        for (bad, why) in [
            (
                "devices 3;\ninput x: int8 from devices;\noutput s = sum(x);",
                "no window",
            ),
            (
                "devices 3; window 5;\ninput x: int8 from devices;\noutput s = nope;",
                "compile",
            ),
            (
                "devices 3; window 5;\ninput x: int8 from devices;\noutput private s = sum(x);",
                "private output without a receiver",
            ),
            (
                &format!(
                    "devices 3; window 5;\nreceiver \"{}\";\ninput x: int8 from devices;\noutput private s = sum(x);",
                    "00".repeat(32)
                ),
                "low-order receiver key",
            ),
            (
                "devices 3; window 5;\ninput x: int8 from devices;\ninput w: int64[5] from owner;\noutput s = sum(x);",
                "wide owner record",
            ),
            (
                "devices 3; window 5;\ninput x: int64[5] from devices;\noutput s = x[0][0];",
                "wide",
            ),
            (
                "devices 10000; window 5;\ninput x: int64 from devices;\noutput s = sum(x);",
                "large",
            ),
        ] {
            assert!(Program::from_source(bad).is_err(), "{why}");
        }
        let owner_and_private = format!(
            "devices 3; window 5;\nreceiver \"{}\";\ninput x: int8 from devices;\ninput w: int8 from owner;\noutput private s = sum(x) * w;\noutput n = sum(valid);",
            hex::encode(crate::envelope::SecretKey::generate().public())
        );
        let p = Program::from_source(&owner_and_private).unwrap();
        assert_eq!((p.owner_bits, p.outputs.len()), (8, 2));
        assert!(p.outputs[0].private && !p.outputs[1].private);
        assert!(p.receiver.is_some());
    }

    #[test]
    fn outputs_round_trip_as_abi_words() {
        let avg = Average { sum: -42, count: 7 };
        assert_eq!(Average::decode(&avg.encode()), Some(avg));
        assert_eq!(Average::decode(b"short"), None);
        let mut bad = avg.encode();
        bad[3] = 1;
        assert_eq!(Average::decode(&bad), None);
    }

    #[test]
    fn records_encode_each_field_offset_by_half_its_range() {
        let p = Program::from_source(&Program::sum_source(2, 5, 8)).unwrap();
        let value = |bits: &[bool]| {
            bits.iter()
                .enumerate()
                .map(|(j, &b)| i64::from(b) << j)
                .sum::<i64>()
        };
        assert_eq!(value(&p.record_bits(&[0.0]).unwrap()), 128);
        assert_eq!(value(&p.record_bits(&[-128.0]).unwrap()), 0);
        assert_eq!(value(&p.record_bits(&[127.0]).unwrap()), 255);
        assert!(p.record_bits(&[128.0]).is_err());
        assert!(p.record_bits(&[f64::NAN]).is_err());
        assert!(p.record_bits(&[1.0, 2.0]).is_err());
    }
}
