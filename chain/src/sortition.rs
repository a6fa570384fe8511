//! The committee draw, the Rust twin of `contracts/Sortition.sol` (DESIGN.md, "Committee draw").
//!
//! ticket = keccak256(abi.encode(seed, projectId, taskId, operator)); key = ticket / stake;
//! cutoff = floor((2^256 − 1) / totalStake) · expected (every key if expected ≥ totalStake).
//! Nodes with key < cutoff are the candidates; ranked by (key, address) the first `committee_size`
//! are the committee and the rest stand by to replace members that fail.

use alloy::primitives::{Address, B256, U256, keccak256};

/// Candidates the draw aims for per committee seat (`TaskRouter.CANDIDATES_PER_SEAT`).
pub const CANDIDATES_PER_SEAT: u64 = 3;

/// What a draw depends on besides the nodes: the epoch (seed, total stake) and the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    pub seed: B256,
    pub total_stake: U256,
    /// Expected number of candidates: `CANDIDATES_PER_SEAT` × committee size.
    pub expected: U256,
    pub project_id: U256,
    pub task_id: U256,
}

impl Draw {
    /// The draw for a project whose committee has `committee_size` seats.
    pub fn for_committee(
        seed: B256,
        total_stake: U256,
        committee_size: u16,
        project_id: U256,
        task_id: U256,
    ) -> Self {
        Draw {
            seed,
            total_stake,
            expected: U256::from(CANDIDATES_PER_SEAT * u64::from(committee_size)),
            project_id,
            task_id,
        }
    }

    /// The node's ticket for this task.
    pub fn ticket(&self, operator: Address) -> U256 {
        let mut words = [0u8; 128];
        words[..32].copy_from_slice(self.seed.as_slice());
        words[32..64].copy_from_slice(&self.project_id.to_be_bytes::<32>());
        words[64..96].copy_from_slice(&self.task_id.to_be_bytes::<32>());
        words[108..].copy_from_slice(operator.as_slice());
        U256::from_be_bytes(keccak256(words).0)
    }

    /// Keys below this are candidates.
    pub fn cutoff(&self) -> U256 {
        if self.expected >= self.total_stake {
            return U256::MAX;
        }
        (U256::MAX / self.total_stake) * self.expected
    }

    /// The node's key, or `None` when it is not a candidate (including stake 0).
    pub fn key(&self, operator: Address, stake: U256) -> Option<U256> {
        if stake.is_zero() {
            return None;
        }
        let key = self.ticket(operator) / stake;
        (key < self.cutoff()).then_some(key)
    }

    pub fn is_candidate(&self, operator: Address, stake: U256) -> bool {
        self.key(operator, stake).is_some()
    }

    /// The candidates among `nodes` (operator, stake at the epoch) in rank order.
    pub fn rank(&self, nodes: &[(Address, U256)]) -> Vec<Address> {
        let mut keyed: Vec<(U256, Address)> = nodes
            .iter()
            .filter_map(|&(who, stake)| self.key(who, stake).map(|k| (k, who)))
            .collect();
        keyed.sort_unstable();
        keyed.into_iter().map(|(_, who)| who).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(total: u64, expected: u64) -> Draw {
        Draw {
            seed: B256::repeat_byte(7),
            total_stake: U256::from(total),
            expected: U256::from(expected),
            project_id: U256::from(1),
            task_id: U256::from(2),
        }
    }

    #[test]
    fn everyone_is_a_candidate_when_seats_exceed_stake() {
        let d = draw(5, 9);
        let nodes: Vec<_> = (1..=5u8)
            .map(|i| (Address::repeat_byte(i), U256::from(1)))
            .collect();
        assert_eq!(d.rank(&nodes).len(), 5);
        assert!(!d.is_candidate(Address::repeat_byte(9), U256::ZERO));
    }

    #[test]
    fn candidates_follow_stake() {
        // 200 nodes, one with 50× the stake of the others: over many tasks it is a candidate far
        // more often than an average node.
        let mut nodes: Vec<_> = (0..200u32)
            .map(|i| {
                let mut a = [0u8; 20];
                a[..4].copy_from_slice(&i.to_be_bytes());
                (Address::from(a), U256::from(100))
            })
            .collect();
        nodes[0].1 = U256::from(5000);
        let total = U256::from(199 * 100 + 5000);
        let (mut whale, mut others, mut sizes) = (0, 0, 0);
        for task in 0..300u64 {
            let d = Draw {
                task_id: U256::from(task),
                ..Draw::for_committee(B256::ZERO, total, 3, U256::from(1), U256::ZERO)
            };
            let ranked = d.rank(&nodes);
            sizes += ranked.len();
            whale += usize::from(ranked.contains(&nodes[0].0));
            others += ranked.iter().filter(|&&a| a != nodes[0].0).count();
        }
        // Expected 9 candidates per task; the whale holds ~20 % of the stake.
        let mean = sizes as f64 / 300.0;
        assert!((7.0..11.0).contains(&mean), "mean candidates {mean}");
        assert!(whale > 200, "whale chosen in {whale} of 300 tasks");
        assert!((others as f64 / 199.0) < 30.0);
    }
}
