//! Deletes the secret material (MAC key share, triple shares, masked inputs) of tasks that are
//! over on chain — published, or past their deadline — but still hold it here. A run deletes its
//! own material when it returns; a task whose run never came (its coordinator vanished, its
//! window closed over too few inputs, the node crashed mid-run) must not keep masks on disk for
//! a later thief to combine with other members' (DESIGN.md, "Results").

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::U256;

use crate::node::{Inner, NodeError};

/// How often a node looks for finished tasks whose material it still holds.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Sweeps every [`SWEEP_INTERVAL`] while the node runs.
pub(crate) async fn sweep_loop(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        match inner.sweep_finished_tasks().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tasks = n, "deleted the material of finished tasks"),
            Err(e) => tracing::warn!(error = %e, "sweeping finished tasks' material"),
        }
    }
}

impl Inner {
    /// Deletes the material of every task this node is a member of that is over on chain;
    /// returns how many it swept.
    pub(crate) async fn sweep_finished_tasks(&self) -> Result<usize, NodeError> {
        let now = self
            .contracts
            .chain()
            .block_number()
            .await
            .map_err(|e| NodeError::Task(format!("reading the chain: {e}")))?;
        let mut swept = 0;
        for record in self.store.tasks()? {
            if !record.member || !self.store.holds_material(&record.task_id)? {
                continue;
            }
            let task = match self
                .contracts
                .task(U256::from_be_bytes(record.task_id))
                .await
            {
                Ok(task) => task,
                Err(e) => {
                    tracing::warn!(task = %hex::encode(record.task_id), error = %e, "reading a task to sweep");
                    continue;
                }
            };
            if task.published || now > task.deadline {
                // Marked as run first: no Start preprocesses it again, no Run uses it, and a
                // preprocessing run still going stores nothing.
                self.store.claim_run(&record.task_id)?;
                self.forget_material(&record.task_id)?;
                swept += 1;
            }
        }
        Ok(swept)
    }
}
