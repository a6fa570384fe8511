//! Authenticated additive shares under one global MAC key α.
//!
//! Party i holds `(x_i, m_i)` with Σx_i = x and Σm_i = α·x, and a share α_i of α = Σα_i. Linear
//! operations are local; a public constant is added to the value by party 0 only, while every party
//! adds `c·α_i` to its MAC share.

use std::ops::{Add, Neg, Sub};

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::field::Fp;

/// Index of a party in a session, `0..parties`.
pub type PartyId = usize;

/// One party's authenticated share of a secret value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Share {
    /// This party's additive share of the value.
    pub value: Fp,
    /// This party's additive share of α·value.
    pub mac: Fp,
}

/// One party's share α_i of the global MAC key. Wiped when dropped.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct MacKeyShare(Fp);

impl MacKeyShare {
    pub fn new(alpha_i: Fp) -> Self {
        MacKeyShare(alpha_i)
    }

    pub fn value(&self) -> Fp {
        self.0
    }
}

impl std::fmt::Debug for MacKeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKeyShare(<secret>)")
    }
}

impl Share {
    /// This party's share of the public constant `c`.
    pub fn constant(c: Fp, party: PartyId, key: &MacKeyShare) -> Self {
        Share {
            value: if party == 0 { c } else { Fp::ZERO },
            mac: c * key.value(),
        }
    }

    /// The share of `self + c` for a public `c`.
    #[inline]
    pub fn add_public(self, c: Fp, party: PartyId, key: &MacKeyShare) -> Self {
        Share {
            value: if party == 0 {
                self.value + c
            } else {
                self.value
            },
            mac: self.mac + c * key.value(),
        }
    }

    /// The share of `c · self` for a public `c`.
    #[inline]
    pub fn scale(self, c: Fp) -> Self {
        Share {
            value: self.value * c,
            mac: self.mac * c,
        }
    }

    pub fn wipe(&mut self) {
        self.value.wipe();
        self.mac.wipe();
    }
}

impl Add for Share {
    type Output = Share;
    #[inline]
    fn add(self, rhs: Share) -> Share {
        Share {
            value: self.value + rhs.value,
            mac: self.mac + rhs.mac,
        }
    }
}

impl Sub for Share {
    type Output = Share;
    #[inline]
    fn sub(self, rhs: Share) -> Share {
        Share {
            value: self.value - rhs.value,
            mac: self.mac - rhs.mac,
        }
    }
}

impl Neg for Share {
    type Output = Share;
    #[inline]
    fn neg(self) -> Share {
        Share {
            value: -self.value,
            mac: -self.mac,
        }
    }
}
