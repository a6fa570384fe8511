//! The circuit IR: a serialisable list of gates in topological order, a builder, validation of
//! untrusted circuits, and plaintext evaluation (the reference the MPC must agree with).

use serde::{Deserialize, Serialize};

use crate::field::Fp;
use crate::mascot::FIELD_BITS;
use crate::prep::Requirements;
use crate::share::PartyId;

/// Most parties a circuit may name.
pub const MAX_PARTIES: usize = 256;
/// Most gates a circuit may have.
pub const MAX_GATES: usize = 1 << 24;

/// A wire: the output of the gate with this index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Wire(pub u32);

impl Wire {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One gate; its output is the wire with the gate's index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gate {
    /// A private input of a party, the next one in that party's input order.
    Input(u16),
    /// A shared random value that no party knows.
    Random,
    Const(Fp),
    Add(Wire, Wire),
    Sub(Wire, Wire),
    Neg(Wire),
    /// A product; local (no triple) when either operand is public.
    Mul(Wire, Wire),
    MulConst(Wire, Fp),
    /// A shared random bit that no party knows (from the preprocessing pool).
    RandomBit,
    /// Opens a wire to every party; the output is public. Only for values masked statistically
    /// (comparison, truncation, equality): the opened values are MAC-checked with all others
    /// before any output.
    Open(Wire),
    /// Bit `i` of a public wire's canonical integer in [0, l), as a public 0 or 1.
    Bit(Wire, u16),
}

impl Gate {
    /// The wires this gate reads.
    pub fn operands(&self) -> impl Iterator<Item = Wire> {
        let (a, b) = match *self {
            Gate::Input(_) | Gate::Random | Gate::RandomBit | Gate::Const(_) => (None, None),
            Gate::Neg(a) | Gate::MulConst(a, _) | Gate::Open(a) | Gate::Bit(a, _) => {
                (Some(a), None)
            }
            Gate::Add(a, b) | Gate::Sub(a, b) | Gate::Mul(a, b) => (Some(a), Some(b)),
        };
        a.into_iter().chain(b)
    }
}

/// A program for `parties` parties whose public outputs are the `outputs` wires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Circuit {
    parties: u16,
    gates: Vec<Gate>,
    outputs: Vec<Wire>,
}

/// Why a circuit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CircuitError {
    #[error("a circuit needs 1 to {MAX_PARTIES} parties, this one names {0}")]
    BadPartyCount(usize),
    #[error("the circuit has {0} gates, more than the limit of {MAX_GATES}")]
    TooManyGates(usize),
    #[error("gate {gate} reads wire {wire}, which is not an earlier gate")]
    ForwardReference { gate: usize, wire: u32 },
    #[error("gate {gate} is an input of party {party}, but there are only {parties} parties")]
    UnknownParty {
        gate: usize,
        party: u16,
        parties: u16,
    },
    #[error("gate {gate} takes a bit of wire {wire}, which is secret")]
    BitOfSecret { gate: usize, wire: u32 },
    #[error("gate {gate} takes bit {bit}; field elements have {FIELD_BITS}")]
    BitOutOfRange { gate: usize, bit: u16 },
    #[error("output {output} is wire {wire}, which does not exist")]
    UnknownOutput { output: usize, wire: u32 },
    #[error("circuit encoding is invalid: {0}")]
    Decode(String),
    #[error("circuit encoding is {len} bytes, more than the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("party {party} has {expected} inputs in this circuit but {got} were given")]
    WrongInputCount {
        party: PartyId,
        expected: usize,
        got: usize,
    },
}

impl Circuit {
    pub fn parties(&self) -> usize {
        self.parties as usize
    }

    pub fn gates(&self) -> &[Gate] {
        &self.gates
    }

    pub fn outputs(&self) -> &[Wire] {
        &self.outputs
    }

