//! Typed calls to Conclave's contracts over any [`Chain`] backend, with reverts decoded into the
//! contracts' custom errors.

use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::rpc::types::Log;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Panic, Revert as RevertString, SolCall, SolEvent, SolInterface};

use crate::attest::{Attestation, HaloProof, TaskResult, order_for_submission};
use crate::backend::{Chain, ChainError, LogQuery, Receipt, TxRequest};
use crate::bindings::{
    NodeRegistry::{self, NodeRegistryErrors},
    ProjectRegistry::{self, ProjectRegistryErrors},
    TaskRouter::{self, TaskRouterErrors},
};
use crate::deploy::Addresses;
use crate::identity::NodeIdentity;
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
    /// The proof verifier of a `halo2` project ([`Contracts::deploy_verifier`]); zero otherwise.
    pub verifier: Address,
    /// A `halo2` program's number of outputs (one 32-byte word each); zero otherwise.
    pub output_words: u16,
}

impl ProjectSpec {
    /// The registry's form of this configuration.
    pub fn config(&self) -> ProjectRegistry::Config {
        ProjectRegistry::Config {
            programHash: self.program_hash,
            programUri: self.program_uri.clone(),
            proverKind: self.prover_kind as u8,
            committeeSize: self.committee_size,
            threshold: self.threshold,
            receiver: self.receiver,
            verifier: self.verifier,
            outputWords: self.output_words,
        }
    }
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

impl ProverKind {
    pub const ALL: [ProverKind; 5] = [
        ProverKind::Spdz,
        ProverKind::Halo2,
        ProverKind::Wasm,
        ProverKind::Tee,
        ProverKind::Byop,
    ];

    /// The kind the chain numbers `kind`, if any.
    pub fn from_u8(kind: u8) -> Option<ProverKind> {
        ProverKind::ALL.into_iter().find(|k| *k as u8 == kind)
    }

    /// The name project files, manifests, metrics and the CLI use.
    pub fn name(self) -> &'static str {
        match self {
            ProverKind::Spdz => "spdz",
            ProverKind::Halo2 => "halo2",
            ProverKind::Wasm => "wasm",
            ProverKind::Tee => "tee",
            ProverKind::Byop => "byop",
        }
    }
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

/// A task as `TaskRouter` snapshot it when it was opened.
pub type Task = TaskRouter::Task;

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

    /// Registers `operator`'s node: its libp2p peer id (bytes), X25519 input key, the peer key's
    /// proof of possession over both (see [`crate::identity`]) and a stake.
    pub async fn register_node(
        &self,
        operator: &PrivateKeySigner,
        identity: &NodeIdentity,
        stake: U256,
    ) -> Result<Receipt, ContractError> {
        let call = NodeRegistry::registerCall {
            peerId: Bytes::copy_from_slice(&identity.peer_id),
            inputKey: identity.input_key,
            proofOfPossession: Bytes::copy_from_slice(&identity.proof_of_possession),
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
            config: spec.config(),
        };
        let receipt = self
            .transact(owner, Target::Projects, call, U256::ZERO)
            .await?;
        let event: ProjectRegistry::ProjectRegistered =
            first_event(&receipt.logs).ok_or(ContractError::MissingEvent("ProjectRegistered"))?;
        Ok(event.projectId)
    }

    /// Schedules a new configuration; it applies to tasks opened from `changeDelay` blocks on.
    pub async fn update_project(
        &self,
        owner: &PrivateKeySigner,
        project_id: U256,
        spec: &ProjectSpec,
    ) -> Result<Receipt, ContractError> {
        let call = ProjectRegistry::updateCall {
            projectId: project_id,
            config: spec.config(),
        };
        self.transact(owner, Target::Projects, call, U256::ZERO)
            .await
    }

    /// Restricts opening the project's tasks to its owner and its openers (or lifts that).
    pub async fn set_restrict_openers(
        &self,
        owner: &PrivateKeySigner,
        project_id: U256,
        restricted: bool,
    ) -> Result<Receipt, ContractError> {
        let call = ProjectRegistry::setRestrictOpenersCall {
            projectId: project_id,
            restricted,
        };
        self.transact(owner, Target::Projects, call, U256::ZERO)
            .await
    }

