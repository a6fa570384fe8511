//! Authentication by VOLE under the global MAC key: how a party's values get MACs under another
//! party's key share α without either learning the other's secret, at 64 field elements per value
//! (COPE, which this replaces, sent 253).
//!
//! The receiver A writes α = Σ_d 16^d·Δ_d in 64 digits of 4 bits and holds, per digit, every leaf
//! of a punctured seed tree but the one at Δ_d ([`crate::ot::ggm`]); the sender B holds every leaf.
//! For values x (a vector) and each digit d, both expand leaf y to pseudorandom field elements R_y
//! (B all 16, A all but R_{Δ_d}). B sends e_d = x − Σ_y R_y and keeps W_d = Σ_y y·R_y; A computes
//! q_d = Σ_{y≠Δ_d} (Δ_d − y)·R_y + Δ_d·e_d = Δ_d·x − W_d. So q = Σ 16^d q_d and w = Σ 16^d W_d
//! satisfy q + w = α·x.
//!
//! A dishonest B may use different x in different digits: the MAC of x then carries an error
//! 16^d·Δ_d·(x' − x) that the batch's MAC check of a random combination catches unless Δ_d = 0, a
//! guess right with probability 1/16 (MASCOT's COPE allows the same per bit, right with 1/2).

use zeroize::Zeroize;

use crate::field::Fp;
use crate::ot::ggm::{FullSeeds, LEAVES, PuncturedSeeds};
use crate::ot::prg::Prg;
use crate::wire::{FieldElements, FrameError};

/// 4-bit digits of α: 256 bits cover the field's 253.
pub const DIGITS: usize = 64;
/// Field elements sent per authenticated value.
pub const ELEMENTS_PER_VALUE: usize = DIGITS;

/// The digits of `alpha`, least significant first.
pub fn alpha_digits(alpha: &Fp) -> Vec<u8> {
    let mut bytes = alpha.to_bytes();
    let digits = bytes.iter().flat_map(|b| [b & 0xf, b >> 4]).collect();
    bytes.zeroize();
    digits
}

/// 16·acc + v, elementwise, by doubling.
fn shift_in(acc: &mut [Fp], v: &[Fp]) {
    for (a, v) in acc.iter_mut().zip(v) {
        let a2 = *a + *a;
        let a4 = a2 + a2;
        let a8 = a4 + a4;
        *a = a8 + a8 + *v;
    }
}

/// Σ_y R_y and Σ_y y·R_y over the leaves `leaf(y)` of one tree, leaving out leaf `punctured`
/// (≥ [`LEAVES`] for none) without a branch on it: its stream is expanded from whatever `leaf`
/// gives and selected away. Suffix sums: T_j = Σ_{y ≥ j} R_y, Σ y·R_y = Σ_{j ≥ 1} T_j. Works in
/// chunks that stay in the first-level cache, with one PRG per leaf for the whole vector.
fn leaf_sums<'a>(
    leaf: impl Fn(usize) -> &'a [u8; 16],
    punctured: usize,
    nonce: u64,
    first: u64,
    total: &mut [Fp],
    weighted: &mut [Fp],
) {
    const CHUNK: usize = 32;
    let mut prgs: Vec<Prg> = (0..LEAVES)
        .map(|y| Prg::at(leaf(y), nonce, 2 * first))
        .collect();
    let mut r = [Fp::ZERO; CHUNK];
    for (total, weighted) in total.chunks_mut(CHUNK).zip(weighted.chunks_mut(CHUNK)) {
        let len = total.len();
        total.fill(Fp::ZERO);
        weighted.fill(Fp::ZERO);
        for (y, prg) in prgs.iter_mut().enumerate().rev() {
            prg.fill_field(&mut r[..len]);
            let keep = y != punctured;
            total
                .iter_mut()
                .zip(&r)
                .for_each(|(t, r)| *t += Fp::select(keep, *r, Fp::ZERO));
            if y > 0 {
                weighted
                    .iter_mut()
                    .zip(total.iter())
                    .for_each(|(w, t)| *w += *t);
            }
        }
    }
    r.iter_mut().for_each(Fp::wipe);
}

