//! Bit-level tools for OT extension: carry-less multiplication of 128-bit blocks (for the KOS-style
//! correlation check) and transposition of 128-row bit matrices.

/// The carry-less product of two 128-bit polynomials over GF(2), as (low, high) halves.
///
/// The KOS check is evaluated on these unreduced 255-bit products: reduction modulo an
/// irreducible polynomial is a ring homomorphism, so an identity that holds unreduced holds in
/// GF(2^128) too, and checking it unreduced is at least as strict.
#[inline]
pub fn clmul(a: u128, b: u128) -> (u128, u128) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("pclmulqdq") {
            // SAFETY: the processor supports pclmulqdq, checked just above.
            return unsafe { clmul_x86(a, b) };
        }
    }
    clmul_portable(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq")]
unsafe fn clmul_x86(a: u128, b: u128) -> (u128, u128) {
    use std::arch::x86_64::{__m128i, _mm_clmulepi64_si128, _mm_xor_si128};
    // SAFETY: u128 and __m128i have the same size; every bit pattern is valid for both.
    let (va, vb) = unsafe {
        (
            std::mem::transmute::<u128, __m128i>(a),
            std::mem::transmute::<u128, __m128i>(b),
        )
    };
    let lo = _mm_clmulepi64_si128::<0x00>(va, vb);
    let hi = _mm_clmulepi64_si128::<0x11>(va, vb);
    let mid = _mm_xor_si128(
        _mm_clmulepi64_si128::<0x01>(va, vb),
        _mm_clmulepi64_si128::<0x10>(va, vb),
    );
    // SAFETY: as above.
    let (lo, hi, mid) = unsafe {
        (
            std::mem::transmute::<__m128i, u128>(lo),
            std::mem::transmute::<__m128i, u128>(hi),
            std::mem::transmute::<__m128i, u128>(mid),
        )
    };
    (lo ^ (mid << 64), hi ^ (mid >> 64))
}

/// Σ_j a_j·b_j over GF(2)[x], unreduced, as (low, high) halves: the KOS-style check over a whole
/// extension in one call, so that the hardware loop is not a function call per column.
pub fn clmul_sum(a: &[u128], b: &[u128]) -> (u128, u128) {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("pclmulqdq") {
            // SAFETY: the processor supports pclmulqdq, checked just above.
            return unsafe { clmul_sum_x86(a, b) };
        }
    }
    a.iter().zip(b).fold((0, 0), |(lo, hi), (x, y)| {
        let (l, h) = clmul_portable(*x, *y);
        (lo ^ l, hi ^ h)
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq")]
unsafe fn clmul_sum_x86(a: &[u128], b: &[u128]) -> (u128, u128) {
    let (mut lo, mut hi) = (0u128, 0u128);
    for (x, y) in a.iter().zip(b) {
        // SAFETY: this function has the same target feature as clmul_x86.
        let (l, h) = unsafe { clmul_x86(*x, *y) };
        lo ^= l;
        hi ^= h;
    }
    (lo, hi)
}

/// The same product without processor support.
pub fn clmul_portable(a: u128, b: u128) -> (u128, u128) {
    let mul64 = |x: u64, y: u64| -> u128 {
        (0..64)
            .filter(|i| (y >> i) & 1 == 1)
            .fold(0u128, |acc, i| acc ^ ((x as u128) << i))
    };
    let (a0, a1) = (a as u64, (a >> 64) as u64);
    let (b0, b1) = (b as u64, (b >> 64) as u64);
    let lo = mul64(a0, b0);
    let hi = mul64(a1, b1);
    let mid = mul64(a0, b1) ^ mul64(a1, b0);
    (lo ^ (mid << 64), hi ^ (mid >> 64))
}

/// Transposes a 128×128 bit matrix in place: bit c of `m[i]` becomes bit i of `m[c]`.
pub fn transpose128(m: &mut [u128; 128]) {
    let mut j = 64;
    let mut mask: u128 = u128::MAX >> 64;
    while j != 0 {
        let mut k = 0;
        while k < 128 {
            for i in k..k + j {
                let t = ((m[i] >> j) ^ m[i + j]) & mask;
                m[i] ^= t << j;
                m[i + j] ^= t;
            }
            k += 2 * j;
        }
        j >>= 1;
        mask ^= mask << j;
    }
}

/// Transposes 128 rows of `cols` bits (little-endian bit order, `cols` a multiple of 128) into
/// `cols` rows of 128 bits: bit j of `rows[i]` becomes bit i of the result's row j.
pub fn transpose_rows(rows: &[Vec<u8>], cols: usize) -> Vec<u128> {
    debug_assert_eq!(rows.len(), 128);
    debug_assert_eq!(cols % 128, 0);
    let mut out = vec![0u128; cols];
    let mut m = [0u128; 128];
    for (block, chunk) in out.chunks_exact_mut(128).enumerate() {
        for (i, row) in rows.iter().enumerate() {
            let bytes: [u8; 16] = row[16 * block..16 * block + 16]
                .try_into()
                .expect("16 bytes");
            m[i] = u128::from_le_bytes(bytes);
        }
        transpose128(&mut m);
        chunk.copy_from_slice(&m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn hardware_and_portable_clmul_agree() {
        let mut rng = rand::rng();
        for _ in 0..200 {
            let (a, b): (u128, u128) = (rng.random(), rng.random());
            assert_eq!(clmul(a, b), clmul_portable(a, b));
        }
        assert_eq!(clmul_portable(0b11, 0b11), (0b101, 0)); // (x+1)^2 = x^2+1
        assert_eq!(clmul_portable(1 << 127, 2), (0, 1));
        let a: Vec<u128> = (0..37).map(|_| rng.random()).collect();
        let b: Vec<u128> = (0..37).map(|_| rng.random()).collect();
        let want = a.iter().zip(&b).fold((0, 0), |(lo, hi), (x, y)| {
            let (l, h) = clmul_portable(*x, *y);
            (lo ^ l, hi ^ h)
        });
        assert_eq!(clmul_sum(&a, &b), want);
    }

    #[test]
    fn transpose_matches_the_definition() {
        let mut rng = rand::rng();
        let cols = 384;
        let rows: Vec<Vec<u8>> = (0..128)
            .map(|_| (0..cols / 8).map(|_| rng.random()).collect())
            .collect();
        let t = transpose_rows(&rows, cols);
        for (i, row) in rows.iter().enumerate() {
            for j in 0..cols {
                let bit = (row[j / 8] >> (j % 8)) & 1;
                assert_eq!(((t[j] >> i) & 1) as u8, bit, "row {i} col {j}");
            }
        }
    }
}
