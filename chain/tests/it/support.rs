//! Shared set-up for the chain tests: backends, funded keys, deployed contracts, test receivers,
//! node identities and tasks whose committee suits a test.

use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use conclave_chain::anvil::Anvil;
use conclave_chain::attest::TaskResult;
use conclave_chain::backend::TxRequest;
use conclave_chain::bindings::{
    NodeRegistry::NodeRegistryErrors, ProjectRegistry::ProjectRegistryErrors,
    TaskRouter::TaskRouterErrors,
};
use conclave_chain::contracts::{Target, Task};
use conclave_chain::deploy::{DeployConfig, create};
use conclave_chain::identity::NodeIdentity;
use conclave_chain::{Chain, ContractError, Contracts, DevChain, EmbeddedChain, RpcChain, deploy};

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

/// The tests' minimum stake (wei): stakes of 1,000–5,000 wei are 1–5 units.
pub const MIN_STAKE: u64 = 1000;

/// The tests' deployment: a 1,000-wei minimum stake and short windows.
pub fn test_config() -> DeployConfig {
    DeployConfig {
        min_stake: U256::from(MIN_STAKE),
        withdraw_delay: 80,
        task_window: 40,
        change_delay: 10,
    }
}

/// A chain under test; holds the anvil process (if any) so that dropping it stops anvil.
pub struct TestChain {
    pub chain: Arc<dyn DevChain>,
    /// anvil's JSON-RPC endpoint, when on anvil.
    pub url: Option<String>,
    _anvil: Option<Anvil>,
}

