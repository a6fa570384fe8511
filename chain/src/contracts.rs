//! Typed calls to Conclave's contracts over any [`Chain`] backend, with reverts decoded into the
//! contracts' custom errors.

use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::rpc::types::Log;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Panic, Revert as RevertString, SolCall, SolEvent, SolInterface};

use crate::attest::{Attestation, TaskResult, order_for_submission};
use crate::backend::{Chain, ChainError, LogQuery, Receipt, TxRequest};
use crate::bindings::{
    NodeRegistry::{self, NodeRegistryErrors},
    ProjectRegistry::{self, ProjectRegistryErrors},
    TaskRouter::{self, TaskRouterErrors},
};
use crate::deploy::Addresses;
use crate::sortition::Draw;

/// A revert, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    Router(TaskRouterErrors),
    Nodes(NodeRegistryErrors),
    Projects(ProjectRegistryErrors),
    /// `require`/`revert` with a message.
    Message(String),
    /// A Solidity panic (arithmetic, bounds, ...).
    Panic(U256),
    /// Revert data no contract of ours declares.
    Unknown(Bytes),
}

/// Which of our contracts a call went to, so its own errors are tried first when decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Nodes,
    Projects,
    Router,
}

impl Revert {
    /// Decodes revert data from a call to `target`: its own errors first, then the other
    /// contracts' (a revert may bubble up from a contract it called), then the standard ones.
    pub fn decode(target: Target, data: &[u8]) -> Revert {
        let order = match target {
            Target::Nodes => [Target::Nodes, Target::Router, Target::Projects],
            Target::Projects => [Target::Projects, Target::Router, Target::Nodes],
            Target::Router => [Target::Router, Target::Projects, Target::Nodes],
        };
        for t in order {
            let decoded = match t {
                Target::Router => TaskRouterErrors::abi_decode(data).ok().map(Revert::Router),
                Target::Nodes => NodeRegistryErrors::abi_decode(data).ok().map(Revert::Nodes),
                Target::Projects => ProjectRegistryErrors::abi_decode(data)
                    .ok()
                    .map(Revert::Projects),
            };
            if let Some(revert) = decoded {
                return revert;
            }
        }
        if let Ok(e) = <RevertString as alloy::sol_types::SolError>::abi_decode(data) {
            return Revert::Message(e.reason);
        }
        if let Ok(p) = <Panic as alloy::sol_types::SolError>::abi_decode(data) {
            return Revert::Panic(p.code);
        }
        Revert::Unknown(Bytes::copy_from_slice(data))
    }
}

impl std::fmt::Display for Revert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revert::Router(e) => write!(f, "TaskRouter: {e:?}"),
            Revert::Nodes(e) => write!(f, "NodeRegistry: {e:?}"),
            Revert::Projects(e) => write!(f, "ProjectRegistry: {e:?}"),
            Revert::Message(m) => write!(f, "reverted: {m}"),
            Revert::Panic(code) => write!(f, "panic {code}"),
            Revert::Unknown(data) => write!(f, "reverted with unknown data {data}"),
        }
    }
}

/// Errors from contract calls.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("{0}")]
    Revert(Revert),
    #[error(transparent)]
    Chain(ChainError),
    #[error("could not decode the answer of {call}: {reason}")]
    Decode { call: &'static str, reason: String },
    #[error("expected event {0} in the receipt")]
    MissingEvent(&'static str),
}

impl ContractError {
    /// A backend error from a call to `target`, with a revert decoded.
    pub fn from_chain(target: Target, e: ChainError) -> Self {
        match e {
            ChainError::Revert { data } => ContractError::Revert(Revert::decode(target, &data)),
            other => ContractError::Chain(other),
        }
    }

    /// The decoded revert, if this is one.
    pub fn revert(&self) -> Option<&Revert> {
        match self {
            ContractError::Revert(r) => Some(r),
            _ => None,
        }
    }
}

/// What a project is registered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectSpec {
    pub program_hash: B256,
    pub program_uri: String,
    pub prover_kind: ProverKind,
    pub committee_size: u16,
    pub threshold: u16,
    pub receiver: Address,
}

/// Prover kinds (`ProjectRegistry.PROVER_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ProverKind {
    Spdz = 0,
    Halo2 = 1,
    Wasm = 2,
    Tee = 3,
    Byop = 4,
}

