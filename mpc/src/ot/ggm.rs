//! Punctured seed sets from base OTs: for each *digit*, the dealer knows all [`LEAVES`] leaf
//! seeds of a GGM tree, the other side knows every leaf but the one at its secret digit.
//!
//! A digit of [`DEPTH`] bits takes one random base OT per tree level: the dealer is the base-OT
//! sender (keys k0, k1), the other side chooses the complement of its digit's bit for that level.
//! The dealer sends, per level, the XOR of all left children and the XOR of all right children,
//! each masked with one of the level's OT keys; the other side unmasks the side off its path and
//! rebuilds every node off the path (the classic GGM puncturing of SoftSpokenOT, Roy 2022).
//!
//! A dealer that masks a level sum wrongly spoils the other side's leaves only if that side reads
//! the sum, i.e. depending on one bit of its digit: whichever check later uses the leaves fails or
//! not depending on that bit. That is the same selective-failure leak as in the base OTs of COPE and KOS; the checks
//! built on these seeds are analysed with it (see the modules that use them).

use zeroize::Zeroize;

use super::prg::{Block, Prg};

/// Bits per digit.
pub const DEPTH: usize = 4;
/// Leaves per tree.
pub const LEAVES: usize = 1 << DEPTH;
/// Bytes of the dealer's message per digit: two masked level sums per level.
pub const CORRECTION_BYTES: usize = correction_bytes(DEPTH);

/// Why a punctured seed set could not be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgmError {
    #[error("punctured-seed message of {got} bytes, expected {expected}")]
    BadLength { expected: usize, got: usize },
}

/// The two children of a GGM node.
fn children(node: &Block) -> (Block, Block) {
    let mut out = [0u8; 32];
    Prg::new(node, u64::MAX).fill(&mut out);
    let left = out[..16].try_into().expect("16 bytes");
    let right = out[16..].try_into().expect("16 bytes");
    out.zeroize();
    (left, right)
}

/// All ones when `b`, else zero, without a branch.
fn mask(b: bool) -> u128 {
    (b as u128).wrapping_neg()
}

fn xor(a: &mut Block, b: &Block) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x ^= y);
}

/// The base-OT choices of the side that holds `digit`: per level, from the root down, the
/// complement of the digit's bit for that level.
pub fn choices(digit: u8) -> impl Iterator<Item = bool> {
    path_choices(DEPTH, digit as usize)
}

/// Grows one tree of `depth` levels per root, keyed per level by base-OT key pairs `keys`
/// (`depth` per tree): every leaf of every tree, tree after tree, and the message for the other
/// side ([`correction_bytes`] per tree).
pub fn grow(depth: usize, roots: &[Block], keys: &[(Block, Block)]) -> (Vec<Block>, Vec<u8>) {
    assert_eq!(keys.len(), depth * roots.len());
    let mut leaves = Vec::with_capacity(roots.len() << depth);
    let mut msg = Vec::with_capacity(correction_bytes(depth) * roots.len());
    for (root, keys) in roots.iter().zip(keys.chunks_exact(depth)) {
        let mut level = vec![*root];
        for (k0, k1) in keys {
            let mut next = Vec::with_capacity(2 * level.len());
            let (mut left, mut right) = ([0u8; 16], [0u8; 16]);
            for node in &level {
                let (l, r) = children(node);
                xor(&mut left, &l);
                xor(&mut right, &r);
                next.extend([l, r]);
            }
            xor(&mut left, k0);
            xor(&mut right, k1);
            msg.extend_from_slice(&left);
            msg.extend_from_slice(&right);
            level.iter_mut().for_each(|n| n.zeroize());
            level = next;
        }
        leaves.append(&mut level);
        // Vec's zeroize wipes the whole buffer, where `append` left copies.
        level.zeroize();
    }
    (leaves, msg)
}

