//! Authenticated random bits by the square-root trick (Damgård et al.): take a random shared r,
//! open r² (one multiplication and a MAC check), let s be a square root of r²; then r/s = ±1 with
//! equal probability and b = (r/s + 1)/2 is a uniformly random bit that nobody knows.

use crate::circuit::{Circuit, CircuitBuilder, Wire};
use crate::field::Fp;
use crate::share::{MacKeyShare, PartyId, Share};

/// Why bits could not be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitsError {
    #[error("an opened square was zero (probability 1/l) or not a square: the run must be redone")]
    BadSquare,
    #[error("{squares} squares for {shares} shares")]
    Mismatch { squares: usize, shares: usize },
}

/// The circuit that opens r_k² for `n` fresh random r_k, and the wires r_k to keep.
pub fn squares_circuit(parties: usize, n: usize) -> (Circuit, Vec<Wire>) {
    let mut b = CircuitBuilder::new(parties);
    let mut keep = Vec::with_capacity(n);
    for _ in 0..n {
        let r = b.random();
        let sq = b.mul(r, r);
        b.reveal(sq);
        keep.push(r);
    }
    (b.build(), keep)
}

/// The bit shares from opened squares and this party's shares of the r_k.
pub fn bits_from_squares(
    squares: &[Fp],
    r: &[Share],
    party: PartyId,
    key: &MacKeyShare,
) -> Result<Vec<Share>, BitsError> {
    if squares.len() != r.len() {
        return Err(BitsError::Mismatch {
            squares: squares.len(),
            shares: r.len(),
        });
    }
    let half = Fp::from_u64(2).inverse().expect("2 is invertible");
    squares
        .iter()
        .zip(r)
        .map(|(sq, r)| {
            let inv = sq
                .sqrt()
                .and_then(|s| s.inverse())
                .ok_or(BitsError::BadSquare)?;
            Ok(r.scale(inv).add_public(Fp::ONE, party, key).scale(half))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two parties' shares of r_k, opened squares, and the bits they derive: one bit per r_k,
    /// each 1 exactly when r_k is the square root `sqrt` picks (so a fair, unknown coin).
    #[test]
    fn one_bit_per_square_and_each_is_the_sign_of_r() {
        let mut rng = rand::rng();
        let (a0, a1) = (Fp::random(&mut rng), Fp::random(&mut rng));
        let alpha = a0 + a1;
        let keys = [MacKeyShare::new(a0), MacKeyShare::new(a1)];
        let r: Vec<Fp> = (0..16).map(|_| Fp::random(&mut rng)).collect();
        let mut shares = [Vec::new(), Vec::new()];
        for x in &r {
            let (v0, m0) = (Fp::random(&mut rng), Fp::random(&mut rng));
            shares[0].push(Share { value: v0, mac: m0 });
            shares[1].push(Share {
                value: *x - v0,
                mac: alpha * *x - m0,
            });
        }
        let squares: Vec<Fp> = r.iter().map(Fp::square).collect();
        let bits: Vec<Vec<Share>> = (0..2)
            .map(|p| bits_from_squares(&squares, &shares[p], p, &keys[p]).unwrap())
            .collect();
        assert_eq!(bits[0].len(), r.len());
        for (k, x) in r.iter().enumerate() {
            let value = bits[0][k].value + bits[1][k].value;
            assert_eq!(
                bits[0][k].mac + bits[1][k].mac,
                alpha * value,
                "MAC of bit {k}"
            );
            let expected = if squares[k].sqrt() == Some(*x) {
                Fp::ONE
            } else {
                Fp::ZERO
            };
            assert_eq!(value, expected, "bit {k}");
        }
        assert_eq!(
            bits_from_squares(&squares[..2], &shares[0], 0, &keys[0]),
            Err(BitsError::Mismatch {
                squares: 2,
                shares: 16
            })
        );
    }
}
