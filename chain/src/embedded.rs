//! The embedded devnet: revm in this process, running the same bytecode as a real chain.
//!
//! Every transaction is mined in a block of its own (block hashes are kept, so `blockhash` works
//! for the epoch seed), logs are kept for queries, and gas is free (base fee and gas price 0) so
//! only transferred value moves balances. Quickstart and simulations use it by default, so they need
//! no external program. It is a real EVM, not a stand-in: contracts behave as on any chain.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy::rpc::types::Log;
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use revm::context::result::{ExecutionResult, Output};
use revm::context::{BlockEnv, TxEnv};
use revm::database::{CacheDB, EmptyDB};
use revm::handler::{MainnetContext, MainnetEvm};

type Evm = MainnetEvm<MainnetContext<Db>>;
use revm::primitives::hardfork::SpecId;
use revm::state::AccountInfo;
use revm::{Context, Database, ExecuteCommitEvm, ExecuteEvm, MainBuilder, context::ContextTr};

use crate::backend::{Chain, ChainError, DevChain, LogQuery, Receipt, TxRequest};

/// Chain id of the embedded devnet (the same as anvil's default, so signatures look familiar).
pub const EMBEDDED_CHAIN_ID: u64 = 31337;
const BLOCK_GAS_LIMIT: u64 = 30_000_000;
/// Below the 2^24 per-transaction cap of recent forks.
const TX_GAS_LIMIT: u64 = 16_000_000;

type Db = CacheDB<EmptyDB>;

/// An in-process EVM chain.
pub struct EmbeddedChain {
    state: Mutex<Devnet>,
}

struct Devnet {
    /// The state. An EVM is built around it for each execution (revm's EVM is not `Send`).
    db: Db,
    chain_id: u64,
    number: u64,
    timestamp: u64,
    parent_hash: B256,
    logs: Vec<Log>,
}

impl EmbeddedChain {
    /// A fresh chain at block 0 with chain id [`EMBEDDED_CHAIN_ID`] and nothing funded.
    pub fn new() -> Self {
        Self::with_chain_id(EMBEDDED_CHAIN_ID)
    }