/// Side B: authenticates its own values under the peer's key.
pub struct VoleSender {
    seeds: FullSeeds,
}

/// Side A: holds its key share's digits and the punctured trees they chose.
pub struct VoleReceiver {
    seeds: PuncturedSeeds,
}

impl VoleSender {
    pub fn new(seeds: FullSeeds) -> Self {
        assert_eq!(seeds.digits(), DIGITS);
        VoleSender { seeds }
    }

    /// For values `x` at stream position `first` of batch `nonce`: the message e (digit-major,
    /// [`DIGITS`] × `x.len()` elements) and B's MAC-share part w.
    pub fn send(&self, nonce: u64, first: u64, x: &[Fp]) -> (Vec<Fp>, Vec<Fp>) {
        let n = x.len();
        let mut e = vec![Fp::ZERO; DIGITS * n];
        let mut w = vec![Fp::ZERO; n];
        let (mut total, mut weighted) = (vec![Fp::ZERO; n], vec![Fp::ZERO; n]);
        for d in (0..DIGITS).rev() {
            leaf_sums(
                |y| self.seeds.leaf(d, y),
                LEAVES,
                nonce,
                first,
                &mut total,
                &mut weighted,
            );
            for ((e, x), t) in e[d * n..(d + 1) * n].iter_mut().zip(x).zip(&total) {
                *e = *x - *t;
            }
            shift_in(&mut w, &weighted);
        }
        for v in [&mut total, &mut weighted] {
            v.iter_mut().for_each(Fp::wipe);
        }
        (e, w)
    }
}

impl VoleReceiver {
    /// `seeds` must have been punctured at the digits of α ([`alpha_digits`]).
    pub fn new(seeds: PuncturedSeeds) -> Self {
        assert_eq!(seeds.digits(), DIGITS);
        VoleReceiver { seeds }
    }

