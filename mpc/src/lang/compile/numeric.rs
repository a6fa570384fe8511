//! Division by a secret and square root: Newton iterations on a normalised operand.
//!
//! The operand's magnitude is normalised into [1/2, 1) (division) or [1/4, 1) (square root) by
//! the one-hot position of its highest bit, found with one comparison against each power of two
//! its interval allows. Newton's method then runs in fixed point with W = F + 10 working bits
//! (at most 54), as many iterations as the initial approximation's error needs to fall below
//! 2^−(W+1). Every iterate's interval is the one the mathematics proves (with a factor 2 of
//! margin), so the gadgets stay exact and the plaintext evaluation remains the reference.

use super::*;

/// Working fractional bits of the iterations for a result of `frac` fractional bits.
fn working_bits(frac: u32) -> u32 {
    (frac + 10).min(54)
}

/// Newton iterations until the relative error, starting at `e0` and squared (times `c`) each
/// step, is below 2^−(w+1).
fn iterations(e0: f64, c: f64, w: u32) -> usize {
    let target = 2f64.powi(-(w as i32) - 1);
    let mut e = e0;
    let mut n = 0;
    while e > target && n < 8 {
        e = c * e * e;
        n += 1;
    }
    n
}

fn isqrt(v: i128) -> i128 {
    let mut r = (v as f64).sqrt() as i128;
    while r * r > v {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= v {
        r += 1;
    }
    r
}

fn round_scaled(x: f64, w: u32) -> i128 {
    (x * 2f64.powi(w as i32)).round() as i128
}

impl Compiler<'_> {
    /// c ? a : b for integer-kind numbers.
    fn select_num(&mut self, c: Num, a: Num, b: Num, span: Span) -> Option<Num> {
        let (a, b) = (Self::int(a), Self::int(b));
        match self.select(
            c,
            Val::Scalar(a.kind, a.repr),
            Val::Scalar(b.kind, b.repr),
            span,
        ) {
            Val::Scalar(kind, repr) => Some(Num { kind, repr }),
            _ => None,
        }
    }

    /// −x where the secret `negative` holds (none: x itself).
    fn negate_if(&mut self, negative: Option<Num>, x: Num, span: Span) -> Option<Num> {
        match negative {
            Some(c) => {
                let minus = self.negate(x, span)?;
                self.select_num(c, minus, x, span)
            }
            None => Some(x),
        }
    }

    /// The same wire with an interval proven by other means than interval arithmetic.
    fn with_bounds(&mut self, n: Num, lo: i128, hi: i128, span: Span) -> Option<Num> {
        let wire = self.wire(n.repr);
        self.secret(n.kind, wire, Some(lo), Some(hi), span)
    }

    /// For x ∈ [0, 2^bits): [x ≥ 2^j] for j = 0..bits (then 0), and the one-hot h_j = [the
    /// highest set bit of x is j] (all zero for x = 0).
    fn highest_bit(&mut self, x: Num, bits: u32, span: Span) -> Option<(Num, Vec<Wire>)> {
        let mut ge = Vec::with_capacity(bits as usize + 1);
        for j in 0..bits {
            let c = self.compare(BinOp::Ge, x, Self::pub_int(pow2(j)), span)?;
            ge.push(self.wire(c.repr));
        }
        let zero = self.b.constant(Fp::ZERO);
        ge.push(zero);
        let one_hot = (0..bits as usize)
            .map(|j| self.b.sub(ge[j], ge[j + 1]))
            .collect();
        let nonzero = Num {
            kind: Kind::Bool,
            repr: Repr::Secret {
                wire: ge[0],
                lo: 0,
                hi: 1,
            },
        };
        Some((nonzero, one_hot))
    }

    /// Σ_j h_j·c_j for public c_j: a secret in [min c, max c] (0 when no h_j is set).
    fn weigh(
        &mut self,
        one_hot: &[Wire],
        weights: impl Fn(u32) -> i128,
        span: Span,
    ) -> Option<Num> {
        let mut acc = self.b.constant(Fp::ZERO);
        let mut hi = 0;
        for (j, &h) in one_hot.iter().enumerate() {
            let w = weights(j as u32);
            hi = hi.max(w);
            let term = self.b.mul_const(h, Fp::from_i128(w));
            acc = self.b.add(acc, term);
        }
        self.secret(Kind::Int, acc, Some(0), Some(hi), span)
    }

    /// `n` (scaled by 2^from) rescaled to 2^to.
    fn rescale(&mut self, n: Num, from: u32, to: u32, span: Span) -> Option<Num> {
        if to >= from {
            self.shift_up(n, to - from, Kind::Int, span)
        } else {
            self.floor_div_pow2(n, from - to, Kind::Int, span)
        }
    }

    /// Fixed-point product of two values scaled by 2^w.
    fn fmul(&mut self, a: Num, b: Num, w: u32, span: Span) -> Option<Num> {
        let p = self.mul(Self::int(a), Self::int(b), span)?;
        self.floor_div_pow2(p, w, Kind::Int, span)
    }

    /// a / b for a secret b: fixed point with the dividend's fractional bits (the divisor's if
    /// the dividend is an integer, 16 if both are). x / 0 = 0. Relative error below 2^−(F+8)
    /// plus two units in the last place.
    pub(super) fn divide(&mut self, a: Num, b: Num, span: Span) -> Option<Num> {
        let frac = match (a.kind, b.kind) {
            (Kind::Fixed(f), _) | (_, Kind::Fixed(f)) => f,
            _ => 16,
        };
        let (fa, fb) = (a.kind.frac(), b.kind.frac());
        let (a, b) = (Self::int(a), Self::int(b));
        let (blo, _) = b.bounds();
        let negative = if blo < 0 {
            Some(self.compare(BinOp::Lt, b, Self::pub_int(0), span)?)
        } else {
            None
        };
        let magnitude = self.negate_if(negative, b, span)?;
        let (mlo, mhi) = magnitude.bounds();
        let magnitude = self.with_bounds(magnitude, mlo.max(0), mhi, span)?;
        let bits = (128 - mhi.leading_zeros()).max(1);
        let (nonzero, one_hot) = self.highest_bit(magnitude, bits, span)?;
        // v = 2^(bits−1−j) makes |b|·v ∈ [2^(bits−1), 2^bits); for b = 0 the normalised value
        // is set to 1/2 so the iteration stays in range, and the result is zeroed below.
        let v = self.weigh(&one_hot, |j| pow2(bits - 1 - j), span)?;
        let normal = self.mul(magnitude, v, span)?;
        let zero_fill = self.not_num(nonzero);
        let fill = self.mul(zero_fill, Self::pub_int(pow2(bits - 1)), span)?;
        let normal = self.add_sub(BinOp::Add, normal, Self::int(fill), span)?;
        let normal = self.with_bounds(normal, pow2(bits - 1), pow2(bits) - 1, span)?;
        // Newton for r = 1/n, n ∈ [1/2, 1): r ← r·(2 − n·r) from r₀ = 2.9142 − 2n (error < 0.086).
        let w = working_bits(frac);
        let n = self.rescale(normal, bits, w, span)?;
        let n = self.with_bounds(n, pow2(w - 1) - 1, pow2(w), span)?;
        let two_n = self.mul(n, Self::pub_int(2), span)?;
        let start = Self::pub_int(round_scaled(2.9142, w));
        let mut r = self.add_sub(BinOp::Sub, start, two_n, span)?;
        for _ in 0..iterations(0.086, 1.0, w) {
            let nr = self.fmul(n, r, w, span)?;
            let e = self.add_sub(BinOp::Sub, Self::pub_int(pow2(w + 1)), nr, span)?;
            let e = self.with_bounds(e, 0, pow2(w + 1), span)?;
            r = self.fmul(r, e, w, span)?;
            r = self.with_bounds(r, 0, pow2(w + 2), span)?;
        }
        // a / b = a·v·r / 2^(bits + w), rescaled from 2^(fa − fb) to 2^frac. The dividend is
        // first scaled by 2^p so that flooring a·r loses less than one unit of the quotient.
        let shift = i64::from(bits) - i64::from(frac) + i64::from(fa) - i64::from(fb);
        let p = (i64::from(frac) + i64::from(fb) - i64::from(fa) - 1).max(0) as u32;
        let (alo, ahi) = a.bounds();
        let a = self.shift_up(a, p, Kind::Int, span)?;
        let t = self.fmul(a, r, w, span)?;
        let t = self.mul(t, v, span)?;
        let shift = shift + i64::from(p);
        let q = if shift >= 0 {
            self.floor_div_pow2(t, shift as u32, Kind::Int, span)?
        } else {
            self.shift_up(t, (-shift) as u32, Kind::Int, span)?
        };
        let q = self.negate_if(negative, q, span)?;
        let q = self.mul(q, Self::int(nonzero), span)?;
        // |q| ≤ max|a|·2^(frac − fa + fb) / min|b| + 2 (r never exceeds 1/n after an
        // iteration, and each floor moves by less than one); kept with a margin.
        let smallest = match b.bounds() {
            (lo, _) if lo > 0 => lo,
            (_, hi) if hi < 0 => -hi,
            _ => 1,
        };
        let top = alo.unsigned_abs().max(ahi.unsigned_abs()) as i128;
        let scale_up = i64::from(frac) - i64::from(fa) + i64::from(fb);
        let bound = if scale_up >= 0 {
            top.checked_mul(pow2(scale_up as u32)).map(|v| v / smallest)
        } else {
            Some(top / pow2((-scale_up) as u32) / smallest)
        };
        let bound = bound.map(|v| v.saturating_add(v / 256 + 4));
        let wire = self.wire(q.repr);
        self.secret(Kind::Fixed(frac), wire, bound.map(|v| -v), bound, span)
    }

    /// √x for x ≥ 0 (a negative x gives 0): fixed point with x's fractional bits (16 for an
    /// integer). Relative error below 2^−(F+8) plus two units in the last place.
    pub(super) fn square_root(&mut self, x: Num, span: Span) -> Option<Num> {
        let (f, frac) = match x.kind {
            Kind::Fixed(f) => (f, f),
            _ => (0, 16),
        };
        let x = Self::int(x);
        let (lo, _) = x.bounds();
        let x = if lo < 0 {
            let negative = self.compare(BinOp::Lt, x, Self::pub_int(0), span)?;
            self.select_num(negative, Self::pub_int(0), x, span)?
        } else {
            x
        };
        // √(x / 2^f)·2^frac = √(X·2^(2·frac − f)).
        let y = self.shift_up(x, 2 * frac - f, Kind::Int, span)?;
        let (_, yhi) = y.bounds();
        let y = self.with_bounds(y, 0, yhi, span)?;
        let bits = (128 - yhi.leading_zeros()).max(2).next_multiple_of(2);
        let (nonzero, one_hot) = self.highest_bit(y, bits, span)?;
        // An even shift e_j puts y·2^e_j in [2^(bits−2), 2^bits); √ then scales by 2^((bits−e_j)/2).
        let even = |j: u32| {
            let e = bits - 1 - j;
            e - e % 2
        };
        let v = self.weigh(&one_hot, |j| pow2(even(j)), span)?;
        let u = self.weigh(&one_hot, |j| pow2((bits - even(j)) / 2), span)?;
        let normal = self.mul(y, v, span)?;
        let zero_fill = self.not_num(nonzero);
        let fill = self.mul(zero_fill, Self::pub_int(pow2(bits - 1)), span)?;
        let normal = self.add_sub(BinOp::Add, normal, Self::int(fill), span)?;
        let normal = self.with_bounds(normal, pow2(bits - 2), pow2(bits) - 1, span)?;
        // Newton for s = 1/√n, n ∈ [1/4, 1): s ← s·(3 − n·s²)/2 from s₀ = 2.13 − 1.215n
        // (error < 0.087).
        let w = working_bits(frac);
        let n = self.rescale(normal, bits, w, span)?;
        let n = self.with_bounds(n, pow2(w - 2) - 1, pow2(w), span)?;
        let slope = self.fmul(n, Self::pub_int(round_scaled(1.215, w)), w, span)?;
        let mut s = self.add_sub(
            BinOp::Sub,
            Self::pub_int(round_scaled(2.13, w)),
            slope,
            span,
        )?;
        for _ in 0..iterations(0.087, 1.5, w) {
            let s2 = self.fmul(s, s, w, span)?;
            let ns2 = self.fmul(n, s2, w, span)?;
            let e = self.add_sub(BinOp::Sub, Self::pub_int(3 * pow2(w)), ns2, span)?;
            let e = self.with_bounds(e, 0, 3 * pow2(w), span)?;
            s = self.fmul(s, e, w + 1, span)?;
            s = self.with_bounds(s, 0, pow2(w + 2), span)?;
        }
        // √y = n·s·2^(bits/2 ... ) = (n·s)·u, with n·s ≈ √n scaled by 2^w.
        let root_n = self.fmul(n, s, w, span)?;
        let root = self.mul(root_n, u, span)?;
        let root = self.floor_div_pow2(root, w, Kind::Int, span)?;
        let root = self.mul(root, Self::int(nonzero), span)?;
        // √y ≤ √max y, kept with a margin for the iterations' rounding.
        let top = isqrt(yhi);
        let wire = self.wire(root.repr);
        self.secret(
            Kind::Fixed(frac),
            wire,
            Some(0),
            Some(top + top / 256 + 4),
            span,
        )
    }
}
