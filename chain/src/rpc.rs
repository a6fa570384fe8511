//! The JSON-RPC backend: an alloy provider over HTTP(S) to anvil or any Ethereum endpoint.
//!
//! Transactions are signed here with the operator's key (the endpoint never holds keys). Sending
//! estimates gas first, so a transaction that would revert is reported with its decoded revert
//! data and never broadcast; nonce and fee races ("nonce too low", "underpriced", "already known")
//! are retried with a fresh nonce and a higher fee.

use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{Filter, Log, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::{RpcError, TransportErrorKind};
use async_trait::async_trait;

use crate::backend::{Chain, ChainError, DevChain, LogQuery, Receipt, TxRequest};

const SEND_ATTEMPTS: u32 = 5;

/// A chain reached over JSON-RPC.
pub struct RpcChain {
    provider: RootProvider,
    chain_id: u64,
    /// How often to ask for a receipt, and for how long.
    poll: Duration,
    receipt_timeout: Duration,
}

impl RpcChain {
    /// Connects to `url` (http or https) and reads the chain id.
    pub async fn connect(url: &str) -> Result<Self, ChainError> {
        let parsed = url
            .parse()
            .map_err(|e| ChainError::Invalid(format!("endpoint {url}: {e}")))?;
        let provider = RootProvider::new_http(parsed);
        let chain_id = provider.get_chain_id().await.map_err(transport)?;
        Ok(RpcChain {
            provider,
            chain_id,
            poll: Duration::from_millis(50),
            receipt_timeout: Duration::from_secs(120),
        })
    }

    /// Sets how long to wait for a receipt (default 120 s) and how often to poll (default 50 ms).
    pub fn with_receipt_wait(mut self, poll: Duration, timeout: Duration) -> Self {
        self.poll = poll;
        self.receipt_timeout = timeout;
        self
    }

    async fn send_once(
        &self,
        signer: &PrivateKeySigner,
        tx: &TxRequest,
        fee_bump_percent: u128,
    ) -> Result<Receipt, ChainError> {
        let from = signer.address();
        let mut request = TransactionRequest::default()
            .with_from(from)
            .with_chain_id(self.chain_id)
            .with_value(tx.value)
            .with_input(tx.data.clone());
        request = match tx.to {
            Some(to) => request.with_to(to),
            None => request.into_create(),
        };
        let gas = self
            .provider
            .estimate_gas(request.clone())
            .await
            .map_err(classify)?;
        let nonce = self
            .provider
            .get_transaction_count(from)
            .pending()
            .await
            .map_err(transport)?;
        let fees = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(transport)?;
        let bump = |fee: u128| fee.saturating_mul(100 + fee_bump_percent) / 100;
        let request = request
            .with_nonce(nonce)
            .with_gas_limit(gas.saturating_mul(12) / 10)
            .with_max_fee_per_gas(bump(fees.max_fee_per_gas))
            .with_max_priority_fee_per_gas(bump(fees.max_priority_fee_per_gas));
        let envelope = request
            .build(&EthereumWallet::from(signer.clone()))
            .await
            .map_err(|e| ChainError::Invalid(e.to_string()))?;
        let pending = self
            .provider
            .send_tx_envelope(envelope)
            .await
            .map_err(classify)?;
        let tx_hash = *pending.tx_hash();
        let deadline = tokio::time::Instant::now() + self.receipt_timeout;
        let receipt = loop {
            if let Some(r) = self
                .provider
                .get_transaction_receipt(tx_hash)
                .await
                .map_err(transport)?
            {
                break r;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ChainError::Transport(format!(
                    "no receipt for {tx_hash} after {:?}",
                    self.receipt_timeout
                )));
            }
            tokio::time::sleep(self.poll).await;
        };
        if !receipt.status() {
            return Err(ChainError::Failed { tx_hash });
        }
        Ok(Receipt {
            tx_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
            contract_address: receipt.contract_address,
            logs: receipt.inner.logs().to_vec(),
        })
    }
}

/// Errors that a fresh nonce or a higher fee can cure.
fn retryable(error: &ChainError) -> bool {
    let ChainError::Rejected(message) = error else {
        return false;
    };
    let m = message.to_ascii_lowercase();
    [
        "nonce too low",
        "nonce too high",
        "underpriced",
        "already known",
        "fee too low",
        "base fee",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

fn transport(e: RpcError<TransportErrorKind>) -> ChainError {
    ChainError::Transport(e.to_string())
}

/// Reverts become [`ChainError::Revert`]; other error responses are rejections.
fn classify(e: RpcError<TransportErrorKind>) -> ChainError {
    match &e {
        RpcError::ErrorResp(payload) => match payload.as_revert_data() {
            Some(data) => ChainError::Revert { data },
            None if payload.message.contains("revert") => ChainError::Revert { data: Bytes::new() },
            None => ChainError::Rejected(payload.message.to_string()),
        },
        _ => transport(e),
    }
}

#[async_trait]
impl Chain for RpcChain {
    async fn chain_id(&self) -> Result<u64, ChainError> {
        Ok(self.chain_id)
    }

    async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(transport)
    }

    async fn balance(&self, who: Address) -> Result<U256, ChainError> {
        self.provider.get_balance(who).await.map_err(transport)
    }

    async fn gas_price(&self) -> Result<u128, ChainError> {
        self.provider.get_gas_price().await.map_err(transport)
    }

    async fn call(&self, to: Address, data: Bytes) -> Result<Bytes, ChainError> {
        let request = TransactionRequest::default().with_to(to).with_input(data);
        self.provider.call(request).await.map_err(classify)
    }

    async fn send(&self, signer: &PrivateKeySigner, tx: TxRequest) -> Result<Receipt, ChainError> {
        let mut attempt = 0;
        loop {
            match self.send_once(signer, &tx, 20 * u128::from(attempt)).await {
                Err(e) if retryable(&e) && attempt + 1 < SEND_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "retrying transaction");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn logs(&self, query: LogQuery) -> Result<Vec<Log>, ChainError> {
        let filter = Filter::new()
            .address(query.addresses)
            .from_block(BlockNumberOrTag::Number(query.from_block))
            .to_block(BlockNumberOrTag::Number(query.to_block));
        self.provider.get_logs(&filter).await.map_err(transport)
    }
}

/// anvil's development methods.
#[async_trait]
impl DevChain for RpcChain {
    async fn set_balance(&self, who: Address, amount: U256) -> Result<(), ChainError> {
        self.provider
            .raw_request::<_, serde_json::Value>("anvil_setBalance".into(), (who, amount))
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn mine(&self, blocks: u64) -> Result<(), ChainError> {
        self.provider
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (U256::from(blocks),))
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_and_fee_races_are_retried_and_nothing_else() {
        for message in [
            "nonce too low",
            "Nonce too high",
            "replacement transaction underpriced",
            "already known",
            "max fee per gas less than block base fee",
        ] {
            assert!(
                retryable(&ChainError::Rejected(message.into())),
                "{message}"
            );
        }
        assert!(!retryable(&ChainError::Rejected(
            "insufficient funds".into()
        )));
        assert!(!retryable(&ChainError::Revert { data: Bytes::new() }));
        assert!(!retryable(&ChainError::Transport("nonce too low".into())));
    }
}