/// Rebuilds every leaf but `points[i]` of tree i (that one is zero: unknown) from the keys this
/// side chose with [`path_choices`] and the dealer's message from [`grow`].
pub fn regrow(
    depth: usize,
    points: &[usize],
    chosen: &[Block],
    msg: &[u8],
) -> Result<Vec<Block>, GgmError> {
    assert_eq!(chosen.len(), depth * points.len());
    let per_tree = correction_bytes(depth);
    let expected = per_tree * points.len();
    if msg.len() != expected {
        return Err(GgmError::BadLength {
            expected,
            got: msg.len(),
        });
    }
    let mut all = Vec::with_capacity(points.len() << depth);
    for ((&point, keys), msg) in points
        .iter()
        .zip(chosen.chunks_exact(depth))
        .zip(msg.chunks_exact(per_tree))
    {
        // Nodes of the current level; the one on the path to `point` is unknown (zero). No
        // branch or index depends on the point: every node is expanded and the path node's
        // children masked out, both level sums are read and one selected, every node is visited.
        let mut level: Vec<u128> = vec![0];
        for (height, key) in keys.iter().enumerate() {
            let on_path = point >> (depth - 1 - height);
            let path_parent = on_path >> 1;
            let mut next = vec![0u128; 2 * level.len()];
            for (i, node) in level.iter().enumerate() {
                let (l, r) = children(&node.to_le_bytes());
                let keep = mask(i != path_parent);
                next[2 * i] = u128::from_le_bytes(l) & keep;
                next[2 * i + 1] = u128::from_le_bytes(r) & keep;
            }
            // The sibling of the path node: its side's masked sum, minus the known nodes.
            let sibling = on_path ^ 1;
            let side = sibling & 1;
            let read = |at: usize| u128::from_le_bytes(msg[at..at + 16].try_into().expect("16"));
            let (left, right) = (read(32 * height), read(32 * height + 16));
            let on_right = mask(side == 1);
            let mut sum = ((left & !on_right) | (right & on_right)) ^ u128::from_le_bytes(*key);
            for (i, node) in next.iter().enumerate() {
                sum ^= node & mask((i & 1 == side) & (i != sibling));
            }
            for (i, node) in next.iter_mut().enumerate() {
                let here = mask(i == sibling);
                *node = (*node & !here) | (sum & here);
            }
            level.zeroize();
            level = next;
        }
        all.extend(level.iter().map(|n| n.to_le_bytes()));
        // Vec's zeroize wipes the whole buffer.
        level.zeroize();
    }
    Ok(all)
}

/// Bytes of the dealer's message per tree of `depth` levels: two masked level sums per level.
pub const fn correction_bytes(depth: usize) -> usize {
    depth * 2 * 16
}

/// The base-OT choices of the side that holds `point` in a tree of `depth` levels: per level,
/// from the root down, the complement of the point's bit for that level.
pub fn path_choices(depth: usize, point: usize) -> impl Iterator<Item = bool> {
    (0..depth).map(move |level| (point >> (depth - 1 - level)) & 1 == 0)
}

/// The leaves of full trees, one per digit: held by the dealer.
pub struct FullSeeds {
    leaves: Vec<[Block; LEAVES]>,
}

/// The leaves of punctured trees: held by the side whose digits they hide.
pub struct PuncturedSeeds {
    digits: Vec<u8>,
    /// Leaf `digits[d]` of tree d is zero (unknown).
    leaves: Vec<[Block; LEAVES]>,
}

/// Groups a flat list of leaves by tree of [`DEPTH`] levels.
fn by_tree(mut flat: Vec<Block>) -> Vec<[Block; LEAVES]> {
    let trees = flat
        .chunks_exact(LEAVES)
        .map(|t| t.try_into().expect("LEAVES leaves"))
        .collect();
    flat.zeroize();
    trees
}

impl FullSeeds {
    /// Grows one tree per `DEPTH` base-OT key pairs and returns the seeds with the message for
    /// the other side (`CORRECTION_BYTES` per tree).
    pub fn deal(root_seeds: &[Block], keys: &[(Block, Block)]) -> (Self, Vec<u8>) {
        let (leaves, msg) = grow(DEPTH, root_seeds, keys);
        (
            FullSeeds {
                leaves: by_tree(leaves),
            },
            msg,
        )
    }

    pub fn digits(&self) -> usize {
        self.leaves.len()
    }

    /// Leaf `y` of tree `d`.
    pub fn leaf(&self, d: usize, y: usize) -> &Block {
        &self.leaves[d][y]
    }
}

impl PuncturedSeeds {
    /// Rebuilds every leaf but `digits[d]` of each tree from the keys this side chose (with
    /// [`choices`]) and the dealer's message.
    pub fn rebuild(digits: &[u8], chosen: &[Block], msg: &[u8]) -> Result<Self, GgmError> {
        let points: Vec<usize> = digits.iter().map(|&d| d as usize).collect();
        let leaves = regrow(DEPTH, &points, chosen, msg)?;
        Ok(PuncturedSeeds {
            digits: digits.to_vec(),
            leaves: by_tree(leaves),
        })
    }

