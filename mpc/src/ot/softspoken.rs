//! OT extension: SoftSpokenOT (Roy, CRYPTO 2022) with 4-bit digits and a KOS-style correlation
//! check, replacing KOS (whose security proof is disputed; MP-SPDZ moved to SoftSpokenOT too).
//!
//! The extension *sender* holds Δ ∈ {0,1}^128 as 32 digits of 4 bits and, per digit, every leaf of
//! a punctured seed tree but the one at its digit ([`super::ggm`]); the *receiver* holds every
//! leaf. For m OTs with choices x, per digit d the receiver expands its 16 leaves r_y to m bits
//! and sends c_d = (⊕_y r_y) ⊕ x; its rows are t_{d,b} = ⊕_{y: bit b of y} r_y. The sender forms
//! q_{d,b} = ⊕_{y ≠ Δ_d: bit b of y ⊕ Δ_d} r_y ⊕ Δ_{d,b}·c_d = t_{d,b} ⊕ Δ_{d,b}·x, so column j
//! gives the IKNP correlation q_j = t_j ⊕ x_j·Δ with 32 bits sent per OT instead of KOS's 128.
//!
//! The receiver also sends x̃ = Σ χ_j x_j and t̃ = Σ χ_j t_j for challenges χ_j hashed from its
//! message (Fiat–Shamir); the sender checks Σ χ_j q_j = t̃ ⊕ x̃·Δ. 256 extra columns with random
//! choices hide x from the check. A receiver that is inconsistent across digits passes only by
//! guessing digits of Δ, each guess costing it an abort with probability ≥ 1/2 (the leak KOS has
//! per bit). A failed check destroys the sender's seeds: they are never used again.

use rand_core::Rng;
use zeroize::Zeroize;

use super::gf2::{clmul, clmul_sum, transpose_rows};
use super::ggm::{DEPTH, FullSeeds, LEAVES, PuncturedSeeds};
use super::prg::{Block, Domain, Prg, hash_rows_to_blocks, hash_rows_to_field};
use crate::field::Fp;

/// Bits of Δ: the computational security parameter.
pub const KAPPA: usize = 128;
/// Digits of Δ, one seed tree each.
pub const DIGITS: usize = KAPPA / DEPTH;
/// Extra OTs with random choices that the check consumes (at least κ + 40, rounded up).
pub const CHECK_PAD: usize = 256;

/// Why an extension was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtExtError {
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
    DIGITS * columns(m) / 8 + 48
}

/// The digits of Δ, least significant first.
pub fn delta_digits(delta: u128) -> Vec<u8> {
    (0..DIGITS)
        .map(|d| ((delta >> (DEPTH * d)) & 0xf) as u8)
        .collect()
}

fn challenges(context: &[u8], nonce: u64, u: &[u8], cols: usize) -> Vec<u128> {
    let mut h = blake3::Hasher::new_derive_key("conclave-mpc v2 OT-extension challenge");
    h.update(&(context.len() as u64).to_le_bytes());
    h.update(context);
    h.update(&nonce.to_le_bytes());
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

/// dst ⊕= src where `mask` is 0xff, nothing where it is 0, at the same cost either way.
fn xor_masked(dst: &mut [u8], src: &[u8], mask: u8) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s & mask;
    }
}

/// The extension receiver: holds every leaf of every digit's tree.
pub struct SoftReceiver {
    seeds: FullSeeds,
}

/// The extension sender: holds Δ and the punctured trees its digits chose.
pub struct SoftSender {
    delta: u128,
    seeds: Option<PuncturedSeeds>,
}

impl SoftReceiver {
    pub fn new(seeds: FullSeeds) -> Self {
        assert_eq!(seeds.digits(), DIGITS);
        SoftReceiver { seeds }
    }

