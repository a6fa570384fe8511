//! Authenticated additive shares under one global MAC key α.
//!
//! Party i holds `(x_i, m_i)` with Σx_i = x and Σm_i = α·x, and a share α_i of α = Σα_i. Linear
//! operations are local; a public constant is added to the value by party 0 only, while every party
//! adds `c·α_i` to its MAC share.

use std::collections::BTreeSet;
use std::ops::{Add, Neg, Sub};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

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
/// Clones are the same key: they share a state that lets only one online session use the key at a
/// time, that orders the MAC checks made under it ([`CheckToken`]), and that marks the key poisoned
/// for good once a check under it failed or was abandoned. The value is wiped when a copy is
/// dropped.
#[derive(Clone)]
pub struct MacKeyShare {
    alpha_i: Fp,
    state: Arc<KeyState>,
}

#[derive(Default)]
struct KeyState {
    in_use: AtomicBool,
    poisoned: AtomicBool,
    ledger: Mutex<CheckLedger>,
    /// Woken whenever a check resolves or the key is poisoned.
    changed: Notify,
}

/// The MAC checks under one key that have revealed σ but have no verdict yet.
#[derive(Default)]
struct CheckLedger {
    next: u64,
    exposed: BTreeSet<u64>,
}

/// Why a MAC key cannot be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the MAC key is in use by another session")]
    Busy,
    #[error("a MAC check under this key failed or was abandoned; the key must never be used again")]
    Poisoned,
}

/// Exclusive use of a MAC key by one online session; released when dropped.
pub(crate) struct KeyLease(Arc<KeyState>);

impl Drop for KeyLease {
    fn drop(&mut self) {
        self.0.in_use.store(false, Ordering::Release);
    }
}

/// One MAC check under a key, from its first message to its verdict.
///
/// Revealing σ in a check whose opened values the adversary shifted tells it α ("Rushing at
/// SPDZ"); if it then withholds its own reveal, that check never fails, and every other check
/// under α could be forged. So a check may pass only after every check that revealed σ before
/// this one had all its σ commitments resolved (waiting is local: messages keep flowing, and
/// the order of reveals after commitments rules out cycles), and a check that ends any way but
/// passing (failure, drop, deadline, transport error) poisons the key for every copy.
pub struct CheckToken {
    state: Arc<KeyState>,
    seq: u64,
    /// Exposed checks this one must see resolved before it may pass.
    wait_for: Vec<u64>,
    resolved: bool,
}

impl CheckToken {
    /// Called once all σ commitments of this check are in, just before this party reveals its σ.
    pub(crate) fn expose(&mut self) {
        let mut ledger = self.state.lock_ledger();
        self.wait_for = ledger.exposed.iter().copied().collect();
        ledger.exposed.insert(self.seq);
    }

    /// Whether this check may reach its verdict now; an error once the key is poisoned. The
    /// poison flag is read under the ledger's lock, where a failing check sets it before it
    /// leaves the ledger: a check that is gone from the ledger has either passed or poisoned.
    pub(crate) fn may_conclude(&self) -> Result<bool, KeyError> {
        let ledger = self.state.lock_ledger();
        if self.state.poisoned.load(Ordering::Acquire) {
            return Err(KeyError::Poisoned);
        }
        Ok(!self.wait_for.iter().any(|s| ledger.exposed.contains(s)))
    }

    /// The check passed: later checks need not wait for it.
    pub(crate) fn passed(mut self) {
        self.resolved = true;
        self.state.resolve(self.seq);
    }
}

impl Drop for CheckToken {
    fn drop(&mut self) {
        if !self.resolved {
            self.state.poison_and_resolve(Some(self.seq));
        }
    }
}