/// A result as `TaskRouter` stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResult {
    pub output: Bytes,
    pub proof_hash: B256,
    pub published_block: u64,
    pub submitter: Address,
}

/// A `ResultPublished` event with where it was mined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub event: TaskRouter::ResultPublished,
    pub block_number: u64,
    pub tx_hash: B256,
}

/// A task id: its epoch in the top 64 bits, anything the node chooses below (`local < 2^192`).
pub fn task_id(epoch: u64, local: U256) -> U256 {
    (U256::from(epoch) << 192) | (local & ((U256::from(1) << 192) - U256::from(1)))
}

/// The epoch a task id belongs to (`TaskRouter.epochOf`).
pub fn epoch_of(task_id: U256) -> u64 {
    u64::try_from(task_id >> 192).unwrap_or(u64::MAX)
}

/// Conclave's contracts on one chain.
#[derive(Clone)]
pub struct Contracts {
    chain: Arc<dyn Chain>,
    addresses: Addresses,
}

impl Contracts {
    pub fn new(chain: Arc<dyn Chain>, addresses: Addresses) -> Self {
        Contracts { chain, addresses }
    }

    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    pub fn chain(&self) -> &Arc<dyn Chain> {
        &self.chain
    }

    fn address(&self, target: Target) -> Address {
        match target {
            Target::Nodes => self.addresses.node_registry,
            Target::Projects => self.addresses.project_registry,
            Target::Router => self.addresses.task_router,
        }
    }

    async fn view<C: SolCall>(&self, target: Target, call: C) -> Result<C::Return, ContractError> {
        let data = self
            .chain
            .call(self.address(target), call.abi_encode().into())
            .await
            .map_err(|e| ContractError::from_chain(target, e))?;
        C::abi_decode_returns(&data).map_err(|e| ContractError::Decode {
            call: C::SIGNATURE,
            reason: e.to_string(),
        })
    }

    async fn transact<C: SolCall>(
        &self,
        signer: &PrivateKeySigner,
        target: Target,
        call: C,
        value: U256,
    ) -> Result<Receipt, ContractError> {
        let tx = TxRequest {
            to: Some(self.address(target)),
            data: call.abi_encode().into(),
            value,
        };
        self.chain
            .send(signer, tx)
            .await
            .map_err(|e| ContractError::from_chain(target, e))
    }

    // ---- NodeRegistry ----

    /// Registers `operator`'s node with its libp2p peer id (bytes) and a stake.
    pub async fn register_node(
        &self,
        operator: &PrivateKeySigner,
        peer_id: &[u8],
        stake: U256,
    ) -> Result<Receipt, ContractError> {
        let call = NodeRegistry::registerCall {
            peerId: Bytes::copy_from_slice(peer_id),
        };
        self.transact(operator, Target::Nodes, call, stake).await
    }

    pub async fn deactivate_node(
        &self,
        operator: &PrivateKeySigner,
    ) -> Result<Receipt, ContractError> {
        let call = NodeRegistry::deactivateCall {};
        self.transact(operator, Target::Nodes, call, U256::ZERO)
            .await
    }

    pub async fn withdraw_stake(
        &self,
        operator: &PrivateKeySigner,
    ) -> Result<Receipt, ContractError> {
        let call = NodeRegistry::withdrawCall {};
        self.transact(operator, Target::Nodes, call, U256::ZERO)
            .await
    }

    /// The registry's record of `operator` (stake 0 when unregistered).
    pub async fn node(&self, operator: Address) -> Result<NodeRegistry::Node, ContractError> {
        let call = NodeRegistry::getNodeCall { operator };
        self.view(Target::Nodes, call).await
    }

    /// The active operators and their stakes.
    pub async fn active_nodes(&self) -> Result<Vec<(Address, U256)>, ContractError> {
        let r = self
            .view(Target::Nodes, NodeRegistry::activeNodesCall {})
            .await?;
        Ok(r.active.into_iter().zip(r.stakes).collect())
    }

    pub async fn total_active_stake(&self) -> Result<U256, ContractError> {
        let call = NodeRegistry::totalActiveStakeCall {};
        self.view(Target::Nodes, call).await
    }

    // ---- ProjectRegistry ----

