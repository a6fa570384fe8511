//! A committee member's side of a task: answering the coordinator and entry nodes.
//!
//! Preprocessing runs in the background after `Start`; triple shares are handed out (sealed for
//! the client) only once it has finished; masked inputs are opened, checked and stored durably
//! before `Accepted` goes back; `Run` computes the sum by SPDZ and signs the result.

use std::time::Duration;

use alloy::primitives::{B256, Bytes, U256, keccak256};
use conclave_chain::attest::{Attestation, TaskResult};
use conclave_mpc::Fp;
use conclave_mpc::share::Share;
use conclave_provers::spdz::{self, SumJob};
use libp2p::PeerId;
use tokio::sync::watch;

use crate::envelope;
use crate::messages::{Request, Response, TaskId, TaskInfo};
use crate::node::{Inner, PrepStatus, now_ms};
use crate::program::Average;
use crate::store::{MaterialRecord, TaskRecord};
use crate::task::TaskState;

/// How long a triple-shares request waits for preprocessing to finish.
const PREP_WAIT: Duration = Duration::from_secs(120);

pub(crate) fn shares_context(task: &TaskId, slot: u32, member: &PeerId) -> Vec<u8> {
    [
        b"conclave shares".as_slice(),
        task,
        &slot.to_be_bytes(),
        &member.to_bytes(),
    ]
    .concat()
}

pub(crate) fn input_context(task: &TaskId, slot: u32) -> Vec<u8> {
    [b"conclave input".as_slice(), task, &slot.to_be_bytes()].concat()
}

fn refuse(reason: impl Into<String>) -> Response {
    Response::Refused(reason.into())
}

fn fp(bytes: &[u8; 32]) -> Result<Fp, Response> {
    Fp::from_bytes(bytes).map_err(|_| refuse("not a canonical field element"))
}

impl Inner {
    /// Handles a member-side request; `from` is the asking peer.
    pub(crate) async fn member_request(&self, from: PeerId, request: Request) -> Response {
        let result = match request {
            Request::Prepare { .. } => Ok(Response::Prepared {
                key: self.input_key.public(),
            }),
            Request::Start(info) => self.start(from, info),
            Request::TripleShares {
                task_id,
                slot,
                client_key,
            } => self.triple_shares(task_id, slot, client_key).await,
            Request::Input {
                task_id,
                slot,
                sealed,
            } => self.accept_input(task_id, slot, &sealed),
            Request::Digest { task_id } => self.digest(task_id),
            Request::Run { task_id, slots } => self.run(from, task_id, slots).await,
            Request::Submit {
                task_id,
                output,
                proof_hash,
                signatures,
            } => {
                self.submit(from, task_id, output, proof_hash, signatures)
                    .await
            }
            other => Err(refuse(format!("not a member request: {other:?}"))),
        };
        result.unwrap_or_else(|r| r)
    }

    fn member_task(&self, task_id: &TaskId) -> Result<(TaskRecord, TaskInfo), Response> {
        let record = self
            .store
            .task(task_id)
            .map_err(|e| refuse(e.to_string()))?
            .filter(|t| t.member)
            .ok_or_else(|| refuse("not a member of this task"))?;
        let info = record
            .info
            .clone()
            .ok_or_else(|| refuse("task not started"))?;
        Ok((record, info))
    }

    fn start(&self, from: PeerId, info: TaskInfo) -> Result<Response, Response> {
        if info.coordinator != from.to_bytes() {
            return Err(refuse("only the task's coordinator starts it"));
        }
        let me = self.network.peer_id().to_bytes();
        if !info.committee.iter().any(|m| m.peer == me) {
            return Err(refuse("not in this committee"));
        }
        let peers = info.peers().map_err(|e| refuse(e.to_string()))?;
        if info.max_inputs == 0 || info.max_inputs > crate::program::MAX_INPUTS {
            return Err(refuse("bad input count"));
        }
        let existing = self
            .store
            .task(&info.task_id)
            .map_err(|e| refuse(e.to_string()))?;
        let mut record = existing.unwrap_or(TaskRecord {
            project_id: info.project_id,
            task_id: info.task_id,
            info: None,
            coordinating: false,
            member: true,
            state: TaskState::Committee,
            next_slot: 0,
            output: None,
            created_ms: now_ms(),
            attempt: 1,
            retried_as: None,
            timings: Vec::new(),
        });
        let started = self.volatile().prep.contains_key(&info.task_id)
            || self
                .store
                .material(&info.task_id)
                .map_err(|e| refuse(e.to_string()))?
                .is_some();
        if started {
            return Ok(Response::Started);
        }
        record.member = true;
        record.info = Some(info.clone());
        self.store
            .put_task(&record)
            .map_err(|e| refuse(e.to_string()))?;
        self.spawn_preprocessing(info.task_id, peers, info.max_inputs as usize);
        Ok(Response::Started)
    }

