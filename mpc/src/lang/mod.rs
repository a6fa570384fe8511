//! Tally, Conclave's language for private computation, compiled deterministically to the circuit
//! IR. `docs/programs.md` has the grammar and the semantics; in short:
//!
//! - [`lexer`], [`parser`] → [`ast`]: the syntax (first syntax error stops);
//! - [`compile`]: type checking and lowering in one pass, collecting every error it can;
//! - [`diag`]: errors with spans, rendered like rustc's;
//! - [`Program`]: a compiled program with its input fields and outputs, input encoding and the
//!   plaintext evaluation (the reference semantics every backend must match).

pub mod ast;
pub mod compile;
pub mod diag;
pub mod lexer;
pub mod parser;

use crate::circuit::{Circuit, CircuitBuilder, CircuitError, Wire};
use crate::field::Fp;
use crate::prep::Requirements;
use crate::schedule::Plan;
pub use compile::{FieldSpec, InputWires, Kind, OutputSpec, Provider};
use diag::{Diagnostic, Diagnostics, Span};

/// Most device slots a program may declare.
pub const MAX_DEVICES: i128 = 10_000;

/// Longest input window a program may declare, in seconds.
pub const MAX_WINDOW_SECS: i128 = 86_400;

/// A parsed program, ready to be compiled for any committee and slot count.
#[derive(Clone, Debug)]
pub struct Parsed {
    items: Vec<ast::Item>,
    receiver: Option<[u8; 32]>,
}