    /// Extends to `choices.len()` OTs under `nonce` (unique per use of these seeds): the message
    /// for the sender and the receiver's rows t_j, whose hashes are the chosen messages.
    pub fn extend<R: Rng + ?Sized>(
        &self,
        context: &[u8],
        nonce: u64,
        choices: &[bool],
        rng: &mut R,
    ) -> (Vec<u8>, Vec<u128>) {
        let cols = columns(choices.len());
        let row = cols / 8;
        let mut x = vec![0u8; row];
        rng.fill_bytes(&mut x);
        for (j, &c) in choices.iter().enumerate() {
            let bit = 1u8 << (j % 8);
            x[j / 8] = (x[j / 8] & !bit) | ((c as u8) << (j % 8));
        }
        let mut msg = Vec::with_capacity(message_len(choices.len()));
        let mut t_rows = vec![vec![0u8; row]; KAPPA];
        let mut r = vec![0u8; row];
        for d in 0..DIGITS {
            let mut u = x.clone();
            for y in 0..LEAVES {
                Prg::new(self.seeds.leaf(d, y), nonce).fill(&mut r);
                xor_into(&mut u, &r);
                for b in (0..DEPTH).filter(|b| (y >> b) & 1 == 1) {
                    xor_into(&mut t_rows[DEPTH * d + b], &r);
                }
            }
            msg.extend_from_slice(&u);
        }
        r.zeroize();
        let t = transpose_rows(&t_rows, cols);
        t_rows.iter_mut().for_each(|r| r.zeroize());
        let chi = challenges(context, nonce, &msg, cols);
        // Σ x_j·χ_j without a branch on the choice bits.
        let x_check = (0..cols).fold(0u128, |acc, j| {
            let bit = ((x[j / 8] >> (j % 8)) & 1) as u128;
            acc ^ (chi[j] & bit.wrapping_neg())
        });
        let (t_lo, t_hi) = clmul_sum(&t, &chi);
        for v in [x_check, t_lo, t_hi] {
            msg.extend_from_slice(&v.to_le_bytes());
        }
        x.zeroize();
        let rows = t[..choices.len()].to_vec();
        let mut t = t;
        t.zeroize();
        (msg, rows)
    }

    /// The chosen messages of OTs `first_tweak..` (one tweak per OT, never reused), in order.
    pub fn outputs_all(first_tweak: u64, t_rows: &[u128]) -> Vec<Fp> {
        hash_rows_to_field(t_rows, first_tweak)
    }

    /// The chosen 128-bit keys of OTs `first_tweak..` in `domain`, in order.
    pub fn keys(domain: Domain, first_tweak: u64, t_rows: &[u128]) -> Vec<Block> {
        hash_rows_to_blocks(domain, t_rows, first_tweak)
    }
}

impl SoftSender {
    /// `seeds` must have been punctured at the digits of `delta` ([`delta_digits`]).
    pub fn new(delta: u128, seeds: PuncturedSeeds) -> Self {
        assert_eq!(seeds.digits(), DIGITS);
        debug_assert!((0..DIGITS).all(|d| seeds.digit(d) == delta_digits(delta)[d]));
        SoftSender {
            delta,
            seeds: Some(seeds),
        }
    }

    /// Checks the receiver's message for `m` OTs and returns the sender's rows q_j.
    pub fn extend(
        &mut self,
        context: &[u8],
        nonce: u64,
        m: usize,
        msg: &[u8],
    ) -> Result<Vec<u128>, OtExtError> {
        let seeds = self.seeds.as_ref().ok_or(OtExtError::Destroyed)?;
        let expected = message_len(m);
        if msg.len() != expected {
            return Err(OtExtError::BadLength {
                expected,
                got: msg.len(),
            });
        }
        let cols = columns(m);
        let row = cols / 8;
        let (u, check) = msg.split_at(DIGITS * row);
        let mut q_rows = vec![vec![0u8; row]; KAPPA];
        let mut r = vec![0u8; row];
        // No branch depends on Δ: every leaf is expanded (the punctured one from zeros; its bits
        // of y ⊕ Δ_d are all zero, so its masks drop it) and every row is XORed under a mask.
        for d in 0..DIGITS {
            let digit = seeds.digit(d) as usize;
            for y in 0..LEAVES {
                Prg::new(seeds.leaf_or_zero(d, y), nonce).fill(&mut r);
                for b in 0..DEPTH {
                    let mask = 0u8.wrapping_sub((((y ^ digit) >> b) & 1) as u8);
                    xor_masked(&mut q_rows[DEPTH * d + b], &r, mask);
                }
            }
            let c = &u[d * row..(d + 1) * row];
            for b in 0..DEPTH {
                let mask = 0u8.wrapping_sub(((digit >> b) & 1) as u8);
                xor_masked(&mut q_rows[DEPTH * d + b], c, mask);
            }
        }
        r.zeroize();
        let q = transpose_rows(&q_rows, cols);
        q_rows.iter_mut().for_each(|r| r.zeroize());
        let chi = challenges(context, nonce, u, cols);
        let read = |k: usize| {
            u128::from_le_bytes(check[16 * k..16 * k + 16].try_into().expect("16 bytes"))
        };
        let (x_check, t_lo, t_hi) = (read(0), read(1), read(2));
        let (q_lo, q_hi) = clmul_sum(&q, &chi);
        let (xd_lo, xd_hi) = clmul(x_check, self.delta);
        if (q_lo, q_hi) != (t_lo ^ xd_lo, t_hi ^ xd_hi) {
            self.destroy();
            return Err(OtExtError::CheckFailed);
        }
        let rows = q[..m].to_vec();
        let mut q = q;
        q.zeroize();
        Ok(rows)
    }