    pub fn digits(&self) -> usize {
        self.leaves.len()
    }

    /// The hidden digit of tree `d`.
    pub fn digit(&self, d: usize) -> u8 {
        self.digits[d]
    }

    /// Leaf `y` of tree `d`; `None` for the punctured one.
    pub fn leaf(&self, d: usize, y: usize) -> Option<&Block> {
        (y != self.digits[d] as usize).then(|| &self.leaves[d][y])
    }

    /// Leaf `y` of tree `d`, or zeros for the punctured one: for code that must not branch on
    /// the hidden digit, and masks that leaf's contribution out itself.
    pub fn leaf_or_zero(&self, d: usize, y: usize) -> &Block {
        &self.leaves[d][y]
    }
}

impl Drop for FullSeeds {
    fn drop(&mut self) {
        self.leaves.iter_mut().flatten().for_each(|l| l.zeroize());
    }
}

impl Drop for PuncturedSeeds {
    fn drop(&mut self) {
        self.leaves.iter_mut().flatten().for_each(|l| l.zeroize());
        self.digits.zeroize();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::RngExt;

    /// Full and punctured trees for `digits` over fresh base OTs, as the setup makes them.
    pub(crate) fn trees(digits: &[u8]) -> (FullSeeds, PuncturedSeeds) {
        let (pairs, chosen) = base_ots(digits);
        let roots: Vec<Block> = digits.iter().map(|_| rand::rng().random()).collect();
        let (full, msg) = FullSeeds::deal(&roots, &pairs);
        let punctured = PuncturedSeeds::rebuild(digits, &chosen, &msg).unwrap();
        (full, punctured)
    }

    /// Random base OTs with the punctured side's choices, as the setup makes them.
    fn base_ots(digits: &[u8]) -> (Vec<(Block, Block)>, Vec<Block>) {
        let mut rng = rand::rng();
        let pairs: Vec<(Block, Block)> = (0..DEPTH * digits.len())
            .map(|_| (rng.random(), rng.random()))
            .collect();
        let chosen = digits
            .iter()
            .flat_map(|&d| choices(d))
            .zip(&pairs)
            .map(|(c, (k0, k1))| if c { *k1 } else { *k0 })
            .collect();
        (pairs, chosen)
    }

    #[test]
    fn every_leaf_but_the_digit_is_rebuilt() {
        let digits: Vec<u8> = (0..LEAVES as u8).collect();
        let (full, punctured) = trees(&digits);
        for (d, &digit) in digits.iter().enumerate() {
            for y in 0..LEAVES {
                match punctured.leaf(d, y) {
                    Some(leaf) => assert_eq!(leaf, full.leaf(d, y), "tree {d} leaf {y}"),
                    None => assert_eq!(y, digit as usize),
                }
            }
            let distinct: std::collections::HashSet<_> =
                (0..LEAVES).map(|y| *full.leaf(d, y)).collect();
            assert_eq!(distinct.len(), LEAVES);
        }
    }

    /// A dealer that corrupts one level sum changes the rebuilt leaves only for the digits that
    /// read that sum: whether anything breaks depends on one bit of the digit.
    #[test]
    fn a_wrong_level_sum_matters_only_to_digits_that_read_it() {
        for digit in 0..LEAVES as u8 {
            let (pairs, chosen) = base_ots(&[digit]);
            let (full, mut msg) = FullSeeds::deal(&[[7; 16]], &pairs);
            msg[0] ^= 1; // level 1, left sum: read only when the digit's top bit is 1
            let punctured = PuncturedSeeds::rebuild(&[digit], &chosen, &msg).unwrap();
            let wrong = (0..LEAVES)
                .filter(|&y| punctured.leaf(0, y).is_some_and(|l| l != full.leaf(0, y)))
                .count();
            if digit >> (DEPTH - 1) == 1 {
                assert!(wrong > 0, "digit {digit}");
            } else {
                assert_eq!(wrong, 0, "digit {digit}");
            }
        }
    }

    #[test]
    fn wrong_length_is_refused() {
        let (_, chosen) = base_ots(&[3]);
        assert_eq!(
            PuncturedSeeds::rebuild(&[3], &chosen, &[0; 5]).err(),
            Some(GgmError::BadLength {
                expected: CORRECTION_BYTES,
                got: 5
            })
        );
    }
}
