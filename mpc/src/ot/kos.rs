//! OT extension with the KOS correlation check (Keller–Orsini–Scholl, CRYPTO 2015).
//!
//! The extension *sender* holds Δ ∈ {0,1}^128 and, from 128 base OTs with choices Δ, one seed of
//! each pair; the *receiver* holds both seeds of each pair. For m OTs with choices x the receiver
//! sends u_i = PRG(k_i^0) ⊕ PRG(k_i^1) ⊕ x; the sender gets q_j = t_j ⊕ x_j·Δ row-wise. The
//! receiver also sends x̃ = Σ x_j χ_j and t̃ = Σ t_j χ_j for challenges χ_j derived from u
//! (Fiat–Shamir); the sender checks Σ q_j χ_j = t̃ ⊕ x̃·Δ. 256 extra OTs with random choices hide x
//! from the check. A failed check destroys the sender's base-OT seeds: they are never used again.
//! Batches use distinct nonces, so one set of base OTs serves any number of batches.

use rand_core::Rng;
use zeroize::Zeroize;

use super::gf2::{clmul, transpose_rows};
use super::prg::{Block, Prg, hash_rows_to_field, hash_to_field};
use crate::field::Fp;

/// Base OTs per extension: the computational security parameter.
pub const KAPPA: usize = 128;
/// Extra OTs with random choices that the check consumes (at least κ + 40, rounded up).
pub const CHECK_PAD: usize = 256;

/// Why an extension was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KosError {
    #[error("OT-extension correlation check failed")]
    CheckFailed,
    #[error("the base OTs of this pair were destroyed after a failed check")]
    Destroyed,
    #[error("OT-extension message of {got} bytes, expected {expected}")]
    BadLength { expected: usize, got: usize },
}

/// Columns of the extension matrix for `m` OTs.
fn columns(m: usize) -> usize {
    m.div_ceil(128) * 128 + CHECK_PAD
}

/// Length of the receiver's message for `m` OTs.
pub fn message_len(m: usize) -> usize {
    KAPPA * columns(m) / 8 + 48
}

fn challenges(context: &[u8], batch: u64, u: &[u8], cols: usize) -> Vec<u128> {
    let mut h = blake3::Hasher::new_derive_key("conclave-mpc v1 KOS challenge");
    h.update(&(context.len() as u64).to_le_bytes());
    h.update(context);
    h.update(&batch.to_le_bytes());
    h.update(u);
    let seed: Block = h.finalize().as_bytes()[..16].try_into().expect("16 bytes");
    let mut bytes = vec![0u8; 16 * cols];
    Prg::new(&seed, 0).fill(&mut bytes);
    bytes
        .chunks_exact(16)
        .map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes")))
        .collect()
}

fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// The tweak of OT `j` of batch `batch` in the output hash.
fn tweak(batch: u64, j: usize) -> u64 {
    (batch << 32) | j as u64
}

/// The extension receiver: holds both seeds of each base OT.
pub struct KosReceiver {
    seeds: Vec<(Block, Block)>,
}

/// The extension sender: holds Δ and the seeds Δ chose.
pub struct KosSender {
    delta: u128,
    seeds: Vec<Block>,
}

impl KosReceiver {
    pub fn new(seeds: Vec<(Block, Block)>) -> Self {
        assert_eq!(seeds.len(), KAPPA);
        KosReceiver { seeds }
    }