    /// Registers a project owned by `owner`; returns its id.
    pub async fn register_project(
        &self,
        owner: &PrivateKeySigner,
        spec: &ProjectSpec,
    ) -> Result<U256, ContractError> {
        let call = ProjectRegistry::registerCall {
            programHash: spec.program_hash,
            programUri: spec.program_uri.clone(),
            proverKind: spec.prover_kind as u8,
            committeeSize: spec.committee_size,
            threshold: spec.threshold,
            receiver: spec.receiver,
        };
        let receipt = self
            .transact(owner, Target::Projects, call, U256::ZERO)
            .await?;
        let event: ProjectRegistry::ProjectRegistered =
            first_event(&receipt.logs).ok_or(ContractError::MissingEvent("ProjectRegistered"))?;
        Ok(event.projectId)
    }

    pub async fn update_project(
        &self,
        owner: &PrivateKeySigner,
        project_id: U256,
        spec: &ProjectSpec,
    ) -> Result<Receipt, ContractError> {
        let call = ProjectRegistry::updateCall {
            projectId: project_id,
            programHash: spec.program_hash,
            programUri: spec.program_uri.clone(),
            proverKind: spec.prover_kind as u8,
            committeeSize: spec.committee_size,
            threshold: spec.threshold,
            receiver: spec.receiver,
        };
        self.transact(owner, Target::Projects, call, U256::ZERO)
            .await
    }

    pub async fn set_project_paused(
        &self,
        owner: &PrivateKeySigner,
        project_id: U256,
        paused: bool,
    ) -> Result<Receipt, ContractError> {
        let call = ProjectRegistry::setPausedCall {
            projectId: project_id,
            paused,
        };
        self.transact(owner, Target::Projects, call, U256::ZERO)
            .await
    }

    pub async fn project(
        &self,
        project_id: U256,
    ) -> Result<ProjectRegistry::Project, ContractError> {
        let call = ProjectRegistry::getProjectCall {
            projectId: project_id,
        };
        self.view(Target::Projects, call).await
    }

    // ---- TaskRouter: epochs and committees ----

    /// Opens the next epoch; returns its number.
    pub async fn open_epoch(&self, signer: &PrivateKeySigner) -> Result<u64, ContractError> {
        let call = TaskRouter::openEpochCall {};
        let receipt = self
            .transact(signer, Target::Router, call, U256::ZERO)
            .await?;
        let event: TaskRouter::EpochOpened =
            first_event(&receipt.logs).ok_or(ContractError::MissingEvent("EpochOpened"))?;
        Ok(event.epoch)
    }

    pub async fn current_epoch(&self) -> Result<u64, ContractError> {
        let call = TaskRouter::currentEpochCall {};
        self.view(Target::Router, call).await
    }

    pub async fn epoch(&self, epoch: u64) -> Result<TaskRouter::Epoch, ContractError> {
        let call = TaskRouter::getEpochCall { epoch };
        self.view(Target::Router, call).await
    }

    /// The task's candidates in rank order, as the contract computes them.
    pub async fn committee_on_chain(
        &self,
        project_id: U256,
        task_id: U256,
    ) -> Result<Vec<Address>, ContractError> {
        let call = TaskRouter::committeeCall {
            projectId: project_id,
            taskId: task_id,
        };
        self.view(Target::Router, call).await
    }

    /// The draw parameters of a task, read from chain, and every registered operator with the
    /// stake it has in the task's epoch (0 when it has none).
    pub async fn draw_inputs(
        &self,
        project_id: U256,
        task_id: U256,
    ) -> Result<(Draw, Vec<(Address, U256)>), ContractError> {
        let project = self.project(project_id).await?;
        let epoch = self.epoch(epoch_of(task_id)).await?;
        if epoch.startBlock == 0 {
            return Err(ContractError::Revert(Revert::Router(
                TaskRouterErrors::UnknownEpoch(TaskRouter::UnknownEpoch {
                    epoch: epoch_of(task_id),
                }),
            )));
        }
        let draw = Draw::for_committee(
            epoch.seed,
            epoch.totalStake,
            project.committeeSize,
            project_id,
            task_id,
        );
        let operators = self
            .view(Target::Nodes, NodeRegistry::allOperatorsCall {})
            .await?;
        let mut nodes = Vec::with_capacity(operators.len());
        for operator in operators {
            let call = NodeRegistry::stakeAtCall {
                operator,
                epochStart: epoch.startBlock,
            };
            let stake = self.view(Target::Nodes, call).await?;
            nodes.push((operator, stake));
        }
        Ok((draw, nodes))
    }

