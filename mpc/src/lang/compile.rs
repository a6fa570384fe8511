//! Type checking and lowering to the circuit IR in one pass.
//!
//! Public values are compile-time constants (literals, `const`s, loop indices, `slots`), folded
//! as they are met, so `for` bounds and `if` conditions are known and loops unroll. Every secret
//! number carries the interval its scaled integer lies in; arithmetic widens it exactly, a
//! declared type or input range narrows what it may be, and comparisons and truncations take
//! their bit width from it. A value that could leave ±2^120 is a compile error, so the circuit's
//! arithmetic never wraps and the plaintext evaluation of the IR is the reference.

use std::collections::HashMap;

use super::ast::*;
use super::diag::{Diagnostic, Span};
use super::parser::MAX_DIMENSIONS;
use crate::circuit::{CircuitBuilder, Wire};
use crate::field::Fp;
use crate::gadgets;

mod numeric;

/// Largest magnitude of any secret value's scaled integer.
pub const MAX_MAGNITUDE_BITS: u32 = 120;

/// Most gates a program may compile to.
pub const MAX_PROGRAM_GATES: usize = 4 << 20;

/// Most compile steps (expressions, loop iterations, array elements copied) a program may take:
/// whatever a source says, compiling it ends soon and in bounded memory.
pub const MAX_COMPILE_WORK: u64 = 1 << 22;

/// Errors reported before the compiler gives up.
pub const MAX_ERRORS: usize = 50;

/// Most scalar fields one input declaration may have.
pub const MAX_INPUT_FIELDS: usize = 1 << 12;

/// The numeric kind of a scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    /// Fixed point with this many fractional bits: the value is the scaled integer / 2^frac.
    Fixed(u32),
    Bool,
}

impl Kind {
    fn frac(self) -> u32 {
        match self {
            Kind::Fixed(f) => f,
            _ => 0,
        }
    }

    fn name(self) -> String {
        match self {
            Kind::Int => "an integer".into(),
            Kind::Fixed(f) => format!("a fixed-point number ({f} fractional bits)"),
            Kind::Bool => "a boolean".into(),
        }
    }
}

/// A scalar: public (its scaled integer) or secret (a wire and the interval it lies in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr {
    Public(i128),
    Secret { wire: Wire, lo: i128, hi: i128 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Scalar(Kind, Repr),
    Array(Vec<Val>),
    /// The value of an expression that had an error: uses of it report nothing more.
    Poison,
}

/// Who provides an input field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// The device in this slot.
    Slot(usize),
    Owner,
}

/// Where the bits of inputs come from: input gates of the parties (tests, the evaluator) or the
/// committee's masked device bits (the node).
pub trait InputWires {
    /// `count` wires, each a secret bit, least significant first, of `field` from `provider`.
    fn bits(
        &mut self,
        b: &mut CircuitBuilder,
        provider: Provider,
        field: usize,
        count: u32,
    ) -> Vec<Wire>;

    /// A shared random value that masks a private output: the circuit opens value + mask and
    /// the mask's shares go to the receiver (the node takes it from a triple the receiver can
    /// check).
    fn output_mask(&mut self, b: &mut CircuitBuilder) -> Wire {
        b.random()
    }
}

/// One scalar field of a device's record or of the owner's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// The input's name, with indices for array elements (`features[2]`).
    pub name: String,
    pub kind: Kind,
    /// Bits a provider encodes: the value plus 2^(bits−1), in [0, 2^bits).
    pub bits: u32,
    /// The declared range of the scaled integer; values outside are excluded in the circuit.
    pub lo: i128,
    pub hi: i128,
}

/// One output value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    pub name: String,
    pub kind: Kind,
    /// Sealed to the project's receiver: the circuit opens value + mask and `mask` is the wire
    /// whose shares go to the receiver.
    pub private: bool,
    pub mask: Option<Wire>,
}

/// What the compiler produced.
pub struct Lowered {
    pub builder: CircuitBuilder,
    pub devices: Option<(u32, Span)>,
    pub window: Option<(u64, Span)>,
    pub device_fields: Vec<FieldSpec>,
    pub owner_fields: Vec<FieldSpec>,
    pub outputs: Vec<OutputSpec>,
}

struct Binding {
    val: Val,
    mutable: bool,
}

struct Compiler<'a> {
    b: CircuitBuilder,
    inputs: &'a mut dyn InputWires,
    slots: usize,
    scopes: Vec<HashMap<String, Binding>>,
    errors: Vec<Diagnostic>,
    devices: Option<(u32, Span)>,
    window: Option<(u64, Span)>,
    device_fields: Vec<FieldSpec>,
    owner_fields: Vec<FieldSpec>,
    /// Per slot, per device field: the value wire and its validity bit.
    device_values: Vec<Vec<Val>>,
    device_valid: Vec<Val>,
    outputs: Vec<OutputSpec>,
    output_names: HashMap<String, Span>,
    /// Device inputs declared, bound once all are read: (name, first field, fields, shape).
    pending: Vec<(String, usize, usize, Vec<usize>)>,
    /// Compile steps taken ([`MAX_COMPILE_WORK`]).
    work: u64,
    /// The program is over a limit (or has too many errors): compiling stops.
    too_large: bool,
    /// Each slot has a presence bit ([`super::PRESENCE_FIELD`]) that its validity needs.
    presence: bool,
}

/// Compiles `items` for a committee of `parties` and `slots` device slots.
pub fn lower(
    items: &[Item],
    parties: usize,
    slots: usize,
    presence: bool,
    inputs: &mut dyn InputWires,
) -> Result<Lowered, Vec<Diagnostic>> {
    let mut c = Compiler {
        presence,
        b: CircuitBuilder::with_limit(parties, MAX_PROGRAM_GATES),
        inputs,
        slots,
        scopes: vec![HashMap::new()],
        errors: Vec::new(),
        devices: None,
        window: None,
        device_fields: Vec::new(),
        owner_fields: Vec::new(),
        device_values: vec![Vec::new(); slots],
        device_valid: Vec::new(),
        outputs: Vec::new(),
        output_names: HashMap::new(),
        pending: Vec::new(),
        work: 0,
        too_large: false,
    };
    // Device inputs are declared before use; their validity needs every field, so inputs are
    // lowered first, then everything else in order.
    for item in items {
        if let Item::Input { .. }
        | Item::Const { .. }
        | Item::Devices(_)
        | Item::Window(_)
        | Item::Receiver { .. } = item
        {
            c.item(item);
        }
    }
    c.finish_device_inputs();
    for item in items {
        if !matches!(
            item,
            Item::Input { .. }
                | Item::Const { .. }
                | Item::Devices(_)
                | Item::Window(_)
                | Item::Receiver { .. }
        ) {
            c.item(item);
        }
        if c.too_large {
            break;
        }
    }
    c.check_size(Span::default());
    if c.errors.is_empty() {
        Ok(Lowered {
            builder: c.b,
            devices: c.devices,
            window: c.window,
            device_fields: c.device_fields,
            owner_fields: c.owner_fields,
            outputs: c.outputs,
        })
    } else {
        Err(c.errors)
    }
}

/// 2^e for e ≤ 126 (callers keep exponents within the magnitude limit).
fn pow2(e: u32) -> i128 {
    debug_assert!(e <= 126, "2^{e} does not fit");
    1i128 << e.min(126)
}

/// Bits of a signed width that holds every value in [lo, hi].
fn signed_width(lo: i128, hi: i128) -> u32 {
    let need = |v: i128| {
        if v >= 0 {
            128 - v.leading_zeros() + 1
        } else {
            128 - (!v).leading_zeros() + 1
        }
    };
    need(lo).max(need(hi)).max(1)
}

