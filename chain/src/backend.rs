//! The one interface Conclave needs from an EVM chain, whatever runs it: the JSON-RPC backend
//! ([`crate::rpc::RpcChain`]: anvil or any endpoint) and the embedded devnet
//! ([`crate::embedded::EmbeddedChain`]: revm in this process).

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::rpc::types::Log;
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;

/// A transaction to send: a call (`to = Some`) or a contract creation (`to = None`).
#[derive(Clone, Debug, Default)]
pub struct TxRequest {
    pub to: Option<Address>,
    pub data: Bytes,
    pub value: U256,
}

/// What a mined transaction left behind.
#[derive(Clone, Debug)]
pub struct Receipt {
    pub tx_hash: B256,
    pub block_number: u64,
    pub gas_used: u64,
    pub contract_address: Option<Address>,
    pub logs: Vec<Log>,
}

/// Which logs to fetch: from these contracts, in blocks `from..=to`.
#[derive(Clone, Debug)]
pub struct LogQuery {
    pub addresses: Vec<Address>,
    pub from_block: u64,
    pub to_block: u64,
}

/// Errors from a chain backend.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The EVM reverted; `data` is the revert payload (a custom error, `Error(string)`, or empty).
    #[error("execution reverted ({} bytes of revert data)", data.len())]
    Revert { data: Bytes },
    /// The transaction was mined but failed (no revert data available).
    #[error("transaction {tx_hash} failed on chain")]
    Failed { tx_hash: B256 },
    /// The EVM stopped for another reason (out of gas, invalid opcode, ...).
    #[error("execution halted: {0}")]
    Halt(String),
    /// Talking to the endpoint failed (connection, timeouts, malformed answers).
    #[error("transport: {0}")]
    Transport(String),
    /// The endpoint refused the transaction (and retrying did not help).
    #[error("transaction rejected: {0}")]
    Rejected(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// An EVM chain. Sending waits until the transaction is included in a block.
#[async_trait]
pub trait Chain: Send + Sync {
    async fn chain_id(&self) -> Result<u64, ChainError>;
    async fn block_number(&self) -> Result<u64, ChainError>;
    async fn balance(&self, who: Address) -> Result<U256, ChainError>;
    /// The price of a unit of gas a transaction sent now would pay, in wei.
    async fn gas_price(&self) -> Result<u128, ChainError>;
    /// Executes a read-only call against the latest state.
    async fn call(&self, to: Address, data: Bytes) -> Result<Bytes, ChainError>;
    /// Signs (where needed) and sends a transaction from `signer`, and waits for its receipt.
    /// Reverts are reported as [`ChainError::Revert`] with the revert data.
    async fn send(&self, signer: &PrivateKeySigner, tx: TxRequest) -> Result<Receipt, ChainError>;
    async fn logs(&self, query: LogQuery) -> Result<Vec<Log>, ChainError>;
}

/// Development chains (anvil, the embedded devnet) can fund accounts and mine empty blocks.
#[async_trait]
pub trait DevChain: Chain {
    async fn set_balance(&self, who: Address, amount: U256) -> Result<(), ChainError>;
    async fn mine(&self, blocks: u64) -> Result<(), ChainError>;
}

/// Mines an empty block on a development chain every `every`, as a real chain produces blocks
/// whether or not anyone sends a transaction (a task's committee seed comes from the block after
/// its opening, which a devnet that mines only on transactions would never produce). Stops when
/// the returned handle is aborted or dropped with its runtime.
pub fn spawn_block_ticker(
    chain: std::sync::Arc<dyn DevChain>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = chain.mine(1).await {
                tracing::warn!(error = %e, "block ticker could not mine");
            }
        }
    })
}
