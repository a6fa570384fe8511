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
