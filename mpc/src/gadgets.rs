//! Comparison, truncation and equality on secret integers, built from the circuit IR's random
//! bits and masked openings (Catrina and de Hoogh, SCN 2010; Catrina and Saxena, FC 2010).
//!
//! Every gadget takes a secret `a` known to lie in [−2^(k−1), 2^(k−1)) and is exact there: the
//! result does not depend on the random bits, so the plaintext evaluation of the same circuit is
//! the reference. The one value each opens is a + 2^(k−1) plus a random mask at least κ bits
//! longer, so it tells the parties nothing but with probability 2^−κ. An opened value that a party
//! tampers with fails the MAC check that precedes every output. Outside its range a gadget's
//! result is unspecified: the program compiler proves every operand's range before it calls one.

use crate::circuit::{CircuitBuilder, Wire};
use crate::field::Fp;

/// Statistical security of the masked openings, in bits.
pub const KAPPA: u32 = 40;

/// Largest k a gadget accepts: the masked value k + κ + 1 bits long stays far below the field.
pub const MAX_BITS: u32 = 200;

/// The cost of one gadget: random bits it consumes and triples (products of two secrets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub bits: usize,
    pub triples: usize,
}

fn pow2(e: u32) -> Fp {
    let mut v = Fp::ONE;
    let two = Fp::from_u64(2);
    for _ in 0..e {
        v *= two;
    }
    v
}

fn check_width(k: u32, m: u32) {
    assert!(
        (1..=MAX_BITS).contains(&k) && m <= k,
        "gadget width k = {k}, m = {m} outside 1 ≤ m ≤ k ≤ {MAX_BITS}"
    );
}

/// `n` fresh random bits and their value Σ 2^i·b_i.
fn random_bits(b: &mut CircuitBuilder, n: u32) -> (Vec<Wire>, Wire) {
    let bits: Vec<Wire> = (0..n).map(|_| b.random_bit()).collect();
    let value = weighted_sum(b, &bits);
    (bits, value)
}

/// Σ 2^i·w_i (zero for no wires): the value of bits, least significant first.
pub fn weighted_sum(b: &mut CircuitBuilder, wires: &[Wire]) -> Wire {
    let mut acc = b.constant(Fp::ZERO);
    let mut weight = Fp::ONE;
    for &w in wires {
        let term = b.mul_const(w, weight);
        acc = b.add(acc, term);
        weight = weight + weight;
    }
    acc
}

/// Opens a + 2^(k−1) + 2^m·r'' + r' where r' = Σ 2^i·r_i has `m` bits and r'' has k + κ − m:
/// the public masked value, and the wires of r' and its bits.
fn masked_open(b: &mut CircuitBuilder, a: Wire, k: u32, m: u32) -> (Wire, Vec<Wire>, Wire) {
    let (low_bits, low) = random_bits(b, m);
    let (_, high) = random_bits(b, k + KAPPA - m);
    let offset = b.constant(pow2(k - 1));
    let shifted = b.add(a, offset);
    let high = b.mul_const(high, pow2(m));
    let masked = b.add(shifted, high);
    let masked = b.add(masked, low);
    (b.open(masked), low_bits, low)
}