    /// Extends to `choices.len()` OTs: the message for the sender and the receiver's rows t_j,
    /// whose hashes ([`KosReceiver::output`]) are the chosen messages.
    pub fn extend<R: Rng + ?Sized>(
        &self,
        context: &[u8],
        batch: u64,
        choices: &[bool],
        rng: &mut R,
    ) -> (Vec<u8>, Vec<u128>) {
        let cols = columns(choices.len());
        let mut x = vec![0u8; cols / 8];
        rng.fill_bytes(&mut x[choices.len().div_ceil(8)..]);
        for (j, &c) in choices.iter().enumerate() {
            x[j / 8] |= (c as u8) << (j % 8);
        }
        // Clear the random bits that share a byte with the last real choice, then re-randomise
        // them from a fresh byte so pad choices are uniform.
        if !choices.len().is_multiple_of(8) {
            let j = choices.len();
            let keep = (1u8 << (j % 8)) - 1;
            let mut r = [0u8; 1];
            rng.fill_bytes(&mut r);
            x[j / 8] = (x[j / 8] & keep) | (r[0] & !keep);
        }
        let mut t_rows = Vec::with_capacity(KAPPA);
        let mut msg = Vec::with_capacity(message_len(choices.len()));
        for (k0, k1) in &self.seeds {
            let mut t = vec![0u8; cols / 8];
            Prg::new(k0, batch).fill(&mut t);
            let mut u = vec![0u8; cols / 8];
            Prg::new(k1, batch).fill(&mut u);
            xor_into(&mut u, &t);
            xor_into(&mut u, &x);
            msg.extend_from_slice(&u);
            t_rows.push(t);
        }
        let t = transpose_rows(&t_rows, cols);
        let chi = challenges(context, batch, &msg, cols);
        let (mut x_check, mut t_lo, mut t_hi) = (0u128, 0u128, 0u128);
        for j in 0..cols {
            if (x[j / 8] >> (j % 8)) & 1 == 1 {
                x_check ^= chi[j];
            }
            let (lo, hi) = clmul(t[j], chi[j]);
            t_lo ^= lo;
            t_hi ^= hi;
        }
        for v in [x_check, t_lo, t_hi] {
            msg.extend_from_slice(&v.to_le_bytes());
        }
        x.zeroize();
        (msg, t[..choices.len()].to_vec())
    }

    /// The chosen message of OT `j`, as a field element.
    pub fn output(batch: u64, j: usize, t_row: u128) -> Fp {
        hash_to_field(&t_row.to_le_bytes(), tweak(batch, j))
    }

    /// The chosen messages of all OTs of a batch, in order.
    pub fn outputs_all(batch: u64, t_rows: &[u128]) -> Vec<Fp> {
        hash_rows_to_field(t_rows, tweak(batch, 0))
    }
}

impl KosSender {
    /// `seeds[i]` is the base-OT key chosen by bit i of `delta`.
    pub fn new(delta: u128, seeds: Vec<Block>) -> Self {
        assert_eq!(seeds.len(), KAPPA);
        KosSender { delta, seeds }
    }

    /// The choice bits this sender must use in its base OTs.
    pub fn delta_bits(delta: u128) -> Vec<bool> {
        (0..KAPPA).map(|i| (delta >> i) & 1 == 1).collect()
    }

    /// Checks the receiver's message for `m` OTs and returns the sender's rows q_j.
    pub fn extend(
        &mut self,
        context: &[u8],
        batch: u64,
        m: usize,
        msg: &[u8],
    ) -> Result<Vec<u128>, KosError> {
        if self.seeds.is_empty() {
            return Err(KosError::Destroyed);
        }
        let expected = message_len(m);
        if msg.len() != expected {
            return Err(KosError::BadLength {
                expected,
                got: msg.len(),
            });
        }
        let cols = columns(m);
        let row_len = cols / 8;
        let (u, check) = msg.split_at(KAPPA * row_len);
        let mut q_rows = Vec::with_capacity(KAPPA);
        for (i, seed) in self.seeds.iter().enumerate() {
            let mut q = vec![0u8; row_len];
            Prg::new(seed, batch).fill(&mut q);
            if (self.delta >> i) & 1 == 1 {
                xor_into(&mut q, &u[i * row_len..(i + 1) * row_len]);
            }
            q_rows.push(q);
        }
        let q = transpose_rows(&q_rows, cols);
        let chi = challenges(context, batch, u, cols);
        let read = |k: usize| {
            u128::from_le_bytes(check[16 * k..16 * k + 16].try_into().expect("16 bytes"))
        };
        let (x_check, t_lo, t_hi) = (read(0), read(1), read(2));
        let (mut q_lo, mut q_hi) = (0u128, 0u128);
        for j in 0..cols {
            let (lo, hi) = clmul(q[j], chi[j]);
            q_lo ^= lo;
            q_hi ^= hi;
        }
        let (xd_lo, xd_hi) = clmul(x_check, self.delta);
        if (q_lo, q_hi) != (t_lo ^ xd_lo, t_hi ^ xd_hi) {
            self.destroy();
            return Err(KosError::CheckFailed);
        }
        Ok(q[..m].to_vec())
    }

