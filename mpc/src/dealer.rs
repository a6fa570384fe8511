//! `InsecureDealer`: a trusted third party that knows α and every secret it deals.
//!
//! **Test and benchmark only.** It exists so the online phase can be tested and measured apart from
//! preprocessing; it is compiled only with the `insecure-dealer` feature, which no shipped binary
//! enables. Real sessions take their material from the OT-based generator.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::field::Fp;
use crate::prep::{InputMask, Material, PrepError, Preprocessing, Requirements, Triple, draw};
use crate::share::{MacKeyShare, PartyId, Share};

/// Deals authenticated material to all parties from one seeded RNG.
pub struct InsecureDealer {
    alpha_shares: Vec<Fp>,
    alpha: Fp,
    rng: ChaCha20Rng,
}

impl InsecureDealer {
    pub fn new(parties: usize, seed: u64) -> Self {
        assert!(parties >= 1, "a session has at least one party");
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let alpha_shares: Vec<Fp> = (0..parties).map(|_| Fp::random(&mut rng)).collect();
        let alpha = alpha_shares.iter().copied().sum();
        InsecureDealer {
            alpha_shares,
            alpha,
            rng,
        }
    }

    pub fn parties(&self) -> usize {
        self.alpha_shares.len()
    }

    /// The global MAC key α (only a dealer can know it).
    pub fn alpha(&self) -> Fp {
        self.alpha
    }

    /// Authenticated additive shares of `x`, one per party.
    pub fn share(&mut self, x: Fp) -> Vec<Share> {
        let n = self.parties();
        let mut out: Vec<Share> = (0..n - 1)
            .map(|_| Share {
                value: Fp::random(&mut self.rng),
                mac: Fp::random(&mut self.rng),
            })
            .collect();
        let value = x - out.iter().map(|s| s.value).sum::<Fp>();
        let mac = self.alpha * x - out.iter().map(|s| s.mac).sum::<Fp>();
        out.push(Share { value, mac });
        out
    }

    /// Material for every party, exactly `req` each.
    pub fn deal(&mut self, req: &Requirements) -> Vec<Material> {
        self.stock(req)
            .into_iter()
            .map(|mut stock| Material::take(&mut stock, req).expect("stock holds exactly req"))
            .collect()
    }

    /// Per-party stocks holding `req` each, to be drawn through [`Preprocessing`].
    pub fn stock(&mut self, req: &Requirements) -> Vec<DealtStock> {
        let n = self.parties();
        let mut stocks: Vec<DealtStock> = (0..n)
            .map(|party| DealtStock {
                party,
                key: MacKeyShare::new(self.alpha_shares[party]),
                triples: Vec::with_capacity(req.triples),
                randoms: Vec::with_capacity(req.randoms),
                input_masks: vec![Vec::new(); n],
                bits: Vec::with_capacity(req.bits),
            })
            .collect();
        for _ in 0..req.triples {
            let a = Fp::random(&mut self.rng);
            let b = Fp::random(&mut self.rng);
            let (sa, sb, sc) = (self.share(a), self.share(b), self.share(a * b));
            for (i, stock) in stocks.iter_mut().enumerate() {
                stock.triples.push(Triple {
                    a: sa[i],
                    b: sb[i],
                    c: sc[i],
                });
            }
        }
        for _ in 0..req.randoms {
            let r = Fp::random(&mut self.rng);
            for (stock, s) in stocks.iter_mut().zip(self.share(r)) {
                stock.randoms.push(s);
            }
        }
        for _ in 0..req.bits {
            let bit = Fp::from_u64(self.rng.next_u32() as u64 & 1);
            for (stock, s) in stocks.iter_mut().zip(self.share(bit)) {
                stock.bits.push(s);
            }
        }
        for (owner, &count) in req.input_masks.iter().enumerate().take(n) {
            for _ in 0..count {
                let r = Fp::random(&mut self.rng);
                for (i, (stock, share)) in stocks.iter_mut().zip(self.share(r)).enumerate() {
                    let clear = (i == owner).then_some(r);
                    stock.input_masks[owner].push(InputMask { share, clear });
                }
            }
        }
        stocks
    }
}

/// One party's share of what an [`InsecureDealer`] dealt.
pub struct DealtStock {
    party: PartyId,
    key: MacKeyShare,
    triples: Vec<Triple>,
    randoms: Vec<Share>,
    input_masks: Vec<Vec<InputMask>>,
    bits: Vec<Share>,
}

impl Preprocessing for DealtStock {
    fn party(&self) -> PartyId {
        self.party
    }

    fn parties(&self) -> usize {
        self.input_masks.len()
    }

    fn mac_key(&self) -> MacKeyShare {
        self.key.clone()
    }

    fn triples(&mut self, n: usize) -> Result<Vec<Triple>, PrepError> {
        draw(&mut self.triples, n, "triples")
    }

    fn randoms(&mut self, n: usize) -> Result<Vec<Share>, PrepError> {
        draw(&mut self.randoms, n, "random values")
    }

    fn input_masks(&mut self, owner: PartyId, n: usize) -> Result<Vec<InputMask>, PrepError> {
        let parties = self.input_masks.len();
        let pool = self
            .input_masks
            .get_mut(owner)
            .ok_or(PrepError::UnknownOwner { owner, parties })?;
        draw(pool, n, "input masks")
    }

    fn bits(&mut self, n: usize) -> Result<Vec<Share>, PrepError> {
        draw(&mut self.bits, n, "random bits")
    }
}