impl KeyState {
    fn lock_ledger(&self) -> std::sync::MutexGuard<'_, CheckLedger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn resolve(&self, seq: u64) {
        self.lock_ledger().exposed.remove(&seq);
        self.changed.notify_waiters();
    }

    /// Poisons the key, under the ledger's lock, and takes check `seq` (if any) off the ledger.
    fn poison_and_resolve(&self, seq: Option<u64>) {
        let mut ledger = self.lock_ledger();
        self.poisoned.store(true, Ordering::Release);
        if let Some(seq) = seq {
            ledger.exposed.remove(&seq);
        }
        drop(ledger);
        self.changed.notify_waiters();
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

    /// Whether a MAC check under this key has failed or was abandoned.
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

    /// Starts a MAC check under this key.
    pub fn begin_check(&self) -> Result<CheckToken, KeyError> {
        if self.is_poisoned() {
            return Err(KeyError::Poisoned);
        }
        let mut ledger = self.state.lock_ledger();
        ledger.next += 1;
        Ok(CheckToken {
            state: self.state.clone(),
            seq: ledger.next,
            wait_for: Vec::new(),
            resolved: false,
        })
    }

    /// Resolves once a check under this key concluded or the key was poisoned after this call;
    /// create it before testing the condition you wait for.
    pub fn changed(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.state.changed.notified()
    }

    /// Marks the key (every copy of it) as never to be used again.
    pub fn poison(&self) {
        self.state.poison_and_resolve(None);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The ledger on its own: a check waits for every check that exposed σ before it did, and
    /// only for those; one check passing does not release a wait on another.
    #[test]
    fn a_check_waits_for_each_earlier_exposed_check_and_only_those() {
        let key = MacKeyShare::new(Fp::from_u64(3));
        let mut withheld = key.begin_check().unwrap();
        let mut honest = key.begin_check().unwrap();
        let mut later = key.begin_check().unwrap();
        withheld.expose();
        honest.expose();
        later.expose();
        assert_eq!(later.may_conclude(), Ok(false));
        assert_eq!(
            honest.may_conclude(),
            Ok(false),
            "honest waits for withheld"
        );
        assert_eq!(
            withheld.may_conclude(),
            Ok(true),
            "withheld waits for nothing"
        );
        // A check exposed after `withheld` had its commitments never holds `withheld` up.
        let mut newest = key.begin_check().unwrap();
        newest.expose();
        assert_eq!(withheld.may_conclude(), Ok(true));
        drop(newest);
        assert!(key.is_poisoned(), "an abandoned check poisons");
        assert_eq!(later.may_conclude(), Err(KeyError::Poisoned));
        assert_eq!(key.begin_check().err(), Some(KeyError::Poisoned));
        drop((withheld, honest));
    }

    /// The key's value never reaches a log, is wiped on request, and compares by value; an
    /// explicit poison holds for every clone.
    #[test]
    fn the_key_hides_its_value_wipes_it_and_poisons_every_clone() {
        let key = MacKeyShare::new(Fp::from_u64(7));
        assert_eq!(format!("{key:?}"), "MacKeyShare(<secret>)");
        assert_eq!(key, MacKeyShare::new(Fp::from_u64(7)));
        assert_ne!(key, MacKeyShare::new(Fp::from_u64(8)));
        let clone = key.clone();
        key.poison();
        assert!(clone.is_poisoned());
        let mut wiped = MacKeyShare::new(Fp::from_u64(7));
        wiped.zeroize();
        assert!(wiped.value().is_zero());
        let mut share = Share {
            value: Fp::ONE,
            mac: Fp::from_u64(2),
        };
        share.wipe();
        assert_eq!(share, Share::default());
    }

    #[test]
    fn a_pass_releases_only_its_own_waiters() {
        let key = MacKeyShare::new(Fp::from_u64(3));
        let mut first = key.begin_check().unwrap();
        let mut second = key.begin_check().unwrap();
        let mut third = key.begin_check().unwrap();
        first.expose();
        second.expose();
        third.expose();
        second.passed();
        assert_eq!(third.may_conclude(), Ok(false), "still waits for the first");
        first.passed();
        assert_eq!(third.may_conclude(), Ok(true));
        third.passed();
        assert!(!key.is_poisoned());
    }
}