    pub async fn set_opener(
        &self,
        owner: &PrivateKeySigner,
        project_id: U256,
        opener: Address,
        allowed: bool,
    ) -> Result<Receipt, ContractError> {
        let call = ProjectRegistry::setOpenerCall {
            projectId: project_id,
            opener,
            allowed,
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

    // ---- TaskRouter: tasks and committees ----

    /// Opens a task of `project_id`; returns its id and the block it was opened in.
    pub async fn open_task(
        &self,
        opener: &PrivateKeySigner,
        project_id: U256,
    ) -> Result<(U256, u64), ContractError> {
        let call = TaskRouter::openTaskCall {
            projectId: project_id,
        };
        let receipt = self
            .transact(opener, Target::Router, call, U256::ZERO)
            .await?;
        let event: TaskRouter::TaskOpened =
            first_event(&receipt.logs).ok_or(ContractError::MissingEvent("TaskOpened"))?;
        Ok((event.taskId, event.openedAt))
    }

    /// The task as opened (reverts with `UnknownTask` when there is none).
    pub async fn task(&self, task_id: U256) -> Result<Task, ContractError> {
        let call = TaskRouter::getTaskCall { taskId: task_id };
        self.view(Target::Router, call).await
    }

    /// The task as opened, or `None` when this deployment has no such task.
    pub async fn task_if_any(&self, task_id: U256) -> Result<Option<Task>, ContractError> {
        match self.task(task_id).await {
            Ok(task) => Ok(Some(task)),
            Err(ContractError::Revert(Revert::Router(TaskRouterErrors::UnknownTask(_)))) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The task's seed, or `None` while the block it comes from is not yet mined.
    pub async fn seed(&self, task_id: U256) -> Result<Option<B256>, ContractError> {
        match self
            .view(Target::Router, TaskRouter::seedOfCall { taskId: task_id })
            .await
        {
            Ok(seed) => Ok(Some(seed)),
            Err(ContractError::Revert(Revert::Router(TaskRouterErrors::SeedNotYet(_)))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores the task's seed on chain (needed within 256 blocks of the opening).
    pub async fn fix_seed(
        &self,
        signer: &PrivateKeySigner,
        task_id: U256,
    ) -> Result<Receipt, ContractError> {
        let call = TaskRouter::fixSeedCall { taskId: task_id };
        self.transact(signer, Target::Router, call, U256::ZERO)
            .await
    }

    /// The units `operator` draws with in a task opened at block `opened_at`.
    pub async fn units_at(&self, operator: Address, opened_at: u64) -> Result<u64, ContractError> {
        let call = NodeRegistry::unitsAtCall {
            operator,
            openedAt: opened_at,
        };
        let units = self.view(Target::Nodes, call).await?;
        Ok(u64::try_from(units).unwrap_or(u64::MAX))
    }

    /// The task's draw, or `None` while its seed is not yet known.
    pub async fn draw(&self, task_id: U256) -> Result<Option<(Draw, Task)>, ContractError> {
        let task = self.task(task_id).await?;
        let Some(seed) = self.seed(task_id).await? else {
            return Ok(None);
        };
        let draw = Draw {
            seed,
            task_id,
            total_units: task.totalUnits,
            expected: U256::from(task.committeeSize),
        };
        Ok(Some((draw, task)))
    }

    /// The task's committee, computed here: every registered node with a seat, its seat mask, in
    /// ascending operator order; `None` while the seed is not yet known.
    pub async fn committee(
        &self,
        task_id: U256,
    ) -> Result<Option<Vec<(Address, U256)>>, ContractError> {
        let Some((draw, task)) = self.draw(task_id).await? else {
            return Ok(None);
        };
        let operators = self
            .view(Target::Nodes, NodeRegistry::allOperatorsCall {})
            .await?;
        let mut nodes = Vec::with_capacity(operators.len());
        for operator in operators {
            nodes.push((operator, self.units_at(operator, task.openedAt).await?));
        }
        Ok(Some(draw.committee(&nodes)))
    }

    /// `operator`'s seats in the task, as the contract computes them.
    pub async fn seats_on_chain(
        &self,
        task_id: U256,
        operator: Address,
    ) -> Result<U256, ContractError> {
        let call = TaskRouter::seatsOfCall {
            taskId: task_id,
            operator,
        };
        self.view(Target::Router, call).await
    }

    /// The seats of a node on explicit inputs, run by the contract (`TaskRouter.draw`).
    pub async fn draw_on_chain(
        &self,
        draw: &Draw,
        operator: Address,
        units: u64,
    ) -> Result<U256, ContractError> {
        let call = TaskRouter::drawCall {
            seed: draw.seed,
            taskId: draw.task_id,
            operator,
            units: U256::from(units),
            totalUnits: draw.total_units,
            expected: draw.expected,
        };
        self.view(Target::Router, call).await
    }

    // ---- TaskRouter: results ----

    /// Submits a result with the members' attestations (ordered and deduplicated here), each
    /// claiming its signer's seats of the task's committee; attestations of signers without a
    /// seat are left out.
    pub async fn submit_result(
        &self,
        submitter: &PrivateKeySigner,
        result: &TaskResult,
        attestations: Vec<Attestation>,
    ) -> Result<Receipt, ContractError> {
        let (signatures, masks) = self.seated(result.task_id, attestations).await?;
        self.submit_signatures(submitter, result, signatures, masks)
            .await
    }

    /// Submits a `halo2` task's result with its proof (`result.proof_hash` must be the proof's
    /// [`HaloProof::proof_hash`], which the attestations sign), like [`Self::submit_result`].
    pub async fn submit_proven(
        &self,
        submitter: &PrivateKeySigner,
        result: &TaskResult,
        proof: &HaloProof,
        attestations: Vec<Attestation>,
    ) -> Result<Receipt, ContractError> {
        let (signatures, seat_masks) = self.seated(result.task_id, attestations).await?;
        let call = TaskRouter::submitProvenCall {
            taskId: result.task_id,
            output: result.output.clone(),
            inputCommitment: proof.input_commitment,
            proof: proof.proof.clone(),
            signatures,
            seatMasks: seat_masks,
        };
        self.transact(submitter, Target::Router, call, U256::ZERO)
            .await
    }

    /// The public instances TaskRouter checks a `halo2` task's proof for.
    pub async fn proof_instances(
        &self,
        task_id: U256,
        output: &Bytes,
        input_commitment: U256,
    ) -> Result<Vec<U256>, ContractError> {
        let call = TaskRouter::proofInstancesCall {
            taskId: task_id,
            output: output.clone(),
            inputCommitment: input_commitment,
        };
        self.view(Target::Router, call).await
    }

    /// Deploys a `halo2` program's verifier (creation bytecode, as `conclave-provers` compiles
    /// it) for a project to name: its address.
    pub async fn deploy_verifier(
        &self,
        deployer: &PrivateKeySigner,
        bytecode: &Bytes,
    ) -> Result<Address, ContractError> {
        crate::deploy::create(self.chain.as_ref(), deployer, bytecode, Vec::new())
            .await
            .map_err(|e| ContractError::from_chain(Target::Projects, e))
    }

    /// The attestations of seat holders, ordered for submission, with their seat masks;
    /// attestations of signers without a seat are left out.
    async fn seated(
        &self,
        task_id: U256,
        attestations: Vec<Attestation>,
    ) -> Result<(Vec<Bytes>, Vec<U256>), ContractError> {
        let committee = self.committee(task_id).await?.unwrap_or_default();
        let seated = attestations
            .into_iter()
            .filter_map(|a| {
                let (_, mask) = committee.iter().find(|(who, _)| *who == a.signer)?;
                Some((a, *mask))
            })
            .collect();
        Ok(order_for_submission(seated))
    }

    /// Submits a result with signatures and seat masks exactly as given.
    pub async fn submit_signatures(
        &self,
        submitter: &PrivateKeySigner,
        result: &TaskResult,
        signatures: Vec<Bytes>,
        seat_masks: Vec<U256>,
    ) -> Result<Receipt, ContractError> {
        let call = TaskRouter::submitCall {
            taskId: result.task_id,
            output: result.output.clone(),
            proofHash: result.proof_hash,
            signatures,
            seatMasks: seat_masks,
        };
        self.transact(submitter, Target::Router, call, U256::ZERO)
            .await
    }

    /// Reports two signatures of one signer on different outputs of one task; the signer is
    /// slashed and the reporter gets half its stake.
    pub async fn report_equivocation(
        &self,
        reporter: &PrivateKeySigner,
        task_id: U256,
        a: (&TaskResult, &Bytes),
        b: (&TaskResult, &Bytes),
    ) -> Result<Receipt, ContractError> {
        let call = TaskRouter::reportEquivocationCall {
            taskId: task_id,
            outputHashA: alloy::primitives::keccak256(&a.0.output),
            proofHashA: a.0.proof_hash,
            signatureA: a.1.clone(),
            outputHashB: alloy::primitives::keccak256(&b.0.output),
            proofHashB: b.0.proof_hash,
            signatureB: b.1.clone(),
        };
        self.transact(reporter, Target::Router, call, U256::ZERO)
            .await
    }

    /// The stored result of a task, if one was published.
    pub async fn result(&self, task_id: U256) -> Result<Option<StoredResult>, ContractError> {
        let call = TaskRouter::getResultCall { taskId: task_id };
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