impl Parsed {
    pub fn new(source: &str) -> Result<Parsed, Diagnostics> {
        let tokens = lexer::lex(source).map_err(|d| Diagnostics(vec![d]))?;
        let items = parser::parse(&tokens).map_err(|d| Diagnostics(vec![d]))?;
        // The slot count sizes everything the compiler builds, so it is checked first: one
        // literal, in range (the window alike).
        let mut errors = Vec::new();
        for (keyword, max) in [("devices", MAX_DEVICES), ("window", MAX_WINDOW_SECS)] {
            let mut seen = false;
            for item in &items {
                let e = match (keyword, item) {
                    ("devices", ast::Item::Devices(e)) | ("window", ast::Item::Window(e)) => e,
                    _ => continue,
                };
                if seen {
                    errors.push(Diagnostic::new(
                        e.span,
                        format!("`{keyword}` is declared twice"),
                    ));
                }
                seen = true;
                if !matches!(e.kind, ast::ExprKind::Int(n) if (1..=max).contains(&n)) {
                    errors.push(Diagnostic::new(
                        e.span,
                        format!("`{keyword}` takes a whole number from 1 to {max}"),
                    ));
                }
            }
        }
        let mut receiver = None;
        for item in &items {
            let ast::Item::Receiver { key, span } = item else {
                continue;
            };
            if receiver.is_some() {
                errors.push(Diagnostic::new(*span, "`receiver` is declared twice"));
            }
            match parse_key(key) {
                Some(k) => receiver = Some(k),
                None => errors.push(
                    Diagnostic::new(*span, "a receiver key is 64 hexadecimal digits")
                        .help("`conclave program receiver-key FILE` makes a key pair and prints the line to use"),
                ),
            }
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        Ok(Parsed { items, receiver })
    }

    /// The X25519 public key private outputs are sealed to (`receiver "…";`).
    pub fn receiver(&self) -> Option<[u8; 32]> {
        self.receiver
    }

    /// The most device slots the program declares (`devices N;`), if it says so literally.
    pub fn max_devices(&self) -> Option<usize> {
        self.items.iter().find_map(|i| match i {
            ast::Item::Devices(ast::Expr {
                kind: ast::ExprKind::Int(n),
                ..
            }) => usize::try_from(*n).ok(),
            _ => None,
        })
    }

    /// Compiles for `parties` committee members and `slots` device slots (the declared maximum
    /// when `None`), taking input bits from `inputs`.
    pub fn lower(
        &self,
        parties: usize,
        slots: Option<usize>,
        inputs: &mut dyn InputWires,
    ) -> Result<Lowered, Diagnostics> {
        self.lower_with(parties, slots, false, inputs)
    }

    /// [`Parsed::lower`], with a presence bit per slot when `presence` (a circuit for every
    /// slot of which a run fills only some: see [`Program::compile_for_all_slots`]).
    pub fn lower_with(
        &self,
        parties: usize,
        slots: Option<usize>,
        presence: bool,
        inputs: &mut dyn InputWires,
    ) -> Result<Lowered, Diagnostics> {
        let max = self.max_devices();
        let slots = slots.or(max).unwrap_or(0);
        if let Some(max) = max.filter(|m| slots > *m) {
            return Err(Diagnostics(vec![Diagnostic::new(
                Span::default(),
                format!("{slots} device slots, but the program takes at most {max}"),
            )]));
        }
        let l =
            compile::lower(&self.items, parties, slots, presence, inputs).map_err(Diagnostics)?;
        let mut errors = Vec::new();
        if !l.device_fields.is_empty() && l.devices.is_none() {
            errors.push(
                Diagnostic::new(
                    Span::default(),
                    "the program reads device inputs but does not say how many devices",
                )
                .help("add `devices N;` with N the most device slots a task takes"),
            );
        }
        if l.outputs.is_empty() {
            errors.push(Diagnostic::new(
                Span::default(),
                "the program has no output",
            ));
        }
        if self.receiver.is_none() && l.outputs.iter().any(|o| o.private) {
            errors.push(
                Diagnostic::new(
                    Span::default(),
                    "the program has private outputs but no receiver to seal them to",
                )
                .help("add `receiver \"<the receiver's X25519 public key, 64 hex digits>\";`"),
            );
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        Ok(Lowered {
            circuit: l.builder.build(),
            slots,
            max_devices: l.devices.map_or(0, |d| d.0 as usize),
            window_secs: l.window.map(|w| w.0),
            device_fields: l.device_fields,
            owner_fields: l.owner_fields,
            outputs: l.outputs,
            receiver: self.receiver,
            presence,
        })
    }
}

/// 32 bytes from 64 hexadecimal digits.
fn parse_key(hex: &str) -> Option<[u8; 32]> {
    let digits = hex.as_bytes();
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(key)
}

/// A program compiled for one committee size and slot count.
#[derive(Clone, Debug)]
pub struct Lowered {
    pub circuit: Circuit,
    /// Device slots this circuit reads.
    pub slots: usize,
    pub max_devices: usize,
    pub window_secs: Option<u64>,
    /// The fields of one device's record, in the order a device encodes them.
    pub device_fields: Vec<FieldSpec>,
    pub owner_fields: Vec<FieldSpec>,
    pub outputs: Vec<OutputSpec>,
    /// The X25519 key private outputs are sealed to.
    pub receiver: Option<[u8; 32]>,
    /// Whether each slot has a presence bit: its record's values are then followed by 1 (a
    /// device filled it) or 0 (none did; the slot is excluded as an invalid one).
    pub presence: bool,
}

/// The field index of a slot's presence bit in input layouts.
pub const PRESENCE_FIELD: usize = usize::MAX;

/// Input bits as input gates of the parties: slot i's device bits from party i mod n, the
/// owner's from party 0. For the evaluator and tests; the node feeds devices' masked bits.
#[derive(Clone, Debug, Default)]
pub struct PartyInputs {
    parties: usize,
    /// Per party, in its input order: whose field and which bit.
    pub layout: Vec<Vec<(Provider, usize, u32)>>,
}

impl PartyInputs {
    pub fn new(parties: usize) -> PartyInputs {
        PartyInputs {
            parties,
            layout: vec![Vec::new(); parties],
        }
    }
}

impl InputWires for PartyInputs {
    fn bits(
        &mut self,
        b: &mut CircuitBuilder,
        provider: Provider,
        field: usize,
        count: u32,
    ) -> Vec<Wire> {
        let party = match provider {
            Provider::Slot(i) => i % self.parties,
            Provider::Owner => 0,
        };
        (0..count)
            .map(|bit| {
                self.layout[party].push((provider, field, bit));
                b.input(party)
            })
            .collect()
    }
}

/// A program compiled with [`PartyInputs`]: runnable by the plaintext evaluator and, with the
/// same inputs, by the parties of an MPC session.
#[derive(Clone, Debug)]
pub struct Program {
    pub lowered: Lowered,
    pub inputs: PartyInputs,
}

/// Values for one run: per device slot its fields' scaled integers, and the owner's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputValues {
    pub devices: Vec<Vec<i128>>,
    pub owner: Vec<i128>,
}

/// Why inputs could not be encoded or a run evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("{got} device records for a program compiled for {expected} slots")]
    SlotCount { expected: usize, got: usize },
    #[error("a record has {got} fields, the program's has {expected}")]
    FieldCount { expected: usize, got: usize },
    #[error("{field} = {value} (scaled) does not fit its type of {bits} bits")]
    DoesNotFit {
        field: String,
        value: i128,
        bits: u32,
    },
    #[error(transparent)]
    Circuit(#[from] CircuitError),
    #[error("output {0} is not an integer of at most 127 bits")]
    BadOutput(String),
}

/// An output's value: its scaled integer and how to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputValue {
    pub name: String,
    pub kind: Kind,
    pub private: bool,
    pub scaled: i128,
}