    pub fn with_chain_id(chain_id: u64) -> Self {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        EmbeddedChain {
            state: Mutex::new(Devnet {
                db: Db::default(),
                chain_id,
                number: 0,
                timestamp,
                parent_hash: keccak256(chain_id.to_be_bytes()),
                logs: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Devnet> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for EmbeddedChain {
    fn default() -> Self {
        Self::new()
    }
}

impl Devnet {
    /// Runs `f` with an EVM over the state at the given block.
    fn with_evm<R>(&mut self, block: BlockEnv, f: impl FnOnce(&mut Evm) -> R) -> R {
        let chain_id = self.chain_id;
        let ctx: MainnetContext<Db> = Context::new(std::mem::take(&mut self.db), SpecId::PRAGUE);
        let mut evm = ctx
            .modify_cfg_chained(|cfg| cfg.chain_id = chain_id)
            .with_block(block)
            .build_mainnet();
        let out = f(&mut evm);
        self.db = std::mem::take(evm.ctx.db_mut());
        out
    }

    fn block_env(&self, number: u64, timestamp: u64) -> BlockEnv {
        BlockEnv {
            number: U256::from(number),
            timestamp: U256::from(timestamp),
            gas_limit: BLOCK_GAS_LIMIT,
            basefee: 0,
            prevrandao: Some(self.parent_hash),
            ..Default::default()
        }
    }

    fn account(&mut self, who: Address) -> Result<AccountInfo, ChainError> {
        let info = self
            .db
            .basic(who)
            .map_err(|e| ChainError::Invalid(e.to_string()))?;
        Ok(info.unwrap_or_default())
    }

    fn tx_env(&self, caller: Address, nonce: u64, tx: &TxRequest) -> Result<TxEnv, ChainError> {
        TxEnv::builder()
            .caller(caller)
            .nonce(nonce)
            .chain_id(Some(self.chain_id))
            .gas_limit(TX_GAS_LIMIT)
            .gas_price(0)
            .kind(match tx.to {
                Some(to) => TxKind::Call(to),
                None => TxKind::Create,
            })
            .value(tx.value)
            .data(tx.data.clone())
            .build()
            .map_err(|e| ChainError::Invalid(format!("{e:?}")))
    }

    /// Mines a block holding `tx` (or nothing), whatever the transaction's outcome.
    fn mine(&mut self, tx: Option<(Address, TxRequest)>) -> Result<Receipt, ChainError> {
        let number = self.number + 1;
        let timestamp = self.timestamp + 1;
        let block = self.block_env(number, timestamp);
        let (tx_hash, outcome) = match tx {
            None => (B256::ZERO, None),
            Some((caller, request)) => {
                let nonce = self.account(caller)?.nonce;
                let env = self.tx_env(caller, nonce, &request)?;
                let tx_hash = keccak256(
                    [
                        caller.as_slice(),
                        &nonce.to_be_bytes(),
                        &number.to_be_bytes(),
                    ]
                    .concat(),
                );
                let outcome = self
                    .with_evm(block, |evm| evm.transact_commit(env))
                    .map_err(|e| ChainError::Rejected(e.to_string()))?;
                (tx_hash, Some(outcome))
            }
        };
        let block_hash = keccak256(
            [
                self.parent_hash.as_slice(),
                &number.to_be_bytes(),
                tx_hash.as_slice(),
            ]
            .concat(),
        );
        self.db
            .cache
            .block_hashes
            .insert(U256::from(number), block_hash);
        self.number = number;
        self.timestamp = timestamp;
        self.parent_hash = block_hash;
        let Some(outcome) = outcome else {
            return Ok(Receipt {
                tx_hash,
                block_number: number,
                gas_used: 0,
                contract_address: None,
                logs: Vec::new(),
            });
        };
        match outcome {
            ExecutionResult::Success {
                gas, logs, output, ..
            } => {
                let logs: Vec<Log> = logs
                    .into_iter()
                    .enumerate()
                    .map(|(i, inner)| Log {
                        inner,
                        block_hash: Some(block_hash),
                        block_number: Some(number),
                        block_timestamp: Some(timestamp),
                        transaction_hash: Some(tx_hash),
                        transaction_index: Some(0),
                        log_index: Some(i as u64),
                        removed: false,
                    })
                    .collect();
                self.logs.extend(logs.iter().cloned());
                Ok(Receipt {
                    tx_hash,
                    block_number: number,
                    gas_used: gas.tx_gas_used(),
                    contract_address: match output {
                        Output::Create(_, address) => address,
                        Output::Call(_) => None,
                    },
                    logs,
                })
            }
            ExecutionResult::Revert { output, .. } => Err(ChainError::Revert { data: output }),
            ExecutionResult::Halt { reason, .. } => Err(ChainError::Halt(format!("{reason:?}"))),
        }
    }

    fn call(&mut self, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        let block = self.block_env(self.number, self.timestamp);
        let request = TxRequest {
            to: Some(to),
            data,
            value: U256::ZERO,
        };
        let nonce = self.account(Address::ZERO)?.nonce;
        let env = self.tx_env(Address::ZERO, nonce, &request)?;
        // `transact` finalises the journal without committing: calls leave no trace.
        let outcome = self
            .with_evm(block, |evm| evm.transact(env))
            .map_err(|e| ChainError::Rejected(e.to_string()))?
            .result;
        match outcome {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(ChainError::Revert { data: output }),
            ExecutionResult::Halt { reason, .. } => Err(ChainError::Halt(format!("{reason:?}"))),
        }
    }
}

#[async_trait]
impl Chain for EmbeddedChain {
    async fn chain_id(&self) -> Result<u64, ChainError> {
        Ok(self.lock().chain_id)
    }

    async fn block_number(&self) -> Result<u64, ChainError> {
        Ok(self.lock().number)
    }

    async fn balance(&self, who: Address) -> Result<U256, ChainError> {
        Ok(self.lock().account(who)?.balance)
    }

    /// The devnet's gas is free (its transactions set a gas price of 0).
    async fn gas_price(&self) -> Result<u128, ChainError> {
        Ok(0)
    }

    async fn call(&self, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        self.lock().call(to, data)
    }

    async fn send(&self, signer: &PrivateKeySigner, tx: TxRequest) -> Result<Receipt, ChainError> {
        self.lock().mine(Some((signer.address(), tx)))
    }

    async fn logs(&self, query: LogQuery) -> Result<Vec<Log>, ChainError> {
        let state = self.lock();
        Ok(state
            .logs
            .iter()
            .filter(|log| {
                let block = log.block_number.unwrap_or(0);
                block >= query.from_block
                    && block <= query.to_block
                    && (query.addresses.is_empty() || query.addresses.contains(&log.address()))
            })
            .cloned()
            .collect())
    }
}

#[async_trait]
impl DevChain for EmbeddedChain {
    async fn set_balance(&self, who: Address, amount: U256) -> Result<(), ChainError> {
        let mut state = self.lock();
        let mut info = state.account(who)?;
        info.balance = amount;
        state.db.insert_account_info(who, info);
        Ok(())
    }

    async fn mine(&self, blocks: u64) -> Result<(), ChainError> {
        let mut state = self.lock();
        for _ in 0..blocks {
            state.mine(None)?;
        }
        Ok(())
    }
}