    /// Checks what a decoder cannot: party count, sizes, and that every wire read is defined earlier.
    pub fn validate(&self) -> Result<(), CircuitError> {
        let parties = self.parties as usize;
        if parties == 0 || parties > MAX_PARTIES {
            return Err(CircuitError::BadPartyCount(parties));
        }
        if self.gates.len() > MAX_GATES {
            return Err(CircuitError::TooManyGates(self.gates.len()));
        }
        for (gate, g) in self.gates.iter().enumerate() {
            if let Gate::Input(party) = *g
                && party >= self.parties
            {
                return Err(CircuitError::UnknownParty {
                    gate,
                    party,
                    parties: self.parties,
                });
            }
            if let Some(w) = g.operands().find(|w| w.index() >= gate) {
                return Err(CircuitError::ForwardReference { gate, wire: w.0 });
            }
        }
        let public = self.public_wires();
        for (gate, g) in self.gates.iter().enumerate() {
            if let Gate::Bit(w, bit) = *g {
                if !public[w.index()] {
                    return Err(CircuitError::BitOfSecret { gate, wire: w.0 });
                }
                if usize::from(bit) >= FIELD_BITS {
                    return Err(CircuitError::BitOutOfRange { gate, bit });
                }
            }
        }
        if let Some((output, w)) = self
            .outputs
            .iter()
            .enumerate()
            .find(|(_, w)| w.index() >= self.gates.len())
        {
            return Err(CircuitError::UnknownOutput { output, wire: w.0 });
        }
        Ok(())
    }

    /// Encodes the circuit (bincode 2).
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode_config()).expect("circuits always encode")
    }

    /// Decodes and validates an untrusted circuit of at most `limit` bytes.
    pub fn decode(bytes: &[u8], limit: usize) -> Result<Circuit, CircuitError> {
        if bytes.len() > limit {
            return Err(CircuitError::TooLarge {
                len: bytes.len(),
                limit,
            });
        }
        let (circuit, used): (Circuit, usize) =
            bincode::serde::decode_from_slice(bytes, bincode_config())
                .map_err(|e| CircuitError::Decode(e.to_string()))?;
        if used != bytes.len() {
            return Err(CircuitError::Decode(format!(
                "{} trailing bytes",
                bytes.len() - used
            )));
        }
        circuit.validate()?;
        Ok(circuit)
    }

    /// The number of inputs each party provides.
    pub fn input_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.parties()];
        for g in &self.gates {
            if let Gate::Input(p) = g {
                counts[*p as usize] += 1;
            }
        }
        counts
    }

    /// Which wires every party knows in the clear: constants, opened values, their bits, and
    /// anything computed from public wires only. The circuit must have no forward references.
    pub fn public_wires(&self) -> Vec<bool> {
        let mut public = Vec::with_capacity(self.gates.len());
        for g in &self.gates {
            let p = match g {
                Gate::Input(_) | Gate::Random | Gate::RandomBit => false,
                Gate::Const(_) | Gate::Open(_) | Gate::Bit(..) => true,
                _ => g.operands().all(|w| public[w.index()]),
            };
            public.push(p);
        }
        public
    }

    /// The multiplications that need a triple: both operands secret.
    pub fn is_secret_product(g: &Gate, public: &[bool]) -> bool {
        matches!(*g, Gate::Mul(a, b) if !public[a.index()] && !public[b.index()])
    }

    /// The preprocessed material one evaluation consumes.
    pub fn requirements(&self) -> Requirements {
        let public = self.public_wires();
        let count = |f: &dyn Fn(&Gate) -> bool| self.gates.iter().filter(|g| f(g)).count();
        Requirements {
            triples: count(&|g| Self::is_secret_product(g, &public)),
            randoms: count(&|g| matches!(g, Gate::Random)),
            input_masks: self.input_counts(),
            bits: count(&|g| matches!(g, Gate::RandomBit)),
        }
    }

    /// Evaluates in the clear. `inputs[p]` are party p's inputs in order; `randoms` supplies the
    /// values of `Random` gates in order (zero when short), and random bits are zero. Returns
    /// the outputs.
    pub fn evaluate_plain(
        &self,
        inputs: &[Vec<Fp>],
        randoms: &[Fp],
    ) -> Result<Vec<Fp>, CircuitError> {
        self.evaluate_with_bits(inputs, randoms, &[])
    }

    /// [`Circuit::evaluate_plain`] with the values of `RandomBit` gates in order (false when
    /// short). Comparison, truncation and equality gadgets give the same result whatever the bits.
    pub fn evaluate_with_bits(
        &self,
        inputs: &[Vec<Fp>],
        randoms: &[Fp],
        bits: &[bool],
    ) -> Result<Vec<Fp>, CircuitError> {
        let counts = self.input_counts();
        for (party, expected) in counts.iter().copied().enumerate() {
            let got = inputs.get(party).map_or(0, Vec::len);
            if got != expected {
                return Err(CircuitError::WrongInputCount {
                    party,
                    expected,
                    got,
                });
            }
        }
        let mut next_input = vec![0; self.parties()];
        let mut next_random = randoms.iter().copied();
        let mut next_bit = bits.iter().copied();
        let mut w: Vec<Fp> = Vec::with_capacity(self.gates.len());
        for g in &self.gates {
            let v = match *g {
                Gate::Input(p) => {
                    let p = p as usize;
                    next_input[p] += 1;
                    inputs[p][next_input[p] - 1]
                }
                Gate::Random => next_random.next().unwrap_or(Fp::ZERO),
                Gate::Const(c) => c,
                Gate::Add(a, b) => w[a.index()] + w[b.index()],
                Gate::Sub(a, b) => w[a.index()] - w[b.index()],
                Gate::Neg(a) => -w[a.index()],
                Gate::Mul(a, b) => w[a.index()] * w[b.index()],
                Gate::MulConst(a, c) => w[a.index()] * c,
                Gate::RandomBit => Fp::from_u64(u64::from(next_bit.next().unwrap_or(false))),
                Gate::Open(a) => w[a.index()],
                Gate::Bit(a, i) => Fp::from_u64(u64::from(w[a.index()].bit(usize::from(i)))),
            };
            w.push(v);
        }
        Ok(self.outputs.iter().map(|o| w[o.index()]).collect())
    }
}

