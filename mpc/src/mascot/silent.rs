//! Random VOLE under a peer's key share α by LPN ("silent" VOLE, as in Ferret and Wolverine):
//! 75,520 correlations q + w = α·u per extension for 9,502 consumed, so that authenticating a
//! value costs one field element (x − u) instead of the 64 of [`super::vole`].
//!
//! Roles per ordered pair: the *owner* B will authenticate its values and holds u, w; the *key
//! holder* A holds α and q. One extension, sans-IO in four messages:
//! 1. B → A: a SoftSpokenOT extension whose choices are the complements of the bits of B's noise
//!    positions β_j, one position per tree of [`BIN`] leaves ([`TREES`] trees).
//! 2. A → B: A grows one GGM tree per noise position, leaf values v_{j,y}, and sends each level's
//!    masked sums ([`crate::ot::ggm`]) and g_j = q^e_j − Σ_y v_{j,y}, where (u^e_j, w^e_j, q^e_j)
//!    is a base VOLE whose u^e_j = e_j is B's noise value. B rebuilds every leaf but β_j and sets
//!    w_{j,y} = −v_{j,y} off the noise and w_{j,β} = w^e_j + g_j + Σ_{y≠β} v_{j,y}; so A's q = v
//!    and B's (u, w) satisfy q + w = α·u for the sparse u with e_j at β_j.
//! 3. B → A: x* = Σ_i χ_i u_i − u*, with χ hashed from message 2 and a spare base VOLE (u*, w*).
//! 4. A → B: H(V_A) for V_A = Σ χ_i q_i − α·x* − q*. B checks it against V_B = w* − Σ χ_i w_i.
//!    This is Wolverine's consistency check: an A that sent inconsistent sums or g passes only if
//!    its errors vanish at B's noise positions, so it learns at most whether β lies in a set it
//!    chose, once, at the price of an abort — the leakage regular-noise LPN is analysed with. B
//!    sees a hash of a value it can compute itself, or, if it lied in x*, a hash of an affine
//!    function of all of α, which it cannot invert. B does not reveal V_B: a failed check leaks
//!    nothing else, and B aborts before any output is used.
//!
//! Both then expand with the public sparse code (each output a combination of [`COLUMN_WEIGHT`]
//! base values with random nonzero coefficients): u = u'·M + u_sparse, w = w'·M + w_sparse,
//! q = q'·M + q_sparse, where (u', w', q') are [`SECRET`] base VOLEs. Parameters are Ferret's
//! primal set (n = 75,520, k = 8,911, t = 590, bins of 2^7; Yang et al., CCS 2020), chosen for
//! F_2; over a large prime field the known attacks are no cheaper (Liu, Wang, Yang, Yu,
//! EUROCRYPT 2023). The base VOLEs come from [`super::vole`] the first time and from a previous
//! extension after that. An owner that used inconsistent digits there fails the base check
//! ([`prove_base`]) unless it guessed the digits of α involved (MASCOT's selective failure: k
//! bits at probability 2^-k).

use zeroize::Zeroize;

use crate::field::Fp;
use crate::ot::ggm::{self, path_choices};
use crate::ot::prg::{Block, Domain, Prg, hash_rows_to_field_in};
use crate::ot::softspoken::{OtExtError, SoftReceiver, SoftSender};

/// Levels of each noise tree.
pub const TREE_DEPTH: usize = 7;
/// Outputs per noise tree: one of them carries the noise.
pub const BIN: usize = 1 << TREE_DEPTH;
/// Noise trees, and nonzero noise entries, per extension.
pub const TREES: usize = 590;
/// Outputs per extension.
pub const OUTPUTS: usize = TREES * BIN;
/// Length of the LPN secret: base VOLEs expanded by the code.
pub const SECRET: usize = 8_911;
/// Nonzero entries per output in the sparse code.
pub const COLUMN_WEIGHT: usize = 10;
/// Base VOLEs one extension consumes: the LPN secret, one per noise value, one for the check.
pub const BASE: usize = SECRET + TREES + 1;
/// Outputs gained per extension once its base is paid back.
pub const NET: usize = OUTPUTS - BASE;
/// OTs per extension: one per tree level.
pub const OTS: usize = TREES * TREE_DEPTH;
/// Bytes of message 2: the level sums and g for each tree.
pub const SUMS_BYTES: usize = TREES * (ggm::correction_bytes(TREE_DEPTH) + 32);

