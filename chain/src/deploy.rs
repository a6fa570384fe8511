//! Deploying the three contracts to a fresh chain, and the file that records where they are.

use std::path::Path;

use alloy::primitives::{Address, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolConstructor;
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
    /// Smallest stake a node may register with (wei).
    pub min_stake: U256,
    /// Blocks between deactivating and withdrawing a stake.
    pub withdraw_delay: u64,
    /// Blocks per epoch.
    pub epoch_length: u64,
    /// How many epochs after its own a task's result is still accepted.
    pub max_task_age: u64,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            min_stake: U256::from(10u64).pow(U256::from(18)),
            withdraw_delay: 100,
            epoch_length: 20,
            max_task_age: 2,
        }
    }
}

impl DeployConfig {
    /// A stake must stay locked for as long as its node can sign for an epoch it was drawn in.
    pub fn check(&self) -> Result<(), ChainError> {
        let exposure = (self.max_task_age + 1).saturating_mul(self.epoch_length);
        if self.withdraw_delay < exposure {
            return Err(ChainError::Invalid(format!(
                "withdraw delay {} blocks is shorter than the {} blocks a node can sign for",
                self.withdraw_delay, exposure
            )));
        }
        if self.epoch_length == 0 {
            return Err(ChainError::Invalid(
                "epoch length must be at least 1".into(),
            ));
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
    let project_registry = create(chain, deployer, &ProjectRegistry::BYTECODE, Vec::new()).await?;
    let task_router = create(
        chain,
        deployer,
        &TaskRouter::BYTECODE,
        TaskRouter::constructorCall {
            nodes_: node_registry,
            projects_: project_registry,
            epochLength_: config.epoch_length,
            maxTaskAge_: config.max_task_age,
        }
        .abi_encode(),
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
