//! Symmetric primitives for OT: an AES-128 counter-mode PRG keyed by an OT seed, and a tweakable
//! correlation-robust hash built from fixed-key AES (Guo–Katz–Wang–Yu: π(π(x) ⊕ i) ⊕ π(x)).
//! Both encrypt many blocks per call ([`super::aes`]).

use std::sync::OnceLock;

use zeroize::Zeroize;

use super::aes::Aes;
use crate::field::Fp;

/// A 128-bit block: an OT seed, a row of an OT-extension matrix.
pub type Block = [u8; 16];

/// A counter-mode PRG: the stream for `(seed, nonce)` is AES_seed(nonce ‖ 0), AES_seed(nonce ‖ 1), …
pub struct Prg {
    cipher: Aes,
    nonce: u64,
    counter: u64,
}

impl Prg {
    pub fn new(seed: &Block, nonce: u64) -> Self {
        Self::at(seed, nonce, 0)
    }

    /// The stream for `(seed, nonce)` from block `counter` on (a field element takes 2 blocks).
    pub fn at(seed: &Block, nonce: u64, counter: u64) -> Self {
        Prg {
            cipher: Aes::new(seed),
            nonce,
            counter,
        }
    }

    /// Fills `out` with the next bytes of the stream (a multiple of 16 bytes is consumed).
    /// Blocks are encrypted 64 at a time: AES-NI pipelines them, and per-call overhead stays small.
    pub fn fill(&mut self, out: &mut [u8]) {
        const PAR: usize = 64;
        let mut blocks = [0u128; PAR];
        let nonce = self.nonce as u128;
        for chunk in out.chunks_mut(16 * PAR) {
            let n = chunk.len().div_ceil(16);
            for b in blocks.iter_mut().take(n) {
                *b = nonce | ((self.counter as u128) << 64);
                self.counter += 1;
            }
            self.cipher.encrypt(&mut blocks[..n]);
            // Whole blocks by fixed-size copies (a variable-length copy per block is a call).
            let mut dsts = chunk.chunks_exact_mut(16);
            for (dst, src) in (&mut dsts).zip(&blocks) {
                dst.copy_from_slice(&src.to_le_bytes());
            }
            let tail = dsts.into_remainder();
            let len = tail.len();
            tail.copy_from_slice(&blocks[n - 1].to_le_bytes()[..len]);
        }
    }

    /// The next `n` pseudorandom field elements (32 bytes of stream each).
    pub fn field_elements(&mut self, n: usize) -> Vec<Fp> {
        let mut out = vec![Fp::ZERO; n];
        self.fill_field(&mut out);
        out
    }

    /// Overwrites `out` with the next pseudorandom field elements, without allocating.
    pub fn fill_field(&mut self, out: &mut [Fp]) {
        let mut bytes = [0u8; 32 * 32];
        for chunk in out.chunks_mut(32) {
            let len = 32 * chunk.len();
            self.fill(&mut bytes[..len]);
            for (v, b) in chunk.iter_mut().zip(bytes.chunks_exact(32)) {
                *v = Fp::from_252_bits(b.try_into().expect("32-byte chunk"));
            }
        }
    }
}

fn fixed_key() -> &'static Aes {
    static KEY: OnceLock<Aes> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = *blake3::hash(b"conclave-mpc v1 fixed-key AES for TCCR").as_bytes();
        Aes::new(key[..16].try_into().expect("16 bytes"))
    })
}

/// Hashes an OT-extension row to a field element, with tweak `index` (the OT's position).
/// Two TCCR calls give 256 bits, mapped as in [`Fp::from_252_bits`].
pub fn hash_to_field(row: &Block, index: u64) -> Fp {
    hash_rows_to_field(&[u128::from_le_bytes(*row)], index)[0]
}

/// What a TCCR hash is for: the upper half of every tweak, so that no two uses share a tweak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Domain {
    /// Messages of the OTs that Gilboa multiplication uses.
    GilboaOts = 0,
    /// Keys of the OTs that puncture the silent VOLE's trees.
    SilentOtKeys = 1,
    /// Leaves of the silent VOLE's trees, hashed to field elements.
    SilentLeaves = 2,
}

/// [`hash_to_field`] of `rows[k]` with tweak `first_index + k`, eight AES blocks at a time.
pub fn hash_rows_to_field(rows: &[u128], first_index: u64) -> Vec<Fp> {
    hash_rows_to_field_in(Domain::GilboaOts, rows, first_index)
}

