//! The task state machine (sans-IO): Pending → Committee → Running → Attesting → Published, or
//! Failed(reason) from any state before Published. The coordinator drives it and persists every
//! state; a node restarting finds each task where it left it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Opened; its committee is being formed.
    Pending,
    /// Committee fixed, preprocessing and collecting inputs.
    Committee,
    /// Inputs closed; the committee computes.
    Running,
    /// Computed; gathering signatures and submitting.
    Attesting,
    Published {
        tx_hash: [u8; 32],
        block: u64,
    },
    Failed(String),
}

/// A task as its coordinator reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub state: TaskState,
    /// The published output.
    pub output: Option<Vec<u8>>,
    /// The task re-running this one.
    pub retried_as: Option<[u8; 32]>,
    /// Operators of members whose signed output differed from the published one.
    pub dissent: Vec<[u8; 20]>,
}

impl TaskReport {
    pub fn of(record: crate::store::TaskRecord) -> TaskReport {
        TaskReport {
            state: record.state,
            output: record.output,
            retried_as: record.retried_as,
            dissent: record.dissent,
        }
    }
}

/// What happened to a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskEvent {
    CommitteeFormed,
    InputsClosed,
    Computed,
    Published {
        tx_hash: [u8; 32],
        block: u64,
    },
    /// The chain shows the task's result although this node's own wait for it failed.
    FoundOnChain {
        tx_hash: [u8; 32],
        block: u64,
    },
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task in state {state:?} cannot take {event:?}")]
pub struct TransitionError {
    pub state: TaskState,
    pub event: TaskEvent,
}

impl TaskState {
    pub fn name(&self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Committee => "committee",
            TaskState::Running => "running",
            TaskState::Attesting => "attesting",
            TaskState::Published { .. } => "published",
            TaskState::Failed(_) => "failed",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, TaskState::Published { .. } | TaskState::Failed(_))
    }

    /// The state after `event`, or an error if the event cannot happen now.
    pub fn apply(&self, event: TaskEvent) -> Result<TaskState, TransitionError> {
        let next = match (self, &event) {
            (s, TaskEvent::Failed(reason)) if !s.is_final() => TaskState::Failed(reason.clone()),
            (s, TaskEvent::FoundOnChain { tx_hash, block }) if !s.is_final() => {
                TaskState::Published {
                    tx_hash: *tx_hash,
                    block: *block,
                }
            }
            (TaskState::Pending, TaskEvent::CommitteeFormed) => TaskState::Committee,
            (TaskState::Committee, TaskEvent::InputsClosed) => TaskState::Running,
            (TaskState::Running, TaskEvent::Computed) => TaskState::Attesting,
            (TaskState::Attesting, TaskEvent::Published { tx_hash, block }) => {
                TaskState::Published {
                    tx_hash: *tx_hash,
                    block: *block,
                }
            }
            _ => {
                return Err(TransitionError {
                    state: self.clone(),
                    event,
                });
            }
        };
        Ok(next)
    }

    /// Where a task found in this state after a restart goes. Members keep their material and
    /// accepted inputs on disk, so collecting resumes and a computation in flight is re-run; a
    /// committee that was still being formed is abandoned cleanly. Final states stay.
    pub fn after_restart(&self) -> TaskState {
        match self {
            TaskState::Pending => {
                TaskState::Failed("node restarted while forming the committee".into())
            }
            TaskState::Attesting => TaskState::Running,
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result found on chain ends any open state as published, and no final one.
    #[test]
    fn a_result_found_on_chain_publishes_an_open_task() {
        let found = TaskEvent::FoundOnChain {
            tx_hash: [1; 32],
            block: 9,
        };
        for s in [
            TaskState::Committee,
            TaskState::Running,
            TaskState::Attesting,
        ] {
            assert_eq!(
                s.apply(found.clone()).unwrap(),
                TaskState::Published {
                    tx_hash: [1; 32],
                    block: 9
                }
            );
        }
        assert!(TaskState::Failed("x".into()).apply(found).is_err());
    }

    #[test]
    fn happy_path_and_refusals() {
        let s = TaskState::Pending;
        let s = s.apply(TaskEvent::CommitteeFormed).unwrap();
        let s = s.apply(TaskEvent::InputsClosed).unwrap();
        assert!(s.apply(TaskEvent::CommitteeFormed).is_err());
        let s = s.apply(TaskEvent::Computed).unwrap();
        let s = s
            .apply(TaskEvent::Published {
                tx_hash: [1; 32],
                block: 9,
            })
            .unwrap();
        assert!(s.is_final());
        assert!(s.apply(TaskEvent::Failed("late".into())).is_err());
        assert_eq!(s.after_restart(), s);
        let f = TaskState::Running
            .apply(TaskEvent::Failed("member lost".into()))
            .unwrap();
        assert_eq!(f, TaskState::Failed("member lost".into()));
        assert_eq!(TaskState::Attesting.after_restart(), TaskState::Running);
        assert_eq!(TaskState::Committee.after_restart(), TaskState::Committee);
        assert!(matches!(
            TaskState::Pending.after_restart(),
            TaskState::Failed(_)
        ));
    }
}
