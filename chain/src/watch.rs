//! Watching for `ResultPublished` with a confirmation depth, by polling (works on every backend).

use std::time::Duration;

use crate::contracts::{ContractError, Contracts, Published, Target};

/// Yields each `ResultPublished` once, after `confirmations` further blocks were mined on top.
pub struct ResultWatcher {
    contracts: Contracts,
    next_block: u64,
    confirmations: u64,
    poll: Duration,
}

impl ResultWatcher {
    /// Watches from block `from` on; `confirmations = 0` reports events as soon as they are mined.
    pub fn new(contracts: Contracts, from: u64, confirmations: u64) -> Self {
        ResultWatcher {
            contracts,
            next_block: from,
            confirmations,
            poll: Duration::from_millis(200),
        }
    }

    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The events confirmed since the last poll (possibly none).
    pub async fn poll(&mut self) -> Result<Vec<Published>, ContractError> {
        let head = (self.contracts.chain().block_number().await)
            .map_err(|e| ContractError::from_chain(Target::Router, e))?;
        let Some(safe) = head.checked_sub(self.confirmations) else {
            return Ok(Vec::new());
        };
        if safe < self.next_block {
            return Ok(Vec::new());
        }
        let events = self.contracts.published(self.next_block, safe).await?;
        self.next_block = safe + 1;
        Ok(events)
    }

    /// Waits (at most `limit`) for the confirmed `ResultPublished` of `task_id`.
    pub async fn wait_for_task(
        &mut self,
        task_id: alloy::primitives::U256,
        limit: Duration,
    ) -> Result<Option<Published>, ContractError> {
        let wait = async {
            loop {
                if let Some(e) = self
                    .next_batch()
                    .await?
                    .into_iter()
                    .find(|e| e.event.taskId == task_id)
                {
                    return Ok(e);
                }
            }
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(found) => found.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Waits until at least one confirmed event arrives.
    pub async fn next_batch(&mut self) -> Result<Vec<Published>, ContractError> {
        loop {
            let events = self.poll().await?;
            if !events.is_empty() {
                return Ok(events);
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}
