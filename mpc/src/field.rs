//! The MPC field F_l, l = 2^252 + 27742317777372353535851937790883648493 (the Ristretto scalar field).
//!
//! Elements are kept in Montgomery form (arkworks' `ark_ed25519::Fr`), which multiplies several times
//! faster than dalek's `Scalar`. They convert losslessly to and from `Scalar` at curve boundaries, and
//! have one canonical 32-byte little-endian encoding: bytes that encode a value ≥ l are rejected.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use ark_ed25519::Fr;
use ark_ff::{BigInt, Field, PrimeField, Zero};
use curve25519_dalek::Scalar;
use rand_core::Rng;
use zeroize::Zeroize;

/// Length of the canonical encoding in bytes.
pub const ENCODED_LEN: usize = 32;

/// An element of F_l.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fp(Fr);

/// Bytes that are not the canonical encoding of a field element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("non-canonical field element encoding (value not below the field modulus)")]
pub struct NonCanonical;

impl Fp {
    pub const ZERO: Fp = Fp(ark_ff::MontFp!("0"));
    pub const ONE: Fp = Fp(ark_ff::MontFp!("1"));

    /// The field element `v`.
    pub fn from_u64(v: u64) -> Self {
        Fp(Fr::from(v))
    }

    /// The field element `v` (negative values map to `l - |v|`).
    pub fn from_i64(v: i64) -> Self {
        if v < 0 {
            -Fp::from_u64(v.unsigned_abs())
        } else {
            Fp::from_u64(v as u64)
        }
    }

    /// The value as a signed integer, if it lies in `[-2^63, 2^63)` in the centred representation.
    pub fn to_i64(&self) -> Option<i64> {
        let as_u64 = |f: Fp| {
            let limbs = f.0.into_bigint().0;
            (limbs[1] == 0 && limbs[2] == 0 && limbs[3] == 0).then_some(limbs[0])
        };
        if let Some(v) = as_u64(*self).filter(|v| *v <= i64::MAX as u64) {
            return Some(v as i64);
        }
        as_u64(-*self)
            .filter(|v| *v <= 1u64 << 63)
            .map(|v| (v as i64).wrapping_neg())
    }

    /// The field element `v` (negative values map to `l - |v|`).
    pub fn from_i128(v: i128) -> Self {
        let magnitude = Fp(Fr::from(v.unsigned_abs()));
        if v < 0 { -magnitude } else { magnitude }
    }

    /// The value as a signed integer, if it lies in `[-2^127, 2^127)` in the centred representation.
    pub fn to_i128(&self) -> Option<i128> {
        let as_u128 = |f: Fp| {
            let limbs = f.0.into_bigint().0;
            (limbs[2] == 0 && limbs[3] == 0)
                .then_some(u128::from(limbs[0]) | u128::from(limbs[1]) << 64)
        };
        if let Some(v) = as_u128(*self).filter(|v| *v <= i128::MAX as u128) {
            return Some(v as i128);
        }
        as_u128(-*self)
            .filter(|v| *v <= 1u128 << 127)
            .map(|v| (v as i128).wrapping_neg())
    }

    /// Bit `i` (least significant first) of the canonical integer representative in [0, l).
    pub fn bit(&self, i: usize) -> bool {
        let limbs = self.0.into_bigint().0;
        i < 256 && (limbs[i / 64] >> (i % 64)) & 1 == 1
    }