    /// Both messages of OT `j`: (H(q_j), H(q_j ⊕ Δ)).
    pub fn outputs(&self, batch: u64, j: usize, q_row: u128) -> (Fp, Fp) {
        let tw = tweak(batch, j);
        (
            hash_to_field(&q_row.to_le_bytes(), tw),
            hash_to_field(&(q_row ^ self.delta).to_le_bytes(), tw),
        )
    }

    /// Both messages of all OTs of a batch, in order.
    pub fn outputs_all(&self, batch: u64, q_rows: &[u128]) -> (Vec<Fp>, Vec<Fp>) {
        let flipped: Vec<u128> = q_rows.iter().map(|q| q ^ self.delta).collect();
        (
            hash_rows_to_field(q_rows, tweak(batch, 0)),
            hash_rows_to_field(&flipped, tweak(batch, 0)),
        )
    }

    fn destroy(&mut self) {
        self.seeds.iter_mut().for_each(|s| s.zeroize());
        self.seeds = Vec::new();
        self.delta.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    fn pair() -> (KosSender, KosReceiver) {
        pair_with(rand::rng().random())
    }

    fn pair_with(delta: u128) -> (KosSender, KosReceiver) {
        let mut rng = rand::rng();
        let pairs: Vec<(Block, Block)> = (0..KAPPA).map(|_| (rng.random(), rng.random())).collect();
        let chosen = pairs
            .iter()
            .enumerate()
            .map(|(i, (k0, k1))| if (delta >> i) & 1 == 1 { *k1 } else { *k0 })
            .collect();
        (KosSender::new(delta, chosen), KosReceiver::new(pairs))
    }

    #[test]
    fn receiver_gets_the_chosen_message_only() {
        let mut rng = rand::rng();
        let (mut s, r) = pair();
        for batch in 0..2 {
            let choices: Vec<bool> = (0..301).map(|_| rng.random()).collect();
            let (msg, t) = r.extend(b"ctx", batch, &choices, &mut rng);
            let q = s.extend(b"ctx", batch, choices.len(), &msg).unwrap();
            for (j, &c) in choices.iter().enumerate() {
                let (m0, m1) = s.outputs(batch, j, q[j]);
                let got = KosReceiver::output(batch, j, t[j]);
                assert_eq!(got, if c { m1 } else { m0 });
                assert_ne!(got, if c { m0 } else { m1 });
            }
        }
    }

    #[test]
    fn a_flipped_check_value_fails_the_check_and_destroys_the_base_ots() {
        let mut rng = rand::rng();
        let (mut s, r) = pair();
        let choices: Vec<bool> = (0..200).map(|_| rng.random()).collect();
        let (mut msg, _) = r.extend(b"ctx", 0, &choices, &mut rng);
        let last = msg.len() - 1;
        msg[last] ^= 0x10;
        assert_eq!(s.extend(b"ctx", 0, 200, &msg), Err(KosError::CheckFailed));
        let (msg, _) = r.extend(b"ctx", 1, &choices, &mut rng);
        assert_eq!(s.extend(b"ctx", 1, 200, &msg), Err(KosError::Destroyed));
    }

    #[test]
    fn a_choice_bit_changed_in_one_row_fails_the_check_where_delta_reads_that_row() {
        // Bit i of Δ set: the sender's rows depend on u_i, so an inconsistent x in u_i shows.
        let mut rng = rand::rng();
        for row in [0, 5, 127] {
            let (mut s, r) = pair_with(u128::MAX);
            let choices: Vec<bool> = (0..128).map(|_| rng.random()).collect();
            let (mut msg, _) = r.extend(b"ctx", 0, &choices, &mut rng);
            msg[row * columns(128) / 8] ^= 1;
            assert_eq!(
                s.extend(b"ctx", 0, 128, &msg),
                Err(KosError::CheckFailed),
                "row {row}"
            );
        }
    }

    #[test]
    fn the_context_is_bound_into_the_check() {
        let mut rng = rand::rng();
        let (mut s, r) = pair_with(u128::MAX);
        let (msg, _) = r.extend(b"one", 0, &[true; 64], &mut rng);
        assert_eq!(s.extend(b"two", 0, 64, &msg), Err(KosError::CheckFailed));
    }

    #[test]
    fn wrong_length_is_refused() {
        let (mut s, _) = pair();
        assert!(matches!(
            s.extend(b"", 0, 10, &[0; 3]),
            Err(KosError::BadLength { .. })
        ));
    }
}