    /// Both messages of OTs `first_tweak..`: (H(q_j), H(q_j ⊕ Δ)).
    pub fn outputs_all(&self, first_tweak: u64, q_rows: &[u128]) -> (Vec<Fp>, Vec<Fp>) {
        // q ⊕ Δ and q give Δ: wiped.
        let mut flipped: Vec<u128> = q_rows.iter().map(|q| q ^ self.delta).collect();
        let both = (
            hash_rows_to_field(q_rows, first_tweak),
            hash_rows_to_field(&flipped, first_tweak),
        );
        flipped.zeroize();
        both
    }

    /// Both 128-bit keys of OTs `first_tweak..` in `domain`: (H(q_j), H(q_j ⊕ Δ)).
    pub fn key_pairs(
        &self,
        domain: Domain,
        first_tweak: u64,
        q_rows: &[u128],
    ) -> Vec<(Block, Block)> {
        // q ⊕ Δ and q give Δ: wiped.
        let mut flipped: Vec<u128> = q_rows.iter().map(|q| q ^ self.delta).collect();
        let mut k0 = hash_rows_to_blocks(domain, q_rows, first_tweak);
        let mut k1 = hash_rows_to_blocks(domain, &flipped, first_tweak);
        flipped.zeroize();
        let mut pairs = Vec::with_capacity(k0.len());
        pairs.extend(k0.iter().copied().zip(k1.iter().copied()));
        k0.zeroize();
        k1.zeroize();
        pairs
    }

    fn destroy(&mut self) {
        self.seeds = None;
        self.delta.zeroize();
    }
}

