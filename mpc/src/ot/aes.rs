//! AES-128 encryption of many blocks at once, for the PRG and the TCCR hash: with VAES and
//! AVX-512 sixteen blocks per loop (four per instruction), else the `aes` crate (AES-NI when the
//! processor has it, constant-time software otherwise). OT extension spends about a fifth of a
//! MASCOT batch in AES, so the wide path matters.

use aes::Aes128;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use zeroize::Zeroize;

/// An AES-128 key ready to encrypt blocks given as little-endian `u128`s.
pub struct Aes {
    /// Expanded round keys when the wide path is available.
    #[cfg(target_arch = "x86_64")]
    wide: Option<[u128; 11]>,
    portable: Aes128,
}

/// Whether this processor has the wide path (checked once).
#[cfg(target_arch = "x86_64")]
fn has_vaes() -> bool {
    std::arch::is_x86_feature_detected!("vaes")
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("aes")
}

impl Aes {
    pub fn new(key: &[u8; 16]) -> Self {
        Aes {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the processor supports AES-NI, checked by has_vaes.
            wide: has_vaes().then(|| unsafe { x86::expand(key) }),
            portable: Aes128::new(GenericArray::from_slice(key)),
        }
    }

    /// The portable path only, whatever the processor (to test both paths on any machine).
    #[cfg(test)]
    fn portable(key: &[u8; 16]) -> Self {
        Aes {
            #[cfg(target_arch = "x86_64")]
            wide: None,
            portable: Aes128::new(GenericArray::from_slice(key)),
        }
    }

    /// Encrypts every block in place.
    pub fn encrypt(&self, blocks: &mut [u128]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = &self.wide {
            // SAFETY: `wide` is only set when the processor has VAES, AVX-512F and AES-NI.
            unsafe { x86::encrypt(keys, blocks) };
            return;
        }
        for chunk in blocks.chunks_mut(8) {
            let mut b = [GenericArray::<u8, aes::cipher::consts::U16>::default(); 8];
            for (g, x) in b.iter_mut().zip(chunk.iter()) {
                *g = x.to_le_bytes().into();
            }
            self.portable.encrypt_blocks(&mut b[..chunk.len()]);
            for (x, g) in chunk.iter_mut().zip(&b) {
                *x = u128::from_le_bytes((*g).into());
            }
            b.iter_mut().for_each(|g| g.as_mut_slice().zeroize());
        }
    }
}

impl Drop for Aes {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = &mut self.wide {
            keys.zeroize();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Overwrites round keys left on the stack (they are the PRG seed in another form).
    fn wipe<T: Copy>(keys: &mut [T], zero: T) {
        for k in keys.iter_mut() {
            // SAFETY: a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(k, zero) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }

    /// One step of the AES-128 key schedule.
    #[target_feature(enable = "aes")]
    fn step<const RCON: i32>(key: __m128i) -> __m128i {
        let assist = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<RCON>(key));
        let mut k = key;
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        _mm_xor_si128(k, assist)
    }

    fn to_u128(v: __m128i) -> u128 {
        // SAFETY: same size, every bit pattern valid for both.
        unsafe { std::mem::transmute::<__m128i, u128>(v) }
    }

    fn from_u128(v: u128) -> __m128i {
        // SAFETY: as above.
        unsafe { std::mem::transmute::<u128, __m128i>(v) }
    }

    /// The eleven round keys of `key`.
    #[target_feature(enable = "aes")]
    pub(super) fn expand(key: &[u8; 16]) -> [u128; 11] {
        let mut k = [from_u128(u128::from_le_bytes(*key)); 11];
        k[1] = step::<0x01>(k[0]);
        k[2] = step::<0x02>(k[1]);
        k[3] = step::<0x04>(k[2]);
        k[4] = step::<0x08>(k[3]);
        k[5] = step::<0x10>(k[4]);
        k[6] = step::<0x20>(k[5]);
        k[7] = step::<0x40>(k[6]);
        k[8] = step::<0x80>(k[7]);
        k[9] = step::<0x1b>(k[8]);
        k[10] = step::<0x36>(k[9]);
        let keys = k.map(to_u128);
        wipe(&mut k, _mm_setzero_si128());
        keys
    }

    /// Encrypts `blocks` in place: sixteen at a time in four 512-bit lanes, the rest one by one.
    #[target_feature(enable = "avx512f,vaes,aes")]
    pub(super) fn encrypt(keys: &[u128; 11], blocks: &mut [u128]) {
        let mut wide: [__m512i; 11] = keys.map(|k| _mm512_broadcast_i32x4(from_u128(k)));
        let mut chunks = blocks.chunks_exact_mut(16);
        for chunk in &mut chunks {
            let ptr = chunk.as_mut_ptr() as *mut __m512i;
            // SAFETY: 16 u128s are exactly four 512-bit vectors; unaligned loads and stores.
            unsafe {
                let mut x = [
                    _mm512_loadu_si512(ptr),
                    _mm512_loadu_si512(ptr.add(1)),
                    _mm512_loadu_si512(ptr.add(2)),
                    _mm512_loadu_si512(ptr.add(3)),
                ];
                for v in x.iter_mut() {
                    *v = _mm512_xor_si512(*v, wide[0]);
                }
                for k in &wide[1..10] {
                    for v in x.iter_mut() {
                        *v = _mm512_aesenc_epi128(*v, *k);
                    }
                }
                for (i, v) in x.iter().enumerate() {
                    _mm512_storeu_si512(ptr.add(i), _mm512_aesenclast_epi128(*v, wide[10]));
                }
            }
        }
        wipe(&mut wide, _mm512_setzero_si512());
        let mut narrow: [__m128i; 11] = keys.map(from_u128);
        for b in chunks.into_remainder() {
            let mut v = _mm_xor_si128(from_u128(*b), narrow[0]);
            for k in &narrow[1..10] {
                v = _mm_aesenc_si128(v, *k);
            }
            *b = to_u128(_mm_aesenclast_si128(v, narrow[10]));
        }
        wipe(&mut narrow, _mm_setzero_si128());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn every_path_matches_the_aes_crate() {
        let mut rng = rand::rng();
        for n in [0, 1, 7, 16, 17, 40, 64] {
            let key: [u8; 16] = rng.random();
            let mut blocks: Vec<u128> = (0..n).map(|_| rng.random()).collect();
            let want: Vec<u128> = blocks
                .iter()
                .map(|b| {
                    let mut g = GenericArray::from(b.to_le_bytes());
                    Aes128::new(GenericArray::from_slice(&key)).encrypt_block(&mut g);
                    u128::from_le_bytes(g.into())
                })
                .collect();
            let mut portable = blocks.clone();
            Aes::new(&key).encrypt(&mut blocks);
            assert_eq!(blocks, want, "{n} blocks, detected path");
            Aes::portable(&key).encrypt(&mut portable);
            assert_eq!(portable, want, "{n} blocks, portable path");
        }
    }

    /// The wide path is the one in use wherever the processor has it.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_wide_path_is_chosen_when_available() {
        assert_eq!(Aes::new(&[7; 16]).wide.is_some(), has_vaes());
    }

    /// FIPS-197 appendix C.1.
    #[test]
    fn known_answer() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let plain: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11);
        let mut b = [u128::from_le_bytes(plain)];
        Aes::new(&key).encrypt(&mut b);
        let want = [
            0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
            0xc5, 0x5a,
        ];
        assert_eq!(b[0].to_le_bytes(), want);
    }
}