    /// A uniformly random element, by rejection sampling of 253-bit strings (about 2 tries).
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        loop {
            let mut bytes = [0u8; ENCODED_LEN];
            rng.fill_bytes(&mut bytes);
            bytes[31] &= 0x1f;
            let candidate = Fp::from_bytes(&bytes);
            bytes.zeroize();
            if let Ok(v) = candidate {
                return v;
            }
        }
    }

    /// Maps 256 uniform bits to a field element without any arithmetic: the low 252 bits, read as
    /// a Montgomery residue. Since 2^252 < l < 2^252 + 2^125, the result is within statistical
    /// distance 2^-127 of uniform. Both sides of a PRG derive the same element from the same bits.
    #[inline]
    pub fn from_252_bits(bytes: [u8; ENCODED_LEN]) -> Self {
        let limbs = bytes_to_limbs(&bytes);
        Self::from_252_limbs(limbs)
    }

    /// [`Fp::from_252_bits`] of the 256 bits `lo` (least significant) and `hi`.
    #[inline]
    pub fn from_252_bits_of(lo: u128, hi: u128) -> Self {
        Self::from_252_limbs([lo as u64, (lo >> 64) as u64, hi as u64, (hi >> 64) as u64])
    }

    #[inline]
    fn from_252_limbs(mut limbs: [u64; 4]) -> Self {
        limbs[3] &= (1 << 60) - 1;
        Fp(Fr::new_unchecked(BigInt(limbs)))
    }

    /// Reduces 64 uniform bytes modulo l; the bias is below 2^-250.
    pub fn from_uniform_bytes(bytes: &[u8; 64]) -> Self {
        Fp(Fr::from_le_bytes_mod_order(bytes))
    }

    /// The canonical little-endian encoding.
    pub fn to_bytes(&self) -> [u8; ENCODED_LEN] {
        limbs_to_bytes(&self.0.into_bigint().0)
    }

    /// Decodes the canonical encoding; a value ≥ l is an error, never silently reduced.
    pub fn from_bytes(bytes: &[u8; ENCODED_LEN]) -> Result<Self, NonCanonical> {
        Fr::from_bigint(BigInt(bytes_to_limbs(bytes)))
            .map(Fp)
            .ok_or(NonCanonical)
    }

    /// A second canonical encoding, for bulk MPC traffic: the Montgomery residue x·2^256 mod l in
    /// little-endian limbs. It is a bijection onto [0, l) like [`Fp::to_bytes`], but costs no
    /// conversion, which matters when a frame carries hundreds of thousands of elements.
    #[inline]
    pub fn to_montgomery_bytes(&self) -> [u8; ENCODED_LEN] {
        limbs_to_bytes(&(self.0).0.0)
    }

    /// Decodes [`Fp::to_montgomery_bytes`]; a residue ≥ l is rejected.
    #[inline]
    pub fn from_montgomery_bytes(bytes: &[u8; ENCODED_LEN]) -> Result<Self, NonCanonical> {
        let limbs = bytes_to_limbs(bytes);
        let modulus = <Fr as PrimeField>::MODULUS.0;
        // Compare from the most significant limb down.
        for i in (0..4).rev() {
            if limbs[i] != modulus[i] {
                return if limbs[i] < modulus[i] {
                    Ok(Fp(Fr::new_unchecked(BigInt(limbs))))
                } else {
                    Err(NonCanonical)
                };
            }
        }
        Err(NonCanonical)
    }

    /// The same value as a dalek `Scalar`, for use on the curve.
    pub fn to_scalar(&self) -> Scalar {
        // Both sides use the same modulus and canonical little-endian bytes.
        Scalar::from_canonical_bytes(self.to_bytes()).expect("F_l element is below l, so canonical")
    }

    /// The same value as a field element.
    pub fn from_scalar(s: &Scalar) -> Self {
        Fp::from_bytes(s.as_bytes()).expect("dalek Scalars are always reduced")
    }

    /// The multiplicative inverse, if the element is not zero.
    pub fn inverse(&self) -> Option<Self> {
        self.0.inverse().map(Fp)
    }

    /// A square root, if the element is a square.
    pub fn sqrt(&self) -> Option<Self> {
        self.0.sqrt().map(Fp)
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    pub fn square(&self) -> Self {
        Fp(self.0.square())
    }

    /// Overwrites the element with zero in a way the compiler does not elide.
    pub fn wipe(&mut self) {
        (self.0).0.0.zeroize();
    }
}

#[inline]
fn limbs_to_bytes(limbs: &[u64; 4]) -> [u8; ENCODED_LEN] {
    let mut out = [0u8; ENCODED_LEN];
    for (chunk, limb) in out.chunks_exact_mut(8).zip(limbs) {
        chunk.copy_from_slice(&limb.to_le_bytes());
    }
    out
}

#[inline]
fn bytes_to_limbs(bytes: &[u8; ENCODED_LEN]) -> [u64; 4] {
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
        *limb = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    limbs
}

impl Zeroize for Fp {
    fn zeroize(&mut self) {
        self.wipe();
    }
}

impl fmt::Debug for Fp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fp({self})")
    }
}

impl fmt::Display for Fp {
    /// Small values print as signed integers, others as hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_i64() {
            Some(v) => write!(f, "{v}"),
            None => write!(f, "0x{}", hex(&self.to_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().rev().map(|b| format!("{b:02x}")).collect()
}

impl From<u64> for Fp {
    fn from(v: u64) -> Self {
        Fp::from_u64(v)
    }
}

/// l, the field modulus, in little-endian limbs.
const MODULUS: [u64; 4] = [
    0x5812_631a_5cf5_d3ed,
    0x14de_f9de_a2f7_9cd6,
    0x0000_0000_0000_0000,
    0x1000_0000_0000_0000,
];

/// a + b with the carry out.
#[inline(always)]
fn add_limbs(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], bool) {
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s, c1) = a[i].overflowing_add(b[i]);
        let (s, c2) = s.overflowing_add(carry as u64);
        out[i] = s;
        carry = c1 | c2;
    }
    (out, carry)
}

/// a − b with the borrow out.
#[inline(always)]
fn sub_limbs(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], bool) {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(borrow as u64);
        out[i] = d;
        borrow = b1 | b2;
    }
    (out, borrow)
}

/// `if_set` where `mask` is all ones, else `otherwise`, without a branch.
#[inline(always)]
fn select(mask: u64, if_set: &[u64; 4], otherwise: &[u64; 4]) -> [u64; 4] {
    std::array::from_fn(|i| (if_set[i] & mask) | (otherwise[i] & !mask))
}