impl Drop for SoftSender {
    fn drop(&mut self) {
        self.delta.zeroize();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::ggm::tests::trees;
    use super::*;
    use rand::RngExt;

    /// A sender/receiver pair over fresh base OTs, as the MASCOT setup makes them.
    pub(crate) fn pair_with(delta: u128) -> (SoftSender, SoftReceiver) {
        let (full, punctured) = trees(&delta_digits(delta));
        (SoftSender::new(delta, punctured), SoftReceiver::new(full))
    }

    fn pair() -> (SoftSender, SoftReceiver) {
        pair_with(rand::rng().random())
    }

    #[test]
    fn receiver_gets_the_chosen_message_only() {
        let mut rng = rand::rng();
        let (mut s, r) = pair();
        for nonce in 0..2 {
            let choices: Vec<bool> = (0..301).map(|_| rng.random()).collect();
            let (msg, t) = r.extend(b"ctx", nonce, &choices, &mut rng);
            assert_eq!(msg.len(), message_len(301));
            let q = s.extend(b"ctx", nonce, choices.len(), &msg).unwrap();
            let (m0, m1) = s.outputs_all(nonce << 32, &q);
            let got = SoftReceiver::outputs_all(nonce << 32, &t);
            for (j, &c) in choices.iter().enumerate() {
                assert_eq!(got[j], if c { m1[j] } else { m0[j] }, "OT {j}");
                assert_ne!(got[j], if c { m0[j] } else { m1[j] }, "OT {j}");
            }
        }
    }

    #[test]
    fn a_flipped_check_value_fails_the_check_and_destroys_the_seeds() {
        let mut rng = rand::rng();
        let (mut s, r) = pair();
        let choices: Vec<bool> = (0..200).map(|_| rng.random()).collect();
        let (mut msg, _) = r.extend(b"ctx", 0, &choices, &mut rng);
        let last = msg.len() - 1;
        msg[last] ^= 0x10;
        assert_eq!(s.extend(b"ctx", 0, 200, &msg), Err(OtExtError::CheckFailed));
        let (msg, _) = r.extend(b"ctx", 1, &choices, &mut rng);
        assert_eq!(s.extend(b"ctx", 1, 200, &msg), Err(OtExtError::Destroyed));
    }

    /// A choice bit flipped in one digit's correction only: the receiver is inconsistent across
    /// digits, which the sender sees wherever that digit of Δ is non-zero.
    #[test]
    fn a_choice_changed_in_one_digit_fails_the_check_where_delta_reads_it() {
        let mut rng = rand::rng();
        for digit in [0, 5, DIGITS - 1] {
            let (mut s, r) = pair_with(u128::MAX);
            let choices: Vec<bool> = (0..128).map(|_| rng.random()).collect();
            let (mut msg, _) = r.extend(b"ctx", 0, &choices, &mut rng);
            msg[digit * columns(128) / 8] ^= 1;
            assert_eq!(
                s.extend(b"ctx", 0, 128, &msg),
                Err(OtExtError::CheckFailed),
                "digit {digit}"
            );
        }
    }

    /// The challenges must be hashed from the whole message: an adversary that knows them in
    /// advance adjusts x̃ and t̃ to any change of its corrections. Here a change of one
    /// correction bit, with x̃ and t̃ recomputed for the challenges of the *original* message,
    /// must still fail.
    #[test]
    fn check_values_fitted_to_the_original_challenges_fail_after_a_change() {
        let mut rng = rand::rng();
        let (mut s, r) = pair_with(u128::MAX);
        let choices: Vec<bool> = (0..128).map(|_| rng.random()).collect();
        let cols = columns(128);
        let (msg, _) = r.extend(b"ctx", 0, &choices, &mut rng);
        let (u, _) = msg.split_at(DIGITS * cols / 8);
        let chi = challenges(b"ctx", 0, u, cols);
        // Flip choice 0 in digit 0's correction: for Δ = all ones, q_0 moves by Δ's low nibble.
        let mut forged = msg.clone();
        forged[0] ^= 1;
        // Fit the check to the old challenges: t̃ absorbs χ_0 · (the change in q_0).
        let shift = 0xfu128;
        let (lo, hi) = clmul(shift, chi[0]);
        let n = forged.len();
        let mut t_lo = u128::from_le_bytes(forged[n - 32..n - 16].try_into().unwrap());
        let mut t_hi = u128::from_le_bytes(forged[n - 16..].try_into().unwrap());
        t_lo ^= lo;
        t_hi ^= hi;
        forged[n - 32..n - 16].copy_from_slice(&t_lo.to_le_bytes());
        forged[n - 16..].copy_from_slice(&t_hi.to_le_bytes());
        assert_eq!(
            s.extend(b"ctx", 0, 128, &forged),
            Err(OtExtError::CheckFailed)
        );
    }

    #[test]
    fn the_context_is_bound_into_the_check() {
        let mut rng = rand::rng();
        let (mut s, r) = pair_with(u128::MAX);
        let (msg, _) = r.extend(b"one", 0, &[true; 64], &mut rng);
        assert_eq!(s.extend(b"two", 0, 64, &msg), Err(OtExtError::CheckFailed));
    }

    #[test]
    fn wrong_length_is_refused() {
        let (mut s, _) = pair();
        assert!(matches!(
            s.extend(b"", 0, 10, &[0; 3]),
            Err(OtExtError::BadLength { .. })
        ));
    }
}
