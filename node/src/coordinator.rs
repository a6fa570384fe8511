//! The coordinator of a task: the node that opened it. It draws the committee (the draw that
//! TaskRouter checks), replaces candidates that do not answer, hands out input slots, closes the
//! input window, has the committee compute, gathers the signatures and submits the result.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, Bytes, U256, keccak256};
use conclave_chain::attest::{Attestation, TaskResult};
use conclave_chain::contracts::ProverKind;
use conclave_chain::watch::ResultWatcher;
use conclave_p2p::messages::{GossipMessage, ResultAnnouncement, TaskAnnouncement};
use futures::future::join_all;
use libp2p::PeerId;

use crate::agreement::{Answer, NoAgreement, agree};
use crate::committee::{SeatHolder, seat_holders};
use crate::identity::issue_ticket;

use crate::messages::{Member, RefusalKind, Request, Response, TaskId, TaskInfo};
use crate::node::{ANSWER_WAIT, Inner, NodeError, now_ms};
use crate::store::{ProjectRecord, TaskRecord};
use crate::task::{TaskEvent, TaskState};

/// How long to wait for the block a new task's committee seed comes from.
const SEED_WAIT: Duration = Duration::from_secs(60);
/// How often to look for that block.
const SEED_POLL: Duration = Duration::from_millis(50);
/// How long the committee may take to compute and sign.
const RUN_WAIT: Duration = Duration::from_secs(120);
/// How often the coordinator checks whether every slot's input arrived at every member.
const CLOSE_POLL: Duration = Duration::from_millis(25);
/// A member out of the live view this long is given up for lost.
const LOST_AFTER: Duration = Duration::from_secs(5);
/// How often, while the input window is open, the coordinator asks whether a member failed.
const FAILURE_POLL: Duration = Duration::from_secs(1);
/// The longest failure reason a task record keeps (a member's refusal is quoted in it).
const MAX_REASON: usize = 512;
/// How many tasks (the first and its re-runs) a project's work gets.
pub const MAX_ATTEMPTS: u32 = 3;
/// How many draws an opening tries before giving up: the seats are random, and a draw that
/// cannot form a committee costs only an `openTask`.
pub const MAX_DRAWS: u32 = 16;
/// Draws a re-run gets: a draw whose seat holder is away (the likely reason the task failed)
/// is drawn again, but a re-run holds the node's opening lock, so only a few times.
pub const RERUN_DRAWS: u32 = 3;
/// How long to wait for the published result to be confirmed.
const CONFIRM_WAIT: Duration = Duration::from_secs(600);

impl Inner {
    pub(crate) async fn coordinator_request(&self, request: Request) -> Response {
        match request {
            Request::GetTask { task_id } => match self.store.task(&task_id) {
                Ok(Some(TaskRecord {
                    info: Some(info),
                    coordinating: true,
                    ..
                })) => Response::Task(Box::new(info)),
                Ok(_) => Response::refused(RefusalKind::Unknown, "not coordinating this task"),
                Err(e) => Response::refused(RefusalKind::Failed, e.to_string()),
            },
            Request::AllocateSlot {
                task_id,
                client_key,
            } => self.allocate_slot(task_id, client_key),
            Request::Status { task_id } => match self.store.task(&task_id) {
                Ok(Some(r)) if r.coordinating => {
                    Response::Status(Box::new(crate::task::TaskReport::of(r)))
                }
                Ok(_) => Response::refused(RefusalKind::Unknown, "not coordinating this task"),
                Err(e) => Response::refused(RefusalKind::Failed, e.to_string()),
            },
            _ => Response::refused(RefusalKind::Invalid, "not a coordinator request"),
        }
    }

