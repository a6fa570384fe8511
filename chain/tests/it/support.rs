//! Shared set-up for the chain tests: backends, funded keys, deployed contracts, test receivers.

use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use conclave_chain::anvil::Anvil;
use conclave_chain::deploy::{DeployConfig, create};
use conclave_chain::{Chain, Contracts, DevChain, EmbeddedChain, RpcChain, deploy};

alloy::sol!(
    #[sol(all_derives)]
    RecordingReceiver,
    "artifacts/RecordingReceiver.json"
);
alloy::sol!(
    #[sol(all_derives)]
    RevertingReceiver,
    "artifacts/RevertingReceiver.json"
);
alloy::sol!(
    #[sol(all_derives)]
    GasBurningReceiver,
    "artifacts/GasBurningReceiver.json"
);

/// A chain under test; holds the anvil process (if any) so that dropping it stops anvil.
pub struct TestChain {
    pub chain: Arc<dyn DevChain>,
    _anvil: Option<Anvil>,
}

impl TestChain {
    pub fn embedded() -> Self {
        TestChain {
            chain: Arc::new(EmbeddedChain::new()),
            _anvil: None,
        }
    }

    pub async fn anvil() -> Self {
        let anvil =
            Anvil::start().expect("anvil (run scripts/test or chain/scripts/install-tools)");
        let rpc = RpcChain::connect(anvil.url())
            .await
            .expect("connect to anvil")
            .with_receipt_wait(
                std::time::Duration::from_millis(20),
                std::time::Duration::from_secs(30),
            );
        TestChain {
            chain: Arc::new(rpc),
            _anvil: Some(anvil),
        }
    }

    pub fn as_chain(&self) -> Arc<dyn Chain> {
        self.chain.clone()
    }

    /// A key derived from `n` (the same on every backend), funded with 1,000 coins.
    pub async fn funded_key(&self, n: u8) -> PrivateKeySigner {
        let key = key(n);
        self.chain
            .set_balance(key.address(), U256::from(10u64).pow(U256::from(21)))
            .await
            .unwrap();
        key
    }

    /// Deploys the contracts from key 0 with a 1-wei minimum stake and short epochs.
    pub async fn deploy(&self) -> Contracts {
        let deployer = self.funded_key(0).await;
        let config = DeployConfig {
            min_stake: U256::from(1),
            withdraw_delay: 20,
            epoch_length: 3,
            max_task_age: 1,
        };
        let addresses = deploy(self.chain.as_ref(), &deployer, config)
            .await
            .unwrap();
        Contracts::new(self.as_chain(), addresses)
    }

    /// Deploys a test receiver contract from key 0.
    pub async fn deploy_receiver(&self, bytecode: &alloy::primitives::Bytes) -> Address {
        let deployer = key(0);
        create(self.chain.as_ref(), &deployer, bytecode, Vec::new())
            .await
            .unwrap()
    }
}

/// A deterministic secp256k1 key: keccak256("conclave test key" ‖ n).
pub fn key(n: u8) -> PrivateKeySigner {
    let seed = alloy::primitives::keccak256([b"conclave test key".as_slice(), &[n]].concat());
    PrivateKeySigner::from_bytes(&B256::from(seed)).unwrap()
}