    /// A's MAC-share parts q for B's message `e` about `n` values at position `first`.
    pub fn receive(
        &self,
        nonce: u64,
        first: u64,
        n: usize,
        e: FieldElements,
    ) -> Result<Vec<Fp>, FrameError> {
        match e.len().cmp(&(DIGITS * n)) {
            std::cmp::Ordering::Less => return Err(FrameError::Truncated),
            std::cmp::Ordering::Greater => {
                return Err(FrameError::TrailingBytes(e.len() - DIGITS * n));
            }
            std::cmp::Ordering::Equal => {}
        }
        let mut e_d = vec![Fp::ZERO; n];
        let mut q = vec![Fp::ZERO; n];
        let (mut total, mut weighted) = (vec![Fp::ZERO; n], vec![Fp::ZERO; n]);
        let mut elements = e.iter();
        let mut rows = vec![Vec::new(); DIGITS];
        for row in rows.iter_mut() {
            *row = elements.by_ref().take(n).collect::<Result<Vec<Fp>, _>>()?;
        }
        for d in (0..DIGITS).rev() {
            let digit = self.seeds.digit(d);
            leaf_sums(
                |y| self.seeds.leaf_or_zero(d, y),
                digit as usize,
                nonce,
                first,
                &mut total,
                &mut weighted,
            );
            let delta = Fp::from_u64(digit as u64);
            for (k, q_d) in e_d.iter_mut().enumerate() {
                *q_d = delta * (total[k] + rows[d][k]) - weighted[k];
            }
            shift_in(&mut q, &e_d);
        }
        for v in [&mut total, &mut weighted, &mut e_d] {
            v.iter_mut().for_each(Fp::wipe);
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ot::ggm::tests::trees;
    use crate::wire::{Body, BodyView, Frame, FrameView, SessionId};

    pub(crate) fn pair(alpha: &Fp) -> (VoleSender, VoleReceiver) {
        let (full, punctured) = trees(&alpha_digits(alpha));
        (VoleSender::new(full), VoleReceiver::new(punctured))
    }

    fn receive(a: &VoleReceiver, nonce: u64, first: u64, e: Vec<Fp>, n: usize) -> Vec<Fp> {
        let frame = Frame {
            session: SessionId::default(),
            round: 0,
            body: Body::Values(e),
        }
        .encode();
        let view = FrameView::parse(&frame, usize::MAX).unwrap();
        let BodyView::Values(e) = view.body else {
            unreachable!()
        };
        a.receive(nonce, first, n, e).unwrap()
    }

    #[test]
    fn shares_sum_to_alpha_times_x() {
        let mut rng = rand::rng();
        let alpha = Fp::random(&mut rng);
        let (b, a) = pair(&alpha);
        let x: Vec<Fp> = (0..5).map(|_| Fp::random(&mut rng)).collect();
        let (e, w) = b.send(9, 0, &x);
        assert_eq!(e.len(), ELEMENTS_PER_VALUE * 5);
        let q = receive(&a, 9, 0, e, 5);
        for k in 0..5 {
            assert_eq!(q[k] + w[k], alpha * x[k]);
        }
        // Any stream position gives the same relation, and the position matters.
        let (e, w) = b.send(9, 100, &x[..2]);
        let q = receive(&a, 9, 100, e, 2);
        assert_eq!(q[1] + w[1], alpha * x[1]);
    }

    /// Value k of a batch always uses stream position k: authenticating in two segments gives
    /// what one call gives. (Overlapping positions would mask two values with the same leaf
    /// sums, and their difference would show in the messages.)
    #[test]
    fn segments_use_their_own_stream_positions() {
        let mut rng = rand::rng();
        let (b, _) = pair(&Fp::random(&mut rng));
        let x: Vec<Fp> = (0..40).map(|_| Fp::random(&mut rng)).collect();
        let (whole, w_whole) = b.send(3, 0, &x);
        let (head, w_head) = b.send(3, 0, &x[..25]);
        let (tail, w_tail) = b.send(3, 25, &x[25..]);
        for d in 0..DIGITS {
            assert_eq!(
                whole[d * 40..d * 40 + 25],
                head[d * 25..(d + 1) * 25],
                "digit {d}"
            );
            assert_eq!(whole[d * 40 + 25..(d + 1) * 40], tail[d * 15..(d + 1) * 15]);
        }
        assert_eq!(w_whole, [w_head, w_tail].concat());
    }

    /// A message of the wrong length is a typed error, never an out-of-bounds read.
    #[test]
    fn a_message_of_the_wrong_length_is_refused() {
        let (_, a) = pair(&Fp::from_u64(11));
        let frame = |count: usize| {
            Frame {
                session: SessionId::default(),
                round: 0,
                body: Body::Values(vec![Fp::ONE; count]),
            }
            .encode()
        };
        for (count, want) in [
            (DIGITS * 2 - 1, FrameError::Truncated),
            (DIGITS * 2 + 3, FrameError::TrailingBytes(3)),
        ] {
            let bytes = frame(count);
            let BodyView::Values(e) = FrameView::parse(&bytes, usize::MAX).unwrap().body else {
                unreachable!()
            };
            assert_eq!(a.receive(1, 0, 2, e), Err(want));
        }
    }

    #[test]
    fn digits_recompose() {
        let alpha = Fp::random(&mut rand::rng());
        let sixteen = Fp::from_u64(16);
        let back = alpha_digits(&alpha)
            .iter()
            .rev()
            .fold(Fp::ZERO, |acc, &d| acc * sixteen + Fp::from_u64(d as u64));
        assert_eq!(back, alpha);
    }

    /// A sender using another x in one digit shifts the MAC by 16^d·Δ_d·(x' − x).
    #[test]
    fn an_inconsistent_digit_shifts_the_mac_by_that_digit_of_alpha() {
        let mut rng = rand::rng();
        let alpha = Fp::random(&mut rng);
        let digits = alpha_digits(&alpha);
        let d = digits.iter().position(|&g| g != 0).unwrap();
        let (b, a) = pair(&alpha);
        let x = [Fp::random(&mut rng)];
        let (mut e, w) = b.send(1, 0, &x);
        e[d] += Fp::ONE;
        let q = receive(&a, 1, 0, e, 1);
        let shift =
            Fp::from_u64(digits[d] as u64) * (0..d).fold(Fp::ONE, |acc, _| acc * Fp::from_u64(16));
        assert_eq!(q[0] + w[0], alpha * x[0] + shift);
    }
}