    /// Grants the next slot to `client_key`, with a ticket members check.
    fn allocate_slot(&self, task: TaskId, client_key: [u8; 32]) -> Response {
        if crate::envelope::check_public_key(&client_key).is_err() {
            return Response::refused(RefusalKind::Invalid, "not a usable X25519 key");
        }
        // One allocation at a time: the read-increment-write below must not interleave.
        let _serial = self.volatile();
        let mut record = match self.store.task(&task) {
            Ok(Some(r)) if r.coordinating => r,
            Ok(_) => return Response::refused(RefusalKind::Unknown, "not coordinating this task"),
            Err(e) => return Response::refused(RefusalKind::Failed, e.to_string()),
        };
        let Some(info) = record.info.clone() else {
            return Response::refused(RefusalKind::Unknown, "task not started");
        };
        if record.state != TaskState::Committee
            || record.next_slot >= info.max_inputs
            || now_ms() >= info.closes_at_ms
        {
            return Response::refused(RefusalKind::Closed, "the input window is closed");
        }
        // A key asking again (its device retrying) gets its slot again, not another one.
        let slot = match self.store.grant_slot(&task, &client_key, record.next_slot) {
            Ok(slot) => slot,
            Err(e) => return Response::refused(RefusalKind::Failed, e.to_string()),
        };
        let ticket = match issue_ticket(&self.keypair, task, slot, client_key) {
            Ok(t) => t,
            Err(e) => return Response::refused(RefusalKind::Failed, e.to_string()),
        };
        if slot == record.next_slot {
            record.next_slot += 1;
            if let Err(e) = self.store.put_task(&record) {
                return Response::refused(RefusalKind::Failed, e.to_string());
            }
        }
        Response::Slot(ticket)
    }

    /// Notes how long a phase took, in the metrics and in the task's stored timings.
    fn record_phase(
        &self,
        record: &mut TaskRecord,
        phase: &str,
        since: Instant,
    ) -> Result<(), NodeError> {
        let elapsed = since.elapsed();
        self.metrics.observe_phase(phase, elapsed);
        record
            .timings
            .push((phase.into(), elapsed.as_millis() as u64));
        Ok(self.store.put_task(record)?)
    }

    fn set_state(&self, record: &mut TaskRecord, event: TaskEvent) -> Result<(), NodeError> {
        record.state = record
            .state
            .apply(event)
            .map_err(|e| NodeError::Task(e.to_string()))?;
        self.store.put_task(record)?;
        Ok(())
    }

    /// Opens a task for `project`, forms its committee and starts its preprocessing. The seats
    /// are random (DESIGN.md, "Tasks"): a draw that cannot form a committee (too few seats, a
    /// seat holder absent) fails, and the work goes to a newly opened task, up to [`MAX_DRAWS`].
    pub(crate) async fn open_task(&self, project: u64) -> Result<TaskInfo, NodeError> {
        self.open_drawn(project, 1, MAX_DRAWS).await
    }