impl TestChain {
    pub fn embedded() -> Self {
        TestChain {
            chain: Arc::new(EmbeddedChain::new()),
            url: None,
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
            url: Some(anvil.url().to_string()),
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

    /// Deploys the contracts from key 0 with [`test_config`].
    pub async fn deploy(&self) -> Contracts {
        self.deploy_with(test_config()).await
    }

    pub async fn deploy_with(&self, config: DeployConfig) -> Contracts {
        let deployer = self.funded_key(0).await;
        let addresses = deploy(self.chain.as_ref(), &deployer, config)
            .await
            .unwrap();
        Contracts::new(self.as_chain(), addresses)
    }

    /// Deploys a test receiver contract from key 0.
    pub async fn deploy_receiver(&self, bytecode: &Bytes) -> Address {
        let deployer = key(0);
        create(self.chain.as_ref(), &deployer, bytecode, Vec::new())
            .await
            .unwrap()
    }

    /// A raw JSON-RPC request to anvil (panics on the embedded chain or on an error answer).
    pub async fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let url = self.url.as_ref().expect("an anvil chain");
        let answer: serde_json::Value = reqwest::Client::new()
            .post(url)
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": method, "params": params,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// The current block.
    pub async fn head(&self) -> u64 {
        self.chain.block_number().await.unwrap()
    }

    /// Mines empty blocks until the head is `block` (nothing when it is already there or past).
    pub async fn mine_to(&self, block: u64) {
        let head = self.head().await;
        if block > head {
            self.chain.mine(block - head).await.unwrap();
        }
    }
}

/// A deterministic secp256k1 key: keccak256("conclave test key" ‖ n).
pub fn key(n: u8) -> PrivateKeySigner {
    let seed = alloy::primitives::keccak256([b"conclave test key".as_slice(), &[n]].concat());
    PrivateKeySigner::from_bytes(&B256::from(seed)).unwrap()
}

/// A node identity made of `n` (the registry does not check the proof of possession).
pub fn identity(n: u8) -> NodeIdentity {
    NodeIdentity {
        peer_id: vec![n; 38],
        input_key: B256::repeat_byte(n),
        proof_of_possession: vec![0; 64],
    }
}

/// Registers key `n` (funded) with [`identity`]`(n)` and `stake` wei.
pub async fn register(t: &TestChain, c: &Contracts, n: u8, stake: u64) -> PrivateKeySigner {
    let k = t.funded_key(n).await;
    c.register_node(&k, &identity(n), U256::from(stake))
        .await
        .unwrap();
    k
}

/// The key among `keys` with address `who`.
pub fn key_of(keys: &[PrivateKeySigner], who: Address) -> &PrivateKeySigner {
    keys.iter()
        .find(|k| k.address() == who)
        .unwrap_or_else(|| panic!("no key for {who}"))
}

/// Total seats of a committee.
pub fn seats(committee: &[(Address, U256)]) -> u32 {
    committee.iter().map(|(_, m)| m.count_ones() as u32).sum()
}

/// A task opened by the test and its committee (computed in Rust once the seed exists).
pub struct Opened {
    pub task_id: U256,
    pub task: Task,
    pub committee: Vec<(Address, U256)>,
}

/// Opens tasks of `project` (at most 24) until one's committee satisfies `accept`, mining the two
/// blocks each needs for its seed; panics if none does. The rejected tasks stay open, unused.
pub async fn open_task_where(
    t: &TestChain,
    c: &Contracts,
    opener: &PrivateKeySigner,
    project: U256,
    accept: impl Fn(&[(Address, U256)]) -> bool,
) -> Opened {
    for _ in 0..24 {
        let (task_id, _) = c.open_task(opener, project).await.unwrap();
        t.chain.mine(2).await.unwrap();
        let committee = c
            .committee(task_id)
            .await
            .unwrap()
            .expect("seed after 2 blocks");
        if accept(&committee) {
            let task = c.task(task_id).await.unwrap();
            return Opened {
                task_id,
                task,
                committee,
            };
        }
    }
    panic!("no task of 24 had a committee as wanted");
}

/// Opens tasks until one's committee holds at least its threshold of seats.
pub async fn open_publishable_task(
    t: &TestChain,
    c: &Contracts,
    opener: &PrivateKeySigner,
    project: U256,
) -> Opened {
    let threshold = u32::from(c.project(project).await.unwrap().threshold);
    open_task_where(t, c, opener, project, |m| seats(m) >= threshold).await
}

/// The committee's signatures over `result` and their seat masks, in ascending signer order.
pub fn committee_signatures(
    result: &TaskResult,
    committee: &[(Address, U256)],
    keys: &[PrivateKeySigner],
    c: &Contracts,
) -> (Vec<Bytes>, Vec<U256>) {
    let (chain_id, router) = (c.addresses().chain_id, c.addresses().task_router);
    let mut sorted = committee.to_vec();
    sorted.sort_by_key(|s| s.0);
    sorted
        .iter()
        .map(|(who, mask)| {
            let att = result.sign(key_of(keys, *who), chain_id, router).unwrap();
            (att.signature, *mask)
        })
        .unzip()
}

/// `key`'s signature over `result`.
pub fn signature(result: &TaskResult, key: &PrivateKeySigner, c: &Contracts) -> Bytes {
    result
        .sign(key, c.addresses().chain_id, c.addresses().task_router)
        .unwrap()
        .signature
}

/// Runs a view of any contract.
pub async fn view<C: SolCall>(c: &Contracts, to: Address, call: C) -> C::Return {
    let data = c.chain().call(to, call.abi_encode().into()).await.unwrap();
    C::abi_decode_returns(&data).unwrap()
}

/// Sends `call` to `target` from `signer`, bypassing the typed client.
pub async fn send_raw(
    c: &Contracts,
    signer: &PrivateKeySigner,
    target: Target,
    data: Vec<u8>,
) -> Result<conclave_chain::backend::Receipt, ContractError> {
    let to = match target {
        Target::Nodes => c.addresses().node_registry,
        Target::Projects => c.addresses().project_registry,
        Target::Router => c.addresses().task_router,
    };
    c.chain()
        .send(
            signer,
            TxRequest {
                to: Some(to),
                data: data.into(),
                value: U256::ZERO,
            },
        )
        .await
        .map_err(|e| ContractError::from_chain(target, e))
}

pub fn router_error(e: ContractError) -> TaskRouterErrors {
    match e {
        ContractError::Revert(conclave_chain::Revert::Router(r)) => r,
        other => panic!("expected a TaskRouter error, got {other:?}"),
    }
}

pub fn nodes_error(e: ContractError) -> NodeRegistryErrors {
    match e {
        ContractError::Revert(conclave_chain::Revert::Nodes(r)) => r,
        other => panic!("expected a NodeRegistry error, got {other:?}"),
    }
}

pub fn projects_error(e: ContractError) -> ProjectRegistryErrors {
    match e {
        ContractError::Revert(conclave_chain::Revert::Projects(r)) => r,
        other => panic!("expected a ProjectRegistry error, got {other:?}"),
    }
}

/// The variant name of a decoded error, for transcripts.
pub fn error_name<E: std::fmt::Debug>(e: &E) -> String {
    let debug = format!("{e:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Deploys a probe contract (raw bytecode) whose every call returns
/// `abi.encode(block.number, blockhash(first calldata word))`.
pub async fn deploy_probe(t: &TestChain) -> Address {
    // Runtime: NUMBER PUSH1 0 MSTORE PUSH1 0 CALLDATALOAD BLOCKHASH PUSH1 32 MSTORE
    //          PUSH1 64 PUSH1 0 RETURN (16 bytes), after an initcode that returns it.
    const CODE: [u8; 28] = alloy::primitives::hex!(
        "6010600c60003960106000f3" // initcode
        "43600052600035406020526040" // runtime
        "6000f3"
    );
    create(
        t.chain.as_ref(),
        &key(0),
        &Bytes::from_static(&CODE),
        Vec::new(),
    )
    .await
    .unwrap()
}

/// What the probe sees in a call: the block number and the hash of block `n`.
pub async fn probe(c: &Contracts, probe: Address, n: u64) -> (u64, B256) {
    let out = c
        .chain()
        .call(probe, U256::from(n).to_be_bytes::<32>().to_vec().into())
        .await
        .unwrap();
    (
        U256::from_be_slice(&out[..32]).to::<u64>(),
        B256::from_slice(&out[32..64]),
    )
}
