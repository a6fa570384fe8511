//! The device client: secret-shares a reading for a project's task through any node's HTTP API.
//!
//! It asks the entry node for the open task, gets a slot granted to a fresh X25519 key of its own
//! with each member's triple shares sealed for that key, checks a_j·b_j = c_j for each bit's
//! triple, and sends y_j = β_j − a_j for each bit β_j of its record (each field offset by half its
//! type's range; the task's program, fetched by hash, says the fields), sealed for each member
//! by that key (so that only it can fill its slot). The entry node sees only envelopes; a member
//! sees only the y_j, which the a_j hide. A client given the
//! chain ([`Client::with_chain`]) first checks the committee and keys the entry node announced
//! against the task's draw on chain, so a lying entry node cannot point it at a fake committee.

use conclave_chain::Contracts;
use conclave_mpc::Fp;
use serde::de::DeserializeOwned;

use crate::api::{
    InputRequest, ProgramJson, SealedJson, SealedOutputsJson, SlotJson, SlotRequest, StatusJson,
    TaskJson, hex32,
};
use crate::committee::check_committee;
use crate::envelope::{self, SecretKey};
use crate::member::{input_context, shares_context};
use crate::messages::Member;
use crate::program::Program;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the node answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad answer from the node: {0}")]
    Answer(String),
    #[error("the committee's triple for slot {0} does not satisfy a·b = c: a member cheated")]
    BadTriple(u32),
    #[error(transparent)]
    Record(#[from] crate::program::RecordError),
    #[error("the task's program: {0}")]
    Program(String),
    #[error("the announced committee does not match the chain: {0}")]
    Committee(#[from] crate::committee::CommitteeError),
    #[error("this needs the chain: give the client a chain to check against")]
    NeedsChain,
    #[error("the private outputs: {0}")]
    Receiver(#[from] crate::receiver::ReceiverError),
    /// The input went out but was not acknowledged: some members may hold it, so it may count.
    /// Sending the record again into this task could count it twice.
    #[error(
        "the input for slot {slot} of task 0x{task} was not acknowledged ({reason}); it may still count, so it is not sent again"
    )]
    Undelivered {
        task: String,
        slot: u32,
        reason: String,
    },
}

/// Times the same input is sent while the node answers 503 or cannot be reached.
const INPUT_TRIES: u32 = 3;

/// Times a client waits out a 429 before reporting it.
const MAX_RATE_WAITS: u32 = 5;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER_SECS: u64 = 10;

/// A device's connection to one entry node.
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// The chain to check announced committees against.
    chain: Option<Contracts>,
}

/// A slot granted to this device: its key and the masks a_j of its bits (sum of the members'
/// shares).
pub struct DeviceSlot {
    pub slot: u32,
    pub key: SecretKey,
    pub masks: Vec<Fp>,
}

/// How a followed task ended ([`Client::follow`]).
#[derive(Clone, Debug)]
pub enum Ending {
    Published(StatusJson),
    /// Failed; `retried_as` names the task that re-runs it, if one was opened.
    Failed(StatusJson),
}

/// What the node acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub task_id: [u8; 32],
    pub slot: u32,
}