    /// Opens attempt `attempt` of the project's work, drawing again (a new task) while the
    /// draw cannot form a committee, up to `draws` draws.
    async fn open_drawn(
        &self,
        project: u64,
        attempt: u32,
        draws: u32,
    ) -> Result<TaskInfo, NodeError> {
        let mut draw = 1;
        loop {
            match self.open_attempt(project, attempt).await {
                Err(e @ NodeError::DrawUnusable(_)) if draw < draws => {
                    tracing::info!(project, draw, error = %e, "opening another task");
                    draw += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn open_attempt(&self, project: u64, attempt: u32) -> Result<TaskInfo, NodeError> {
        // Every draw costs the operator two transactions, and any device can ask for any
        // project: the node pays for a bounded number a minute.
        if !self
            .openings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(std::time::Instant::now())
        {
            return Err(NodeError::Refused {
                peer: self.network.peer_id(),
                kind: RefusalKind::Busy,
                reason: "this node's budget of task openings is spent for now".into(),
            });
        }
        let started = Instant::now();
        let p = self.contracts.project(U256::from(project)).await?;
        self.store.put_project(&ProjectRecord {
            project_id: project,
            owner: p.owner.0.0,
            program_uri: p.programUri.clone(),
            prover_kind: p.proverKind,
            committee_size: p.committeeSize,
            threshold: p.threshold,
            paused: p.paused,
            read_ms: now_ms(),
        })?;
        if p.paused {
            return Err(NodeError::Unavailable(format!(
                "project {project} is paused"
            )));
        }
        if ProverKind::from_u8(p.proverKind).is_none() {
            return Err(NodeError::Unavailable(format!(
                "project {project} needs prover kind {}, which this node does not run",
                p.proverKind
            )));
        }
        let program = self
            .program(
                p.programHash,
                &p.programUri,
                crate::programs::Fetch::MeshOrUrl,
                None,
            )
            .await?;
        let shape = program
            .task_shape(p.proverKind)
            .map_err(|e| NodeError::Unavailable(format!("project {project}'s program: {e}")))?;
        // Members fetch the module from this node first: it must have it, and it must compile,
        // before a task is paid for.
        if let crate::program::Body::Wasm(spec) = &program.body {
            match spec.byop() {
                Some(_) => {
                    self.code(spec, crate::programs::Fetch::MeshOrUrl, None)
                        .await?;
                }
                None => {
                    self.module(spec, crate::programs::Fetch::MeshOrUrl, None)
                        .await?;
                }
            }
        }
        let (task, _opened_at) = self
            .contracts
            .open_task(&self.operator, U256::from(project))
            .await?;
        let me = self.network.peer_id();
        // The task runs what it was opened with, which a project change may have made differ from
        // what was read above.
        let snapshot = self.contracts.task(task).await?;
        if snapshot.programHash != program.hash || snapshot.proverKind != p.proverKind {
            return Err(NodeError::Task(
                "the project changed while the task was opened; its snapshot differs".into(),
            ));
        }
        let task_bytes: TaskId = task.to_be_bytes();
        let mut record = TaskRecord {
            project_id: project,
            task_id: task_bytes,
            info: None,
            coordinating: true,
            member: false,
            state: TaskState::Pending,
            next_slot: 0,
            output: None,
            created_ms: now_ms(),
            attempt,
            retried_as: None,
            timings: Vec::new(),
            dissent: Vec::new(),
        };
        self.store.put_task(&record)?;

        let committee = match self
            .form_committee(project, task, task_bytes, snapshot.threshold)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                let _ = self.set_state(&mut record, TaskEvent::Failed(e.to_string()));
                return Err(e);
            }
        };
        let info = TaskInfo {
            project_id: project,
            task_id: task_bytes,
            coordinator: me.to_bytes(),
            committee,
            program_hash: program.hash.0,
            max_inputs: program.max_inputs,
            input_bits: shape.input_bits,
            owner_bits: shape.owner_bits,
            closes_at_ms: now_ms() + program.window_secs * 1000,
            prover_kind: p.proverKind,
            record_bytes: shape.record_bytes,
        };
        record.info = Some(info.clone());
        record.member = info.committee.iter().any(|m| m.peer == me.to_bytes());
        self.set_state(&mut record, TaskEvent::CommitteeFormed)?;
        let peers = info.peers().map_err(|e| NodeError::Task(e.to_string()))?;
        let starts = peers.into_iter().map(|peer| {
            let info = info.clone();
            async move {
                tokio::time::timeout(ANSWER_WAIT, self.ask(peer, Request::Start(info)))
                    .await
                    .map_err(|_| NodeError::Task(format!("{peer} did not answer Start")))?
            }
        });
        for outcome in join_all(starts).await {
            if let Err(e) = outcome {
                let _ = self.set_state(&mut record, TaskEvent::Failed(e.to_string()));
                return Err(e);
            }
        }
        {
            let mut v = self.volatile();
            v.note_open(project, task_bytes, me, info.closes_at_ms, true);
            v.cache_info(&info);
        }
        let _ = self
            .network
            .publish(GossipMessage::Task(TaskAnnouncement {
                project_id: project,
                task_id: task_bytes,
                inputs_closed_at_ms: info.closes_at_ms,
            }))
            .await;
        self.record_phase(&mut record, "committee", started)?;
        tracing::info!(task = %hex::encode(task_bytes), project, members = info.committee.len(), "task opened");
        self.spawn_work(self.me().driving(task_bytes));
        Ok(info)
    }

    /// The task's seat holders with valid identity records, once the block its seed comes from
    /// is mined; the seed is then stored on chain, since the block hash it comes from is readable
    /// for 256 blocks only (a failure to store it gives up the task).
    async fn seated(&self, task: U256) -> Result<Vec<SeatHolder>, NodeError> {
        let deadline = Instant::now() + SEED_WAIT;
        let seated = loop {
            if let Some(seated) = seat_holders(&self.contracts, task).await? {
                break seated;
            }
            if Instant::now() >= deadline {
                return Err(NodeError::Task(
                    "no block after the task's opening was mined in time to draw its committee"
                        .into(),
                ));
            }
            tokio::time::sleep(SEED_POLL).await;
        };
        // Without the stored seed the task could never publish once the block hash is gone.
        self.contracts.fix_seed(&self.operator, task).await?;
        Ok(seated)
    }

    /// Asks every seat holder to prepare. The committee is all of them (devices and members
    /// refuse a committee that leaves one out), so one that is not live or does not answer with
    /// its registered key gives up the draw, as does a draw with fewer than the threshold's seats
    /// or fewer than two members.
    async fn form_committee(
        &self,
        project: u64,
        task: U256,
        task_bytes: TaskId,
        threshold: u16,
    ) -> Result<Vec<Member>, NodeError> {
        let seated = self.seated(task).await?;
        let seats: u32 = seated.iter().map(|h| h.seats).sum();
        if seats < u32::from(threshold) || seated.len() < 2 {
            return Err(NodeError::DrawUnusable(format!(
                "{} seat holders with {seats} seats; the task needs {threshold} seats and two members",
                seated.len()
            )));
        }
        let live = self.live_set().await?;
        let mut members = Vec::with_capacity(seated.len());
        for holder in seated {
            let peer = holder.peer;
            if !live.contains(&peer) {
                return Err(NodeError::DrawUnusable(format!(
                    "seat holder {peer} is not live"
                )));
            }
            let prepare = Request::Prepare {
                task_id: task_bytes,
                project_id: project,
            };
            match tokio::time::timeout(ANSWER_WAIT, self.ask(peer, prepare)).await {
                Ok(Ok(Response::Prepared { key })) if key == holder.input_key => {
                    members.push(Member {
                        peer: peer.to_bytes(),
                        operator: holder.operator.0.0,
                        key,
                    });
                }
                other => {
                    return Err(NodeError::DrawUnusable(format!(
                        "seat holder {peer} did not prepare with its registered key: {other:?}"
                    )));
                }
            }
        }
        Ok(members)
    }

    /// [`Inner::drive`] as a boxed future: the re-run path makes `drive` recursive.
    pub(crate) fn driving(
        self: std::sync::Arc<Self>,
        task: TaskId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.drive(task).await })
    }

