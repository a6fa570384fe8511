//! Deploying the three contracts to a fresh chain, and the file that records where they are.

use std::path::Path;

use alloy::primitives::{Address, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolConstructor};
use serde::{Deserialize, Serialize};

use crate::backend::{Chain, ChainError, TxRequest};
use crate::bindings::{NodeRegistry, ProjectRegistry, TaskRouter};

/// Where a deployment's contracts live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    pub chain_id: u64,
    pub node_registry: Address,
    pub project_registry: Address,
    pub task_router: Address,
    /// The block the deployment finished in: event scans start here.
    pub deployed_at: u64,
}

/// Errors reading or writing an addresses file.
#[derive(Debug, thiserror::Error)]
pub enum AddressesFileError {
    #[error("addresses file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("addresses file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("addresses file {0} is larger than 64 KiB")]
    TooLarge(String),
}

impl Addresses {
    /// Writes the addresses as JSON.
    pub fn write(&self, path: &Path) -> Result<(), AddressesFileError> {
        let json = serde_json::to_string_pretty(self).expect("addresses serialise");
        std::fs::write(path, json + "\n").map_err(|source| AddressesFileError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads an addresses file written by [`Addresses::write`].
    pub fn read(path: &Path) -> Result<Self, AddressesFileError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| AddressesFileError::Io {
            path: shown.clone(),
            source,
        })?;
        if bytes.len() > 64 * 1024 {
            return Err(AddressesFileError::TooLarge(shown));
        }
        serde_json::from_slice(&bytes).map_err(|source| AddressesFileError::Parse {
            path: shown,
            source,
        })
    }
}

/// Deployment parameters. Block counts, not seconds, so that every backend agrees.
#[derive(Clone, Copy, Debug)]
pub struct DeployConfig {
    /// Smallest stake a node may register with (wei); stakes count in whole units of it.
    pub min_stake: U256,
    /// Blocks between deactivating and withdrawing a stake.
    pub withdraw_delay: u64,
    /// Blocks from opening a task to the last block its result is accepted in.
    pub task_window: u64,
    /// Blocks before a project's configuration change applies to newly opened tasks.
    pub change_delay: u64,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            min_stake: U256::from(10u64).pow(U256::from(18)),
            withdraw_delay: 2_000,
            task_window: 1_000,
            change_delay: 100,
        }
    }
}

impl DeployConfig {
    /// A stake must stay locked for as long as its node can sign for a task it was drawn for, and
    /// one more task window in which evidence of equivocation can be reported.
    pub fn check(&self) -> Result<(), ChainError> {
        if self.withdraw_delay < self.task_window.saturating_mul(2) {
            return Err(ChainError::Invalid(format!(
                "withdraw delay {} blocks is shorter than twice the task window of {} blocks \
                 (a stake stays locked while its node can sign, and one more window for reports)",
                self.withdraw_delay, self.task_window
            )));
        }
        if self.task_window == 0 {
            return Err(ChainError::Invalid("task window must be at least 1".into()));
        }
        Ok(())
    }
}

/// Deploys NodeRegistry, ProjectRegistry and TaskRouter from `deployer`.
pub async fn deploy(
    chain: &dyn Chain,
    deployer: &PrivateKeySigner,
    config: DeployConfig,
) -> Result<Addresses, ChainError> {
    config.check()?;
    let node_registry = create(
        chain,
        deployer,
        &NodeRegistry::BYTECODE,
        NodeRegistry::constructorCall {
            minStake_: config.min_stake,
            withdrawDelay_: config.withdraw_delay,
        }
        .abi_encode(),
    )
    .await?;
    let project_registry = create(
        chain,
        deployer,
        &ProjectRegistry::BYTECODE,
        ProjectRegistry::constructorCall {
            changeDelay_: config.change_delay,
        }
        .abi_encode(),
    )
    .await?;
    let task_router = create(
        chain,
        deployer,
        &TaskRouter::BYTECODE,
        TaskRouter::constructorCall {
            nodes_: node_registry,
            projects_: project_registry,
            taskWindow_: config.task_window,
        }
        .abi_encode(),
    )
    .await?;
    // The router is the registry's one slasher; naming it ends the deployer's part.
    let set_slasher = NodeRegistry::setSlasherCall {
        slasher_: task_router,
    };
    chain
        .send(
            deployer,
            TxRequest {
                to: Some(node_registry),
                data: set_slasher.abi_encode().into(),
                value: U256::ZERO,
            },
        )
        .await?;
    Ok(Addresses {
        chain_id: chain.chain_id().await?,
        node_registry,
        project_registry,
        task_router,
        deployed_at: chain.block_number().await?,
    })
}

/// Deploys `bytecode` followed by encoded constructor arguments; returns the new address.
pub async fn create(
    chain: &dyn Chain,
    deployer: &PrivateKeySigner,
    bytecode: &Bytes,
    constructor_args: Vec<u8>,
) -> Result<Address, ChainError> {
    let mut code = bytecode.to_vec();
    code.extend_from_slice(&constructor_args);
    let receipt = chain
        .send(
            deployer,
            TxRequest {
                to: None,
                data: code.into(),
                value: U256::ZERO,
            },
        )
        .await?;
    receipt
        .contract_address
        .ok_or_else(|| ChainError::Invalid("deployment receipt has no contract address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stake_must_outlast_two_task_windows() {
        let ok = DeployConfig {
            withdraw_delay: 200,
            task_window: 100,
            ..DeployConfig::default()
        };
        assert!(ok.check().is_ok());
        for (withdraw_delay, task_window) in [(199, 100), (100, 100), (10, 0)] {
            let bad = DeployConfig {
                withdraw_delay,
                task_window,
                ..DeployConfig::default()
            };
            assert!(bad.check().is_err(), "{withdraw_delay} / {task_window}");
        }
    }
}