    /// Runs MASCOT for the task in the background and stores the material.
    pub(crate) fn spawn_preprocessing(&self, task: TaskId, committee: Vec<PeerId>, slots: usize) {
        let (tx, rx) = watch::channel(PrepStatus::Running);
        self.volatile().prep.insert(task, rx);
        let inner = self.me();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let (session, _) = spdz::session_ids(&task, 0);
            let outcome = spdz::prepare(inner.network.mpc(), session, &committee, slots).await;
            let status = match outcome {
                Ok(material) => {
                    let record = MaterialRecord {
                        alpha: material.alpha.to_bytes(),
                        triples: material
                            .triples
                            .iter()
                            .map(|t| {
                                [
                                    t.a.value.to_bytes(),
                                    t.a.mac.to_bytes(),
                                    t.b.value.to_bytes(),
                                    t.c.value.to_bytes(),
                                ]
                            })
                            .collect(),
                    };
                    match inner.store.put_material(&task, &record) {
                        Ok(()) => {
                            inner
                                .metrics
                                .observe_phase("preprocessing", started.elapsed());
                            PrepStatus::Ready
                        }
                        Err(e) => PrepStatus::Failed(e.to_string()),
                    }
                }
                Err(e) => PrepStatus::Failed(e.to_string()),
            };
            if let PrepStatus::Failed(reason) = &status {
                tracing::warn!(task = %hex::encode(task), %reason, "preprocessing failed");
            }
            let _ = tx.send(status);
            // Keep the channel open for late readers until the node drops the task.
            tx.closed().await;
        });
    }

    async fn material(&self, task: &TaskId) -> Result<MaterialRecord, Response> {
        if let Some(m) = self
            .store
            .material(task)
            .map_err(|e| refuse(e.to_string()))?
        {
            return Ok(m);
        }
        let rx = self.volatile().prep.get(task).cloned();
        let Some(mut rx) = rx else {
            return Err(refuse("no preprocessing for this task"));
        };
        let wait = rx.wait_for(|s| !matches!(s, PrepStatus::Running));
        match tokio::time::timeout(PREP_WAIT, wait).await {
            Ok(Ok(status)) => {
                if let PrepStatus::Failed(reason) = &*status {
                    return Err(refuse(format!("preprocessing failed: {reason}")));
                }
            }
            _ => return Err(refuse("preprocessing is not finished")),
        }
        self.store
            .material(task)
            .map_err(|e| refuse(e.to_string()))?
            .ok_or_else(|| refuse("material missing"))
    }

    async fn triple_shares(
        &self,
        task: TaskId,
        slot: u32,
        client_key: [u8; 32],
    ) -> Result<Response, Response> {
        let (record, _) = self.member_task(&task)?;
        if record.state != TaskState::Committee {
            return Err(refuse("the input window is closed"));
        }
        let material = self.material(&task).await?;
        let t = material
            .triples
            .get(slot as usize)
            .ok_or_else(|| refuse("no such slot"))?;
        let plaintext = [t[0], t[2], t[3]].concat();
        let context = shares_context(&task, slot, &self.network.peer_id());
        let sealed =
            envelope::seal(&client_key, &context, &plaintext).map_err(|e| refuse(e.to_string()))?;
        Ok(Response::Shares(sealed))
    }

    fn accept_input(
        &self,
        task: TaskId,
        slot: u32,
        sealed: &envelope::Sealed,
    ) -> Result<Response, Response> {
        let (record, info) = self.member_task(&task)?;
        if record.state != TaskState::Committee {
            return Err(refuse("the input window is closed"));
        }
        if slot >= info.max_inputs {
            return Err(refuse("no such slot"));
        }
        let y = envelope::open(&self.input_key, &input_context(&task, slot), sealed)
            .map_err(|e| refuse(e.to_string()))?;
        let y: [u8; 32] = y
            .try_into()
            .map_err(|_| refuse("masked input must be 32 bytes"))?;
        fp(&y)?;
        let fresh = self
            .store
            .put_input(&task, slot, &y)
            .map_err(|e| refuse(e.to_string()))?;
        if !fresh {
            let stored = self
                .store
                .inputs(&task)
                .map_err(|e| refuse(e.to_string()))?;
            if !stored.contains(&(slot, y)) {
                return Err(refuse("this slot already holds another input"));
            }
        }
        self.metrics.inputs_accepted.inc();
        Ok(Response::Accepted)
    }

    /// Submits the committee's result to TaskRouter with this member's operator key.
    async fn submit(
        &self,
        from: PeerId,
        task: TaskId,
        output: Vec<u8>,
        proof_hash: [u8; 32],
        signatures: Vec<([u8; 20], Vec<u8>)>,
    ) -> Result<Response, Response> {
        let (_, info) = self.member_task(&task)?;
        if info.coordinator != from.to_bytes() {
            return Err(refuse("only the coordinator hands out submissions"));
        }
        let result = TaskResult {
            project_id: U256::from(info.project_id),
            task_id: U256::from_be_bytes(task),
            output: Bytes::from(output),
            proof_hash: B256::from(proof_hash),
        };
        let attestations: Vec<Attestation> = signatures
            .into_iter()
            .map(|(signer, signature)| Attestation {
                signer: alloy::primitives::Address::from(signer),
                signature: Bytes::from(signature),
            })
            .filter(|a| result.verify(a, self.chain_id, self.router).is_ok())
            .collect();
        let receipt = self
            .contracts
            .submit_result(&self.operator, &result, attestations)
            .await;
        match receipt {
            Ok(r) => {
                self.metrics.submission("published");
                Ok(Response::Submitted {
                    tx_hash: r.tx_hash.0,
                    block: r.block_number,
                })
            }
            Err(e) => {
                self.metrics.submission("failed");
                Err(refuse(format!("submission failed: {e}")))
            }
        }
    }

    fn digest(&self, task: TaskId) -> Result<Response, Response> {
        self.member_task(&task)?;
        let inputs = self
            .store
            .inputs(&task)
            .map_err(|e| refuse(e.to_string()))?;
        Ok(Response::Digest(
            inputs
                .into_iter()
                .map(|(slot, y)| (slot, *blake3::hash(&y).as_bytes()))
                .collect(),
        ))
    }

    async fn run(&self, from: PeerId, task: TaskId, slots: Vec<u32>) -> Result<Response, Response> {
        let (mut record, info) = self.member_task(&task)?;
        if info.coordinator != from.to_bytes() {
            return Err(refuse("only the coordinator starts the computation"));
        }
        if slots.is_empty() || slots.windows(2).any(|w| w[0] >= w[1]) {
            return Err(refuse("slots must be ascending and not empty"));
        }
        if record.state == TaskState::Committee {
            record.state = TaskState::Running;
            self.store
                .put_task(&record)
                .map_err(|e| refuse(e.to_string()))?;
        }
        let material = self.material(&task).await?;
        let stored = self
            .store
            .inputs(&task)
            .map_err(|e| refuse(e.to_string()))?;
        let mut inputs = Vec::with_capacity(slots.len());
        let mut digest = blake3::Hasher::new_derive_key("conclave spdz proof v1");
        digest.update(&task);
        for m in &info.committee {
            digest.update(&m.operator);
        }
        for &slot in &slots {
            let y = stored
                .iter()
                .find(|(s, _)| *s == slot)
                .map(|(_, y)| *y)
                .ok_or_else(|| refuse(format!("no input for slot {slot}")))?;
            let t = material
                .triples
                .get(slot as usize)
                .ok_or_else(|| refuse("no such slot"))?;
            let a = Share {
                value: fp(&t[0])?,
                mac: fp(&t[1])?,
            };
            digest.update(&slot.to_be_bytes());
            digest.update(&y);
            inputs.push((a, fp(&y)?));
        }
        let proof_context = *digest.finalize().as_bytes();
        let committee = info.peers().map_err(|e| refuse(e.to_string()))?;
        let started = std::time::Instant::now();
        let (_, session) = spdz::session_ids(&task, 0);
        let job = SumJob {
            channels: self.network.mpc(),
            session,
            committee: &committee,
            alpha: fp(&material.alpha)?,
            inputs,
            proof_context,
        };
        let sum = spdz::sum_inputs(&job)
            .await
            .map_err(|e| refuse(format!("computation failed: {e}")))?;
        self.metrics.observe_phase("online", started.elapsed());
        if self.volatile().prep.remove(&task).is_some() {
            // The task's triples are spent (or no longer needed) once it has computed.
            self.metrics
                .pool_triples
                .dec_by(material.triples.len() as i64);
        }
        let output = Average {
            sum,
            count: slots.len() as u64,
        }
        .encode();
        let result = TaskResult {
            project_id: U256::from(info.project_id),
            task_id: U256::from_be_bytes(task),
            output: Bytes::from(output.clone()),
            proof_hash: B256::from(keccak256(proof_context)),
        };
        let att = result
            .sign(&self.operator, self.chain_id, self.router)
            .map_err(|e| refuse(e.to_string()))?;
        record.output = Some(output.clone());
        self.store
            .put_task(&record)
            .map_err(|e| refuse(e.to_string()))?;
        Ok(Response::Ran {
            output,
            proof_hash: result.proof_hash.0,
            signature: att.signature.to_vec(),
        })
    }
}
