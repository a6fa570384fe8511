//! Committee seats, the Rust twin of `contracts/Sortition.sol` (DESIGN.md, "Tasks").
//!
//! A node's stake counts as `units` lottery tickets (whole multiples of the registry's minimum
//! stake, at most [`MAX_UNITS`]). Unit u of a node wins a seat of a task when
//! keccak256(abi.encode(seed, taskId, operator, u)) < floor((2^256 − 1) / totalUnits) · expected
//! (every unit when `expected` ≥ `totalUnits`): each unit wins with probability
//! expected / totalUnits, independently. A node's seats are a 256-bit mask; its committee is every
//! node with at least one seat, and the threshold counts seats.

use alloy::primitives::{Address, B256, U256, keccak256};

/// Units beyond this do not count (`Sortition.MAX_UNITS`).
pub const MAX_UNITS: u64 = 256;

/// What a task's draw depends on besides the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    pub seed: B256,
    pub task_id: U256,
    /// The registry's active units when the task was opened.
    pub total_units: U256,
    /// The expected number of seats: the project's committee size.
    pub expected: U256,
}

impl Draw {
    /// The lottery ticket of one unit of a node.
    pub fn ticket(&self, operator: Address, unit: u64) -> U256 {
        let mut words = [0u8; 128];
        words[..32].copy_from_slice(self.seed.as_slice());
        words[32..64].copy_from_slice(&self.task_id.to_be_bytes::<32>());
        words[76..96].copy_from_slice(operator.as_slice());
        words[120..].copy_from_slice(&unit.to_be_bytes());
        U256::from_be_bytes(keccak256(words).0)
    }

    /// Tickets below this win.
    pub fn cutoff(&self) -> U256 {
        if self.expected >= self.total_units || self.total_units.is_zero() {
            return U256::MAX;
        }
        (U256::MAX / self.total_units) * self.expected
    }

    /// The seats of a node with `units` units, as a mask (bit u set when unit u won).
    pub fn seats(&self, operator: Address, units: u64) -> U256 {
        let cutoff = self.cutoff();
        (0..units.min(MAX_UNITS))
            .filter(|&u| self.ticket(operator, u) < cutoff)
            .fold(U256::ZERO, |mask, u| mask | (U256::from(1) << u as usize))
    }

    /// The committee among `nodes` (operator, units at the task's opening): each node with at
    /// least one seat and its seat mask, in ascending operator order.
    pub fn committee(&self, nodes: &[(Address, u64)]) -> Vec<(Address, U256)> {
        let mut seated: Vec<(Address, U256)> = nodes
            .iter()
            .map(|&(who, units)| (who, self.seats(who, units)))
            .filter(|(_, mask)| !mask.is_zero())
            .collect();
        seated.sort_unstable_by_key(|s| s.0);
        seated.dedup_by_key(|s| s.0);
        seated
    }
}

/// How many seats a mask holds.
pub fn seat_count(mask: U256) -> u32 {
    mask.count_ones() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: u32, units: u64) -> Vec<(Address, u64)> {
        (0..n)
            .map(|i| {
                let mut a = [0u8; 20];
                a[..4].copy_from_slice(&i.to_be_bytes());
                (Address::from(a), units)
            })
            .collect()
    }

    #[test]
    fn every_unit_wins_when_the_seats_exceed_the_units() {
        let d = Draw {
            seed: B256::repeat_byte(7),
            task_id: U256::from(2),
            total_units: U256::from(6),
            expected: U256::from(9),
        };
        let committee = d.committee(&nodes(3, 2));
        assert_eq!(committee.len(), 3);
        assert!(committee.iter().all(|(_, m)| seat_count(*m) == 2));
        assert!(d.seats(Address::repeat_byte(9), 0).is_zero());
    }

    #[test]
    fn seats_follow_units_and_average_the_committee_size() {
        // 200 nodes of 1 unit and one of 50 units: the big one holds about a fifth of the seats.
        let mut all = nodes(200, 1);
        all[0].1 = 50;
        let total = U256::from(199 + 50);
        let (mut big, mut seats) = (0u32, 0u32);
        for task in 0..400u64 {
            let d = Draw {
                seed: B256::ZERO,
                task_id: U256::from(task),
                total_units: total,
                expected: U256::from(5),
            };
            for (who, mask) in d.committee(&all) {
                seats += seat_count(mask);
                if who == all[0].0 {
                    big += seat_count(mask);
                }
            }
        }
        let mean = f64::from(seats) / 400.0;
        assert!((4.5..5.5).contains(&mean), "mean seats {mean}");
        let share = f64::from(big) / f64::from(seats);
        assert!((0.15..0.25).contains(&share), "big node's share {share}");
    }

    #[test]
    fn units_beyond_the_cap_never_win() {
        let d = Draw {
            seed: B256::repeat_byte(1),
            task_id: U256::from(1),
            total_units: U256::from(1),
            expected: U256::from(1),
        };
        assert_eq!(
            seat_count(d.seats(Address::repeat_byte(1), 10_000)),
            MAX_UNITS as u32
        );
    }
}
