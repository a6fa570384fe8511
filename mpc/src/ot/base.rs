//! Base OT: Chou–Orlandi "simplest OT" over Ristretto, batched, with the OT's index, both public
//! points and a caller context hashed into every key (without the index, all random OTs of a
//! batch would come out equal).
//!
//! Sender: a random, A = a·G. Receiver, for choice c_i: b_i random, B_i = b_i·G + c_i·A, key
//! H(i, A, B_i, b_i·A). Sender: k0_i = H(i, A, B_i, a·B_i), k1_i = H(i, A, B_i, a·B_i − a·A).

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand_core::Rng;
use zeroize::Zeroize;

use super::prg::Block;
use crate::field::Fp;

/// A compressed Ristretto point on the wire.
pub type PointBytes = [u8; 32];

/// Why a base OT failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseOtError {
    #[error("the sender's point is not a valid Ristretto point or is the identity")]
    BadSenderPoint,
    #[error("the receiver's point {index} is not a valid Ristretto point")]
    BadReceiverPoint { index: usize },
}

fn random_scalar<R: Rng + ?Sized>(rng: &mut R) -> Scalar {
    Fp::random(rng).to_scalar()
}

fn key(
    context: &[u8],
    index: usize,
    a: &PointBytes,
    b: &PointBytes,
    shared: &RistrettoPoint,
) -> Block {
    let mut h = blake3::Hasher::new_derive_key("conclave-mpc v1 base OT key");
    h.update(&(context.len() as u64).to_le_bytes());
    h.update(context);
    h.update(&(index as u64).to_le_bytes());
    h.update(a);
    h.update(b);
    h.update(shared.compress().as_bytes());
    h.finalize().as_bytes()[..16].try_into().expect("16 bytes")
}

/// The sender's state between its message and the receiver's answer.
pub struct BaseOtSender {
    a: Scalar,
    big_a: PointBytes,
    a_big_a: RistrettoPoint,
}

impl Drop for BaseOtSender {
    fn drop(&mut self) {
        self.a.zeroize();
    }
}

impl BaseOtSender {
    /// Starts a batch; the returned point goes to the receiver.
    pub fn new<R: Rng + ?Sized>(rng: &mut R) -> (Self, PointBytes) {
        let a = random_scalar(rng);
        let point = RistrettoPoint::mul_base(&a);
        let big_a = point.compress().to_bytes();
        (
            BaseOtSender {
                a,
                big_a,
                a_big_a: a * point,
            },
            big_a,
        )
    }

    /// Both keys of every OT, from the receiver's points.
    pub fn finish(
        &self,
        context: &[u8],
        points: &[PointBytes],
    ) -> Result<Vec<(Block, Block)>, BaseOtError> {
        points
            .iter()
            .enumerate()
            .map(|(index, b)| {
                let big_b = CompressedRistretto(*b)
                    .decompress()
                    .ok_or(BaseOtError::BadReceiverPoint { index })?;
                let ab = self.a * big_b;
                Ok((
                    key(context, index, &self.big_a, b, &ab),
                    key(context, index, &self.big_a, b, &(ab - self.a_big_a)),
                ))
            })
            .collect()
    }
}

