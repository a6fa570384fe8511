//! Authenticated additive shares under one global MAC key α.
//!
//! Party i holds `(x_i, m_i)` with Σx_i = x and Σm_i = α·x, and a share α_i of α = Σα_i. Linear
//! operations are local; a public constant is added to the value by party 0 only, while every party
//! adds `c·α_i` to its MAC share.

use std::ops::{Add, Neg, Sub};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use zeroize::Zeroize;

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

/// One party's share α_i of the global MAC key.
///
/// Clones are the same key: they share a state that lets only one session use the key at a time
/// (so MAC checks under one key never run concurrently) and that marks the key poisoned for good
/// once a MAC check under it failed. The value is wiped when a copy is dropped.
#[derive(Clone)]
pub struct MacKeyShare {
    alpha_i: Fp,
    state: Arc<KeyState>,
}

#[derive(Default)]
struct KeyState {
    in_use: AtomicBool,
    poisoned: AtomicBool,
}

/// Why a MAC key cannot be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the MAC key is in use by another session; MAC checks under one key are serialised")]
    Busy,
    #[error("a MAC check under this key failed; the key must never be used again")]
    Poisoned,
}

/// Exclusive use of a MAC key by one session; released when dropped.
pub(crate) struct KeyLease(Arc<KeyState>);

impl Drop for KeyLease {
    fn drop(&mut self) {
        self.0.in_use.store(false, Ordering::Release);
    }
}

impl MacKeyShare {
    /// A new key (with fresh use and poison state).
    pub fn new(alpha_i: Fp) -> Self {
        MacKeyShare {
            alpha_i,
            state: Arc::default(),
        }
    }

    pub fn value(&self) -> Fp {
        self.alpha_i
    }

    /// Whether a MAC check under this key has failed.
    pub fn is_poisoned(&self) -> bool {
        self.state.poisoned.load(Ordering::Acquire)
    }

    /// Takes the key for one session.
    pub(crate) fn lease(&self) -> Result<KeyLease, KeyError> {
        if self.is_poisoned() {
            return Err(KeyError::Poisoned);
        }
        self.state
            .in_use
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| KeyError::Busy)?;
        Ok(KeyLease(self.state.clone()))
    }

    /// Marks the key (every copy of it) as never to be used again.
    pub(crate) fn poison(&self) {
        self.state.poisoned.store(true, Ordering::Release);
    }
}

impl Zeroize for MacKeyShare {
    fn zeroize(&mut self) {
        self.alpha_i.wipe();
    }
}

impl Drop for MacKeyShare {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl PartialEq for MacKeyShare {
    fn eq(&self, other: &Self) -> bool {
        self.alpha_i == other.alpha_i
    }
}

impl Eq for MacKeyShare {}

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