impl Client {
    /// A client of the node whose API is at `base` (e.g. `http://127.0.0.1:7001`).
    pub fn new(base: impl Into<String>) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: base.into().trim_end_matches('/').to_string(),
            chain: None,
        }
    }

    /// Checks every announced committee against `contracts` before sending anything to it.
    pub fn with_chain(mut self, contracts: Contracts) -> Self {
        self.chain = Some(contracts);
        self
    }

    /// The task's committee checked against chain (when this client has it).
    async fn check_committee(&self, task: &TaskJson, task_id: [u8; 32]) -> Result<(), ClientError> {
        let Some(contracts) = &self.chain else {
            return Ok(());
        };
        let bad = |what: &str| ClientError::Answer(format!("bad member {what}"));
        let members = task
            .committee
            .iter()
            .map(|m| {
                Ok(Member {
                    peer: m
                        .peer_id
                        .parse::<libp2p::PeerId>()
                        .map_err(|_| bad("peer id"))?
                        .to_bytes(),
                    operator: m
                        .operator
                        .parse::<alloy::primitives::Address>()
                        .map_err(|_| bad("operator"))?
                        .0
                        .0,
                    key: hex32(&m.key, "member key").map_err(|_| bad("key"))?,
                })
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        check_committee(
            contracts,
            alloy::primitives::U256::from_be_bytes(task_id),
            task.project_id,
            &members,
        )
        .await?;
        Ok(())
    }

    async fn answer<T: DeserializeOwned>(r: reqwest::Response) -> Result<T, ClientError> {
        let status = r.status();
        let body = r
            .text()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        if !status.is_success() {
            return Err(ClientError::Status {
                status: status.as_u16(),
                body,
            });
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Answer(e.to_string()))
    }

    /// Sends a request, waiting out 429 answers (as long as `Retry-After` says, a few times).
    async fn send<T: DeserializeOwned>(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let mut waits = 0;
        loop {
            let r = request()
                .send()
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?;
            if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS && waits < MAX_RATE_WAITS {
                waits += 1;
                let secs = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(MAX_RETRY_AFTER_SECS);
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                continue;
            }
            return Self::answer(r).await;
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        self.send(|| self.http.get(&url)).await
    }

    async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        self.send(|| self.http.post(&url).json(body)).await
    }

    /// The project's open task.
    pub async fn task(&self, project: u64) -> Result<TaskJson, ClientError> {
        self.get(&format!("/v1/projects/{project}/task")).await
    }

    /// A task's state and result.
    pub async fn status(&self, task: &[u8; 32]) -> Result<StatusJson, ClientError> {
        self.get(&format!("/v1/tasks/{}", hex::encode(task))).await
    }

    /// Secret-shares `reading` into the project's open task (a program whose device record is
    /// one number).
    pub async fn submit(&self, project: u64, reading: i64) -> Result<Submitted, ClientError> {
        self.submit_record(project, &[reading as f64]).await
    }

    /// Secret-shares a record (one value per field of the program's device input, in order)
    /// into the project's open task.
    pub async fn submit_record(
        &self,
        project: u64,
        values: &[f64],
    ) -> Result<Submitted, ClientError> {
        let task = self.project_task(project).await?;
        self.submit_record_to(&task, values).await
    }

    /// Sends `record` into the open task of `project`, a `wasm` project
    /// ([`Client::submit_data_to`]).
    pub async fn submit_data(&self, project: u64, record: &[u8]) -> Result<Submitted, ClientError> {
        let task = self.project_task(project).await?;
        self.submit_data_to(&task, record).await
    }

    /// The project's open task, refused if the entry node answers with another project's (one
    /// whose output would reveal what is sent); a client with the chain confirms it there too.
    async fn project_task(&self, project: u64) -> Result<TaskJson, ClientError> {
        let task = self.task(project).await?;
        if task.project_id != project {
            return Err(ClientError::Answer(format!(
                "asked for project {project}, the node answered with a task of project {}",
                task.project_id
            )));
        }
        Ok(task)
    }

    /// The task's program: its source from the entry node, accepted only if it hashes to the
    /// task's program hash (which a client given the chain checks against the task's record).
    pub async fn program(&self, task: &TaskJson) -> Result<Program, ClientError> {
        let task_id = hex32(&task.task_id, "task id").map_err(bad_answer)?;
        let hash = hex32(&task.program_hash, "program hash").map_err(bad_answer)?;
        if let Some(contracts) = &self.chain {
            let on_chain = contracts
                .task(alloy::primitives::U256::from_be_bytes(task_id))
                .await
                .map_err(|e| ClientError::Program(format!("reading the task on chain: {e}")))?;
            if on_chain.programHash.0 != hash {
                return Err(ClientError::Program(
                    "the entry node named another program than the task's".into(),
                ));
            }
            // The kind says whether members see a record: the entry node's word is not enough.
            if on_chain.proverKind != task.prover_kind {
                return Err(ClientError::Program(
                    "the entry node named another prover kind than the task's".into(),
                ));
            }
        }
        let answer: ProgramJson = self
            .get(&format!("/v1/tasks/{}/program", task.task_id))
            .await?;
        Program::from_chain(&answer.source, alloy::primitives::B256::from(hash))
            .map_err(|e| ClientError::Program(e.to_string()))
    }

    /// Submits `reading` and follows the task until it is published. If the task fails (a
    /// committee member was lost), the reading goes again into the project's next task, up to
    /// `attempts` tasks. Returns the task that published it.
    pub async fn submit_until_published(
        &self,
        project: u64,
        reading: i64,
        attempts: u32,
        poll: std::time::Duration,
        patience: std::time::Duration,
    ) -> Result<Submitted, ClientError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut tries = 0;
        loop {
            if tokio::time::Instant::now() > deadline || tries >= attempts {
                return Err(ClientError::Answer(format!(
                    "not published after {tries} attempts"
                )));
            }
            let done = match self.submit(project, reading).await {
                Ok(done) => done,
                Err(ClientError::Status { .. } | ClientError::Http(_)) => {
                    // The task may be failing over to a new committee: ask again shortly.
                    tokio::time::sleep(poll).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            tries += 1;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.follow(&done.task_id, poll, left).await {
                Ok(Ending::Published(_)) => return Ok(done),
                Ok(Ending::Failed(_)) | Err(_) => {}
            }
        }
    }

    /// Follows `task` (its status every `poll`) until it is published or has failed; an error
    /// once `patience` runs out first. Answers that fail on the way (a node restarting, a
    /// busy API) only delay it.
    pub async fn follow(
        &self,
        task: &[u8; 32],
        poll: std::time::Duration,
        patience: std::time::Duration,
    ) -> Result<Ending, ClientError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let last = match self.status(task).await {
                Ok(s) if s.state == "published" => return Ok(Ending::Published(s)),
                Ok(s) if s.state == "failed" => return Ok(Ending::Failed(s)),
                Ok(s) => s.state,
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() + poll > deadline {
                return Err(ClientError::Answer(format!(
                    "task 0x{} not published within {patience:?} (last: {last})",
                    hex::encode(task),
                )));
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Sends `record` into `task`, a `wasm` task: sealed whole to each member (which runs the
    /// project's module over the records), never readable by the entry node.
    pub async fn submit_data_to(
        &self,
        task: &TaskJson,
        record: &[u8],
    ) -> Result<Submitted, ClientError> {
        // The shape from the program the chain pins, not from the entry node's word.
        let program = self.program(task).await?;
        let shape = program.task_shape(task.prover_kind);
        if !matches!(program.body, crate::program::Body::Wasm(_))
            || shape.map(|s| s.record_bytes).ok() != Some(task.record_bytes)
        {
            return Err(ClientError::Program(
                "the task's program takes numbers (--value), not data".into(),
            ));
        }
        let task_id = hex32(&task.task_id, "task id").map_err(bad_answer)?;
        self.check_committee(task, task_id).await?;
        self.seal_record_to(task, task_id, record).await
    }

    /// Seals `record`, salted and padded to the task's record size, to each member of a
    /// committee the caller checked.
    async fn seal_record_to(
        &self,
        task: &TaskJson,
        task_id: [u8; 32],
        record: &[u8],
    ) -> Result<Submitted, ClientError> {
        let mut salt = [0u8; crate::manifest::RECORD_SALT];
        rand::fill(&mut salt);
        let Some(padded) = crate::manifest::pad_record(record, task.record_bytes, salt) else {
            return Err(ClientError::Program(format!(
                "a record of this task is at most {} bytes, not {}",
                task.record_bytes,
                record.len()
            )));
        };
        let slot = self
            .grant_to(task_id, task, 0, SecretKey::generate(), None)
            .await?;
        self.send_sealed(task, &slot, &padded).await
    }

    /// Secret-shares `reading` into `task` (a program whose device record is one number).
    pub async fn submit_to(&self, task: &TaskJson, reading: i64) -> Result<Submitted, ClientError> {
        self.submit_record_to(task, &[reading as f64]).await
    }

    /// Sends a record into `task`: each field's value plus 2^(width−1), bit by bit, secret-shared
    /// (`spdz`), or packed and sealed whole to each member (`halo2`, whose seats see inputs).
    pub async fn submit_record_to(
        &self,
        task: &TaskJson,
        values: &[f64],
    ) -> Result<Submitted, ClientError> {
        let task_id = hex32(&task.task_id, "task id").map_err(bad_answer)?;
        self.check_committee(task, task_id).await?;
        let program = self.program(task).await?;
        let shape = program
            .task_shape(task.prover_kind)
            .map_err(|e| ClientError::Program(e.to_string()))?;
        // Refused here, before taking a slot: a value outside its field's type cannot be encoded.
        let bits = program.record_bits(values)?;
        if shape.record_bytes > 0 {
            if shape.record_bytes != task.record_bytes {
                return Err(ClientError::Program(
                    "the task's record size is not its program's".into(),
                ));
            }
            return self
                .seal_record_to(task, task_id, &Program::pack_bits(&bits))
                .await;
        }
        let bits = field_bits(bits, task.input_bits, "record")?;
        let slot = self
            .grant_to(task_id, task, task.input_bits, SecretKey::generate(), None)
            .await?;
        self.send_bits(task, &slot, &bits).await
    }

    /// As the project owner: secret-shares the owner's parameters (one value per field of the
    /// program's owner input, in order) into the owner slot of the project's open task, which
    /// members grant to the key `owner` (the project owner's chain key) signs. Needs the chain.
    pub async fn submit_owner_record(
        &self,
        project: u64,
        values: &[f64],
        owner: &alloy::signers::local::PrivateKeySigner,
    ) -> Result<Submitted, ClientError> {
        let task = self.project_task(project).await?;
        self.submit_owner_record_to(&task, values, owner).await
    }

    /// [`Client::submit_owner_record`] into `task`.
    pub async fn submit_owner_record_to(
        &self,
        task: &TaskJson,
        values: &[f64],
        owner: &alloy::signers::local::PrivateKeySigner,
    ) -> Result<Submitted, ClientError> {
        let Some(contracts) = &self.chain else {
            return Err(ClientError::NeedsChain);
        };
        let task_id = hex32(&task.task_id, "task id").map_err(bad_answer)?;
        self.check_committee(task, task_id).await?;
        let program = self.program(task).await?;
        if program.owner_bits == 0 {
            return Err(ClientError::Program(
                "the project's program reads no owner parameters".into(),
            ));
        }
        let bits = field_bits(
            program.owner_record_bits(values)?,
            task.owner_bits,
            "owner record",
        )?;
        let a = contracts.addresses();
        let key = crate::identity::owner_slot_key(owner, a.chain_id, a.task_router, &task_id)
            .map_err(|e| ClientError::Answer(e.to_string()))?;
        let ticket = crate::identity::issue_owner_ticket(
            owner,
            a.chain_id,
            a.task_router,
            task_id,
            task.max_inputs,
            key.public(),
        )
        .map_err(|e| ClientError::Answer(e.to_string()))?;
        let slot = self
            .grant_to(task_id, task, task.owner_bits, key, Some(&ticket.signature))
            .await?;
        self.send_bits(task, &slot, &bits).await
    }

    /// A published task's outputs as its receiver reads them: public ones as published, private
    /// ones opened with every member's sealed shares of their masks (`crate::receiver`), after
    /// checking the committee and the program against chain. Needs the chain.
    pub async fn receiver_outputs(
        &self,
        task_id: [u8; 32],
        receiver: &SecretKey,
    ) -> Result<Vec<conclave_mpc::lang::OutputValue>, ClientError> {
        let Some(contracts) = &self.chain else {
            return Err(ClientError::NeedsChain);
        };
        let id = alloy::primitives::U256::from_be_bytes(task_id);
        let published = contracts
            .result(id)
            .await
            .map_err(|e| ClientError::Answer(format!("reading the result on chain: {e}")))?
            .ok_or_else(|| ClientError::Answer("no result is published for this task".into()))?;
        let answer: SealedOutputsJson = self
            .get(&format!(
                "/v1/tasks/{}/sealed-outputs",
                hex::encode(task_id)
            ))
            .await?;
        if hex32(&answer.task.task_id, "task id").map_err(bad_answer)? != task_id {
            return Err(ClientError::Answer(
                "the node answered for another task".into(),
            ));
        }
        self.check_committee(&answer.task, task_id).await?;
        let program = self.program(&answer.task).await?;
        let outputs = program.decode_outputs(&published.output).ok_or_else(|| {
            ClientError::Program("the published output does not have the program's layout".into())
        })?;
        let members = answer
            .task
            .committee
            .iter()
            .map(|m| hex32(&m.key, "member key").map_err(bad_answer))
            .collect::<Result<Vec<_>, _>>()?;
        let envelopes = answer
            .shares
            .iter()
            .map(|s| s.to_sealed().map_err(bad_answer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::receiver::open_outputs(
            receiver, &task_id, &members, &envelopes, &outputs,
        )?)
    }

    /// Has the task's coordinator grant a slot to a fresh key of this device, and opens and
    /// checks the members' shares of the slot's masks (a_j·b_j = c_j for each bit's triple).
    /// A client given the chain first checks the committee and its keys against it.
    pub async fn take_slot(&self, task: &TaskJson) -> Result<DeviceSlot, ClientError> {
        let task_id = hex32(&task.task_id, "task id").map_err(bad_answer)?;
        self.check_committee(task, task_id).await?;
        self.grant_to(task_id, task, task.input_bits, SecretKey::generate(), None)
            .await
    }

    /// Takes a slot of `width` bits for `key` (the owner slot if `owner_signature` is given)
    /// and opens and checks the members' shares.
    async fn grant_to(
        &self,
        task_id: [u8; 32],
        task: &TaskJson,
        width: u32,
        key: SecretKey,
        owner_signature: Option<&[u8]>,
    ) -> Result<DeviceSlot, ClientError> {
        // A task whose records are sealed whole has no masks (width 0).
        let bits_ok = (1..=crate::program::MAX_RECORD_BITS).contains(&width);
        if bits_ok == (task.record_bytes > 0) {
            return Err(ClientError::Answer(format!("inputs of {width} bits")));
        }
        let grant: SlotJson = self
            .post(
                &format!("/v1/tasks/{}/slots", task.task_id),
                &SlotRequest {
                    client_key: hex::encode(key.public()),
                    coordinator: Some(task.coordinator.clone()),
                    owner_signature: owner_signature.map(hex::encode),
                },
            )
            .await?;
        if grant.shares.len() != task.committee.len() {
            return Err(ClientError::Answer(
                "shares do not match the committee".into(),
            ));
        }
        let width = width as usize;
        let zero = || vec![Fp::ZERO; width];
        let (mut a, mut b, mut c) = (zero(), zero(), zero());
        for (member, sealed) in task.committee.iter().zip(&grant.shares) {
            let peer: libp2p::PeerId = member
                .peer_id
                .parse()
                .map_err(|_| ClientError::Answer("bad member peer id".into()))?;
            let sealed = sealed.to_sealed().map_err(bad_answer)?;
            // Sealed by the member's input key: when this client checked the committee against
            // chain, shares an entry node made up do not open. (Without the chain, the entry
            // node names the keys, and this client trusts it.)
            let member_key = hex32(&member.key, "member key").map_err(bad_answer)?;
            let plain = envelope::open_from(
                &key,
                &member_key,
                &shares_context(&task_id, grant.slot, &peer),
                &sealed,
            )
            .map_err(|e| ClientError::Answer(format!("member {peer}: {e}")))?;
            if plain.len() != 96 * width {
                return Err(ClientError::Answer(format!(
                    "triple shares must be {} bytes",
                    96 * width
                )));
            }
            let field = |bytes: &[u8]| {
                let bytes: [u8; 32] = bytes.try_into().expect("32-byte chunks");
                Fp::from_bytes(&bytes)
                    .map_err(|_| ClientError::Answer("non-canonical share".into()))
            };
            for (j, triple) in plain.chunks_exact(96).enumerate() {
                a[j] += field(&triple[..32])?;
                b[j] += field(&triple[32..64])?;
                c[j] += field(&triple[64..])?;
            }
        }
        if (0..width).any(|j| a[j] * b[j] != c[j]) {
            return Err(ClientError::BadTriple(grant.slot));
        }
        Ok(DeviceSlot {
            slot: grant.slot,
            key,
            masks: a,
        })
    }

    /// Sends `bits` (the bits of an offset reading, least significant first) into the granted
    /// slot, masked and sealed for each member by the slot's key. Members leave an input out if
    /// any of its values is not a bit.
    pub async fn send_bits(
        &self,
        task: &TaskJson,
        slot: &DeviceSlot,
        bits: &[Fp],
    ) -> Result<Submitted, ClientError> {
        if bits.len() != slot.masks.len() {
            return Err(ClientError::Answer(format!(
                "{} bits for a slot of {}",
                bits.len(),
                slot.masks.len()
            )));
        }
        let y: Vec<u8> = bits
            .iter()
            .zip(&slot.masks)
            .flat_map(|(bit, a)| (*bit - *a).to_bytes())
            .collect();
        self.send_sealed(task, slot, &y).await
    }

    /// Seals `plain` for each member by the slot's key and sends it into the slot.
    async fn send_sealed(
        &self,
        task: &TaskJson,
        slot: &DeviceSlot,
        plain: &[u8],
    ) -> Result<Submitted, ClientError> {
        let task_id = hex32(&task.task_id, "task id").map_err(bad_answer)?;
        let mut sealed = Vec::with_capacity(task.committee.len());
        for member in &task.committee {
            let member_key = hex32(&member.key, "member key").map_err(bad_answer)?;
            let s = envelope::seal_from(
                &slot.key,
                &member_key,
                &input_context(&task_id, slot.slot),
                plain,
            )
            .map_err(|e| ClientError::Answer(e.to_string()))?;
            sealed.push(SealedJson::from_sealed(&s));
        }
        let request = InputRequest {
            slot: slot.slot,
            sealed,
            coordinator: Some(task.coordinator.clone()),
        };
        let path = format!("/v1/tasks/{}/inputs", task.task_id);
        // Members that stored the input keep it, and take the identical request again: sent
        // again (never as a new slot, which could count the record twice) while the failure
        // may be passing.
        let mut tries = 0;
        loop {
            tries += 1;
            match self.post::<_, serde_json::Value>(&path, &request).await {
                Ok(_) => {
                    return Ok(Submitted {
                        task_id,
                        slot: slot.slot,
                    });
                }
                Err(e @ (ClientError::Http(_) | ClientError::Status { status: 503, .. }))
                    if tries < INPUT_TRIES =>
                {
                    tracing::debug!(error = %e, "sending the input again");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => {
                    return Err(ClientError::Undelivered {
                        task: task.task_id.clone(),
                        slot: slot.slot,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}

/// A record's bits as field elements, if the task expects `width` of them.
fn field_bits(bits: Vec<bool>, width: u32, what: &str) -> Result<Vec<Fp>, ClientError> {
    if bits.len() != width as usize {
        return Err(ClientError::Answer(format!(
            "the program's {what} has {} bits, the task's {width}",
            bits.len()
        )));
    }
    Ok(bits
        .into_iter()
        .map(|b| Fp::from_u64(u64::from(b)))
        .collect())
}

fn bad_answer(e: crate::api::ApiError) -> ClientError {
    ClientError::Answer(e.message)
}
