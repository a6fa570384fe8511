//! The preprocessing interface the online phase consumes: Beaver triples, input masks and random
//! values, all authenticated under the party's MAC key share.
//!
//! A [`Preprocessing`] source hands out material per party; [`Material::take`] draws exactly what a
//! circuit needs ([`Requirements`]) so a session owns, and on abort wipes, everything it uses.

use zeroize::Zeroize;

use crate::field::Fp;
use crate::share::{MacKeyShare, PartyId, Share};

/// Shares of a Beaver triple: c = a·b.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Triple {
    pub a: Share,
    pub b: Share,
    pub c: Share,
}

/// A share of a random mask r for an input of `owner`; the owner alone also knows r in the clear.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputMask {
    pub share: Share,
    /// r itself, present only at the owner.
    pub clear: Option<Fp>,
}

/// How much preprocessed material of each kind a computation consumes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    pub triples: usize,
    pub randoms: usize,
    /// Input masks needed for each party's inputs, indexed by owner.
    pub input_masks: Vec<usize>,
    /// Shared random bits (comparisons, truncation and equality consume them).
    pub bits: usize,
}

/// A source ran out or cannot serve a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepError {
    #[error("not enough {kind} in the preprocessing pool: wanted {wanted}, have {available}")]
    Exhausted {
        kind: &'static str,
        wanted: usize,
        available: usize,
    },
    #[error("the preprocessing producer stopped: {0}")]
    Aborted(String),
    #[error("input masks requested for party {owner}, but there are only {parties} parties")]
    UnknownOwner { owner: PartyId, parties: usize },
}

/// One party's supply of preprocessed material.
pub trait Preprocessing {
    /// The party this supply belongs to.
    fn party(&self) -> PartyId;
    /// The number of parties the material is shared among.
    fn parties(&self) -> usize;
    /// This party's share of the MAC key that authenticates all of its material.
    fn mac_key(&self) -> MacKeyShare;
    fn triples(&mut self, n: usize) -> Result<Vec<Triple>, PrepError>;
    fn randoms(&mut self, n: usize) -> Result<Vec<Share>, PrepError>;
    fn input_masks(&mut self, owner: PartyId, n: usize) -> Result<Vec<InputMask>, PrepError>;
    fn bits(&mut self, n: usize) -> Result<Vec<Share>, PrepError>;
}

/// Everything one party consumes in one session, owned by that session.
#[derive(Clone, Debug)]
pub struct Material {
    pub key: MacKeyShare,
    pub triples: Vec<Triple>,
    pub randoms: Vec<Share>,
    /// Input masks by owner.
    pub input_masks: Vec<Vec<InputMask>>,
    /// Shares of random bits.
    pub bits: Vec<Share>,
}

impl Material {
    /// Draws exactly `req` from `source`.
    pub fn take<P: Preprocessing + ?Sized>(
        source: &mut P,
        req: &Requirements,
    ) -> Result<Material, PrepError> {
        let mut input_masks = Vec::with_capacity(req.input_masks.len());
        for (owner, &n) in req.input_masks.iter().enumerate() {
            input_masks.push(source.input_masks(owner, n)?);
        }
        Ok(Material {
            key: source.mac_key(),
            triples: source.triples(req.triples)?,
            randoms: source.randoms(req.randoms)?,
            input_masks,
            bits: source.bits(req.bits)?,
        })
    }

    /// What this material can serve.
    pub fn capacity(&self) -> Requirements {
        Requirements {
            triples: self.triples.len(),
            randoms: self.randoms.len(),
            input_masks: self.input_masks.iter().map(Vec::len).collect(),
            bits: self.bits.len(),
        }
    }

    /// Overwrites every secret with zero and drops it.
    pub fn wipe(&mut self) {
        self.key.zeroize();
        for t in &mut self.triples {
            t.a.wipe();
            t.b.wipe();
            t.c.wipe();
        }
        for r in self.randoms.iter_mut().chain(&mut self.bits) {
            r.wipe();
        }
        for m in self.input_masks.iter_mut().flatten() {
            m.share.wipe();
            if let Some(v) = &mut m.clear {
                v.wipe();
            }
        }
        self.triples = Vec::new();
        self.randoms = Vec::new();
        self.input_masks = Vec::new();
        self.bits = Vec::new();
    }
}

/// Takes `n` items from the front of a pool, or says how many there are.
#[cfg_attr(not(feature = "insecure-dealer"), allow(dead_code))]
pub(crate) fn draw<T>(
    pool: &mut Vec<T>,
    n: usize,
    kind: &'static str,
) -> Result<Vec<T>, PrepError> {
    if pool.len() < n {
        return Err(PrepError::Exhausted {
            kind,
            wanted: n,
            available: pool.len(),
        });
    }
    Ok(pool.drain(..n).collect())
}
