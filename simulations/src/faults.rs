//! Which committee runs a fault touched: a member or coordinator that crashed, left or was cut
//! off by a partition while the run was under way. The trust model promises a published result
//! only for runs no fault and no adversary touched; this is how a test (and a reader of
//! `attempts.csv`) tells them apart.

use std::collections::BTreeSet;

use crate::runner::{Applied, Attempt};
use crate::scenario::EventKind;

/// Nodes of `attempt` (its coordinator and members) that a fault in `events` (as applied, in
/// time order) touched between the attempt's opening and its end.
pub fn touched_by_faults(attempt: &Attempt, events: &[Applied]) -> Vec<usize> {
    let involved: BTreeSet<usize> = attempt
        .committee
        .iter()
        .map(|&(node, _)| node)
        .chain(attempt.coordinator)
        .collect();
    let (from, to) = (attempt.opened_ms, attempt.ended_ms);
    // What is down or cut off when the attempt opens, and what goes down while it runs.
    let mut down = BTreeSet::new();
    let mut cut: Vec<(usize, &[usize])> = Vec::new();
    let mut touched = BTreeSet::new();
    for event in events.iter().take_while(|e| e.at_ms <= to) {
        let before = event.at_ms < from;
        match &event.what {
            EventKind::Crash { node } | EventKind::Leave { node } if before => {
                down.insert(*node);
            }
            EventKind::Crash { node } | EventKind::Leave { node } => {
                touched.insert(*node);
            }
            // A restart that failed leaves the node down.
            EventKind::Restart { node } | EventKind::Join { node } if event.error.is_none() => {
                down.remove(node);
            }
            EventKind::Restart { .. } | EventKind::Join { .. } => {}
            EventKind::PartitionOpens { index, nodes } if before => cut.push((*index, nodes)),
            EventKind::PartitionOpens { nodes, .. } => touched.extend(nodes.iter().copied()),
            EventKind::PartitionHeals { index } => cut.retain(|(i, _)| i != index),
        }
    }
    touched.extend(down);
    for (_, nodes) in cut {
        touched.extend(nodes.iter().copied());
    }
    touched.intersection(&involved).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_ms: u64, what: EventKind) -> Applied {
        Applied {
            at_ms,
            planned_ms: at_ms,
            what,
            error: None,
        }
    }

    fn attempt(coordinator: usize, members: &[usize], opened_ms: u64, ended_ms: u64) -> Attempt {
        Attempt {
            task_id: String::new(),
            coordinator: Some(coordinator),
            committee: members.iter().map(|&m| (m, 1)).collect(),
            seats: members.len() as u32,
            adversary_seats: 0,
            inputs: 0,
            state: String::new(),
            reason: None,
            phases: Vec::new(),
            device_errors: Vec::new(),
            unconfirmed: 0,
            opened_ms,
            ended_ms,
            touched_by_faults: Vec::new(),
        }
    }

    #[test]
    fn a_crash_touches_runs_it_falls_in_or_that_open_while_the_node_is_down() {
        let events = [
            at(5_000, EventKind::Crash { node: 3 }),
            at(15_000, EventKind::Restart { node: 3 }),
        ];
        assert_eq!(
            touched_by_faults(&attempt(0, &[1, 3], 0, 4_000), &events),
            [0; 0]
        );
        assert_eq!(
            touched_by_faults(&attempt(0, &[1, 3], 4_000, 6_000), &events),
            [3]
        );
        assert_eq!(
            touched_by_faults(&attempt(3, &[1, 2], 7_000, 9_000), &events),
            [3]
        );
        assert_eq!(
            touched_by_faults(&attempt(0, &[1, 3], 16_000, 20_000), &events),
            [0; 0]
        );
        assert_eq!(
            touched_by_faults(&attempt(0, &[1, 2], 4_000, 6_000), &events),
            [0; 0]
        );
    }

    #[test]
    fn a_failed_restart_leaves_the_node_down() {
        let mut restart = at(15_000, EventKind::Restart { node: 3 });
        restart.error = Some("could not listen".into());
        let events = [at(5_000, EventKind::Crash { node: 3 }), restart];
        assert_eq!(
            touched_by_faults(&attempt(0, &[3], 16_000, 20_000), &events),
            [3]
        );
    }

    #[test]
    fn a_partition_touches_runs_with_a_cut_off_node_until_it_heals() {
        let events = [
            at(
                8_000,
                EventKind::PartitionOpens {
                    index: 0,
                    nodes: vec![4, 5],
                },
            ),
            at(16_000, EventKind::PartitionHeals { index: 0 }),
        ];
        assert_eq!(
            touched_by_faults(&attempt(0, &[1, 5], 7_000, 9_000), &events),
            [5]
        );
        assert_eq!(
            touched_by_faults(&attempt(4, &[1, 2], 10_000, 12_000), &events),
            [4]
        );
        assert_eq!(
            touched_by_faults(&attempt(0, &[1, 5], 17_000, 19_000), &events),
            [0; 0]
        );
        assert_eq!(
            touched_by_faults(&attempt(0, &[1, 2], 9_000, 12_000), &events),
            [0; 0]
        );
    }
}