impl Compiler<'_> {
    /// The same number read as an integer (its scaled value).
    fn int(n: Num) -> Num {
        Num {
            kind: Kind::Int,
            ..n
        }
    }

    fn pub_int(v: i128) -> Num {
        Num {
            kind: Kind::Int,
            repr: Repr::Public(v),
        }
    }

    fn error(&mut self, d: Diagnostic) -> Val {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(d);
        } else if !self.too_large {
            self.too_large = true;
            self.errors
                .push(Diagnostic::new(d.span, "too many errors; stopping here"));
        }
        Val::Poison
    }

    /// Counts `n` compile steps and the gates so far against their limits; false once over.
    fn charge(&mut self, n: usize, span: Span) -> bool {
        if self.too_large {
            return false;
        }
        self.work = self.work.saturating_add(n as u64);
        if self.work > MAX_COMPILE_WORK {
            self.too_large = true;
            self.errors.push(Diagnostic::new(
                span,
                format!("compiling this program takes more than {MAX_COMPILE_WORK} steps"),
            ));
            return false;
        }
        self.check_size(span)
    }

    fn lookup(&self, name: &str) -> Option<&Binding> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    fn bind(&mut self, name: &str, val: Val, mutable: bool) {
        self.scopes
            .last_mut()
            .expect("a scope")
            .insert(name.to_string(), Binding { val, mutable });
    }

    fn check_size(&mut self, span: Span) -> bool {
        if self.b.is_full() && !self.too_large {
            self.too_large = true;
            self.errors.push(Diagnostic::new(
                span,
                format!("the program compiles to more than {MAX_PROGRAM_GATES} gates"),
            ));
        }
        !self.too_large
    }

    // ----- items -----

    fn item(&mut self, item: &Item) {
        match item {
            Item::Devices(e) => {
                if let Some(n) = self.public_int(e, "the number of device slots") {
                    match u32::try_from(n).ok().filter(|n| (1..=10_000).contains(n)) {
                        Some(n) => self.devices = Some((n, e.span)),
                        None => {
                            self.error(Diagnostic::new(e.span, "devices must be 1 to 10000"));
                        }
                    }
                }
            }
            Item::Window(e) => {
                if let Some(s) = self.public_int(e, "the input window") {
                    match u64::try_from(s).ok().filter(|s| (1..=86_400).contains(s)) {
                        Some(s) => self.window = Some((s, e.span)),
                        None => {
                            self.error(Diagnostic::new(
                                e.span,
                                "window must be 1 to 86400 seconds",
                            ));
                        }
                    }
                }
            }
            Item::Const { name, value, span } => {
                let v = self.expr(value);
                if matches!(v, Val::Scalar(_, Repr::Secret { .. })) {
                    self.error(Diagnostic::new(*span, "a const must be public"));
                }
                self.bind(name, v, false);
            }
            Item::Input {
                name,
                ty,
                range,
                source,
                span,
            } => self.input(name, ty, range.as_ref(), *source, *span),
            Item::Output {
                name,
                private,
                ty,
                value,
                span,
            } => self.output(name, *private, ty.as_ref(), value, *span),
            Item::Stmt(s) => self.stmt(s),
            // Read by `Parsed::new`; it seals outputs, it computes nothing.
            Item::Receiver { .. } => {}
        }
    }

    fn public_int(&mut self, e: &Expr, what: &str) -> Option<i128> {
        match self.expr(e) {
            Val::Scalar(Kind::Int, Repr::Public(v)) => Some(v),
            Val::Poison => None,
            _ => {
                self.error(Diagnostic::new(
                    e.span,
                    format!("{what} must be a public integer"),
                ));
                None
            }
        }
    }

    /// The scaled integer of a public number for a field of `kind` (rounded into the range).
    fn public_bound(&mut self, e: &Expr, kind: Kind, upper: bool) -> Option<i128> {
        let v = self.expr(e);
        match v {
            Val::Scalar(k, Repr::Public(x)) if k != Kind::Bool => {
                let (f_have, f_want) = (k.frac(), kind.frac());
                let scaled = if f_want >= f_have {
                    x.checked_mul(pow2(f_want - f_have))
                } else {
                    let d = pow2(f_have - f_want);
                    Some(if upper {
                        x.div_euclid(d)
                    } else {
                        -(-x).div_euclid(d)
                    })
                };
                if scaled.is_none() {
                    self.error(Diagnostic::new(e.span, "this bound is too large"));
                }
                scaled
            }
            Val::Poison => None,
            _ => {
                self.error(Diagnostic::new(
                    e.span,
                    "a range bound must be a public number",
                ));
                None
            }
        }
    }

    fn input(
        &mut self,
        name: &str,
        ty: &Type,
        range: Option<&(Expr, Expr)>,
        source: InputSource,
        span: Span,
    ) {
        let Some((kind, bits, shape)) = self.field_type(ty) else {
            self.bind(name, Val::Poison, false);
            return;
        };
        let (full_lo, full_hi) = (-pow2(bits - 1), pow2(bits - 1) - 1);
        let (lo, hi) = match range {
            None => (full_lo, full_hi),
            Some((lo_e, hi_e)) => {
                let lo = self.public_bound(lo_e, kind, false);
                let hi = self.public_bound(hi_e, kind, true);
                match (lo, hi) {
                    (Some(lo), Some(hi)) if lo <= hi && lo >= full_lo && hi <= full_hi => (lo, hi),
                    (Some(_), Some(_)) => {
                        self.error(Diagnostic::new(
                            lo_e.span.to(hi_e.span),
                            format!("the range must be non-empty and within the type's [{full_lo}, {full_hi}] (scaled)"),
                        ));
                        (full_lo, full_hi)
                    }
                    _ => (full_lo, full_hi),
                }
            }
        };
        if kind == Kind::Bool && range.is_some() {
            self.error(Diagnostic::new(span, "a boolean input takes no range"));
        }
        let count = shape
            .iter()
            .try_fold(1usize, |n, d| n.checked_mul(*d))
            .filter(|n| *n <= MAX_INPUT_FIELDS);
        let Some(count) = count else {
            self.error(Diagnostic::new(
                ty.span,
                format!("an input has at most {MAX_INPUT_FIELDS} fields"),
            ));
            self.bind(name, Val::Poison, false);
            return;
        };
        if !self.charge(count, span) {
            return;
        }
        let first = match source {
            InputSource::Devices => self.device_fields.len(),
            InputSource::Owner => self.owner_fields.len(),
        };
        for i in 0..count {
            let spec = FieldSpec {
                name: element_name(name, &shape, i),
                kind,
                bits,
                lo,
                hi,
            };
            match source {
                InputSource::Devices => self.device_fields.push(spec),
                InputSource::Owner => self.owner_fields.push(spec),
            }
        }
        match source {
            InputSource::Devices => {
                // Bound once every device field is known (finish_device_inputs).
                self.pending.push((name.to_string(), first, count, shape));
            }
            InputSource::Owner => {
                let mut values = Vec::with_capacity(count);
                let mut valid = self.b.constant(Fp::ONE);
                for field in first..first + count {
                    if !self.charge(1, span) {
                        return;
                    }
                    let spec = self.owner_fields[field].clone();
                    let (v, ok) = self.read_field(Provider::Owner, field, &spec);
                    valid = self.b.mul(valid, ok);
                    values.push(v);
                }
                let values: Vec<Val> = values
                    .into_iter()
                    .map(|(wire, lo, hi)| self.zero_unless(valid, kind, wire, lo, hi))
                    .collect();
                self.bind(name, shape_values(values, &shape), false);
                let prior = self.lookup("owner_valid").map(|b| b.val.clone());
                let all = match prior {
                    Some(Val::Scalar(Kind::Bool, Repr::Secret { wire, .. })) => {
                        self.b.mul(wire, valid)
                    }
                    _ => valid,
                };
                self.scopes[0].insert(
                    "owner_valid".into(),
                    Binding {
                        val: Val::Scalar(
                            Kind::Bool,
                            Repr::Secret {
                                wire: all,
                                lo: 0,
                                hi: 1,
                            },
                        ),
                        mutable: false,
                    },
                );
            }
        }
    }

    /// Reads every slot's device fields, checks each against its range, and binds the inputs
    /// (a slot whose fields are not all in range reads as zeros) and `valid`.
    fn finish_device_inputs(&mut self) {
        let fields = self.device_fields.clone();
        for slot in 0..self.slots {
            if !self.charge(fields.len().max(1), Span::default()) {
                return;
            }
            let mut ok = self.b.constant(Fp::ONE);
            if self.presence {
                // A slot no device filled has its presence bit 0: excluded like one out of range.
                ok = self
                    .inputs
                    .bits(&mut self.b, Provider::Slot(slot), super::PRESENCE_FIELD, 1)[0];
            }
            let mut raw = Vec::with_capacity(fields.len());
            for (field, spec) in fields.iter().enumerate() {
                if !self.charge(1, Span::default()) {
                    return;
                }
                let (v, in_range) = self.read_field(Provider::Slot(slot), field, spec);
                ok = self.b.mul(ok, in_range);
                raw.push((v, spec.kind));
            }
            self.device_values[slot] = raw
                .into_iter()
                .zip(&fields)
                .map(|(((wire, lo, hi), kind), _)| self.zero_unless(ok, kind, wire, lo, hi))
                .collect();
            self.device_valid.push(Val::Scalar(
                Kind::Bool,
                Repr::Secret {
                    wire: ok,
                    lo: 0,
                    hi: 1,
                },
            ));
        }
        for (name, first, count, shape) in std::mem::take(&mut self.pending) {
            let per_slot: Vec<Val> = (0..self.slots)
                .map(|slot| {
                    shape_values(
                        self.device_values[slot][first..first + count].to_vec(),
                        &shape,
                    )
                })
                .collect();
            self.bind(&name, Val::Array(per_slot), false);
        }
        let valid = Val::Array(self.device_valid.clone());
        self.bind("valid", valid, false);
        let slots = Val::Scalar(Kind::Int, Repr::Public(self.slots as i128));
        self.bind("slots", slots, false);
    }

    /// A field's value wire (interval of its type) and its in-range bit.
    fn read_field(
        &mut self,
        provider: Provider,
        field: usize,
        spec: &FieldSpec,
    ) -> ((Wire, i128, i128), Wire) {
        let bits = self.inputs.bits(&mut self.b, provider, field, spec.bits);
        let sum = gadgets::weighted_sum(&mut self.b, &bits);
        let acc = self.b.add_const(sum, -Fp::from_i128(pow2(spec.bits - 1)));
        let (full_lo, full_hi) = (-pow2(spec.bits - 1), pow2(spec.bits - 1) - 1);
        let mut ok = self.b.constant(Fp::ONE);
        if spec.kind == Kind::Bool {
            // One bit b encodes b − 1 ∈ {−1, 0}; the boolean is the bit itself.
            return ((bits[0], 0, 1), ok);
        }
        if spec.lo > full_lo {
            // value ≥ lo ⇔ ¬(value − lo < 0)
            let shifted = self.b.add_const(acc, -Fp::from_i128(spec.lo));
            let below = gadgets::less_than_zero(&mut self.b, shifted, spec.bits + 1);
            let above = self.not(below);
            ok = self.b.mul(ok, above);
        }
        if spec.hi < full_hi {
            // value ≤ hi ⇔ ¬(hi − value < 0)
            let neg = self.b.neg(acc);
            let shifted = self.b.add_const(neg, Fp::from_i128(spec.hi));
            let over = gadgets::less_than_zero(&mut self.b, shifted, spec.bits + 1);
            let under = self.not(over);
            ok = self.b.mul(ok, under);
        }
        // The interval is the declared range: callers keep the value only where it is valid.
        ((acc, spec.lo, spec.hi), ok)
    }

    /// valid · value, with the interval of the declared range widened to hold zero.
    fn zero_unless(&mut self, valid: Wire, kind: Kind, wire: Wire, lo: i128, hi: i128) -> Val {
        if kind == Kind::Bool {
            let w = self.b.mul(valid, wire);
            return Val::Scalar(
                kind,
                Repr::Secret {
                    wire: w,
                    lo: 0,
                    hi: 1,
                },
            );
        }
        let w = self.b.mul(valid, wire);
        Val::Scalar(
            kind,
            Repr::Secret {
                wire: w,
                lo: lo.min(0),
                hi: hi.max(0),
            },
        )
    }

    fn not(&mut self, w: Wire) -> Wire {
        let neg = self.b.neg(w);
        self.b.add_const(neg, Fp::ONE)
    }

    fn field_type(&mut self, ty: &Type) -> Option<(Kind, u32, Vec<usize>)> {
        let mut shape = Vec::new();
        let mut t = &ty.ty;
        while let TypeExpr::Array(inner, n) = t {
            shape.push(*n);
            t = inner;
        }
        shape.reverse();
        let (kind, bits) = match *t {
            TypeExpr::Int(k) if (1..=64).contains(&k) => (Kind::Int, k),
            TypeExpr::Fixed { bits, frac } if (2..=64).contains(&bits) && frac < bits => {
                (Kind::Fixed(frac), bits)
            }
            TypeExpr::Bool => (Kind::Bool, 1),
            _ => {
                self.error(Diagnostic::new(
                    ty.span,
                    "integer widths are 1 to 64 bits; fixed<K, F> needs 2 ≤ K ≤ 64 and F < K",
                ));
                return None;
            }
        };
        if shape.contains(&0) {
            self.error(Diagnostic::new(ty.span, "arrays have at least one element"));
            return None;
        }
        Some((kind, bits, shape))
    }
}