    /// Waits for the input window to close, then computes, attests and submits. A task that
    /// fails after its committee formed (a member lost, a computation that did not finish) is
    /// re-run as a new task with a freshly drawn committee, up to [`MAX_ATTEMPTS`]; devices whose
    /// inputs went to the failed task see `retried_as` in its status and submit again.
    pub(crate) async fn drive(&self, task: TaskId) {
        let Err(e) = self.drive_inner(task).await else {
            return;
        };
        let Ok(Some(mut record)) = self.store.task(&task) else {
            return;
        };
        // A wait that timed out after the result went on chain is no failure: re-running would
        // publish the work twice.
        match self.published_on_chain(task).await {
            Ok(Some((tx_hash, block))) => {
                tracing::info!(task = %hex::encode(task), error = %e, "published after all");
                let _ = self.set_state(&mut record, TaskEvent::FoundOnChain { tx_hash, block });
                self.volatile().open.retain(|_, (t, _, _)| *t != task);
                return;
            }
            Ok(None) => {}
            Err(chain) => {
                tracing::warn!(task = %hex::encode(task), error = %chain, "cannot tell whether the task published; not re-running it");
                let reason = format!("{e}; whether it published is unknown: {chain}");
                let _ = self.set_state(&mut record, TaskEvent::Failed(reason));
                self.volatile().open.retain(|_, (t, _, _)| *t != task);
                return;
            }
        }
        tracing::warn!(task = %hex::encode(task), error = %e, "task failed");
        let _ = self.set_state(&mut record, TaskEvent::Failed(bounded(e.to_string())));
        self.volatile().open.retain(|_, (t, _, _)| *t != task);
        if record.attempt >= MAX_ATTEMPTS {
            return;
        }
        let _serial = self.opening.lock().await;
        match self
            .open_drawn(record.project_id, record.attempt + 1, RERUN_DRAWS)
            .await
        {
            Ok(next) => {
                record.retried_as = Some(next.task_id);
                let _ = self.store.put_task(&record);
                tracing::info!(failed = %hex::encode(task), retry = %hex::encode(next.task_id), "task re-run by a new committee");
            }
            Err(e) => tracing::warn!(error = %e, "could not re-run the task"),
        }
    }