impl std::fmt::Display for OutputValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Bool => write!(f, "{}", self.scaled != 0),
            Kind::Int => write!(f, "{}", self.scaled),
            Kind::Fixed(frac) => f.write_str(&fixed_to_decimal(self.scaled, frac)),
        }
    }
}

/// The exact decimal expansion of scaled / 2^frac.
pub fn fixed_to_decimal(scaled: i128, frac: u32) -> String {
    let sign = if scaled < 0 { "-" } else { "" };
    let v = scaled.unsigned_abs();
    let int = v >> frac;
    let mut rest = v & ((1u128 << frac) - 1);
    let mut digits = String::new();
    while rest != 0 {
        rest *= 10;
        digits.push(char::from(b'0' + (rest >> frac) as u8));
        rest &= (1u128 << frac) - 1;
    }
    if digits.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{digits}")
    }
}

impl FieldSpec {
    /// The bits a provider sends for `value` (the scaled integer): a boolean's one bit, any
    /// other value plus 2^(bits−1), least significant first.
    pub fn encode(&self, value: i128) -> Result<Vec<bool>, EvalError> {
        let half = 1i128 << (self.bits - 1);
        let offset = match self.kind {
            Kind::Bool => (value == 0 || value == 1).then_some(value),
            _ => (-half..half).contains(&value).then_some(value + half),
        };
        let offset = offset.ok_or(EvalError::DoesNotFit {
            field: self.name.clone(),
            value,
            bits: self.bits,
        })?;
        Ok((0..self.bits).map(|j| offset >> j & 1 == 1).collect())
    }

    /// The value whose [`encode`](Self::encode) gives `bits` (this field's width of them, least
    /// significant first); `None` for another width. Every bit string of the width decodes.
    pub fn decode(&self, bits: &[bool]) -> Option<i128> {
        if bits.len() != self.bits as usize {
            return None;
        }
        let offset = bits
            .iter()
            .rev()
            .fold(0i128, |acc, b| (acc << 1) | i128::from(*b));
        Some(match self.kind {
            Kind::Bool => offset,
            _ => offset - (1i128 << (self.bits - 1)),
        })
    }

    /// The scaled integer of a real number for this field (rounded to nearest).
    pub fn scale(&self, x: f64) -> i128 {
        match self.kind {
            Kind::Fixed(f) => (x * (1u128 << f) as f64).round() as i128,
            _ => x.round() as i128,
        }
    }
}

/// What `conclave program check` reports about a compiled program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub gates: usize,
    pub secret_products: usize,
    pub openings: usize,
    pub rounds: usize,
    pub requirements: Requirements,
}

impl Program {
    /// Compiles `source` for one party and all `slots`, with a presence bit per slot: one
    /// circuit for every run, whichever slots devices filled (what a proof's key is made for).
    /// A slot no device filled counts as excluded: its `valid[i]` is false and `slots` is all
    /// of them.
    pub fn compile_for_all_slots(source: &str, slots: usize) -> Result<Program, Diagnostics> {
        let parsed = Parsed::new(source)?;
        let mut inputs = PartyInputs::new(1);
        let lowered = parsed.lower_with(1, Some(slots), true, &mut inputs)?;
        Ok(Program { lowered, inputs })
    }