/// `name[i][j]` of the flat element `index` of an array of `shape` (outermost first).
fn element_name(name: &str, shape: &[usize], mut index: usize) -> String {
    let mut parts = vec![0; shape.len()];
    for (p, n) in parts.iter_mut().zip(shape).rev() {
        *p = index % n;
        index /= n;
    }
    let mut s = name.to_string();
    for p in parts {
        s.push_str(&format!("[{p}]"));
    }
    s
}

/// Nests flat values into arrays of `shape` (outermost first); a scalar for no shape.
fn shape_values(values: Vec<Val>, shape: &[usize]) -> Val {
    match shape.split_first() {
        None => values.into_iter().next().unwrap_or(Val::Poison),
        Some((&n, rest)) => {
            let chunk = values.len() / n;
            Val::Array(
                values
                    .chunks(chunk.max(1))
                    .map(|c| shape_values(c.to_vec(), rest))
                    .collect(),
            )
        }
    }
}

/// Fractional bits of a decimal literal before it meets a fixed-point operand.
const LITERAL_FRAC: u32 = 32;

/// A numeric scalar split out of a [`Val`].
#[derive(Clone, Copy, Debug)]
struct Num {
    kind: Kind,
    repr: Repr,
}

impl Num {
    fn is_public(&self) -> bool {
        matches!(self.repr, Repr::Public(_))
    }