impl Fp {
    #[inline(always)]
    fn limbs(&self) -> &[u64; 4] {
        &(self.0).0.0
    }

    #[inline(always)]
    fn from_residue(limbs: [u64; 4]) -> Fp {
        Fp(Fr::new_unchecked(BigInt(limbs)))
    }

    /// `if_true` when `choice`, else `if_false`, without a branch on `choice` (it is often a
    /// secret bit, and a branch on a random bit is mispredicted half the time).
    #[inline]
    pub fn select(choice: bool, if_true: Fp, if_false: Fp) -> Fp {
        let mask = 0u64.wrapping_sub(choice as u64);
        Fp::from_residue(select(mask, if_true.limbs(), if_false.limbs()))
    }
}

// Addition, subtraction and negation work on the Montgomery residues directly and without
// branches: a data-dependent branch for the final reduction is mispredicted half the time on
// random values, which made a field addition cost as much as three. Both operands are < l <
// 2^253, so a + b never carries out of 256 bits.
impl Add for Fp {
    type Output = Fp;
    #[inline]
    fn add(self, rhs: Fp) -> Fp {
        let (sum, _) = add_limbs(self.limbs(), rhs.limbs());
        let (reduced, borrow) = sub_limbs(&sum, &MODULUS);
        Fp::from_residue(select(0u64.wrapping_sub(borrow as u64), &sum, &reduced))
    }
}

impl Sub for Fp {
    type Output = Fp;
    #[inline]
    fn sub(self, rhs: Fp) -> Fp {
        let (diff, borrow) = sub_limbs(self.limbs(), rhs.limbs());
        let (wrapped, _) = add_limbs(&diff, &MODULUS);
        Fp::from_residue(select(0u64.wrapping_sub(borrow as u64), &wrapped, &diff))
    }
}

impl Mul for Fp {
    type Output = Fp;
    #[inline]
    fn mul(self, rhs: Fp) -> Fp {
        Fp(self.0 * rhs.0)
    }
}

macro_rules! assign_op {
    ($assign_trait:ident, $assign_method:ident, $op:tt) => {
        impl $assign_trait for Fp {
            #[inline]
            fn $assign_method(&mut self, rhs: Fp) {
                *self = *self $op rhs;
            }
        }
    };
}
assign_op!(AddAssign, add_assign, +);
assign_op!(SubAssign, sub_assign, -);
assign_op!(MulAssign, mul_assign, *);

impl Neg for Fp {
    type Output = Fp;
    #[inline]
    fn neg(self) -> Fp {
        Fp::ZERO - self
    }
}

impl Sum for Fp {
    fn sum<I: Iterator<Item = Fp>>(iter: I) -> Fp {
        iter.fold(Fp::ZERO, |a, b| a + b)
    }
}

impl serde::Serialize for Fp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_bytes())
    }
}

impl<'de> serde::Deserialize<'de> for Fp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Fp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("32 bytes encoding a field element below l")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Fp, E> {
                let bytes: &[u8; ENCODED_LEN] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Fp::from_bytes(bytes).map_err(E::custom)
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_is_the_ristretto_group_order() {
        // -1 encodes as l - 1.
        let minus_one = (-Fp::ONE).to_bytes();
        let l_minus_one = (-Scalar::ONE).to_bytes();
        assert_eq!(minus_one, l_minus_one);
        assert_eq!(MODULUS, <Fr as PrimeField>::MODULUS.0);
    }

    /// The branch-free operations at the edges of the range, against arkworks'.
    #[test]
    fn branch_free_add_sub_neg_agree_with_arkworks_at_the_edges() {
        let edges = [
            Fp::ZERO,
            Fp::ONE,
            -Fp::ONE,
            -Fp::from_u64(2),
            Fp::from_u64(1 << 63),
        ];
        for a in edges {
            for b in edges {
                assert_eq!((a + b).0, a.0 + b.0, "{a} + {b}");
                assert_eq!((a - b).0, a.0 - b.0, "{a} - {b}");
            }
            assert_eq!((-a).0, -a.0, "-{a}");
            assert_eq!(Fp::select(true, a, Fp::ONE), a);
            assert_eq!(Fp::select(false, Fp::ONE, a), a);
        }
    }

    #[test]
    fn square_roots() {
        let x = Fp::from_u64(123_456_789);
        let r = x.square().sqrt().unwrap();
        assert!(r == x || r == -x);
        let non_residue = (1..100).map(Fp::from_u64).find(|v| v.sqrt().is_none());
        assert!(non_residue.is_some());
    }

    #[test]
    fn signed_round_trip() {
        for v in [0, 1, -1, 42, -42, i64::MAX, i64::MIN] {
            assert_eq!(Fp::from_i64(v).to_i64(), Some(v));
        }
        assert_eq!(Fp::from_u64(u64::MAX).to_i64(), None);
    }
}