    /// The transaction and block that published the task's result, if one did.
    async fn published_on_chain(&self, task: TaskId) -> Result<Option<([u8; 32], u64)>, NodeError> {
        let id = U256::from_be_bytes(task);
        let Some(stored) = self.contracts.result(id).await? else {
            return Ok(None);
        };
        let block = stored.published_block;
        let tx = self
            .contracts
            .published(block, block)
            .await?
            .into_iter()
            .find(|p| p.event.taskId == id)
            .map(|p| p.tx_hash.0)
            .unwrap_or_default();
        Ok(Some((tx, block)))
    }

    /// Members (other than this node) missing from the live view.
    async fn lost_members(&self, peers: &[PeerId]) -> Result<Vec<PeerId>, NodeError> {
        let live = self.live_set().await?;
        Ok(peers
            .iter()
            .filter(|p| !live.contains(p))
            .copied()
            .collect())
    }

    /// Peers with a recent heartbeat, and this node.
    async fn live_set(&self) -> Result<HashSet<PeerId>, NodeError> {
        let mut live: HashSet<PeerId> = self
            .network
            .live_peers()
            .await?
            .into_iter()
            .map(|p| p.peer)
            .collect();
        live.insert(self.network.peer_id());
        Ok(live)
    }

    async fn drive_inner(&self, task: TaskId) -> Result<(), NodeError> {
        let mut record = self
            .store
            .task(&task)?
            .ok_or_else(|| NodeError::Task("task vanished".into()))?;
        let info = record
            .info
            .clone()
            .ok_or_else(|| NodeError::Task("task has no committee".into()))?;
        let peers = info.peers().map_err(|e| NodeError::Task(e.to_string()))?;
        let mut complete = None;
        if record.state == TaskState::Committee {
            // Close early once every slot is handed out and every member holds every input;
            // give up on a member that has been out of the live view for too long.
            let mut missing_since: Option<Instant> = None;
            let mut last_digest: Option<Instant> = None;
            let mut digest_every = FAILURE_POLL;
            let mut was_all_handed_out = false;
            loop {
                let now = now_ms();
                if now >= info.closes_at_ms {
                    // Members whose clocks are a little behind would refuse a run that comes
                    // before their own close time.
                    tokio::time::sleep(Duration::from_millis(crate::member::CLOCK_SLACK_MS)).await;
                    break;
                }
                let lost = self.lost_members(&peers).await?;
                if lost.is_empty() {
                    missing_since = None;
                } else if missing_since.get_or_insert_with(Instant::now).elapsed() > LOST_AFTER {
                    return Err(NodeError::Task(format!(
                        "committee member {} lost",
                        lost[0]
                    )));
                }
                // Ask the members what they hold: every second, to learn early of a member that
                // can no longer compute (its preprocessing aborted: a cheating peer caught, a
                // peer gone), so that the task fails now and is re-run rather than waiting out
                // the window; and soon after the last slot is handed out, to close early (then
                // less and less often: each answer costs every member a pass over its inputs).
                let handed_out = self.store.task(&task)?.map_or(0, |r| r.next_slot);
                let all_handed_out = handed_out >= info.max_inputs;
                if all_handed_out && !was_all_handed_out {
                    was_all_handed_out = true;
                    digest_every = CLOSE_POLL;
                    last_digest = None;
                }
                if last_digest.is_none_or(|t| t.elapsed() >= digest_every) {
                    last_digest = Some(Instant::now());
                    if all_handed_out {
                        digest_every = (digest_every * 2).min(FAILURE_POLL);
                    }
                    let every_slot = info.max_inputs + u32::from(info.owner_slot().is_some());
                    match self.agreed_slots_of(task, &peers).await {
                        Ok(agreed) if all_handed_out && agreed.len() as u32 == every_slot => {
                            complete = Some(agreed);
                            break;
                        }
                        Ok(_) => {}
                        Err(
                            e @ NodeError::Refused {
                                kind: RefusalKind::Aborted,
                                ..
                            },
                        ) => return Err(e),
                        // A slow or busy member only delays the early close: the window still
                        // ends, and a member gone for good is caught as lost above.
                        Err(e) => tracing::debug!(error = %e, "inputs not yet agreed"),
                    }
                }
                tokio::time::sleep(CLOSE_POLL).await;
            }
            record = self.store.task(&task)?.unwrap_or(record);
            self.set_state(&mut record, TaskEvent::InputsClosed)?;
        }
        let slots = match complete {
            Some(agreed) => agreed,
            None => self.agreed_slots_of(task, &peers).await?,
        };
        self.compute_and_publish(record, &info, &peers, slots).await
    }