/// Decoding goes through serde, whose sequence visitor preallocates at most 1 MiB whatever length
/// a frame claims; memory then grows only with bytes actually present.
fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 256 << 20 }>()
}

/// Builds a circuit gate by gate; wires can only refer to gates already built.
#[derive(Clone, Debug)]
pub struct CircuitBuilder {
    circuit: Circuit,
    /// Most gates this builder takes; past it, gates are dropped and [`CircuitBuilder::is_full`].
    limit: usize,
    full: bool,
}

impl CircuitBuilder {
    /// A builder for `parties` parties (1 to [`MAX_PARTIES`]).
    pub fn new(parties: usize) -> Self {
        assert!(
            (1..=MAX_PARTIES).contains(&parties),
            "a circuit needs 1 to {MAX_PARTIES} parties"
        );
        Self::with_limit(parties, MAX_GATES)
    }

    /// A builder that takes at most `limit` gates (at most [`MAX_GATES`]): past it, it drops gates
    /// and reports [`CircuitBuilder::is_full`] instead of growing (for untrusted programs).
    pub fn with_limit(parties: usize, limit: usize) -> Self {
        assert!(
            (1..=MAX_PARTIES).contains(&parties),
            "a circuit needs 1 to {MAX_PARTIES} parties"
        );
        CircuitBuilder {
            circuit: Circuit {
                parties: parties as u16,
                gates: Vec::new(),
                outputs: Vec::new(),
            },
            limit: limit.min(MAX_GATES),
            full: false,
        }
    }

    /// Whether a gate was dropped for the limit: the circuit is incomplete.
    pub fn is_full(&self) -> bool {
        self.full
    }

    fn push(&mut self, gate: Gate) -> Wire {
        let id = self.circuit.gates.len();
        if id >= self.limit {
            self.full = true;
            return Wire(0);
        }
        for w in gate.operands() {
            assert!(w.index() < id, "wire {} is not defined yet", w.0);
        }
        self.circuit.gates.push(gate);
        Wire(id as u32)
    }

    /// The next private input of `party`.
    pub fn input(&mut self, party: PartyId) -> Wire {
        assert!(party < self.circuit.parties(), "no party {party}");
        self.push(Gate::Input(party as u16))
    }

    pub fn random(&mut self) -> Wire {
        self.push(Gate::Random)
    }

    pub fn constant(&mut self, c: Fp) -> Wire {
        self.push(Gate::Const(c))
    }

    pub fn add(&mut self, a: Wire, b: Wire) -> Wire {
        self.push(Gate::Add(a, b))
    }

    pub fn sub(&mut self, a: Wire, b: Wire) -> Wire {
        self.push(Gate::Sub(a, b))
    }

    pub fn neg(&mut self, a: Wire) -> Wire {
        self.push(Gate::Neg(a))
    }

    pub fn mul(&mut self, a: Wire, b: Wire) -> Wire {
        self.push(Gate::Mul(a, b))
    }

    pub fn mul_const(&mut self, a: Wire, c: Fp) -> Wire {
        self.push(Gate::MulConst(a, c))
    }