    fn bounds(&self) -> (i128, i128) {
        match self.repr {
            Repr::Public(v) => (v, v),
            Repr::Secret { lo, hi, .. } => (lo, hi),
        }
    }
}

fn ceil_log2(d: i128) -> u32 {
    128 - (d - 1).leading_zeros()
}

impl Compiler<'_> {
    // ----- statements -----

    fn block(&mut self, body: &[Stmt]) {
        self.scopes.push(HashMap::new());
        for s in body {
            self.stmt(s);
            if self.too_large {
                break;
            }
        }
        self.scopes.pop();
    }

    fn stmt(&mut self, s: &Stmt) {
        if self.too_large {
            return;
        }
        match s {
            Stmt::Let {
                name,
                mutable,
                ty,
                value,
                span,
            } => {
                let v = self.expr(value);
                let v = match ty {
                    Some(ty) => self.convert_to(v, ty, *span),
                    None => v,
                };
                self.bind(name, v, *mutable);
            }
            Stmt::Assign {
                name,
                indices,
                value,
                span,
            } => self.assign(name, indices, value, *span),
            Stmt::For {
                var,
                from,
                to,
                body,
                span,
            } => {
                let (Some(from), Some(to)) = (
                    self.public_int(from, "a loop bound"),
                    self.public_int(to, "a loop bound"),
                ) else {
                    return;
                };
                for i in from..to {
                    if !self.charge(1, *span) {
                        return;
                    }
                    self.scopes.push(HashMap::new());
                    self.bind(var, Val::Scalar(Kind::Int, Repr::Public(i)), false);
                    self.block(body);
                    self.scopes.pop();
                }
            }
            Stmt::If {
                cond,
                then,
                otherwise,
                ..
            } => match self.expr(cond) {
                Val::Scalar(Kind::Bool, Repr::Public(c)) => {
                    self.block(if c != 0 { then } else { otherwise })
                }
                Val::Scalar(Kind::Bool, Repr::Secret { .. }) => {
                    self.error(
                        Diagnostic::new(cond.span, "an `if` condition must be public").help(
                            "branching on a secret would reveal it; use select(condition, a, b)",
                        ),
                    );
                }
                Val::Poison => {}
                _ => {
                    self.error(Diagnostic::new(
                        cond.span,
                        "an `if` condition must be a boolean",
                    ));
                }
            },
        }
    }

    fn assign(&mut self, name: &str, indices: &[Expr], value: &Expr, span: Span) {
        let v = self.expr(value);
        let mut idx = Vec::with_capacity(indices.len());
        for e in indices {
            match self.public_int(e, "an array index") {
                Some(i) => idx.push(i),
                None => return,
            }
        }
        let Some(depth) = self.scopes.iter().rposition(|s| s.contains_key(name)) else {
            self.error(Diagnostic::new(span, format!("unknown name `{name}`")));
            return;
        };
        let binding = self.scopes[depth].get_mut(name).expect("found above");
        if !binding.mutable {
            self.error(
                Diagnostic::new(span, format!("`{name}` is not mutable"))
                    .help(format!("declare it with `let mut {name}`")),
            );
            return;
        }
        // Changed in place: an assignment costs the size of what is assigned, not of the array.
        let mut whole = std::mem::replace(&mut binding.val, Val::Poison);
        let size = scalars(&v);
        if self.charge(size, span) {
            match element_mut(&mut whole, &idx) {
                Ok(slot) => {
                    let new = self.assigned(slot, v, name, value.span);
                    *slot = new;
                }
                Err(msg) => {
                    self.error(Diagnostic::new(span, msg));
                }
            }
        }
        if let Some(binding) = self.scopes[depth].get_mut(name) {
            binding.val = whole;
        }
    }

    /// What `old` becomes when `new` is assigned to it.
    fn assigned(&mut self, old: &Val, new: Val, name: &str, span: Span) -> Val {
        match (old, new) {
            (_, Val::Poison) | (Val::Poison, _) => Val::Poison,
            // A public initial value (`let mut total = 0.0;`) takes the kind of what is stored.
            (Val::Scalar(_, Repr::Public(_)), Val::Scalar(kind, repr)) => Val::Scalar(kind, repr),
            (Val::Scalar(want, _), Val::Scalar(kind, repr)) => {
                match self.convert_kind(Num { kind, repr }, *want, span) {
                    Some(n) => Val::Scalar(n.kind, n.repr),
                    None => Val::Poison,
                }
            }
            (a @ Val::Array(_), b @ Val::Array(_)) if shape_of(a) == shape_of(&b) => b,
            _ => self.error(Diagnostic::new(
                span,
                format!("cannot assign this value to `{name}`: the shapes differ"),
            )),
        }
    }

    // ----- outputs -----

    fn output(&mut self, name: &str, private: bool, ty: Option<&Type>, value: &Expr, span: Span) {
        if let Some(first) = self.output_names.get(name) {
            let first = *first;
            self.error(
                Diagnostic::new(span, format!("output `{name}` is declared twice")).help(format!(
                    "the first is at bytes {}..{}",
                    first.start, first.end
                )),
            );
            return;
        }
        self.output_names.insert(name.to_string(), span);
        let v = self.expr(value);
        let v = match ty {
            Some(ty) => self.convert_to(v, ty, span),
            None => v,
        };
        let mut flat = Vec::new();
        flatten(&v, name.to_string(), &mut flat);
        for (name, v) in flat {
            if !self.charge(1, span) {
                return;
            }
            let Val::Scalar(kind, repr) = v else {
                if self.errors.is_empty() {
                    // Every poisoned value was reported; this keeps it so if one was not.
                    self.error(Diagnostic::new(
                        span,
                        format!("output `{name}` has no value"),
                    ));
                }
                continue;
            };
            let wire = self.wire(repr);
            let (opened, mask) = if private {
                let r = self.inputs.output_mask(&mut self.b);
                (self.b.add(wire, r), Some(r))
            } else {
                (wire, None)
            };
            self.b.reveal(opened);
            self.outputs.push(OutputSpec {
                name,
                kind,
                private,
                mask,
            });
        }
    }

    // ----- conversions -----

    fn wire(&mut self, repr: Repr) -> Wire {
        match repr {
            Repr::Public(v) => self.b.constant(Fp::from_i128(v)),
            Repr::Secret { wire, .. } => wire,
        }
    }

    /// A secret with interval [lo, hi], or an error if it could leave ±2^120.
    fn secret(
        &mut self,
        kind: Kind,
        wire: Wire,
        lo: Option<i128>,
        hi: Option<i128>,
        span: Span,
    ) -> Option<Num> {
        let limit = pow2(MAX_MAGNITUDE_BITS);
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo >= -limit && hi <= limit => Some(Num {
                kind,
                repr: Repr::Secret { wire, lo, hi },
            }),
            _ => {
                self.error(
                    Diagnostic::new(span, "this value may exceed ±2^120")
                        .help("narrow the inputs' declared ranges or the arithmetic"),
                );
                None
            }
        }
    }

    fn public(&mut self, kind: Kind, v: Option<i128>, span: Span) -> Option<Num> {
        match v.filter(|v| v.unsigned_abs() <= 1u128 << MAX_MAGNITUDE_BITS) {
            Some(v) => Some(Num {
                kind,
                repr: Repr::Public(v),
            }),
            None => {
                self.error(Diagnostic::new(span, "this constant exceeds ±2^120"));
                None
            }
        }
    }

    /// `n` multiplied by 2^shift (shift ≥ 0): more fractional bits.
    fn shift_up(&mut self, n: Num, shift: u32, kind: Kind, span: Span) -> Option<Num> {
        if shift > MAX_MAGNITUDE_BITS {
            self.error(Diagnostic::new(span, "a shift of more than 120 bits"));
            return None;
        }
        let f = pow2(shift);
        match n.repr {
            Repr::Public(v) => self.public(kind, v.checked_mul(f), span),
            Repr::Secret { wire, lo, hi } => {
                let w = if shift == 0 {
                    wire
                } else {
                    self.b.mul_const(wire, Fp::from_i128(f))
                };
                self.secret(kind, w, lo.checked_mul(f), hi.checked_mul(f), span)
            }
        }
    }

    /// Converts to `want`: integers and booleans widen to fixed point; fixed point changes
    /// precision (fewer fractional bits round down); a fixed-point value does not silently
    /// become an integer.
    fn convert_kind(&mut self, n: Num, want: Kind, span: Span) -> Option<Num> {
        let have = n.kind;
        match (have, want) {
            (a, b) if a == b => Some(n),
            (Kind::Bool, Kind::Int) => Some(Self::int(n)),
            (Kind::Int | Kind::Bool, Kind::Fixed(f)) => self.shift_up(n, f, want, span),
            (Kind::Fixed(g), Kind::Fixed(f)) if f > g => self.shift_up(n, f - g, want, span),
            (Kind::Fixed(g), Kind::Fixed(f)) => self.floor_div_pow2(n, g - f, want, span),
            _ => {
                self.error(Diagnostic::new(
                    span,
                    format!("expected {}, found {}", want.name(), have.name()),
                ));
                None
            }
        }
    }

    fn convert_to(&mut self, v: Val, ty: &Type, span: Span) -> Val {
        let Some((kind, bits, shape)) = self.field_type(ty) else {
            return Val::Poison;
        };
        if shape_of(&v) != shape && !matches!(v, Val::Poison) {
            return self.error(Diagnostic::new(
                span,
                format!(
                    "expected an array of shape {shape:?}, found shape {:?}",
                    shape_of(&v)
                ),
            ));
        }
        let mut flat = Vec::new();
        flatten(&v, String::new(), &mut flat);
        let mut out = Vec::with_capacity(flat.len());
        for (_, v) in flat {
            if !self.charge(1, span) {
                return Val::Poison;
            }
            let Val::Scalar(k, repr) = v else {
                return Val::Poison;
            };
            let Some(n) = self.convert_kind(Num { kind: k, repr }, kind, span) else {
                return Val::Poison;
            };
            let (lo, hi) = n.bounds();
            let (tlo, thi) = (-pow2(bits - 1), pow2(bits - 1) - 1);
            if kind != Kind::Bool && (lo < tlo || hi > thi) {
                return self.error(
                    Diagnostic::new(
                        span,
                        format!("this value may not fit its declared type: it lies in [{lo}, {hi}] (scaled), the type holds [{tlo}, {thi}]"),
                    )
                    .help("integers never wrap: widen the type or narrow the inputs' ranges"),
                );
            }
            out.push(Val::Scalar(n.kind, n.repr));
        }
        shape_values(out, &shape)
    }

    // ----- expressions -----

    fn expr(&mut self, e: &Expr) -> Val {
        if !self.charge(1, e.span) {
            return Val::Poison;
        }
        match &e.kind {
            ExprKind::Int(v) => Val::Scalar(Kind::Int, Repr::Public(*v)),
            ExprKind::Decimal { digits, scale } => {
                let den = 10i128.checked_pow(*scale);
                let scaled = den.and_then(|d| {
                    let n = digits.checked_mul(pow2(LITERAL_FRAC))?;
                    // Round to nearest.
                    Some(
                        n.checked_mul(2)?
                            .checked_add(d)?
                            .div_euclid(d.checked_mul(2)?),
                    )
                });
                match scaled {
                    Some(v) => Val::Scalar(Kind::Fixed(LITERAL_FRAC), Repr::Public(v)),
                    None => self.error(Diagnostic::new(
                        e.span,
                        "decimal literal too precise or too large",
                    )),
                }
            }
            ExprKind::Bool(b) => Val::Scalar(Kind::Bool, Repr::Public(i128::from(*b))),
            ExprKind::Name(name) => match self.lookup(name) {
                Some(b) => {
                    // Copying an array costs its size: a program doubling one line by line stops.
                    let size = scalars(&b.val);
                    if size > 1 && !self.charge(size, e.span) {
                        Val::Poison
                    } else {
                        self.lookup(name).map_or(Val::Poison, |b| b.val.clone())
                    }
                }
                None => self.error(Diagnostic::new(e.span, format!("unknown name `{name}`"))),
            },
            ExprKind::Array(items) => {
                let values: Vec<Val> = items.iter().map(|i| self.expr(i)).collect();
                // Arrays are rectangular and at most as deep as a type may declare (plus the
                // device slots): nothing later walks a deeper value.
                let first = values.first().map(shape_of).unwrap_or_default();
                if values.iter().any(|v| matches!(v, Val::Poison)) {
                    Val::Poison
                } else if first.len() > MAX_DIMENSIONS {
                    self.error(Diagnostic::new(
                        e.span,
                        format!("arrays have at most {} dimensions", MAX_DIMENSIONS + 1),
                    ))
                } else if values.iter().any(|v| shape_of(v) != first) {
                    self.error(Diagnostic::new(
                        e.span,
                        "an array's elements must have one shape",
                    ))
                } else {
                    Val::Array(values)
                }
            }
            ExprKind::Index(arr, index) => {
                let a = self.expr(arr);
                let Some(i) = self.index_of(index) else {
                    return Val::Poison;
                };
                match a {
                    Val::Array(items) => match usize::try_from(i).ok().and_then(|i| items.get(i)) {
                        Some(v) => v.clone(),
                        None => self.error(Diagnostic::new(
                            index.span,
                            format!("index {i} is out of bounds for an array of {}", items.len()),
                        )),
                    },
                    Val::Poison => Val::Poison,
                    Val::Scalar(..) => {
                        self.error(Diagnostic::new(arr.span, "only arrays can be indexed"))
                    }
                }
            }
            ExprKind::Unary(op, inner) => {
                let v = self.expr(inner);
                self.unary(*op, v, e.span)
            }
            ExprKind::Binary(op, l, r) => {
                let (a, b) = (self.expr(l), self.expr(r));
                self.binary(*op, a, b, e.span)
            }
            ExprKind::Call(name, args) => self.call(name, args, e.span),
        }
    }

    fn index_of(&mut self, index: &Expr) -> Option<i128> {
        match self.expr(index) {
            Val::Scalar(Kind::Int, Repr::Public(i)) => Some(i),
            Val::Poison => None,
            Val::Scalar(_, Repr::Secret { .. }) => {
                self.error(
                    Diagnostic::new(index.span, "array indices must be public").help(
                        "to pick by a secret, compare the index with each position and select",
                    ),
                );
                None
            }
            _ => {
                self.error(Diagnostic::new(
                    index.span,
                    "an array index must be an integer",
                ));
                None
            }
        }
    }

    fn scalar(&mut self, v: Val, span: Span) -> Option<Num> {
        match v {
            Val::Scalar(kind, repr) => Some(Num { kind, repr }),
            Val::Poison => None,
            Val::Array(_) => {
                self.error(Diagnostic::new(
                    span,
                    "expected a number or boolean, found an array",
                ));
                None
            }
        }
    }

    fn boolean(&mut self, v: Val, span: Span) -> Option<Num> {
        let n = self.scalar(v, span)?;
        if n.kind != Kind::Bool {
            self.error(Diagnostic::new(
                span,
                format!("expected a boolean, found {}", n.kind.name()),
            ));
            return None;
        }
        Some(n)
    }

    fn numeric(&mut self, v: Val, span: Span) -> Option<Num> {
        let n = self.scalar(v, span)?;
        Some(if n.kind == Kind::Bool {
            Self::int(n)
        } else {
            n
        })
    }

    fn done(n: Option<Num>) -> Val {
        match n {
            Some(n) => Val::Scalar(n.kind, n.repr),
            None => Val::Poison,
        }
    }

    fn unary(&mut self, op: UnOp, v: Val, span: Span) -> Val {
        let n = match op {
            UnOp::Neg => self.numeric(v, span).and_then(|n| self.negate(n, span)),
            UnOp::Not => self.boolean(v, span).map(|n| self.not_num(n)),
        };
        Self::done(n)
    }

    fn negate(&mut self, n: Num, span: Span) -> Option<Num> {
        match n.repr {
            Repr::Public(v) => self.public(n.kind, v.checked_neg(), span),
            Repr::Secret { wire, lo, hi } => {
                let w = self.b.neg(wire);
                self.secret(n.kind, w, hi.checked_neg(), lo.checked_neg(), span)
            }
        }
    }

    fn not_num(&mut self, n: Num) -> Num {
        match n.repr {
            Repr::Public(v) => Num {
                kind: Kind::Bool,
                repr: Repr::Public(1 - v),
            },
            Repr::Secret { wire, .. } => Num {
                kind: Kind::Bool,
                repr: Repr::Secret {
                    wire: self.not(wire),
                    lo: 0,
                    hi: 1,
                },
            },
        }
    }

    /// Brings two numbers to one kind: the fixed-point precision of the secret operand (or the
    /// finer of two secrets, or of two publics).
    fn align(&mut self, a: Num, b: Num, span: Span) -> Option<(Kind, Num, Num)> {
        let as_number = |n: Num| {
            if n.kind == Kind::Bool {
                Self::int(n)
            } else {
                n
            }
        };
        let (a, b) = (as_number(a), as_number(b));
        let kind = match (a.kind, b.kind) {
            (Kind::Int, Kind::Int) => Kind::Int,
            (Kind::Fixed(f), Kind::Int) | (Kind::Int, Kind::Fixed(f)) => Kind::Fixed(f),
            (Kind::Fixed(f), Kind::Fixed(g)) => match (a.is_public(), b.is_public()) {
                (true, false) => Kind::Fixed(g),
                (false, true) => Kind::Fixed(f),
                _ => Kind::Fixed(f.max(g)),
            },
            (Kind::Bool, _) | (_, Kind::Bool) => unreachable!("booleans are integers here"),
        };
        let a = self.convert_kind(a, kind, span)?;
        let b = self.convert_kind(b, kind, span)?;
        Some((kind, a, b))
    }

    fn binary(&mut self, op: BinOp, l: Val, r: Val, span: Span) -> Val {
        use BinOp::*;
        if !self.charge(1, span) {
            return Val::Poison;
        }
        let n = match op {
            And | Or => {
                let (Some(a), Some(b)) = (self.boolean(l, span), self.boolean(r, span)) else {
                    return Val::Poison;
                };
                Some(self.logic(op, a, b))
            }
            Eq | Ne
                if matches!(
                    (&l, &r),
                    (Val::Scalar(Kind::Bool, _), Val::Scalar(Kind::Bool, _))
                ) =>
            {
                let (Some(a), Some(b)) = (self.scalar(l, span), self.scalar(r, span)) else {
                    return Val::Poison;
                };
                // a == b for bits: 1 − (a ⊕ b).
                let x = self.xor(a, b);
                Some(if op == Eq { self.not_num(x) } else { x })
            }
            _ => {
                let (Some(a), Some(b)) = (self.numeric(l, span), self.numeric(r, span)) else {
                    return Val::Poison;
                };
                match op {
                    Add | Sub => self.add_sub(op, a, b, span),
                    Mul => self.mul(a, b, span),
                    Div | Rem => self.div_rem(op, a, b, span),
                    Lt | Le | Gt | Ge | Eq | Ne => self.compare(op, a, b, span),
                    And | Or => unreachable!("handled above"),
                }
            }
        };
        Self::done(n)
    }

    fn logic(&mut self, op: BinOp, a: Num, b: Num) -> Num {
        let bit = |repr| Num {
            kind: Kind::Bool,
            repr,
        };
        match (a.repr, b.repr) {
            (Repr::Public(x), Repr::Public(y)) => {
                bit(Repr::Public(if op == BinOp::And { x & y } else { x | y }))
            }
            (Repr::Public(x), _) | (_, Repr::Public(x)) => {
                let other = if a.is_public() { b } else { a };
                match (op, x) {
                    (BinOp::And, 0) => bit(Repr::Public(0)),
                    (BinOp::Or, 1) => bit(Repr::Public(1)),
                    _ => other,
                }
            }
            (Repr::Secret { wire: x, .. }, Repr::Secret { wire: y, .. }) => {
                let xy = self.b.mul(x, y);
                let wire = if op == BinOp::And {
                    xy
                } else {
                    let s = self.b.add(x, y);
                    self.b.sub(s, xy)
                };
                bit(Repr::Secret { wire, lo: 0, hi: 1 })
            }
        }
    }

    fn xor(&mut self, a: Num, b: Num) -> Num {
        let bit = |repr| Num {
            kind: Kind::Bool,
            repr,
        };
        match (a.repr, b.repr) {
            (Repr::Public(x), Repr::Public(y)) => bit(Repr::Public(x ^ y)),
            _ => {
                let (x, y) = (self.wire(a.repr), self.wire(b.repr));
                let xy = self.b.mul(x, y);
                let s = self.b.add(x, y);
                let two_xy = self.b.mul_const(xy, Fp::from_u64(2));
                bit(Repr::Secret {
                    wire: self.b.sub(s, two_xy),
                    lo: 0,
                    hi: 1,
                })
            }
        }
    }

    fn add_sub(&mut self, op: BinOp, a: Num, b: Num, span: Span) -> Option<Num> {
        let (kind, a, b) = self.align(a, b, span)?;
        let b = if op == BinOp::Sub {
            self.negate(b, span)?
        } else {
            b
        };
        match (a.repr, b.repr) {
            (Repr::Public(x), Repr::Public(y)) => self.public(kind, x.checked_add(y), span),
            _ => {
                let ((alo, ahi), (blo, bhi)) = (a.bounds(), b.bounds());
                let w = match (a.repr, b.repr) {
                    (Repr::Secret { wire, .. }, Repr::Public(c))
                    | (Repr::Public(c), Repr::Secret { wire, .. }) => {
                        self.b.add_const(wire, Fp::from_i128(c))
                    }
                    (Repr::Secret { wire: x, .. }, Repr::Secret { wire: y, .. }) => {
                        self.b.add(x, y)
                    }
                    _ => unreachable!("public pair handled"),
                };
                self.secret(kind, w, alo.checked_add(blo), ahi.checked_add(bhi), span)
            }
        }
    }

    /// The interval of a product of two intervals.
    fn product_bounds(a: (i128, i128), b: (i128, i128)) -> (Option<i128>, Option<i128>) {
        let corners = [
            a.0.checked_mul(b.0),
            a.0.checked_mul(b.1),
            a.1.checked_mul(b.0),
            a.1.checked_mul(b.1),
        ];
        if corners.iter().any(Option::is_none) {
            return (None, None);
        }
        let c = corners.map(|c| c.expect("checked"));
        (c.iter().min().copied(), c.iter().max().copied())
    }

    fn mul(&mut self, a: Num, b: Num, span: Span) -> Option<Num> {
        // An integer factor scales a fixed-point one without truncation.
        let (kind, a, b, frac) = match (a.kind, b.kind) {
            (Kind::Fixed(f), Kind::Int) | (Kind::Int, Kind::Fixed(f)) => (Kind::Fixed(f), a, b, 0),
            _ => {
                let (kind, a, b) = self.align(a, b, span)?;
                (kind, a, b, kind.frac())
            }
        };
        let (lo, hi) = Self::product_bounds(a.bounds(), b.bounds());
        let product = match (a.repr, b.repr) {
            (Repr::Public(x), Repr::Public(y)) => {
                let v = x.checked_mul(y).map(|p| p.div_euclid(pow2(frac)));
                return self.public(kind, v, span);
            }
            (Repr::Secret { wire, .. }, Repr::Public(c))
            | (Repr::Public(c), Repr::Secret { wire, .. }) => {
                self.b.mul_const(wire, Fp::from_i128(c))
            }
            (Repr::Secret { wire: x, .. }, Repr::Secret { wire: y, .. }) => self.b.mul(x, y),
        };
        let n = self.secret(kind, product, lo, hi, span)?;
        self.floor_div_pow2(n, frac, kind, span)
    }

    /// ⌊n / 2^m⌋, of the given kind.
    fn floor_div_pow2(&mut self, n: Num, m: u32, kind: Kind, span: Span) -> Option<Num> {
        if m == 0 {
            return Some(Num { kind, ..n });
        }
        if m > MAX_MAGNITUDE_BITS {
            self.error(Diagnostic::new(span, "a shift of more than 120 bits"));
            return None;
        }
        let d = pow2(m);
        match n.repr {
            Repr::Public(v) => self.public(kind, Some(v.div_euclid(d)), span),
            // The interval decides the result: no truncation needed.
            Repr::Secret { lo, hi, .. } if lo.div_euclid(d) == hi.div_euclid(d) => {
                self.public(kind, Some(lo.div_euclid(d)), span)
            }
            Repr::Secret { wire, lo, hi } => {
                let k = signed_width(lo, hi);
                let w = gadgets::truncate(&mut self.b, wire, k, m);
                self.secret(
                    kind,
                    w,
                    Some(lo.div_euclid(d)),
                    Some(hi.div_euclid(d)),
                    span,
                )
            }
        }
    }

    fn div_rem(&mut self, op: BinOp, a: Num, b: Num, span: Span) -> Option<Num> {
        if let Repr::Secret { .. } = b.repr {
            if op == BinOp::Rem {
                self.error(Diagnostic::new(span, "`%` takes a public divisor"));
                return None;
            }
            return self.divide(a, b, span);
        }
        let (kind, a, b) = match (a.kind, b.kind) {
            // int / int and fixed / int keep the dividend's kind.
            (_, Kind::Int) => (a.kind, a, b),
            _ => self.align(a, b, span)?,
        };
        let Repr::Public(d) = b.repr else {
            unreachable!("checked above")
        };
        // For fixed / fixed both are scaled by 2^f: the quotient needs the dividend scaled once more.
        let (a, d) = match (kind, b.kind) {
            (Kind::Fixed(f), Kind::Fixed(_)) => (self.shift_up(a, f, kind, span)?, d),
            _ => (a, d),
        };
        if d == 0 {
            self.error(Diagnostic::new(span, "division by zero"));
            return None;
        }
        if op == BinOp::Rem {
            if d < 0 || kind != Kind::Int {
                self.error(Diagnostic::new(
                    span,
                    "`%` takes an integer and a positive integer constant",
                ));
                return None;
            }
            let q = self.floor_div(a, d, kind, span)?;
            let dq = self.mul(q, Self::pub_int(d), span)?;
            let neg = self.negate(dq, span)?;
            return self.add_sub(BinOp::Add, a, neg, span);
        }
        self.floor_div(a, d, kind, span)
    }

    /// ⌊a / d⌋ for a public d ≠ 0, exactly: by a power of two with one truncation, otherwise by
    /// multiplying with ⌈2^s / d⌉ and truncating by s (Granlund–Montgomery), on a − lo' ≥ 0.
    fn floor_div(&mut self, a: Num, d: i128, kind: Kind, span: Span) -> Option<Num> {
        if d < 0 {
            let neg = self.negate(a, span)?;
            return self.floor_div(neg, -d, kind, span);
        }
        if let Repr::Public(v) = a.repr {
            return self.public(kind, Some(v.div_euclid(d)), span);
        }
        if d.count_ones() == 1 {
            return self.floor_div_pow2(a, d.trailing_zeros(), kind, span);
        }
        let (lo, hi) = a.bounds();
        let Some(base) = lo.div_euclid(d).checked_mul(d) else {
            self.error(Diagnostic::new(
                span,
                "this division's dividend is too large",
            ));
            return None;
        };
        let shifted = self.add_sub(BinOp::Sub, Self::int(a), Self::pub_int(base), span)?;
        let top = hi - base;
        let n_bits = 128 - top.leading_zeros();
        let s = n_bits + ceil_log2(d);
        if s > MAX_MAGNITUDE_BITS {
            self.error(Diagnostic::new(
                span,
                "this division needs more than 120 bits; narrow the dividend",
            ));
            return None;
        }
        let magic = (pow2(s) + d - 1) / d;
        let scaled = self.mul(shifted, Self::pub_int(magic), span)?;
        let q = self.floor_div_pow2(scaled, s, Kind::Int, span)?;
        let back = Self::pub_int(base / d);
        let q = self.add_sub(BinOp::Add, q, back, span)?;
        // The interval the truncation reports is loose; the quotient's is exact.
        match q.repr {
            Repr::Secret { wire, .. } => self.secret(
                kind,
                wire,
                Some(lo.div_euclid(d)),
                Some(hi.div_euclid(d)),
                span,
            ),
            Repr::Public(_) => Some(Num { kind, ..q }),
        }
    }

    fn compare(&mut self, op: BinOp, a: Num, b: Num, span: Span) -> Option<Num> {
        use BinOp::*;
        let (kind, a, b) = self.align(a, b, span)?;
        // Everything reduces to [x < 0] or [x = 0] of an integer difference.
        let (x, y, negate, less) = match op {
            Lt => (a, b, false, true),
            Ge => (a, b, true, true),
            Gt => (b, a, false, true),
            Le => (b, a, true, true),
            Eq => (a, b, false, false),
            Ne => (a, b, true, false),
            _ => unreachable!("comparisons only"),
        };
        let diff = self.add_sub(Sub, Num { kind, ..x }, Num { kind, ..y }, span)?;
        let (lo, hi) = diff.bounds();
        let known = if less {
            (hi < 0).then_some(1).or((lo >= 0).then_some(0))
        } else {
            (lo > 0 || hi < 0)
                .then_some(0)
                .or((lo == 0 && hi == 0).then_some(1))
        };
        let result = match (known, diff.repr) {
            (Some(v), _) => Num {
                kind: Kind::Bool,
                repr: Repr::Public(v),
            },
            (None, Repr::Public(_)) => unreachable!("a public difference is known"),
            (None, Repr::Secret { wire, .. }) => {
                let k = signed_width(lo, hi);
                let w = if less {
                    gadgets::less_than_zero(&mut self.b, wire, k)
                } else {
                    gadgets::equals_zero(&mut self.b, wire, k)
                };
                Num {
                    kind: Kind::Bool,
                    repr: Repr::Secret {
                        wire: w,
                        lo: 0,
                        hi: 1,
                    },
                }
            }
        };
        Some(if negate { self.not_num(result) } else { result })
    }

    /// c ? a : b = b + c·(a − b), elementwise over arrays of one shape.
    fn select(&mut self, c: Num, a: Val, b: Val, span: Span) -> Val {
        if !self.charge(1, span) {
            return Val::Poison;
        }
        match (a, b) {
            (Val::Poison, _) | (_, Val::Poison) => Val::Poison,
            (Val::Array(x), Val::Array(y)) if x.len() == y.len() => Val::Array(
                x.into_iter()
                    .zip(y)
                    .map(|(x, y)| self.select(c, x, y, span))
                    .collect(),
            ),
            (Val::Scalar(ka, ra), Val::Scalar(kb, rb)) => {
                let (a, b) = (Num { kind: ka, repr: ra }, Num { kind: kb, repr: rb });
                if let Repr::Public(c) = c.repr {
                    return Val::Scalar(if c != 0 { ka } else { kb }, if c != 0 { ra } else { rb });
                }
                let both_bool = ka == Kind::Bool && kb == Kind::Bool;
                let n = (|| {
                    let (kind, a, b) = if both_bool {
                        (Kind::Bool, a, b)
                    } else {
                        let a = self.numeric(Val::Scalar(a.kind, a.repr), span)?;
                        let b = self.numeric(Val::Scalar(b.kind, b.repr), span)?;
                        self.align(a, b, span)?
                    };
                    let ((alo, ahi), (blo, bhi)) = (a.bounds(), b.bounds());
                    let diff = self.add_sub(BinOp::Sub, Self::int(a), Self::int(b), span)?;
                    let cw = self.wire(c.repr);
                    let dw = self.wire(diff.repr);
                    let picked = self.b.mul(cw, dw);
                    let bw = self.wire(b.repr);
                    let w = self.b.add(bw, picked);
                    self.secret(kind, w, Some(alo.min(blo)), Some(ahi.max(bhi)), span)
                })();
                Self::done(n)
            }
            _ => self.error(Diagnostic::new(
                span,
                "select's branches must have the same shape",
            )),
        }
    }

    fn call(&mut self, name: &str, args: &[Expr], span: Span) -> Val {
        let arity = |n: usize| args.len() == n;
        let vals: Vec<Val> = args.iter().map(|a| self.expr(a)).collect();
        let mut vals = vals.into_iter();
        let mut next = || vals.next().unwrap_or(Val::Poison);
        match name {
            "select" if arity(3) => {
                let c = next();
                let Some(c) = self.boolean(c, args[0].span) else {
                    return Val::Poison;
                };
                let (a, b) = (next(), next());
                self.select(c, a, b, span)
            }
            "min" | "max" if arity(2) => {
                let (a, b) = (next(), next());
                self.min_max(name == "min", a, b, span)
            }
            "min" | "max" if arity(1) => match next() {
                Val::Array(items) if !items.is_empty() => {
                    let mut level = items;
                    while level.len() > 1 {
                        let mut out = Vec::with_capacity(level.len().div_ceil(2));
                        let mut it = level.into_iter();
                        while let Some(a) = it.next() {
                            out.push(match it.next() {
                                Some(b) => self.min_max(name == "min", a, b, span),
                                None => a,
                            });
                        }
                        level = out;
                    }
                    level.pop().expect("non-empty")
                }
                Val::Poison => Val::Poison,
                _ => self.error(Diagnostic::new(
                    span,
                    format!("{name} takes two numbers or a non-empty array"),
                )),
            },
            "sum" if arity(1) => match next() {
                Val::Array(items) => {
                    let mut acc = Val::Scalar(Kind::Int, Repr::Public(0));
                    for item in items {
                        acc = self.binary(BinOp::Add, acc, item, span);
                    }
                    acc
                }
                Val::Poison => Val::Poison,
                Val::Scalar(..) => self.error(Diagnostic::new(span, "sum takes an array")),
            },
            "len" if arity(1) => match next() {
                Val::Array(items) => Val::Scalar(Kind::Int, Repr::Public(items.len() as i128)),
                Val::Poison => Val::Poison,
                Val::Scalar(..) => self.error(Diagnostic::new(span, "len takes an array")),
            },
            "abs" if arity(1) => {
                let x = next();
                let zero = Val::Scalar(Kind::Int, Repr::Public(0));
                let negative = self.binary(BinOp::Lt, x.clone(), zero.clone(), span);
                let negated = self.binary(BinOp::Sub, zero, x.clone(), span);
                match self.boolean(negative, span) {
                    Some(c) => self.select(c, negated, x, span),
                    None => Val::Poison,
                }
            }
            "floor" if arity(1) => {
                let x = next();
                let n = self.numeric(x, span).and_then(|n| match n.kind {
                    Kind::Fixed(f) => self.floor_div_pow2(n, f, Kind::Int, span),
                    _ => Some(n),
                });
                Self::done(n)
            }
            "sqrt" if arity(1) => {
                let x = next();
                let n = self
                    .numeric(x, span)
                    .and_then(|n| self.square_root(n, span));
                Self::done(n)
            }
            "select" | "min" | "max" | "sum" | "len" | "abs" | "floor" | "sqrt" => self.error(
                Diagnostic::new(span, format!("wrong number of arguments to `{name}`")),
            ),
            _ => self.error(
                Diagnostic::new(span, format!("unknown function `{name}`"))
                    .help("functions are select, min, max, sum, len, abs, floor, sqrt"),
            ),
        }
    }

    fn min_max(&mut self, min: bool, a: Val, b: Val, span: Span) -> Val {
        let less = self.binary(BinOp::Lt, a.clone(), b.clone(), span);
        let Some(c) = self.boolean(less, span) else {
            return Val::Poison;
        };
        if min {
            self.select(c, a, b, span)
        } else {
            self.select(c, b, a, span)
        }
    }
}

