//! The field agrees with dalek's `Scalar`, encodes canonically and rejects every non-canonical
//! encoding.

use conclave_mpc::field::{Fp, NonCanonical};
use curve25519_dalek::Scalar;
use proptest::prelude::*;

fn scalar(bytes: [u8; 64]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&bytes)
}

/// l = 2^252 + 27742317777372353535851937790883648493, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_le(a: &[u8; 32], small: u8) -> [u8; 32] {
    let mut out = *a;
    let mut carry = small as u16;
    for b in out.iter_mut() {
        let s = *b as u16 + carry;
        *b = s as u8;
        carry = s >> 8;
    }
    out
}

proptest! {
    #[test]
    fn arithmetic_agrees_with_dalek(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        let (sa, sb) = (scalar([a, [0; 32]].concat().try_into().unwrap()), scalar([b, [0; 32]].concat().try_into().unwrap()));
        let (fa, fb) = (Fp::from_scalar(&sa), Fp::from_scalar(&sb));
        prop_assert_eq!((fa + fb).to_scalar(), sa + sb);
        prop_assert_eq!((fa - fb).to_scalar(), sa - sb);
        prop_assert_eq!((fa * fb).to_scalar(), sa * sb);
        prop_assert_eq!((-fa).to_scalar(), -sa);
        if sa != Scalar::ZERO {
            prop_assert_eq!(fa.inverse().unwrap().to_scalar(), sa.invert());
        }
    }

    #[test]
    fn wide_reduction_agrees_with_dalek(wide in proptest::collection::vec(any::<u8>(), 64)) {
        let wide: [u8; 64] = wide.try_into().unwrap();
        prop_assert_eq!(Fp::from_uniform_bytes(&wide).to_scalar(), scalar(wide));
    }

    #[test]
    fn encoding_round_trips(a in any::<[u8; 32]>()) {
        let f = Fp::from_scalar(&scalar([a, [0; 32]].concat().try_into().unwrap()));
        let bytes = f.to_bytes();
        prop_assert_eq!(Fp::from_bytes(&bytes), Ok(f));
        prop_assert_eq!(bytes, f.to_scalar().to_bytes());
        prop_assert_eq!(Fp::from_scalar(&f.to_scalar()), f);
    }

    #[test]
    fn values_at_or_above_l_are_rejected(k in 0u8..=255, high in 0x10u8..=0xff) {
        // l + k for small k, and anything whose top byte exceeds l's.
        prop_assert_eq!(Fp::from_bytes(&add_le(&L, k)), Err(NonCanonical));
        let mut big = [0u8; 32];
        big[31] = high.max(0x11);
        prop_assert_eq!(Fp::from_bytes(&big), Err(NonCanonical));
    }

    #[test]
    fn signed_integers_round_trip(v in any::<i64>()) {
        prop_assert_eq!(Fp::from_i64(v).to_i64(), Some(v));
    }
}

#[test]
fn l_minus_one_is_the_largest_canonical_encoding() {
    let minus_one = (-Fp::ONE).to_bytes();
    assert_eq!(add_le(&minus_one, 1), L);
    assert!(Fp::from_bytes(&minus_one).is_ok());
    assert_eq!(Fp::from_bytes(&L), Err(NonCanonical));
    assert_eq!(Fp::from_bytes(&[0xff; 32]), Err(NonCanonical));
    // dalek agrees that l is not canonical.
    assert!(bool::from(Scalar::from_canonical_bytes(L).is_none()));
}

#[test]
fn serde_rejects_non_canonical() {
    let cfg = bincode::config::standard();
    let good = bincode::serde::encode_to_vec(Fp::from_u64(7), cfg).unwrap();
    let (back, _): (Fp, usize) = bincode::serde::decode_from_slice(&good, cfg).unwrap();
    assert_eq!(back, Fp::from_u64(7));
    let bad = bincode::serde::encode_to_vec(serde_bytes_like(&L), cfg).unwrap();
    assert!(bincode::serde::decode_from_slice::<Fp, _>(&bad, cfg).is_err());
}

/// Encodes raw bytes the way `Fp` serialises itself (a byte string).
fn serde_bytes_like(b: &[u8; 32]) -> impl serde::Serialize + '_ {
    struct Raw<'a>(&'a [u8; 32]);
    impl serde::Serialize for Raw<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    Raw(b)
}