    /// The task's candidates in rank order, computed here by the Rust draw.
    pub async fn committee(
        &self,
        project_id: U256,
        task_id: U256,
    ) -> Result<Vec<Address>, ContractError> {
        let (draw, nodes) = self.draw_inputs(project_id, task_id).await?;
        Ok(draw.rank(&nodes))
    }

    /// The draw on explicit inputs, run by the contract (`TaskRouter.draw`).
    pub async fn draw_on_chain(
        &self,
        draw: &Draw,
        nodes: &[(Address, U256)],
    ) -> Result<Vec<Address>, ContractError> {
        let call = TaskRouter::drawCall {
            seed: draw.seed,
            totalStake: draw.total_stake,
            expected: draw.expected,
            projectId: draw.project_id,
            taskId: draw.task_id,
            operators: nodes.iter().map(|n| n.0).collect(),
            stakes: nodes.iter().map(|n| n.1).collect(),
        };
        self.view(Target::Router, call).await
    }

    // ---- TaskRouter: results ----

    /// Submits a result with the members' attestations (ordered and deduplicated here).
    pub async fn submit_result(
        &self,
        submitter: &PrivateKeySigner,
        result: &TaskResult,
        attestations: Vec<Attestation>,
    ) -> Result<Receipt, ContractError> {
        self.submit_signatures(submitter, result, order_for_submission(attestations))
            .await
    }

    /// Submits a result with signatures exactly as given (no ordering, no deduplication).
    pub async fn submit_signatures(
        &self,
        submitter: &PrivateKeySigner,
        result: &TaskResult,
        signatures: Vec<Bytes>,
    ) -> Result<Receipt, ContractError> {
        let call = TaskRouter::submitCall {
            projectId: result.project_id,
            taskId: result.task_id,
            output: result.output.clone(),
            proofHash: result.proof_hash,
            signatures,
        };
        self.transact(submitter, Target::Router, call, U256::ZERO)
            .await
    }

    /// The stored result of a task, if one was published.
    pub async fn result(
        &self,
        project_id: U256,
        task_id: U256,
    ) -> Result<Option<StoredResult>, ContractError> {
        let call = TaskRouter::getResultCall {
            projectId: project_id,
            taskId: task_id,
        };
        let r = self.view(Target::Router, call).await?;
        Ok((r.publishedBlock != 0).then(|| StoredResult {
            output: r.output,
            proof_hash: r.proofHash,
            published_block: r.publishedBlock,
            submitter: r.submitter,
        }))
    }

    /// The digest the contract expects members to sign (to cross-check [`TaskResult::digest`]).
    pub async fn result_digest(&self, result: &TaskResult) -> Result<B256, ContractError> {
        let call = TaskRouter::resultDigestCall {
            projectId: result.project_id,
            taskId: result.task_id,
            outputHash: alloy::primitives::keccak256(&result.output),
            proofHash: result.proof_hash,
        };
        self.view(Target::Router, call).await
    }

    /// `ResultPublished` events in blocks `from..=to`.
    pub async fn published(&self, from: u64, to: u64) -> Result<Vec<Published>, ContractError> {
        let logs = self
            .chain
            .logs(LogQuery {
                addresses: vec![self.addresses.task_router],
                from_block: from,
                to_block: to,
            })
            .await
            .map_err(|e| ContractError::from_chain(Target::Router, e))?;
        Ok(published_in(&logs))
    }
}

/// The `ResultPublished` events among `logs`.
pub fn published_in(logs: &[Log]) -> Vec<Published> {
    logs.iter()
        .filter_map(|log| {
            let event = TaskRouter::ResultPublished::decode_log(&log.inner).ok()?;
            Some(Published {
                event: event.data,
                block_number: log.block_number.unwrap_or_default(),
                tx_hash: log.transaction_hash.unwrap_or_default(),
            })
        })
        .collect()
}

/// The first event of type `E` among `logs`.
pub fn first_event<E: SolEvent>(logs: &[Log]) -> Option<E> {
    logs.iter()
        .find_map(|log| E::decode_log(&log.inner).ok().map(|e| e.data))
}