    /// Has the committee compute over `slots`, gathers signatures, submits, and waits for the
    /// result to be confirmed.
    async fn compute_and_publish(
        &self,
        mut record: TaskRecord,
        info: &TaskInfo,
        peers: &[PeerId],
        slots: Vec<u32>,
    ) -> Result<(), NodeError> {
        let task = info.task_id;
        let closed = Instant::now();
        tracing::info!(task = %hex::encode(task), inputs = slots.len(), "inputs closed; the committee computes");
        if slots.is_empty() {
            return Err(NodeError::Task("no inputs arrived".into()));
        }
        if info
            .owner_slot()
            .is_some_and(|owner| slots.last() != Some(&owner))
        {
            return Err(NodeError::Task(
                "the project owner's parameters did not arrive at every member".into(),
            ));
        }
        let runs = peers.iter().map(|&peer| {
            let run = Request::Run {
                task_id: task,
                slots: slots.clone(),
            };
            async move {
                match tokio::time::timeout(RUN_WAIT, self.ask(peer, run)).await {
                    Ok(Ok(answer)) => Ok(answer),
                    Ok(Err(e)) => Err(NodeError::Task(format!(
                        "member {peer} could not compute: {e}"
                    ))),
                    Err(_) => Err(NodeError::Task(format!("{peer} did not finish computing"))),
                }
            }
        });
        let answers = if info.sealed_records() {
            join_all(runs).await
        } else {
            spdz_answers(runs, AFTER_FAILURE).await
        };
        let mut signed = Vec::new();
        for (member, answer) in info.committee.iter().zip(answers) {
            match answer {
                Ok(Response::Ran {
                    output,
                    proof_hash,
                    signature,
                }) => {
                    let claimed = Attestation {
                        signer: Address::from(member.operator),
                        signature: Bytes::from(signature.clone()),
                    };
                    let valid = info
                        .result(&output, proof_hash)
                        .verify(&claimed, self.chain_id, self.router)
                        .is_ok();
                    signed.push(Answer {
                        operator: member.operator,
                        output,
                        proof_hash,
                        signature,
                        valid,
                    });
                }
                Ok(other) => tracing::warn!(?other, "unexpected answer to Run"),
                Err(e) => tracing::warn!(error = %e, "member failed to compute"),
            }
        }
        let seats = crate::committee::seats(&self.contracts, U256::from_be_bytes(task))
            .await?
            .ok_or_else(|| NodeError::Task("the task's committee is not drawn".into()))?;
        let threshold = u32::from(
            self.contracts
                .task(U256::from_be_bytes(task))
                .await?
                .threshold,
        );
        let agreed = agree(signed, |o| seats.of(o), threshold);
        record.dissent = match &agreed {
            Ok(a) => a.dissent.clone(),
            Err(NoAgreement::ShortOfThreshold { dissent, .. }) => dissent.clone(),
            Err(NoAgreement::NoAnswers) => Vec::new(),
        };
        for operator in &record.dissent {
            tracing::warn!(task = %hex::encode(task), operator = %Address::from(*operator), "a member signed another output");
        }
        self.store.put_task(&record)?;
        let agreed = agreed.map_err(|e| NodeError::Task(e.to_string()))?;
        tracing::info!(task = %hex::encode(task), signers = agreed.signers.len(), "computed; submitting the result");
        let output = agreed.output.clone();
        record.output = Some(output.clone());
        self.record_phase(&mut record, "compute", closed)?;
        self.set_state(&mut record, TaskEvent::Computed)?;
        let result = info.result(&output, agreed.proof_hash);
        let attestations: Vec<Attestation> = agreed
            .signers
            .into_iter()
            .map(|a| Attestation {
                signer: Address::from(a.operator),
                signature: Bytes::from(a.signature),
            })
            .collect();
        let submitted = Instant::now();
        let (tx_hash, block) = self.submit_by_rank(info, &result, attestations).await?;
        self.await_confirmation(task, block).await?;
        self.record_phase(&mut record, "submit", submitted)?;
        self.set_state(&mut record, TaskEvent::Published { tx_hash, block })?;
        self.volatile().open.retain(|_, (t, _, _)| *t != task);
        let _ = self
            .network
            .publish(GossipMessage::Result(ResultAnnouncement {
                project_id: info.project_id,
                task_id: task,
                output_hash: keccak256(&output).0,
                transaction: Some(tx_hash),
            }))
            .await;
        tracing::info!(task = %hex::encode(task), tx = %hex::encode(tx_hash), "result published");
        Ok(())
    }