/// [c < r] for a public `c` given by its bits and a secret `r` given by its bits, both least
/// significant first and of the same length: from the most significant position where they
/// differ. ⌈log₂ m⌉ rounds, fewer than 2m triples.
pub fn bits_less_than(b: &mut CircuitBuilder, c: &[Wire], r: &[Wire]) -> Wire {
    assert_eq!(c.len(), r.len(), "bit strings of different lengths");
    if c.is_empty() {
        return b.constant(Fp::ZERO);
    }
    let one = b.constant(Fp::ONE);
    // Per position, most significant first: (equal, c < r) = (1 − (c ⊕ r), (1 − c)·r).
    let mut pairs: Vec<(Wire, Wire)> = c
        .iter()
        .zip(r)
        .rev()
        .map(|(&ci, &ri)| {
            let cr = b.mul(ci, ri); // local: c is public
            let less = b.sub(ri, cr);
            let xor = b.add(ci, less);
            let xor = b.sub(xor, cr);
            (b.sub(one, xor), less)
        })
        .collect();
    while pairs.len() > 1 {
        let last_level = pairs.len() == 2;
        pairs = pairs
            .chunks(2)
            .map(|chunk| match *chunk {
                [(eq_hi, lt_hi), (eq_lo, lt_lo)] => {
                    let carried = b.mul(eq_hi, lt_lo);
                    let lt = b.add(lt_hi, carried);
                    // The root's equality is never read.
                    let eq = if last_level {
                        eq_hi
                    } else {
                        b.mul(eq_hi, eq_lo)
                    };
                    (eq, lt)
                }
                [single] => single,
                _ => unreachable!("chunks of two"),
            })
            .collect();
    }
    pairs[0].1
}

/// a mod 2^m, in [0, 2^m), for a in [−2^(k−1), 2^(k−1)) and m < k.
pub fn mod_pow2(b: &mut CircuitBuilder, a: Wire, k: u32, m: u32) -> Wire {
    check_width(k, m);
    assert!(m < k, "mod 2^{m} of a {k}-bit value");
    let (c, r_bits, r) = masked_open(b, a, k, m);
    // c mod 2^m = (a + r') mod 2^m, since 2^(k−1) and 2^m·r'' vanish mod 2^m.
    let c_bits: Vec<Wire> = (0..m).map(|i| b.bit(c, i as u16)).collect();
    let c_low = weighted_sum(b, &c_bits);
    let borrow = bits_less_than(b, &c_bits, &r_bits);
    let diff = b.sub(c_low, r);
    let wrap = b.mul_const(borrow, pow2(m));
    b.add(diff, wrap)
}

/// ⌊a / 2^m⌋ for a in [−2^(k−1), 2^(k−1)), exactly (the deterministic variant of Catrina and
/// Saxena's truncation: the plaintext evaluator must agree bit for bit).
pub fn truncate(b: &mut CircuitBuilder, a: Wire, k: u32, m: u32) -> Wire {
    check_width(k, 0);
    if m == 0 {
        return a;
    }
    if m >= k {
        // ⌊a / 2^m⌋ is −1 for negative a and 0 otherwise.
        let negative = less_than_zero(b, a, k);
        return b.neg(negative);
    }
    let low = mod_pow2(b, a, k, m);
    let high = b.sub(a, low);
    let inverse = pow2(m).inverse().expect("powers of two are invertible");
    b.mul_const(high, inverse)
}

/// [a < 0] for a in [−2^(k−1), 2^(k−1)).
pub fn less_than_zero(b: &mut CircuitBuilder, a: Wire, k: u32) -> Wire {
    check_width(k, 0);
    if k == 1 {
        // a ∈ {−1, 0}: [a < 0] = −a.
        return b.neg(a);
    }
    let low = mod_pow2(b, a, k, k - 1);
    // ⌊a / 2^(k−1)⌋ ∈ {−1, 0} is −[a < 0]: (low − a) / 2^(k−1).
    let diff = b.sub(low, a);
    let inverse = pow2(k - 1).inverse().expect("powers of two are invertible");
    b.mul_const(diff, inverse)
}

/// [a = 0] for a in [−2^(k−1), 2^(k−1)): opens x + 2^k·r'' + r' for x = a + 2^(k−1) and a
/// k-bit r', then checks bit by bit that r' = (c − 2^(k−1)) mod 2^k.
pub fn equals_zero(b: &mut CircuitBuilder, a: Wire, k: u32) -> Wire {
    check_width(k, 0);
    let (c, r_bits, _) = masked_open(b, a, k, k);
    // (c + 2^(k−1)) mod 2^k = (c − 2^(k−1)) mod 2^k, computed on a non-negative integer.
    let half = b.constant(pow2(k - 1));
    let target = b.add(c, half);
    let one = b.constant(Fp::ONE);
    let mut same: Vec<Wire> = r_bits
        .iter()
        .enumerate()
        .map(|(i, &ri)| {
            let ti = b.bit(target, i as u16);
            let tr = b.mul(ti, ri); // local: t is public
            let xor = b.add(ti, ri);
            let two_tr = b.mul_const(tr, Fp::from_u64(2));
            let xor = b.sub(xor, two_tr);
            b.sub(one, xor)
        })
        .collect();
    while same.len() > 1 {
        same = same
            .chunks(2)
            .map(|chunk| match *chunk {
                [x, y] => b.mul(x, y),
                [x] => x,
                _ => unreachable!("chunks of two"),
            })
            .collect();
    }
    same[0]
}

