//! COPE, correlated oblivious product evaluation (MASCOT §4): how a party's values get MACs under
//! another party's key share without either learning the other's secret.
//!
//! Party A holds α (its MAC key share) and, from 253 base OTs with the bits of α as choices, one
//! seed of each pair; party B holds both seeds. To authenticate B's values x (a vector), for each
//! bit h both expand their seeds with a PRG: B sends u_h = t0_h − t1_h + x; A computes
//! q_h = t_{α_h,h} + α_h·u_h = t0_h + α_h·x. Then q = Σ 2^h q_h and t = −Σ 2^h t0_h satisfy
//! q + t = α·x. A dishonest B may use different x in different u_h; MASCOT's check (a MAC check
//! of a random combination) catches that.

use crate::field::Fp;
use crate::ot::prg::{Block, Prg};
use crate::wire::FieldElements;

/// Bits of a field element: l < 2^253.
pub const FIELD_BITS: usize = 253;

/// The bits of `x`, least significant first.
pub fn bits(x: &Fp) -> impl Iterator<Item = bool> + use<> {
    let bytes = x.to_bytes();
    (0..FIELD_BITS).map(move |h| (bytes[h / 8] >> (h % 8)) & 1 == 1)
}

/// Side B: authenticates its own values under the peer's key.
pub struct CopeSender {
    seeds: Vec<(Block, Block)>,
}

/// Side A: holds the key share α and the seeds its bits chose.
pub struct CopeReceiver {
    alpha_bits: Vec<bool>,
    seeds: Vec<Block>,
}

impl CopeSender {
    pub fn new(seeds: Vec<(Block, Block)>) -> Self {
        assert_eq!(seeds.len(), FIELD_BITS);
        CopeSender { seeds }
    }

    /// The message u (253 vectors of `x.len()` elements, bit-major) and B's shares t.
    pub fn extend(&self, batch: u64, x: &[Fp]) -> (Vec<Fp>, Vec<Fp>) {
        let n = x.len();
        let mut u = vec![Fp::ZERO; FIELD_BITS * n];
        let mut acc = vec![Fp::ZERO; n];
        let (mut t0, mut t1) = (vec![Fp::ZERO; n], vec![Fp::ZERO; n]);
        for h in (0..FIELD_BITS).rev() {
            let (k0, k1) = &self.seeds[h];
            Prg::new(k0, batch).fill_field(&mut t0);
            Prg::new(k1, batch).fill_field(&mut t1);
            let row = &mut u[h * n..(h + 1) * n];
            for k in 0..n {
                row[k] = t0[k] - t1[k] + x[k];
                acc[k] = acc[k] + acc[k] + t0[k];
            }
        }
        (u, acc.into_iter().map(|v| -v).collect())
    }
}

impl CopeReceiver {
    pub fn new(alpha: &Fp, seeds: Vec<Block>) -> Self {
        assert_eq!(seeds.len(), FIELD_BITS);
        CopeReceiver {
            alpha_bits: bits(alpha).collect(),
            seeds,
        }
    }

    /// A's shares q for B's message `u` about `n` values (u must hold 253·n elements).
    pub fn extend(
        &self,
        batch: u64,
        n: usize,
        u: FieldElements,
    ) -> Result<Vec<Fp>, crate::wire::FrameError> {
        let u: Vec<Fp> = u.iter().collect::<Result<_, _>>()?;
        let mut acc = vec![Fp::ZERO; n];
        let mut t = vec![Fp::ZERO; n];
        for h in (0..FIELD_BITS).rev() {
            Prg::new(&self.seeds[h], batch).fill_field(&mut t);
            let row = &u[h * n..(h + 1) * n];
            for k in 0..n {
                let q = if self.alpha_bits[h] {
                    t[k] + row[k]
                } else {
                    t[k]
                };
                acc[k] = acc[k] + acc[k] + q;
            }
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Body, Frame, FrameView, SessionId};
    use rand::RngExt;

    #[test]
    fn shares_sum_to_alpha_times_x() {
        let mut rng = rand::rng();
        let alpha = Fp::random(&mut rng);
        let pairs: Vec<(Block, Block)> = (0..FIELD_BITS)
            .map(|_| (rng.random(), rng.random()))
            .collect();
        let chosen = bits(&alpha)
            .zip(&pairs)
            .map(|(b, (k0, k1))| if b { *k1 } else { *k0 })
            .collect();
        let (a, b) = (CopeReceiver::new(&alpha, chosen), CopeSender::new(pairs));
        let x: Vec<Fp> = (0..5).map(|_| Fp::random(&mut rng)).collect();
        let (u, t) = b.extend(9, &x);
        let frame = Frame {
            session: SessionId::default(),
            round: 0,
            body: Body::Values(u),
        }
        .encode();
        let view = FrameView::parse(&frame, usize::MAX).unwrap();
        let crate::wire::BodyView::Values(u) = view.body else {
            unreachable!()
        };
        let q = a.extend(9, 5, u).unwrap();
        for k in 0..5 {
            assert_eq!(q[k] + t[k], alpha * x[k]);
        }
    }

    #[test]
    fn bits_recompose() {
        let x = Fp::random(&mut rand::rng());
        let back = bits(&x)
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .fold(Fp::ZERO, |acc, &b| {
                acc + acc + if b { Fp::ONE } else { Fp::ZERO }
            });
        assert_eq!(back, x);
    }
}