    /// Has the committee's members, in rank order, submit the result (the first that succeeds
    /// wins); if none can, the coordinator submits it itself.
    async fn submit_by_rank(
        &self,
        info: &TaskInfo,
        result: &TaskResult,
        attestations: Vec<Attestation>,
    ) -> Result<([u8; 32], u64), NodeError> {
        let signatures: Vec<([u8; 20], Vec<u8>)> = attestations
            .iter()
            .map(|a| (a.signer.0.0, a.signature.to_vec()))
            .collect();
        for peer in info.peers().map_err(|e| NodeError::Task(e.to_string()))? {
            let submit = Request::Submit {
                task_id: info.task_id,
                output: result.output.to_vec(),
                proof_hash: result.proof_hash.0,
                signatures: signatures.clone(),
            };
            match tokio::time::timeout(RUN_WAIT, self.ask(peer, submit)).await {
                Ok(Ok(Response::Submitted { tx_hash, block })) => return Ok((tx_hash, block)),
                other => tracing::info!(%peer, ?other, "member did not submit; next in rank"),
            }
        }
        let receipt = self.submit_attested(info, result, attestations).await?;
        Ok((receipt.tx_hash.0, receipt.block_number))
    }

    /// Submits a result with this node's operator key (a `halo2` task's with its proof, from
    /// this node or a member), counting the outcome in the metrics.
    pub(crate) async fn submit_attested(
        &self,
        info: &TaskInfo,
        result: &TaskResult,
        attestations: Vec<Attestation>,
    ) -> Result<conclave_chain::backend::Receipt, NodeError> {
        let receipt = if info.proven() {
            let proof = self.proof_for(info, result.proof_hash).await?;
            self.contracts
                .submit_proven(&self.operator, result, &proof, attestations)
                .await
        } else {
            self.contracts
                .submit_result(&self.operator, result, attestations)
                .await
        };
        self.metrics.submission(if receipt.is_ok() {
            "published"
        } else {
            "failed"
        });
        Ok(receipt?)
    }

    /// Waits until the task's `ResultPublished` has `confirmations` blocks on top.
    async fn await_confirmation(&self, task: TaskId, from_block: u64) -> Result<(), NodeError> {
        let mut watcher =
            ResultWatcher::new(self.contracts.clone(), from_block, self.confirmations)
                .with_poll_interval(Duration::from_millis(250));
        watcher
            .wait_for_task(U256::from_be_bytes(task), CONFIRM_WAIT)
            .await?
            .map(|_| ())
            .ok_or_else(|| NodeError::Task("the result was not confirmed in time".into()))
    }