    /// a + c for a constant c.
    pub fn add_const(&mut self, a: Wire, c: Fp) -> Wire {
        let c = self.constant(c);
        self.add(a, c)
    }

    pub fn random_bit(&mut self) -> Wire {
        self.push(Gate::RandomBit)
    }

    /// Opens `w` to every party. Only for statistically masked values.
    pub fn open(&mut self, w: Wire) -> Wire {
        self.push(Gate::Open(w))
    }

    /// Bit `i` of the public wire `w`.
    pub fn bit(&mut self, w: Wire, i: u16) -> Wire {
        self.push(Gate::Bit(w, i))
    }

    /// The number of gates so far.
    pub fn len(&self) -> usize {
        self.circuit.gates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.circuit.gates.is_empty()
    }

    /// Makes `w` a public output.
    pub fn reveal(&mut self, w: Wire) {
        assert!(w.index() < self.circuit.gates.len(), "no wire {}", w.0);
        self.circuit.outputs.push(w);
    }

    /// The circuit. Panics if gates were dropped for the limit (check [`CircuitBuilder::is_full`]).
    pub fn build(self) -> Circuit {
        assert!(
            !self.full,
            "the circuit exceeded its limit of {} gates",
            self.limit
        );
        self.circuit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Circuit {
        let mut b = CircuitBuilder::new(2);
        let x = b.input(0);
        let y = b.input(1);
        let p = b.mul(x, y);
        let s = b.add(p, x);
        b.reveal(s);
        b.build()
    }

    #[test]
    fn plain_evaluation() {
        let out = sample()
            .evaluate_plain(&[vec![Fp::from_u64(3)], vec![Fp::from_u64(5)]], &[])
            .unwrap();
        assert_eq!(out, vec![Fp::from_u64(18)]);
    }

    #[test]
    fn encoding_round_trip_and_limits() {
        let c = sample();
        let bytes = c.encode();
        assert_eq!(Circuit::decode(&bytes, 1024).unwrap(), c);
        assert!(matches!(
            Circuit::decode(&bytes, 3),
            Err(CircuitError::TooLarge { .. })
        ));
        assert!(matches!(
            Circuit::decode(&bytes[..bytes.len() - 1], 1024),
            Err(CircuitError::Decode(_))
        ));
        assert!(matches!(
            Circuit::decode(&[0xff; 40], 1024),
            Err(CircuitError::Decode(_))
        ));
    }

    #[test]
    fn decoded_forward_references_are_refused() {
        let bad = Circuit {
            parties: 1,
            gates: vec![Gate::Add(Wire(0), Wire(0))],
            outputs: vec![],
        };
        assert_eq!(
            Circuit::decode(&bad.encode(), 1024),
            Err(CircuitError::ForwardReference { gate: 0, wire: 0 })
        );
        let bad_party = Circuit {
            parties: 1,
            gates: vec![Gate::Input(1)],
            outputs: vec![],
        };
        assert!(matches!(
            bad_party.validate(),
            Err(CircuitError::UnknownParty { .. })
        ));
        let bad_output = Circuit {
            parties: 1,
            gates: vec![],
            outputs: vec![Wire(0)],
        };
        assert!(matches!(
            bad_output.validate(),
            Err(CircuitError::UnknownOutput { .. })
        ));
    }

    #[test]
    fn bits_only_of_public_wires() {
        let secret_bit = Circuit {
            parties: 1,
            gates: vec![Gate::Input(0), Gate::Bit(Wire(0), 0)],
            outputs: vec![],
        };
        assert_eq!(
            Circuit::decode(&secret_bit.encode(), 1024),
            Err(CircuitError::BitOfSecret { gate: 1, wire: 0 })
        );
        let opened = Circuit {
            parties: 1,
            gates: vec![
                Gate::Input(0),
                Gate::Open(Wire(0)),
                Gate::Bit(Wire(1), 3),
                Gate::Bit(Wire(1), 300),
            ],
            outputs: vec![],
        };
        assert_eq!(
            opened.validate(),
            Err(CircuitError::BitOutOfRange { gate: 3, bit: 300 })
        );
        assert_eq!(opened.public_wires(), vec![false, true, true, true]);
        let out = Circuit {
            outputs: vec![Wire(2)],
            gates: opened.gates[..3].to_vec(),
            ..opened
        }
        .evaluate_plain(&[vec![Fp::from_u64(8)]], &[])
        .unwrap();
        assert_eq!(out, vec![Fp::ONE]);
    }
}