/// Why an extension failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilentError {
    #[error("OT extension for the noise trees: {0}")]
    OtExtension(#[from] OtExtError),
    #[error("silent VOLE message of {got} bytes, expected {expected}")]
    BadLength { expected: usize, got: usize },
    #[error("silent VOLE message holds a non-canonical field element")]
    NonCanonical,
    #[error("silent VOLE consistency check failed: the key holder's trees are inconsistent")]
    CheckFailed,
    #[error("base VOLE check failed: the owner authenticated its base values inconsistently")]
    BaseCheckFailed,
}

/// Where one extension's OTs and hashes live: unique per use of a pair's seeds.
#[derive(Clone, Copy, Debug)]
pub struct Position<'a> {
    /// Binds the pair and direction (see `pair_context`).
    pub context: &'a [u8],
    /// The SoftSpokenOT nonce.
    pub nonce: u64,
    /// First tweak of the OT keys ([`Domain::SilentOtKeys`]) and of the leaves
    /// ([`Domain::SilentLeaves`]); at least [`OUTPUTS`] tweaks from here are this extension's.
    pub tweak: u64,
}

/// One side's share of a vector of VOLE correlations: the owner's (u, w) or the key holder's q
/// (with `u` empty). Consumed from the front by a cursor: no element is ever moved within the
/// vectors, and each is wiped when it is handed out or dropped, so no stale copy stays behind.
#[derive(Default)]
pub struct Stock {
    u: Vec<Fp>,
    macs: Vec<Fp>,
    /// Elements before this one were handed out (and wiped).
    start: usize,
}

impl Stock {
    /// An owner's stock.
    pub fn owner(u: Vec<Fp>, w: Vec<Fp>) -> Self {
        assert_eq!(u.len(), w.len());
        Stock {
            u,
            macs: w,
            start: 0,
        }
    }