/// [`hash_rows_to_field`] in another [`Domain`].
pub fn hash_rows_to_field_in(domain: Domain, rows: &[u128], first_index: u64) -> Vec<Fp> {
    let mut out = Vec::with_capacity(rows.len());
    tccr::<2>(domain, rows, first_index, |[lo, hi]| {
        out.push(Fp::from_252_bits_of(lo, hi))
    });
    out
}

/// One 128-bit TCCR hash of `rows[k]` with tweak `first_index + k`: π(π(x) ⊕ i) ⊕ π(x).
pub fn hash_rows_to_blocks(domain: Domain, rows: &[u128], first_index: u64) -> Vec<Block> {
    let mut out = Vec::with_capacity(rows.len());
    tccr::<1>(domain, rows, first_index, |[block]| {
        out.push(block.to_le_bytes())
    });
    out
}

/// The TCCR hash of each row with `H` outputs of 128 bits: output h of row k uses the tweak with
/// H·(first_index + k) + h in its lower half and `domain` in its upper half. Sixty-four rows at
/// a time; whole 128-bit words throughout, never bytes, so that no store has to be forwarded to
/// a load of another width.
fn tccr<const H: usize>(
    domain: Domain,
    rows: &[u128],
    first_index: u64,
    mut emit: impl FnMut([u128; H]),
) {
    const PAR: usize = 64;
    let key = fixed_key();
    let domain = (domain as u128) << 64;
    let mut pi = [0u128; PAR];
    let mut halves = [[0u128; PAR]; H];
    for (c, chunk) in rows.chunks(PAR).enumerate() {
        let n = chunk.len();
        pi[..n].copy_from_slice(chunk);
        key.encrypt(&mut pi[..n]);
        for (half, blocks) in halves.iter_mut().enumerate() {
            for (k, b) in blocks.iter_mut().take(n).enumerate() {
                let index = first_index + (c * PAR + k) as u64;
                *b = pi[k] ^ (domain | (H as u64 * index + half as u64) as u128);
            }
            key.encrypt(&mut blocks[..n]);
        }
        for (k, pi) in pi.iter().enumerate().take(n) {
            emit(std::array::from_fn(|half| halves[half][k] ^ pi));
        }
    }
    // π(row) inverts to the row under the public key: wiped like the rows.
    pi.zeroize();
    halves.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prg_is_deterministic_and_seed_and_nonce_dependent() {
        let mut a = [0u8; 100];
        let mut b = [0u8; 100];
        Prg::new(&[1; 16], 5).fill(&mut a);
        Prg::new(&[1; 16], 5).fill(&mut b);
        assert_eq!(a, b);
        Prg::new(&[1; 16], 6).fill(&mut b);
        assert_ne!(a, b);
        Prg::new(&[2; 16], 5).fill(&mut b);
        assert_ne!(a, b);
        // Filling in pieces gives the same stream as at once.
        let mut p = Prg::new(&[1; 16], 5);
        let mut c = [0u8; 96];
        p.fill(&mut c[..32]);
        p.fill(&mut c[32..]);
        assert_eq!(c[..], a[..96]);
    }

    #[test]
    fn batched_hash_matches_the_single_one() {
        let rows: Vec<u128> = (0..19u128).map(|i| i * 0x1234_5678_9abc).collect();
        let batch = hash_rows_to_field(&rows, 100);
        for (k, r) in rows.iter().enumerate() {
            assert_eq!(batch[k], hash_to_field(&r.to_le_bytes(), 100 + k as u64));
        }
        // The definition: π(π(x) ⊕ t) ⊕ π(x) for t = 2i, 2i + 1.
        let x = [9u8; 16];
        let perm = |b: [u8; 16]| -> [u8; 16] {
            let mut x = [u128::from_le_bytes(b)];
            fixed_key().encrypt(&mut x);
            x[0].to_le_bytes()
        };
        let px = perm(x);
        let mut want = [0u8; 32];
        for half in 0..2u64 {
            let mut t = [0u8; 16];
            t[..8].copy_from_slice(&(2 * 5 + half).to_le_bytes());
            let y = perm(std::array::from_fn(|i| px[i] ^ t[i]));
            for i in 0..16 {
                want[16 * half as usize + i] = y[i] ^ px[i];
            }
        }
        assert_eq!(hash_to_field(&x, 5), Fp::from_252_bits(want));
    }

    #[test]
    fn hash_depends_on_row_and_index() {
        let h = hash_to_field(&[3; 16], 7);
        assert_eq!(h, hash_to_field(&[3; 16], 7));
        assert_ne!(h, hash_to_field(&[3; 16], 8));
        assert_ne!(h, hash_to_field(&[4; 16], 7));
    }
}