    /// Parses and compiles `source` for `parties` and `slots` (the declared maximum if `None`).
    pub fn compile(
        source: &str,
        parties: usize,
        slots: Option<usize>,
    ) -> Result<Program, Diagnostics> {
        let parsed = Parsed::new(source)?;
        let mut inputs = PartyInputs::new(parties);
        let lowered = parsed.lower(parties, slots, &mut inputs)?;
        Ok(Program { lowered, inputs })
    }

    pub fn summary(&self) -> Summary {
        let c = &self.lowered.circuit;
        let plan = Plan::new(c);
        Summary {
            gates: c.gates().len(),
            secret_products: plan.mul_layers.iter().map(Vec::len).sum(),
            openings: plan.open_layers.iter().map(Vec::len).sum(),
            rounds: plan.depth(),
            requirements: c.requirements(),
        }
    }

    /// Each party's circuit inputs for these values.
    pub fn party_inputs(&self, values: &InputValues) -> Result<Vec<Vec<Fp>>, EvalError> {
        let l = &self.lowered;
        if values.devices.len() != l.slots {
            return Err(EvalError::SlotCount {
                expected: l.slots,
                got: values.devices.len(),
            });
        }
        for record in values.devices.iter().chain(std::iter::once(&values.owner)) {
            let expected = if std::ptr::eq(record, &values.owner) {
                l.owner_fields.len()
            } else {
                l.device_fields.len() + usize::from(l.presence)
            };
            if record.len() != expected {
                return Err(EvalError::FieldCount {
                    expected,
                    got: record.len(),
                });
            }
        }
        let mut encoded: std::collections::HashMap<(Provider, usize), Vec<bool>> =
            Default::default();
        for (slot, record) in values.devices.iter().enumerate() {
            for (field, (spec, v)) in l.device_fields.iter().zip(record).enumerate() {
                encoded.insert((Provider::Slot(slot), field), spec.encode(*v)?);
            }
            if l.presence {
                let present = record[l.device_fields.len()];
                if present != 0 && present != 1 {
                    return Err(EvalError::DoesNotFit {
                        field: "presence".into(),
                        value: present,
                        bits: 1,
                    });
                }
                encoded.insert((Provider::Slot(slot), PRESENCE_FIELD), vec![present == 1]);
            }
        }
        for (field, (spec, v)) in l.owner_fields.iter().zip(&values.owner).enumerate() {
            encoded.insert((Provider::Owner, field), spec.encode(*v)?);
        }
        Ok(self
            .inputs
            .layout
            .iter()
            .map(|order| {
                order
                    .iter()
                    .map(|(p, field, bit)| {
                        Fp::from_u64(u64::from(encoded[&(*p, *field)][*bit as usize]))
                    })
                    .collect()
            })
            .collect())
    }

    /// The plaintext evaluation: the reference result.
    pub fn evaluate(&self, values: &InputValues) -> Result<Vec<OutputValue>, EvalError> {
        let inputs = self.party_inputs(values)?;
        let opened = self.lowered.circuit.evaluate_plain(&inputs, &[])?;
        self.decode(&opened, None)
    }

    /// Output values from the opened outputs; a private output also needs its mask (the sum of
    /// the mask shares the receiver collects; zero in the plaintext evaluation).
    pub fn decode(
        &self,
        opened: &[Fp],
        masks: Option<&[Fp]>,
    ) -> Result<Vec<OutputValue>, EvalError> {
        let mut masks = masks.unwrap_or(&[]).iter();
        self.lowered
            .outputs
            .iter()
            .zip(opened)
            .map(|(spec, v)| {
                let v = if spec.private {
                    *v - masks.next().copied().unwrap_or(Fp::ZERO)
                } else {
                    *v
                };
                let scaled = v
                    .to_i128()
                    .ok_or_else(|| EvalError::BadOutput(spec.name.clone()))?;
                Ok(OutputValue {
                    name: spec.name.clone(),
                    kind: spec.kind,
                    private: spec.private,
                    scaled,
                })
            })
            .collect()
    }

    /// The wires whose shares make the private outputs' masks, in output order.
    pub fn mask_wires(&self) -> Vec<Wire> {
        self.lowered.outputs.iter().filter_map(|o| o.mask).collect()
    }
}

#[cfg(test)]
mod tests;