    /// A key holder's stock.
    pub fn key(q: Vec<Fp>) -> Self {
        Stock {
            u: Vec::new(),
            macs: q,
            start: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.macs.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The owner's u still in stock (empty for a key holder).
    fn u(&self) -> &[Fp] {
        self.u.get(self.start..).unwrap_or(&[])
    }

    /// The owner's w or the key holder's q still in stock.
    fn macs(&self) -> &[Fp] {
        &self.macs[self.start..]
    }

    /// The next `n` correlations: (u, w) for an owner, (empty, q) for a key holder.
    pub fn take(&mut self, n: usize) -> (Vec<Fp>, Vec<Fp>) {
        let range = self.start..self.start + n;
        let u = match self.u.get_mut(range.clone()) {
            Some(u) => wiped_copy(u),
            None => Vec::new(),
        };
        let macs = wiped_copy(&mut self.macs[range.clone()]);
        self.start = range.end;
        (u, macs)
    }

    /// The next `n` correlations as a stock of their own.
    pub fn split_off_front(&mut self, n: usize) -> Stock {
        let (u, macs) = self.take(n);
        Stock { u, macs, start: 0 }
    }

    /// Adds an extension's outputs behind what is left, in fresh vectors; the old ones are wiped.
    pub fn extend(&mut self, outputs: Stock) {
        let joined = |a: &[Fp], b: &[Fp]| {
            let mut v = Vec::with_capacity(a.len() + b.len());
            v.extend_from_slice(a);
            v.extend_from_slice(b);
            v
        };
        let u = joined(self.u(), outputs.u());
        let macs = joined(self.macs(), outputs.macs());
        self.wipe();
        *self = Stock { u, macs, start: 0 };
    }

    /// Keeps only the first `n` correlations still in stock.
    pub fn keep(&mut self, n: usize) {
        let end = self.start + n;
        for v in [&mut self.u, &mut self.macs] {
            if v.len() > end {
                v[end..].iter_mut().for_each(Fp::wipe);
                v.truncate(end);
            }
        }
    }

    fn wipe(&mut self) {
        self.u.iter_mut().chain(&mut self.macs).for_each(Fp::wipe);
    }
}

/// A copy of `v`, which is wiped.
fn wiped_copy(v: &mut [Fp]) -> Vec<Fp> {
    let copy = v.to_vec();
    v.iter_mut().for_each(Fp::wipe);
    copy
}

impl Drop for Stock {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// The base check, once per pair before its first extension: the owner opens a random
/// combination of its digit-VOLE base values, masked by one more (the stock's first), and the key
/// holder checks it against its q. An owner that used inconsistent digits adds to the key
/// holder's side an error linear in α's digits; it can shift (y, W) to cancel the error for one
/// guess of the digits involved, so it passes exactly when the guess is right: k bits of α learnt
/// with probability 2^-k, an abort otherwise (MASCOT's selective failure). It sees nothing but
/// whether the key holder went on. Without this check, such errors would reach the silent check,
/// whose digest lets the owner test many guesses of α offline.
pub struct BaseTranscript(blake3::Hasher);

impl BaseTranscript {
    pub fn new(context: &[u8]) -> Self {
        let mut h = blake3::Hasher::new_derive_key("conclave-mpc v1 silent VOLE base check");
        h.update(&(context.len() as u64).to_le_bytes());
        h.update(context);
        BaseTranscript(h)
    }

    /// Adds a digit-VOLE message, as encoded on the wire.
    pub fn absorb(&mut self, encoded: &[u8]) {
        self.0.update(encoded);
    }

    /// χ for the base values after the mask: hashed from every base message, so neither side
    /// picks it.
    fn challenges(&self, n: usize) -> Vec<Fp> {
        let seed: Block = self.0.finalize().as_bytes()[..16]
            .try_into()
            .expect("16 bytes");
        Prg::new(&seed, 0).field_elements(n)
    }
}

/// Values a base check consumes: the mask.
pub const BASE_CHECK_MASKS: usize = 1;

/// The owner's base-check message (y, W) for its whole stock, mask first; drops the mask.
pub fn prove_base(stock: &mut Stock, transcript: &BaseTranscript) -> Vec<u8> {
    let chi = transcript.challenges(stock.len() - 1);
    let (u, w) = (stock.u(), stock.macs());
    let y = u[0] + inner(&chi, &u[1..]);
    let w = w[0] + inner(&chi, &w[1..]);
    drop(stock.split_off_front(BASE_CHECK_MASKS));
    [y.to_bytes(), w.to_bytes()].concat()
}

/// The key holder's side of the base check: q₀ + Σ χ_i q_i + W = α·y; drops the mask.
pub fn verify_base(
    stock: &mut Stock,
    alpha: &Fp,
    transcript: &BaseTranscript,
    msg: &[u8],
) -> Result<(), SilentError> {
    if msg.len() != 64 {
        return Err(SilentError::BadLength {
            expected: 64,
            got: msg.len(),
        });
    }
    let element = |at: usize| {
        Fp::from_bytes(msg[at..at + 32].try_into().expect("32 bytes"))
            .map_err(|_| SilentError::NonCanonical)
    };
    let (y, w) = (element(0)?, element(32)?);
    let chi = transcript.challenges(stock.len() - 1);
    let q = stock.macs()[0] + inner(&chi, &stock.macs()[1..]);
    drop(stock.split_off_front(BASE_CHECK_MASKS));
    if q + w == *alpha * y {
        Ok(())
    } else {
        Err(SilentError::BaseCheckFailed)
    }
}

/// The owner's state in one extension.
pub struct OwnerExtension {
    base: Stock,
    points: Vec<usize>,
    t_rows: Vec<u128>,
    /// The sparse vectors, and V_B, after message 2.
    sparse: Option<(Vec<Fp>, Vec<Fp>, Fp)>,
}

/// The key holder's state in one extension.
pub struct KeyExtension {
    base: Stock,
    /// q of the sparse part: A's leaf values.
    v: Vec<Fp>,
    /// Σ χ_i v_i.
    chi_v: Fp,
}

/// Leaf values v_{j,y}: each leaf hashed to a field element, tweaked by its position.
fn leaf_values(leaves: &[Block], at: &Position) -> Vec<Fp> {
    let mut rows: Vec<u128> = leaves.iter().map(|l| u128::from_le_bytes(*l)).collect();
    let values = hash_rows_to_field_in(Domain::SilentLeaves, &rows, at.tweak);
    rows.zeroize();
    values
}

/// χ: one challenge per output, hashed from message 2 so that neither side picks it.
fn challenges(at: &Position, sums: &[u8]) -> Vec<Fp> {
    let mut h = blake3::Hasher::new_derive_key("conclave-mpc v1 silent VOLE challenge");
    h.update(&(at.context.len() as u64).to_le_bytes());
    h.update(at.context);
    h.update(&at.nonce.to_le_bytes());
    h.update(sums);
    let seed: Block = h.finalize().as_bytes()[..16].try_into().expect("16 bytes");
    Prg::new(&seed, 0).field_elements(OUTPUTS)
}

/// What A sends in message 4: a hash of V_A, bound to the extension.
fn check_digest(at: &Position, v: &Fp) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("conclave-mpc v1 silent VOLE check");
    h.update(&(at.context.len() as u64).to_le_bytes());
    h.update(at.context);
    h.update(&at.nonce.to_le_bytes());
    h.update(&v.to_bytes());
    *h.finalize().as_bytes()
}

fn inner(a: &[Fp], b: &[Fp]) -> Fp {
    a.iter().zip(b).map(|(x, y)| *x * *y).sum()
}

/// out_i += Σ_r c_{i,r}·base[k_{i,r}] for each (base, out) pair, with the public code of this
/// extension: [`COLUMN_WEIGHT`] indices below [`SECRET`] and nonzero coefficients per output.
fn expand(at: &Position, pairs: &mut [(&[Fp], &mut [Fp])]) {
    let mut h = blake3::Hasher::new_derive_key("conclave-mpc v1 silent VOLE code");
    h.update(&(at.context.len() as u64).to_le_bytes());
    h.update(at.context);
    h.update(&at.nonce.to_le_bytes());
    let seed: Block = h.finalize().as_bytes()[..16].try_into().expect("16 bytes");
    let mut prg = Prg::new(&seed, 0);
    let mut index_bytes = [0u8; 8 * COLUMN_WEIGHT];
    let mut coefficients = [Fp::ZERO; COLUMN_WEIGHT];
    for i in 0..OUTPUTS {
        prg.fill(&mut index_bytes);
        prg.fill_field(&mut coefficients);
        for (r, c) in coefficients.iter_mut().enumerate() {
            let raw = u64::from_le_bytes(index_bytes[8 * r..8 * r + 8].try_into().expect("8"));
            let k = (raw % SECRET as u64) as usize;
            // A zero coefficient has probability 2^-252; one is as good as any other nonzero.
            let c = Fp::select(c.is_zero(), Fp::ONE, *c);
            for (base, out) in pairs.iter_mut() {
                out[i] += c * base[k];
            }
        }
    }
}

impl OwnerExtension {
    /// Message 1: picks the noise positions and extends OTs whose choices reveal them only
    /// through A's tree sums. `base` holds [`BASE`] of B's correlations.
    pub fn start(base: Stock, ot: &SoftReceiver, at: &Position) -> (Self, Vec<u8>) {
        assert_eq!(base.len(), BASE);
        assert_eq!(base.u().len(), BASE, "an owner's stock");
        let mut rng = rand::rng();
        let points: Vec<usize> = (0..TREES)
            .map(|_| rand::RngExt::random_range(&mut rng, 0..BIN))
            .collect();
        let mut choices: Vec<bool> = points
            .iter()
            .flat_map(|&p| path_choices(TREE_DEPTH, p))
            .collect();
        let (msg, t_rows) = ot.extend(at.context, at.nonce, &choices, &mut rng);
        choices.zeroize();
        (
            OwnerExtension {
                base,
                points,
                t_rows,
                sparse: None,
            },
            msg,
        )
    }

    /// Message 3 from A's message 2: rebuilds the trees and answers the challenge with x*.
    pub fn open(&mut self, at: &Position, sums: &[u8]) -> Result<[u8; 32], SilentError> {
        if sums.len() != SUMS_BYTES {
            return Err(SilentError::BadLength {
                expected: SUMS_BYTES,
                got: sums.len(),
            });
        }
        let (level_sums, g_bytes) = sums.split_at(TREES * ggm::correction_bytes(TREE_DEPTH));
        let g = g_bytes
            .chunks_exact(32)
            .map(|c| Fp::from_bytes(c.try_into().expect("32 bytes")))
            .collect::<Result<Vec<Fp>, _>>()
            .map_err(|_| SilentError::NonCanonical)?;
        let mut keys = SoftReceiver::keys(Domain::SilentOtKeys, at.tweak, &self.t_rows);
        let mut leaves =
            ggm::regrow(TREE_DEPTH, &self.points, &keys, level_sums).expect("length checked above");
        keys.zeroize();
        let mut v = leaf_values(&leaves, at);
        leaves.zeroize();
        let mut u = vec![Fp::ZERO; OUTPUTS];
        let mut w = vec![Fp::ZERO; OUTPUTS];
        // No branch on β here: the punctured leaf's value is computed from zeros and selected
        // away. (Rebuilding the trees does the same work for every β; see `ggm::regrow`.)
        for (j, &beta) in self.points.iter().enumerate() {
            let tree = j * BIN..(j + 1) * BIN;
            let known: Fp = v[tree.clone()]
                .iter()
                .enumerate()
                .map(|(y, v)| Fp::select(y == beta, Fp::ZERO, *v))
                .sum();
            let (e, w_e) = (self.base.u()[SECRET + j], self.base.macs()[SECRET + j]);
            let w_beta = w_e + g[j] + known;
            for (y, i) in tree.enumerate() {
                let hit = y == beta;
                u[i] = Fp::select(hit, e, Fp::ZERO);
                w[i] = Fp::select(hit, w_beta, -v[i]);
            }
        }
        v.iter_mut().for_each(Fp::wipe);
        let chi = challenges(at, sums);
        let (u_star, w_star) = (self.base.u()[BASE - 1], self.base.macs()[BASE - 1]);
        let x_star = inner(&chi, &u) - u_star;
        let v_b = w_star - inner(&chi, &w);
        self.sparse = Some((u, w, v_b));
        Ok(x_star.to_bytes())
    }

    /// Checks A's message 4 and expands: this side's new correlations (u, w). On an error the
    /// sparse vectors stay in `self` and are wiped with it.
    pub fn finish(mut self, at: &Position, digest: &[u8]) -> Result<Stock, SilentError> {
        let (_, _, v_b) = self.sparse.as_ref().expect("message 2 came first");
        let want = check_digest(at, v_b);
        let digest: &[u8; 32] = digest.try_into().map_err(|_| SilentError::BadLength {
            expected: 32,
            got: digest.len(),
        })?;
        if !subtle_eq(&want, digest) {
            return Err(SilentError::CheckFailed);
        }
        let (mut u, mut w, mut v_b) = self.sparse.take().expect("checked above");
        v_b.wipe();
        expand(
            at,
            &mut [
                (&self.base.u()[..SECRET], &mut u),
                (&self.base.macs()[..SECRET], &mut w),
            ],
        );
        Ok(Stock::owner(u, w))
    }
}

/// Byte equality that does not stop at the first difference.
fn subtle_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Drop for OwnerExtension {
    fn drop(&mut self) {
        self.points.zeroize();
        self.t_rows.zeroize();
        if let Some((u, w, v)) = self.sparse.as_mut() {
            u.iter_mut().chain(w.iter_mut()).for_each(Fp::wipe);
            v.wipe();
        }
    }
}

impl KeyExtension {
    /// Message 2 from B's message 1: grows the trees under the OT keys. `base` holds [`BASE`]
    /// of A's q. Fails, destroying `ot`, if the OT extension's check fails.
    pub fn respond(
        base: Stock,
        ot: &mut SoftSender,
        at: &Position,
        msg: &[u8],
    ) -> Result<(Self, Vec<u8>), SilentError> {
        assert_eq!(base.len(), BASE);
        let mut q_rows = ot.extend(at.context, at.nonce, OTS, msg)?;
        let mut keys = ot.key_pairs(Domain::SilentOtKeys, at.tweak, &q_rows);
        q_rows.zeroize();
        let mut rng = rand::rng();
        let mut roots: Vec<Block> = (0..TREES).map(|_| rand::RngExt::random(&mut rng)).collect();
        let (mut leaves, mut sums) = ggm::grow(TREE_DEPTH, &roots, &keys);
        roots.zeroize();
        keys.iter_mut().for_each(|(k0, k1)| {
            k0.zeroize();
            k1.zeroize();
        });
        let v = leaf_values(&leaves, at);
        leaves.zeroize();
        for j in 0..TREES {
            let g = base.macs()[SECRET + j] - v[j * BIN..(j + 1) * BIN].iter().copied().sum();
            sums.extend_from_slice(&g.to_bytes());
        }
        let chi = challenges(at, &sums);
        let chi_v = inner(&chi, &v);
        Ok((KeyExtension { base, v, chi_v }, sums))
    }

    /// Message 4 from B's message 3: H(V_A) for V_A = Σ χ_i q_i − α·x* − q*.
    pub fn confirm(
        &self,
        at: &Position,
        alpha: &Fp,
        x_star: &[u8],
    ) -> Result<[u8; 32], SilentError> {
        let bytes: &[u8; 32] = x_star.try_into().map_err(|_| SilentError::BadLength {
            expected: 32,
            got: x_star.len(),
        })?;
        let x_star = Fp::from_bytes(bytes).map_err(|_| SilentError::NonCanonical)?;
        let mut v_a = self.chi_v - *alpha * x_star - self.base.macs()[BASE - 1];
        let digest = check_digest(at, &v_a);
        v_a.wipe();
        Ok(digest)
    }

    /// Expands: this side's new correlations q.
    pub fn finish(mut self, at: &Position) -> Stock {
        let mut q = std::mem::take(&mut self.v);
        expand(at, &mut [(&self.base.macs()[..SECRET], &mut q)]);
        Stock::key(q)
    }
}

impl Drop for KeyExtension {
    fn drop(&mut self) {
        self.v.iter_mut().for_each(Fp::wipe);
        self.chi_v.wipe();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ot::ggm::tests::trees;
    use crate::ot::softspoken::delta_digits;

    /// A SoftSpokenOT pair as the setup makes it (B receiver, A sender).
    pub(crate) fn ot_pair() -> (SoftReceiver, SoftSender) {
        let delta: u128 = rand::RngExt::random(&mut rand::rng());
        let (full, punctured) = trees(&delta_digits(delta));
        (SoftReceiver::new(full), SoftSender::new(delta, punctured))
    }

    /// [`BASE`] honest base correlations under `alpha`.
    pub(crate) fn base(alpha: &Fp) -> (Stock, Stock) {
        let mut rng = rand::rng();
        let u: Vec<Fp> = (0..BASE).map(|_| Fp::random(&mut rng)).collect();
        let w: Vec<Fp> = (0..BASE).map(|_| Fp::random(&mut rng)).collect();
        let q = u.iter().zip(&w).map(|(u, w)| *alpha * *u - *w).collect();
        (Stock::owner(u, w), Stock::key(q))
    }

    const AT: Position = Position {
        context: b"test pair",
        nonce: 7,
        tweak: 1 << 40,
    };

    /// Runs one extension, letting `tamper` change message 2 and `lie` message 3.
    fn extend(
        alpha: &Fp,
        tamper: impl FnOnce(&mut Vec<u8>),
        lie: impl FnOnce(&mut [u8; 32]),
    ) -> Result<(Stock, Stock), SilentError> {
        extend_seeing_noise(alpha, tamper, lie).0
    }

    /// [`extend`], and B's first noise position.
    fn extend_seeing_noise(
        alpha: &Fp,
        tamper: impl FnOnce(&mut Vec<u8>),
        lie: impl FnOnce(&mut [u8; 32]),
    ) -> (Result<(Stock, Stock), SilentError>, usize) {
        let (b_ot, mut a_ot) = ot_pair();
        let (b_base, a_base) = base(alpha);
        let (b, msg1) = OwnerExtension::start(b_base, &b_ot, &AT);
        let beta = b.points[0];
        (
            finish_extension(alpha, b, a_base, &mut a_ot, msg1, tamper, lie),
            beta,
        )
    }

    fn finish_extension(
        alpha: &Fp,
        mut b: OwnerExtension,
        a_base: Stock,
        a_ot: &mut SoftSender,
        msg1: Vec<u8>,
        tamper: impl FnOnce(&mut Vec<u8>),
        lie: impl FnOnce(&mut [u8; 32]),
    ) -> Result<(Stock, Stock), SilentError> {
        let (mut a, mut msg2) = KeyExtension::respond(a_base, a_ot, &AT, &msg1)?;
        tamper(&mut msg2);
        // A cheating key holder hashes the challenge from what it really sent.
        a.chi_v = inner(&challenges(&AT, &msg2), &a.v);
        let mut msg3 = b.open(&AT, &msg2)?;
        lie(&mut msg3);
        let msg4 = a.confirm(&AT, alpha, &msg3)?;
        let owner = b.finish(&AT, &msg4)?;
        Ok((owner, a.finish(&AT)))
    }

    #[test]
    fn every_output_is_a_vole_correlation_with_regular_noise_before_expansion() {
        let alpha = Fp::random(&mut rand::rng());
        let (mut owner, mut key) = extend(&alpha, |_| {}, |_| {}).unwrap();
        assert_eq!((owner.len(), key.len()), (OUTPUTS, OUTPUTS));
        let (u, w) = owner.take(OUTPUTS);
        let (_, q) = key.take(OUTPUTS);
        for i in 0..OUTPUTS {
            assert_eq!(q[i] + w[i], alpha * u[i], "output {i}");
        }
        // Expanded outputs are dense: the secret reaches every one.
        assert!(u.iter().all(|u| !u.is_zero()));
    }

    /// The base splits into the LPN secret, one noise value per tree and one check mask, each
    /// used once: the noise at tree j is base value SECRET + j, and x* is masked by the last.
    #[test]
    fn each_base_value_has_one_role() {
        let alpha = Fp::random(&mut rand::rng());
        let (b_ot, mut a_ot) = ot_pair();
        let (b_base, a_base) = base(&alpha);
        let base_u = b_base.u().to_vec();
        let (mut b, msg1) = OwnerExtension::start(b_base, &b_ot, &AT);
        let (_, msg2) = KeyExtension::respond(a_base, &mut a_ot, &AT, &msg1).unwrap();
        let x_star = Fp::from_bytes(&b.open(&AT, &msg2).unwrap()).unwrap();
        let (u, _, _) = b.sparse.as_ref().unwrap();
        for (j, &beta) in b.points.iter().enumerate() {
            let tree = &u[j * BIN..(j + 1) * BIN];
            assert_eq!(tree[beta], base_u[SECRET + j], "noise of tree {j}");
            assert_eq!(tree.iter().filter(|v| v.is_zero()).count(), BIN - 1);
        }
        let chi = challenges(&AT, &msg2);
        assert_eq!(x_star, inner(&chi, u) - base_u[SECRET + TREES]);
        assert_eq!(BASE, SECRET + TREES + 1);
    }

    /// A key holder that corrupts a level sum of a tree fails B's check exactly when B's noise
    /// position reads that sum: all it learns is one bit of the position, at the price of an
    /// abort when the bit is the one it hoped against.
    #[test]
    fn a_corrupted_level_sum_fails_the_check_for_positions_that_read_it() {
        let alpha = Fp::random(&mut rand::rng());
        for _ in 0..4 {
            // Tree 0, top level, left sum: read by positions whose top bit is 1.
            let (r, beta) = extend_seeing_noise(&alpha, |m| m[5] ^= 1, |_| {});
            match r {
                Err(SilentError::CheckFailed) => assert_eq!(beta >> (TREE_DEPTH - 1), 1),
                Ok((mut owner, mut key)) => {
                    assert_eq!(beta >> (TREE_DEPTH - 1), 0);
                    // Passing means B's outputs are right: the sum it skipped did not matter.
                    let (u, w) = owner.take(OUTPUTS);
                    let (_, q) = key.take(OUTPUTS);
                    assert!((0..OUTPUTS).all(|i| q[i] + w[i] == alpha * u[i]));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn a_wrong_g_fails_the_check() {
        let alpha = Fp::random(&mut rand::rng());
        let at = TREES * ggm::correction_bytes(TREE_DEPTH) + 32 * 3;
        let r = extend(&alpha, |m| m[at] ^= 1, |_| {});
        assert_eq!(r.err(), Some(SilentError::CheckFailed));
    }

    /// An owner that lies in x* only fails its own check: it learns nothing it could not compute.
    #[test]
    fn a_wrong_x_star_fails_the_check() {
        let alpha = Fp::random(&mut rand::rng());
        let r = extend(&alpha, |_| {}, |x| x[0] ^= 1);
        assert_eq!(r.err(), Some(SilentError::CheckFailed));
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        let alpha = Fp::random(&mut rand::rng());
        let r = extend(&alpha, |m| m.truncate(100), |_| {});
        assert_eq!(
            r.err(),
            Some(SilentError::BadLength {
                expected: SUMS_BYTES,
                got: 100
            })
        );
        let r = extend(&alpha, |m| m[SUMS_BYTES - 1] = 0xff, |_| {});
        assert_eq!(r.err(), Some(SilentError::NonCanonical));
        let r = extend(&alpha, |_| {}, |x| x[31] = 0xff);
        assert_eq!(r.err(), Some(SilentError::NonCanonical));
        let (b_ot, mut a_ot) = ot_pair();
        let (b_base, a_base) = base(&alpha);
        let (_, mut msg1) = OwnerExtension::start(b_base, &b_ot, &AT);
        msg1.pop();
        assert!(matches!(
            KeyExtension::respond(a_base, &mut a_ot, &AT, &msg1),
            Err(SilentError::OtExtension(OtExtError::BadLength { .. }))
        ));
    }

    /// The base check passes honest stocks and catches one inconsistent base value or a lie in
    /// the opened combination; either way the mask is gone.
    #[test]
    fn the_base_check_catches_an_inconsistent_base_value() {
        let alpha = Fp::random(&mut rand::rng());
        let transcript = || {
            let mut t = BaseTranscript::new(b"pair");
            t.absorb(b"the digit-VOLE messages");
            t
        };
        let check = |bad_q: Option<usize>, lie: bool| {
            let (mut owner, mut key) = base(&alpha);
            if let Some(i) = bad_q {
                key.macs[i] += Fp::ONE;
            }
            let mut msg = prove_base(&mut owner, &transcript());
            if lie {
                msg[0] ^= 1;
            }
            let r = verify_base(&mut key, &alpha, &transcript(), &msg);
            assert_eq!((owner.len(), key.len()), (BASE - 1, BASE - 1));
            r
        };
        assert_eq!(check(None, false), Ok(()));
        for i in [0, 1, BASE - 1] {
            assert_eq!(
                check(Some(i), false),
                Err(SilentError::BaseCheckFailed),
                "value {i}"
            );
        }
        assert_eq!(check(None, true), Err(SilentError::BaseCheckFailed));
        // Another pair or other messages mean other challenges: the check binds both, so an
        // owner cannot fit its errors to challenges it knows before it sends.
        let mut other_messages = BaseTranscript::new(b"pair");
        other_messages.absorb(b"other digit-VOLE messages");
        for other in [BaseTranscript::new(b"another pair"), other_messages] {
            let (mut owner, mut key) = base(&alpha);
            let msg = prove_base(&mut owner, &transcript());
            assert_eq!(
                verify_base(&mut key, &alpha, &other, &msg),
                Err(SilentError::BaseCheckFailed)
            );
        }
    }

    /// `keep` drops and wipes what is past the first n left, counted from the cursor.
    #[test]
    fn keep_drops_the_tail_counted_from_the_cursor() {
        let mut s = Stock::owner(
            (0..6).map(Fp::from_u64).collect(),
            (10..16).map(Fp::from_u64).collect(),
        );
        drop(s.take(2));
        s.keep(3);
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s.u.len(), s.macs.len()),
            (5, 5),
            "elements 5 and 15 dropped"
        );
        let (u, w) = s.take(3);
        assert_eq!(u, [2, 3, 4].map(Fp::from_u64));
        assert_eq!(w, [12, 13, 14].map(Fp::from_u64));
        s.keep(10);
        assert_eq!(s.len(), 0);
    }

    /// The digest comparison notices any difference, also two that would cancel under XOR.
    #[test]
    fn the_digest_comparison_notices_any_difference() {
        let a = [7u8; 32];
        assert!(subtle_eq(&a, &a));
        let mut b = a;
        b[0] ^= 1;
        assert!(!subtle_eq(&a, &b));
        b[1] ^= 1;
        assert!(!subtle_eq(&a, &b), "two equal differences");
    }

    #[test]
    fn stock_is_consumed_from_the_front() {
        let mut s = Stock::owner(
            (0..5).map(Fp::from_u64).collect(),
            (10..15).map(Fp::from_u64).collect(),
        );
        s.extend(Stock::owner(vec![Fp::from_u64(5)], vec![Fp::from_u64(15)]));
        let (u, w) = s.take(2);
        assert_eq!((u[1], w[1]), (Fp::from_u64(1), Fp::from_u64(11)));
        assert!(!s.is_empty());
        let (u, w) = s.take(4);
        assert_eq!(
            (u[3], w[3], s.len()),
            (Fp::from_u64(5), Fp::from_u64(15), 0)
        );
        assert!(s.is_empty());
    }
}