/// How many scalars a value holds.
fn scalars(v: &Val) -> usize {
    match v {
        Val::Array(items) => items.iter().map(scalars).sum::<usize>().max(1),
        _ => 1,
    }
}

/// The shape of a value (array lengths, outermost first).
fn shape_of(v: &Val) -> Vec<usize> {
    match v {
        Val::Array(items) => {
            let mut s = vec![items.len()];
            if let Some(first) = items.first() {
                s.extend(shape_of(first));
            }
            s
        }
        _ => Vec::new(),
    }
}

/// Scalars of `v` with their names (`name[i][j]`), in order.
fn flatten(v: &Val, name: String, out: &mut Vec<(String, Val)>) {
    match v {
        Val::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(item, format!("{name}[{i}]"), out);
            }
        }
        other => out.push((name, other.clone())),
    }
}

/// The element of `v` at `indices`, for assignment.
fn element_mut<'a>(v: &'a mut Val, indices: &[i128]) -> Result<&'a mut Val, String> {
    let mut cur = v;
    for &i in indices {
        match cur {
            Val::Array(items) => {
                let len = items.len();
                cur = usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get_mut(i))
                    .ok_or_else(|| format!("index {i} is out of bounds for an array of {len}"))?;
            }
            _ => return Err("only arrays can be indexed".into()),
        }
    }
    Ok(cur)
}