/// What [`less_than_zero`] on k bits consumes.
pub fn less_than_zero_cost(k: u32) -> Cost {
    cost_of(|b, a| {
        less_than_zero(b, a, k);
    })
}

/// What [`truncate`] by m of k bits consumes.
pub fn truncate_cost(k: u32, m: u32) -> Cost {
    cost_of(|b, a| {
        truncate(b, a, k, m);
    })
}

/// What [`equals_zero`] on k bits consumes.
pub fn equals_zero_cost(k: u32) -> Cost {
    cost_of(|b, a| {
        equals_zero(b, a, k);
    })
}

fn cost_of(build: impl FnOnce(&mut CircuitBuilder, Wire)) -> Cost {
    let mut b = CircuitBuilder::new(2);
    let a = b.input(0);
    build(&mut b, a);
    let need = b.build().requirements();
    Cost {
        bits: need.bits,
        triples: need.triples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Evaluates a one-input gadget in the clear with the given random bits.
    fn eval(build: impl Fn(&mut CircuitBuilder, Wire) -> Wire, a: i64, bits: &[bool]) -> i128 {
        let mut b = CircuitBuilder::new(2);
        let x = b.input(0);
        let out = build(&mut b, x);
        b.reveal(out);
        let circuit = b.build();
        circuit.validate().unwrap();
        let out = circuit
            .evaluate_with_bits(&[vec![Fp::from_i64(a)], vec![]], &[], bits)
            .unwrap();
        out[0].to_i128().unwrap()
    }

    proptest! {
        #[test]
        fn gadgets_are_exact_whatever_the_random_bits(
            k in 2u32..64,
            raw in any::<i64>(),
            m_seed in any::<u32>(),
            bits in proptest::collection::vec(any::<bool>(), 300),
        ) {
            let half = 1i128 << (k - 1);
            let a = (i128::from(raw).rem_euclid(2 * half) - half) as i64;
            let m = m_seed % k;
            prop_assert_eq!(
                eval(|b, x| less_than_zero(b, x, k), a, &bits),
                i128::from(a < 0)
            );
            prop_assert_eq!(
                eval(|b, x| equals_zero(b, x, k), a, &bits),
                i128::from(a == 0)
            );
            prop_assert_eq!(
                eval(|b, x| equals_zero(b, x, k), 0, &bits),
                1
            );
            prop_assert_eq!(
                eval(|b, x| truncate(b, x, k, m), a, &bits),
                i128::from(a).div_euclid(1i128 << m)
            );
            prop_assert_eq!(
                eval(|b, x| mod_pow2(b, x, k, m.max(1).min(k - 1)), a, &bits),
                i128::from(a).rem_euclid(1i128 << m.max(1).min(k - 1))
            );
        }
    }

    #[test]
    fn costs_grow_linearly_in_the_width() {
        let c = less_than_zero_cost(32);
        assert_eq!(c.bits, 32 + KAPPA as usize);
        assert!(c.triples < 2 * 31, "{c:?}");
        // Truncating by more bits than the value has leaves its sign.
        assert_eq!(truncate_cost(8, 20), less_than_zero_cost(8));
        let e = equals_zero_cost(32);
        assert_eq!(e.bits, 32 + KAPPA as usize);
        assert_eq!(e.triples, 31);
    }
}
