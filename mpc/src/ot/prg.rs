//! Symmetric primitives for OT: an AES-128 counter-mode PRG keyed by an OT seed, and a tweakable
//! correlation-robust hash built from fixed-key AES (Guo–Katz–Wang–Yu: π(π(x) ⊕ i) ⊕ π(x)).
//! AES-NI is used when the processor has it.

use std::sync::OnceLock;

use aes::Aes128;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};

use crate::field::Fp;

/// A 128-bit block: an OT seed, a row of an OT-extension matrix.
pub type Block = [u8; 16];

/// A counter-mode PRG: the stream for `(seed, nonce)` is AES_seed(nonce ‖ 0), AES_seed(nonce ‖ 1), …
pub struct Prg {
    cipher: Aes128,
    nonce: u64,
    counter: u64,
}

impl Prg {
    pub fn new(seed: &Block, nonce: u64) -> Self {
        Prg {
            cipher: Aes128::new(GenericArray::from_slice(seed)),
            nonce,
            counter: 0,
        }
    }

    /// Fills `out` with the next bytes of the stream (a multiple of 16 bytes is consumed).
    pub fn fill(&mut self, out: &mut [u8]) {
        const PAR: usize = 8;
        let mut blocks = [GenericArray::<u8, aes::cipher::consts::U16>::default(); PAR];
        for chunk in out.chunks_mut(16 * PAR) {
            let n = chunk.len().div_ceil(16);
            for b in blocks.iter_mut().take(n) {
                b[..8].copy_from_slice(&self.nonce.to_le_bytes());
                b[8..].copy_from_slice(&self.counter.to_le_bytes());
                self.counter += 1;
            }
            self.cipher.encrypt_blocks(&mut blocks[..n]);
            for (dst, src) in chunk.chunks_mut(16).zip(&blocks) {
                dst.copy_from_slice(&src[..dst.len()]);
            }
        }
    }

    /// The next `n` pseudorandom field elements (32 bytes of stream each).
    pub fn field_elements(&mut self, n: usize) -> Vec<Fp> {
        let mut bytes = vec![0u8; 32 * n];
        self.fill(&mut bytes);
        bytes
            .chunks_exact(32)
            .map(|c| Fp::from_252_bits(c.try_into().expect("32-byte chunk")))
            .collect()
    }
}

fn fixed_key() -> &'static Aes128 {
    static KEY: OnceLock<Aes128> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = *blake3::hash(b"conclave-mpc v1 fixed-key AES for TCCR").as_bytes();
        Aes128::new(GenericArray::from_slice(&key[..16]))
    })
}

fn permute(x: &Block) -> Block {
    let mut b = GenericArray::clone_from_slice(x);
    fixed_key().encrypt_block(&mut b);
    b.into()
}

fn xor(a: &Block, b: &Block) -> Block {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// Hashes an OT-extension row to a field element, with tweak `index` (the OT's position).
/// Two TCCR calls give 256 bits, mapped as in [`Fp::from_252_bits`].
pub fn hash_to_field(row: &Block, index: u64) -> Fp {
    let px = permute(row);
    let mut out = [0u8; 32];
    for half in 0..2u64 {
        let mut tweak = [0u8; 16];
        tweak[..8].copy_from_slice(&(2 * index + half).to_le_bytes());
        let h = xor(&permute(&xor(&px, &tweak)), &px);
        out[16 * half as usize..16 * (half as usize + 1)].copy_from_slice(&h);
    }
    Fp::from_252_bits(out)
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
    fn hash_depends_on_row_and_index() {
        let h = hash_to_field(&[3; 16], 7);
        assert_eq!(h, hash_to_field(&[3; 16], 7));
        assert_ne!(h, hash_to_field(&[3; 16], 8));
        assert_ne!(h, hash_to_field(&[4; 16], 7));
    }
}