/// The receiver's side, in one step: its points for the sender and the keys it chose.
pub fn receive<R: Rng + ?Sized>(
    context: &[u8],
    sender_point: &PointBytes,
    choices: &[bool],
    rng: &mut R,
) -> Result<(Vec<PointBytes>, Vec<Block>), BaseOtError> {
    let big_a = CompressedRistretto(*sender_point)
        .decompress()
        .filter(|p| *p != RistrettoPoint::identity())
        .ok_or(BaseOtError::BadSenderPoint)?;
    let mut points = Vec::with_capacity(choices.len());
    let mut keys = Vec::with_capacity(choices.len());
    for (index, &c) in choices.iter().enumerate() {
        let mut b = random_scalar(rng);
        let mut big_b = RistrettoPoint::mul_base(&b);
        if c {
            big_b += big_a;
        }
        let b_bytes = big_b.compress().to_bytes();
        keys.push(key(context, index, sender_point, &b_bytes, &(b * big_a)));
        points.push(b_bytes);
        b.zeroize();
    }
    Ok((points, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn receiver_learns_exactly_its_chosen_key() {
        let mut rng = rand::rng();
        let choices: Vec<bool> = (0..64).map(|_| rng.random()).collect();
        let (sender, a) = BaseOtSender::new(&mut rng);
        let (points, chosen) = receive(b"ctx", &a, &choices, &mut rng).unwrap();
        let pairs = sender.finish(b"ctx", &points).unwrap();
        for (i, ((k0, k1), k)) in pairs.iter().zip(&chosen).enumerate() {
            assert_ne!(k0, k1, "OT {i}");
            let (want, other) = if choices[i] { (k1, k0) } else { (k0, k1) };
            assert_eq!(k, want, "OT {i}");
            assert_ne!(k, other, "OT {i}");
        }
        // Keys differ across indices even for equal choices.
        let all: std::collections::HashSet<_> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
        assert_eq!(all.len(), 128);
    }

    /// Known answers: fixed randomness, fixed choices, pinned keys. Any change to the key
    /// derivation, the point encoding or the protocol shows here.
    #[test]
    fn known_answer() {
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;
        let mut sender_rng = ChaCha20Rng::seed_from_u64(1);
        let mut receiver_rng = ChaCha20Rng::seed_from_u64(2);
        let (sender, a) = BaseOtSender::new(&mut sender_rng);
        let choices = [false, true, true, false];
        let (points, chosen) = receive(b"kat", &a, &choices, &mut receiver_rng).unwrap();
        let pairs = sender.finish(b"kat", &points).unwrap();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let got: Vec<String> = chosen.iter().map(|k| hex(k)).collect();
        assert_eq!(got, KAT_CHOSEN);
        for (i, &c) in choices.iter().enumerate() {
            let (k0, k1) = pairs[i];
            assert_eq!(chosen[i], if c { k1 } else { k0 });
            assert_eq!(hex(if c { &k0 } else { &k1 }), KAT_OTHER[i]);
        }
    }

    const KAT_CHOSEN: [&str; 4] = [
        "305bde416bda49f4097504eee4795b97",
        "3f893b5fcf12cd6e244ac21e617bbb69",
        "3ee655454cd9f02554f7114b0f5a1edf",
        "1b74d95f51ac2ce4b3d2aa68c30ae185",
    ];
    const KAT_OTHER: [&str; 4] = [
        "ff3a72879addb47b4d8c3af3efdf2b94",
        "af15a3ed72d44ee28adc0fbaa955fb24",
        "768f41c3e4685cadcf4846f6bb2ab44a",
        "254dda22890126a5ec83e98fe9325c8a",
    ];

    #[test]
    fn a_different_context_gives_unrelated_keys() {
        let mut rng = rand::rng();
        let (sender, a) = BaseOtSender::new(&mut rng);
        let (points, chosen) = receive(b"one", &a, &[false], &mut rng).unwrap();
        let pairs = sender.finish(b"two", &points).unwrap();
        assert_ne!(chosen[0], pairs[0].0);
    }

    #[test]
    fn invalid_points_are_typed_errors() {
        let mut rng = rand::rng();
        let identity = RistrettoPoint::identity().compress().to_bytes();
        assert_eq!(
            receive(b"", &identity, &[true], &mut rng).err(),
            Some(BaseOtError::BadSenderPoint)
        );
        assert_eq!(
            receive(b"", &[0xff; 32], &[true], &mut rng).err(),
            Some(BaseOtError::BadSenderPoint)
        );
        let (sender, _) = BaseOtSender::new(&mut rng);
        assert_eq!(
            sender.finish(b"", &[[0xff; 32]]).err(),
            Some(BaseOtError::BadReceiverPoint { index: 0 })
        );
    }
}