    /// Slots every member holds, with the same masked input at each.
    async fn agreed_slots_of(&self, task: TaskId, peers: &[PeerId]) -> Result<Vec<u32>, NodeError> {
        let asks = peers.iter().map(|&peer| async move {
            tokio::time::timeout(
                ANSWER_WAIT,
                self.ask(peer, Request::Digest { task_id: task }),
            )
            .await
            .map_err(|_| NodeError::Task(format!("{peer} did not answer Digest")))?
        });
        let mut counts: BTreeMap<(u32, [u8; 32]), usize> = BTreeMap::new();
        for answer in join_all(asks).await {
            match answer? {
                Response::Digest(list) => {
                    // Each member counts once per slot: one repeating an entry must not make
                    // a slot look held by members who do not hold it.
                    let distinct: std::collections::BTreeSet<(u32, [u8; 32])> =
                        list.into_iter().collect();
                    let mut slots = std::collections::BTreeSet::new();
                    for entry in distinct {
                        if slots.insert(entry.0) {
                            *counts.entry(entry).or_default() += 1;
                        }
                    }
                }
                other => return Err(NodeError::Task(format!("unexpected {other:?}"))),
            }
        }
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n == peers.len())
            .map(|((slot, _), _)| slot)
            .collect())
    }

    /// After a restart: fail what cannot continue and drive again what can (see
    /// [`TaskState::after_restart`]). A member whose preprocessing was cut short has no material
    /// and refuses the task's requests, which fails the task at its coordinator.
    pub(crate) fn resume(&self) -> Result<(), NodeError> {
        for mut record in self.store.tasks()? {
            let next = record.state.after_restart();
            if next != record.state {
                record.state = next;
                self.store.put_task(&record)?;
            }
            if record.state.is_final() {
                continue;
            }
            if let Some(info) = &record.info {
                self.volatile().cache_info(info);
                if record.coordinating {
                    self.spawn_work(self.me().driving(record.task_id));
                }
            }
        }
        Ok(())
    }
}

/// `reason` cut to [`MAX_REASON`] bytes (at a character boundary).
fn bounded(mut reason: String) -> String {
    if reason.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}

/// How long, after a member's run fails, the coordinator still takes the others' answers.
const AFTER_FAILURE: Duration = Duration::from_secs(5);

/// The members' answers to a SPDZ run, in their order. SPDZ computes with every member or not
/// at all: once one fails, members still in the computation only wait out their deadlines, so
/// the answers are taken for [`AFTER_FAILURE`] more and the rest count as failed. Members that
/// finished answer within it: a member that refuses after seeing the output cannot veto the
/// result the others signed.
async fn spdz_answers<F>(
    runs: impl Iterator<Item = F>,
    after_failure: Duration,
) -> Vec<Result<Response, NodeError>>
where
    F: std::future::Future<Output = Result<Response, NodeError>>,
{
    use futures::StreamExt as _;
    let mut pending: futures::stream::FuturesUnordered<_> = runs
        .enumerate()
        .map(|(i, run)| async move { (i, run.await) })
        .collect();
    let mut answers: Vec<Option<Result<Response, NodeError>>> =
        (0..pending.len()).map(|_| None).collect();
    let mut cutoff: Option<tokio::time::Instant> = None;
    loop {
        let next = match cutoff {
            None => pending.next().await,
            Some(at) => match tokio::time::timeout_at(at, pending.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some((i, answer)) = next else { break };
        if answer.is_err() && cutoff.is_none() {
            cutoff = Some(tokio::time::Instant::now() + after_failure);
        }
        answers[i] = Some(answer);
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(NodeError::Task(
                    "still computing when another member failed".into(),
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran() -> Response {
        Response::Ran {
            output: vec![1],
            proof_hash: [0; 32],
            signature: vec![2],
        }
    }

    /// A member that refuses first does not discard the answers of members that finished
    /// after it (no veto once the output is known); a member still computing is given up on.
    #[tokio::test]
    async fn a_failed_member_does_not_discard_the_others_answers() {
        let grace = Duration::from_millis(300);
        let runs: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>> = vec![
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(ran())
            }),
            Box::pin(async { Err(NodeError::Task("refused".into())) }),
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(ran())
            }),
            Box::pin(std::future::pending()),
        ];
        let answers = spdz_answers(runs.into_iter(), grace).await;
        let ok: Vec<bool> = answers.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, true, false]);
    }
}
