//! A committee member's side of a task: answering the coordinator and entry nodes.
//!
//! Preprocessing runs in the background after `Start`; a slot's triple shares are handed out
//! (sealed for the client) only once it has finished, only for a slot ticket the coordinator
//! signed, and only to the ticket's key; masked inputs are accepted only from that key, checked
//! and stored durably before `Accepted` goes back; `Run` computes the task's program by SPDZ,
//! keeps this member's shares of private outputs sealed for the receiver, and signs the result.
//! The owner slot (numbered `max_inputs`) works like a device slot, granted by the project
//! owner's signature instead of the coordinator's.

use std::time::Duration;

use std::collections::BTreeMap;

use alloy::primitives::{Bytes, U256};
use conclave_chain::attest::Attestation;
use conclave_mpc::Fp;
use conclave_mpc::prep::Triple;
use conclave_mpc::share::Share;
use conclave_provers::Prover;
use conclave_provers::spdz::{self, ProgramJob, ProgramMaterial};
use libp2p::PeerId;
use tokio::sync::watch;

use crate::committee::{CommitteeError, check_members, task_of_project, verified_peer};
use crate::envelope;
use crate::identity::{owner_ticket_signer, ticket_is_from};
use crate::messages::SlotTicket;
use crate::messages::{RefusalKind, Request, Response, TaskId, TaskInfo};
use crate::node::{Inner, MAX_PREPARING, PrepStatus, now_ms};
use crate::program::{Body, Program, encode_outputs};
use crate::store::{MaskedInput, ProgramMaterialRecord, TaskRecord, TripleRecord};
use crate::task::TaskState;

/// How long a seat that sees the records waits for a majority of seats to confirm a run's
/// slots (well inside the 30 s a peer waits for an answer), and how often it asks.
const SLOTS_WAIT: Duration = Duration::from_secs(15);
const SLOTS_POLL: Duration = Duration::from_millis(100);
/// How long a `Run` waits for preprocessing to finish.
const PREP_WAIT: Duration = Duration::from_secs(120);
/// How long preprocessing may take in all: a member that dribbles messages cannot hold one of
/// the node's [`MAX_PREPARING`] runs for longer.
const PREP_DEADLINE: Duration = Duration::from_secs(600);

/// Project owners a node remembers (one per project of a task it is a member of).
const MAX_KNOWN_OWNERS: usize = 4096;

/// What a member's sealed triple shares for a slot are bound to.
pub fn shares_context(task: &TaskId, slot: u32, member: &PeerId) -> Vec<u8> {
    [
        b"conclave shares".as_slice(),
        task,
        &slot.to_be_bytes(),
        &member.to_bytes(),
    ]
    .concat()
}

/// What a device's sealed masked input for a slot is bound to.
pub fn input_context(task: &TaskId, slot: u32) -> Vec<u8> {
    [b"conclave input".as_slice(), task, &slot.to_be_bytes()].concat()
}

/// Whether the task still takes inputs here. By this member's clock too: the coordinator asks
/// which inputs arrived [`CLOCK_SLACK_MS`] after the window's end, so an input accepted before
/// it is in the run, and a device whose input comes later is told so instead of being dropped.
fn window_open(record: &crate::store::TaskRecord, info: &TaskInfo) -> bool {
    record.state == TaskState::Committee && now_ms() < info.closes_at_ms
}

fn refuse(reason: impl Into<String>) -> Response {
    Response::refused(RefusalKind::Failed, reason)
}

fn unknown(reason: &str) -> Response {
    Response::refused(RefusalKind::Unknown, reason)
}

fn invalid(reason: impl Into<String>) -> Response {
    Response::refused(RefusalKind::Invalid, reason)
}

fn closed() -> Response {
    Response::refused(RefusalKind::Closed, "the input window is closed")
}

/// Deletes a task's material (and forgets its preprocessing) when dropped.
struct ForgetMaterial<'a> {
    inner: &'a Inner,
    task: TaskId,
}

impl Drop for ForgetMaterial<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.inner.forget_material(&self.task) {
            tracing::error!(error = %e, "could not delete a finished task's material");
        }
    }
}

impl Inner {
    /// Forgets a task's preprocessing and deletes its masks, MAC key share and inputs (the task
    /// ran, or is over).
    pub(crate) fn forget_material(&self, task: &TaskId) -> Result<(), crate::store::StoreError> {
        self.volatile().prep.remove(task);
        self.store.forget_material(task)
    }
}

/// How far a member's clock may be behind the coordinator's when it checks that the input
/// window has closed.
pub const CLOCK_SLACK_MS: u64 = 2_000;
/// How far a `Start`'s close time may be from the program's window counted from its arrival
/// (committee formation before it, clocks apart).
const START_SLACK_MS: u64 = 30_000;

/// The fewest inputs a computation may run over: fewer would let one device learn another's
/// input from the output.
pub const MIN_RUN_INPUTS: usize = 2;

/// A run must cover at least [`MIN_RUN_INPUTS`] inputs and at least 90 % of the inputs this
/// member holds (some may be missing at other members when a device failed midway): a
/// coordinator that picks a small subset (one victim's slot beside its own devices') would
/// otherwise read the victim's input from the output.
fn check_run_covers(slots: usize, stored: usize) -> Result<(), Response> {
    if slots < MIN_RUN_INPUTS || slots * 10 < stored * 9 {
        return Err(refuse(format!(
            "a run must cover at least {MIN_RUN_INPUTS} inputs and 90 % of the {stored} this member holds, not {slots}"
        )));
    }
    Ok(())
}

/// Whether a member may hand out its sealed shares of a task's private outputs: only once the
/// chain holds a result, and only if it is the output this member signed.
fn may_release_private_output(
    published: Option<&[u8]>,
    signed: Option<&[u8]>,
) -> Result<(), Response> {
    match (published, signed) {
        (Some(p), Some(s)) if p == s => Ok(()),
        (None, _) => Err(unknown("the task's result is not published")),
        _ => Err(refuse(
            "the published output is not the one this member computed",
        )),
    }
}

fn fp(bytes: &[u8; 32]) -> Result<Fp, Response> {
    Fp::from_bytes(bytes).map_err(|_| invalid("not a canonical field element"))
}

impl Inner {
    /// Handles a member-side request; `from` is the asking peer.
    pub(crate) async fn member_request(&self, from: PeerId, request: Request) -> Response {
        let result = match request {
            Request::Prepare { .. } => Ok(Response::Prepared {
                key: self.input_key.public(),
            }),
            Request::Start(info) => self.start(from, info).await,
            Request::TripleShares(ticket) => self.triple_shares(ticket).await,
            Request::Input {
                task_id,
                slot,
                sealed,
            } => self.accept_input(task_id, slot, &sealed),
            Request::Digest { task_id } => self.digest(from, task_id),
            Request::RunSlots { task_id } => self.run_slots(from, task_id),
            Request::Proof { task_id } => self.serve_proof(from, task_id),
            Request::Run { task_id, slots } => self.run(from, task_id, slots).await,
            Request::SealedOutput { task_id } => self.sealed_output(task_id).await,
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

    pub(crate) fn member_task(&self, task_id: &TaskId) -> Result<(TaskRecord, TaskInfo), Response> {
        let record = self
            .store
            .task(task_id)
            .map_err(|e| refuse(e.to_string()))?
            .filter(|t| t.member)
            .ok_or_else(|| unknown("not a member of this task"))?;
        let info = record
            .info
            .clone()
            .ok_or_else(|| unknown("task not started"))?;
        Ok((record, info))
    }

    async fn start(&self, from: PeerId, info: TaskInfo) -> Result<Response, Response> {
        if info.coordinator != from.to_bytes() {
            return Err(refuse("only the task's coordinator starts it"));
        }
        let me = self.network.peer_id().to_bytes();
        if !info.committee.iter().any(|m| m.peer == me) {
            return Err(refuse("not in this committee"));
        }
        let peers = info.peers().map_err(|e| refuse(e.to_string()))?;
        let record_shape = if info.sealed_records() {
            info.input_bits == 0
                && info.owner_bits == 0
                && info.record_bytes <= crate::manifest::MAX_WASM_RECORD
        } else {
            (1..=crate::program::MAX_RECORD_BITS).contains(&info.input_bits)
                && info.owner_bits <= crate::program::MAX_RECORD_BITS
                && u64::from(info.max_inputs) * u64::from(info.input_bits)
                    <= crate::program::MAX_TASK_MATERIAL
        };
        if info.max_inputs == 0 || info.max_inputs > crate::program::MAX_INPUTS || !record_shape {
            return Err(invalid("bad input count or width"));
        }
        let existing = self
            .store
            .task(&info.task_id)
            .map_err(|e| refuse(e.to_string()))?;
        if let Some(known) = existing.as_ref().and_then(|r| r.info.as_ref())
            && *known != info
        {
            return Err(refuse("this task was started with another committee"));
        }
        // The task's program, checked against the chain's hash whether or not the Start is
        // known: it says how much preprocessing the run needs.
        let program = self
            .check_start_against_chain(from, &info, existing.is_none())
            .await?;
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
            dissent: Vec::new(),
        });
        let stored =
            |r: Result<bool, crate::store::StoreError>| r.map_err(|e| refuse(e.to_string()));
        // A task that ran here never preprocesses again: its material is gone for good.
        if stored(self.store.has_run(&info.task_id))? {
            return Err(refuse("this task already ran here"));
        }
        // A prover that sees the inputs needs no preprocessing: only its module (fetched now, so
        // that a seat without it refuses the task before devices send anything) or its keys.
        if info.sealed_records() {
            // Started already: the record may have moved on (a run), and must not go back.
            if record.info.is_some() {
                return Ok(Response::Started);
            }
            match &program.body {
                Body::Wasm(spec) => match spec.byop() {
                    Some(byop) => self.byop_ready(spec, byop, from).await.map_err(refuse)?,
                    None => {
                        self.module(spec, crate::programs::Fetch::MeshOrUrl, Some(from))
                            .await
                            .map_err(|e| refuse(format!("the task's module: {e}")))?;
                    }
                },
                Body::Tally(_) => {
                    if !self.halo2.configured() {
                        return Err(refuse(
                            "this node has no KZG parameters for halo2 tasks ([provers] halo2_srs)",
                        ));
                    }
                    // The keys take seconds: made while devices send their records.
                    let (me, program) = (self.me(), program.clone());
                    self.spawn_work(async move {
                        if let Err(e) = me.halo2_prover(&program).await {
                            tracing::warn!(error = %e, "no halo2 keys for a task's program");
                        }
                    });
                }
            }
            record.member = true;
            record.info = Some(info.clone());
            self.store
                .put_task(&record)
                .map_err(|e| refuse(e.to_string()))?;
            tracing::info!(task = %hex::encode(info.task_id), project = info.project_id, members = info.committee.len(), coordinator = %from, "seated in a task's committee");
            return Ok(Response::Started);
        }
        if stored(self.store.alpha(&info.task_id).map(|a| a.is_some()))? {
            return Ok(Response::Started);
        }
        // Claimed under one lock, so two Starts at once spawn one preprocessing; and each run is
        // a MASCOT session of real work, so a node takes on a few at once.
        let status = {
            let mut v = self.volatile();
            if v.prep.contains_key(&info.task_id) {
                return Ok(Response::Started);
            }
            if v.preparing() >= MAX_PREPARING {
                return Err(Response::refused(
                    RefusalKind::Busy,
                    "preprocessing for too many tasks already",
                ));
            }
            let (tx, rx) = watch::channel(PrepStatus::Running);
            v.prep.insert(info.task_id, rx);
            tx
        };
        record.member = true;
        record.info = Some(info.clone());
        if let Err(e) = self.store.put_task(&record) {
            self.volatile().prep.remove(&info.task_id);
            return Err(refuse(e.to_string()));
        }
        tracing::info!(task = %hex::encode(info.task_id), project = info.project_id, members = info.committee.len(), coordinator = %from, "seated in a task's committee; preprocessing");
        self.spawn_preprocessing(status, info.task_id, peers, &program);
        Ok(Response::Started)
    }

    /// A `Start` must describe a task opened on chain, by the operator whose node sends it, for
    /// the project it names, with a committee of seat holders of that task's draw (each with the
    /// peer id and input key of its valid registry record) holding at least the task's threshold
    /// of seats. Anything else is a forged or hijacked task.
    async fn check_start_against_chain(
        &self,
        from: PeerId,
        info: &TaskInfo,
        first: bool,
    ) -> Result<std::sync::Arc<Program>, Response> {
        // The cheap checks first (a few reads), so that a stranger's Start costs no more: the
        // committee check reads every registered operator's units.
        let task_id = U256::from_be_bytes(info.task_id);
        let chain =
            |e: conclave_chain::ContractError| refuse(format!("checking the task on chain: {e}"));
        let task = task_of_project(&self.contracts, task_id, info.project_id)
            .await
            .map_err(|e| match e {
                CommitteeError::UnknownTask => unknown("no such task on chain"),
                other => refuse(other.to_string()),
            })?;
        let opener = verified_peer(&self.contracts, task.opener)
            .await
            .map_err(chain)?;
        if opener != Some(from) {
            return Err(refuse("only the node of the task's opener coordinates it"));
        }
        let now = self
            .contracts
            .chain()
            .block_number()
            .await
            .map_err(|e| refuse(format!("reading the chain: {e}")))?;
        if task.published || now > task.deadline {
            return Err(refuse("the task is over"));
        }
        // What this member computes (a private average of `max_inputs` inputs) must be the program
        // the task was opened with.
        let project = self
            .contracts
            .project(task.projectId)
            .await
            .map_err(chain)?;
        let program = self
            .program(
                task.programHash,
                &project.programUri,
                crate::programs::Fetch::MeshOrUrl,
                Some(from),
            )
            .await
            .map_err(|e| refuse(format!("the task's program: {e}")))?;
        let shape = program
            .task_shape(task.proverKind)
            .map_err(|e| refuse(format!("the task's program: {e}")))?;
        if info.prover_kind != task.proverKind
            || program.hash.0 != info.program_hash
            || program.max_inputs != info.max_inputs
            || shape.input_bits != info.input_bits
            || shape.owner_bits != info.owner_bits
            || shape.record_bytes != info.record_bytes
        {
            return Err(refuse("the Start does not match the task's program"));
        }
        if !first {
            return Ok(program);
        }
        // The window is the program's, from about now: a coordinator that announced an early
        // close could run over the few inputs of its choice (see `run`).
        let window_end = now_ms() + program.window_secs * 1000;
        if info.closes_at_ms + START_SLACK_MS < window_end
            || info.closes_at_ms > window_end + START_SLACK_MS
        {
            return Err(refuse("the Start's input window is not the program's"));
        }
        check_members(&self.contracts, task_id, &task, &info.committee)
            .await
            .map_err(|e| refuse(e.to_string()))?;
        Ok(program)
    }

    /// Runs MASCOT for the task in the background and stores the material: a triple for each
    /// bit of each slot's record (the owner slot's after the devices'), and the triples and
    /// random bits the program consumes with every slot filled; reports through `tx` (whose
    /// receiver is in the `prep` map).
    pub(crate) fn spawn_preprocessing(
        &self,
        tx: watch::Sender<PrepStatus>,
        task: TaskId,
        committee: Vec<PeerId>,
        program: &Program,
    ) {
        let inner = self.me();
        let (slots, bits) = (program.max_inputs as usize, program.record_bits as usize);
        let owner_bits = program.owner_bits as usize;
        let (program_triples, program_bits) = (
            program.program_triples as usize,
            program.program_bits as usize,
        );
        self.spawn_work(async move {
            let started = std::time::Instant::now();
            let (session, _) = spdz::session_ids(&task, 0);
            let outcome = tokio::time::timeout(
                PREP_DEADLINE,
                spdz::prepare(
                    inner.network.mpc(),
                    session,
                    &committee,
                    slots * bits + owner_bits,
                    program_triples,
                    program_bits,
                ),
            )
            .await;
            let stored = match outcome {
                Ok(outcome) => outcome.map_err(|e| e.to_string()),
                Err(_) => Err(format!("not done within {PREP_DEADLINE:?}")),
            };
            let stored = stored.and_then(|material| {
                let record = |t: &Triple| -> TripleRecord {
                    [t.a, t.b, t.c]
                        .map(|s| [s.value.to_bytes(), s.mac.to_bytes()])
                        .concat()
                        .try_into()
                        .expect("three shares of two elements")
                };
                let mut records: Vec<TripleRecord> = material.triples.iter().map(record).collect();
                let owner = records.split_off(slots * bits);
                let mut per_slot: Vec<Vec<TripleRecord>> =
                    records.chunks(bits).map(<[TripleRecord]>::to_vec).collect();
                if !owner.is_empty() {
                    per_slot.push(owner);
                }
                let program = ProgramMaterialRecord {
                    triples: material.program.triples.iter().map(record).collect(),
                    bits: material
                        .program
                        .bits
                        .iter()
                        .map(|b| [b.value.to_bytes(), b.mac.to_bytes()])
                        .collect(),
                };
                inner
                    .store
                    .put_material(&task, &material.alpha.to_bytes(), &per_slot, &program)
                    .map_err(|e| e.to_string())
            });
            let status = match stored {
                Ok(()) => {
                    inner
                        .metrics
                        .observe_phase("preprocessing", started.elapsed());
                    tracing::info!(task = %hex::encode(task), elapsed = ?started.elapsed(), "preprocessing done");
                    PrepStatus::Ready
                }
                Err(reason) => PrepStatus::Failed(reason),
            };
            if let PrepStatus::Failed(reason) = &status {
                tracing::warn!(task = %hex::encode(task), %reason, "preprocessing failed");
            }
            let _ = tx.send(status);
            // Keep the channel open for late readers until the node drops the task.
            tx.closed().await;
        });
    }

    /// The task's MAC key share once its material is complete, waiting up to `patience` for
    /// preprocessing (then refusing as busy: ask again).
    async fn ready(&self, task: &TaskId, patience: Duration) -> Result<[u8; 32], Response> {
        if let Some(alpha) = self.store.alpha(task).map_err(|e| refuse(e.to_string()))? {
            return Ok(alpha);
        }
        let rx = self.volatile().prep.get(task).cloned();
        let Some(mut rx) = rx else {
            return Err(refuse("no preprocessing for this task"));
        };
        let wait = rx.wait_for(|s| !matches!(s, PrepStatus::Running));
        match tokio::time::timeout(patience, wait).await {
            Ok(Ok(status)) => {
                if let PrepStatus::Failed(reason) = &*status {
                    return Err(refuse(format!("preprocessing failed: {reason}")));
                }
            }
            Ok(Err(_)) => return Err(refuse("preprocessing stopped")),
            Err(_) => {
                return Err(Response::refused(
                    RefusalKind::Busy,
                    "preprocessing is not finished; ask again",
                ));
            }
        }
        self.store
            .alpha(task)
            .map_err(|e| refuse(e.to_string()))?
            .ok_or_else(|| refuse("material missing"))
    }

    /// The program a task runs, by the hash its chain record pins.
    pub(crate) async fn task_program(
        &self,
        task: &TaskId,
    ) -> Result<std::sync::Arc<Program>, Response> {
        let snapshot = self
            .contracts
            .task(U256::from_be_bytes(*task))
            .await
            .map_err(|e| refuse(format!("reading the task on chain: {e}")))?;
        self.program(
            snapshot.programHash,
            "",
            crate::programs::Fetch::MeshOrUrl,
            None,
        )
        .await
        .map_err(|e| refuse(format!("the task's program: {e}")))
    }

    fn triples(&self, task: &TaskId, slot: u32) -> Result<Vec<TripleRecord>, Response> {
        self.store
            .triples(task, slot)
            .map_err(|e| refuse(e.to_string()))?
            .ok_or_else(|| invalid("no such slot"))
    }

    async fn triple_shares(&self, ticket: SlotTicket) -> Result<Response, Response> {
        let task = ticket.task_id;
        let (record, info) = self.member_task(&task)?;
        if !window_open(&record, &info) {
            return Err(closed());
        }
        if info.slot_bits(ticket.slot).is_none() {
            return Err(invalid("no such slot"));
        }
        if info.owner_slot() == Some(ticket.slot) {
            // The owner's parameters come from the project owner alone: its chain key signs
            // the key the slot goes to.
            self.check_owner_ticket(&ticket, &info).await?;
        } else {
            // Only the coordinator grants device slots, each to one device key: without its
            // ticket anyone could take (or squat) a slot before the device it was granted to.
            let coordinator =
                PeerId::from_bytes(&info.coordinator).map_err(|_| refuse("bad coordinator"))?;
            if !ticket_is_from(&ticket, &coordinator) {
                return Err(invalid("the slot ticket is not the coordinator's"));
            }
        }
        // A task whose devices seal their records whole has no masks: the (empty) envelope only
        // binds the slot to the ticket's key, from which alone its record is then accepted.
        let plaintext: Vec<u8> = if info.sealed_records() {
            Vec::new()
        } else {
            // No waiting here: a request that waited would hold one of the node's request
            // permits for as long as preprocessing takes, and anyone holding a ticket could
            // send many.
            self.ready(&task, Duration::ZERO).await?;
            // a, b and c values of each bit's triple (not the MACs), sealed by this member's
            // input key (registered on chain): a relaying entry node cannot swap in masks of
            // its own. Sealed before the slot is bound, so that a key it cannot be sealed for
            // burns nothing.
            self.triples(&task, ticket.slot)?
                .iter()
                .flat_map(|t| [t[0], t[2], t[4]].concat())
                .collect()
        };
        let context = shares_context(&task, ticket.slot, &self.network.peer_id());
        let sealed = envelope::seal_from(&self.input_key, &ticket.client_key, &context, &plaintext)
            .map_err(|e| invalid(e.to_string()))?;
        // A slot's mask shares go to one device key, once: anyone else who got them (a member
        // asking every other member, say) would read that slot's input as y + a.
        if !self
            .store
            .release_slot_to(&task, ticket.slot, &ticket.client_key)
            .map_err(|e| refuse(e.to_string()))?
        {
            return Err(refuse("this slot's shares went to another key"));
        }
        Ok(Response::Shares(sealed))
    }

    /// An owner-slot ticket must be signed by the owner of the task's project, as the chain
    /// records it.
    async fn check_owner_ticket(
        &self,
        ticket: &SlotTicket,
        info: &TaskInfo,
    ) -> Result<(), Response> {
        let signer = owner_ticket_signer(ticket, self.chain_id, self.router)
            .ok_or_else(|| invalid("the owner ticket's signature is malformed"))?;
        let known = self
            .volatile()
            .project_owners
            .get(&info.project_id)
            .copied();
        let owner = match known {
            Some(owner) => owner,
            None => {
                let owner = self
                    .contracts
                    .project(U256::from(info.project_id))
                    .await
                    .map_err(|e| refuse(format!("reading the project on chain: {e}")))?
                    .owner;
                crate::node::insert_capped(
                    &mut self.volatile().project_owners,
                    MAX_KNOWN_OWNERS,
                    info.project_id,
                    owner,
                );
                owner
            }
        };
        if signer != owner {
            return Err(invalid(
                "the owner slot's ticket is not signed by the project owner",
            ));
        }
        Ok(())
    }

    fn accept_input(
        &self,
        task: TaskId,
        slot: u32,
        sealed: &envelope::Sealed,
    ) -> Result<Response, Response> {
        let (record, info) = self.member_task(&task)?;
        let open = window_open(&record, &info);
        let Some(width) = info.slot_bits(slot) else {
            return Err(invalid("no such slot"));
        };
        // The input must come from the key the slot's shares went to (a key the coordinator's
        // ticket named): anyone else's envelope does not open.
        let device = self
            .store
            .released_to(&task, slot)
            .map_err(|e| refuse(e.to_string()))?
            .ok_or_else(|| invalid("this slot was not granted here"))?;
        let plain = envelope::open_from(
            &self.input_key,
            &device,
            &input_context(&task, slot),
            sealed,
        )
        .map_err(|e| invalid(e.to_string()))?;
        let y: Vec<[u8; 32]> = if info.sealed_records() {
            if crate::manifest::unpad_record(&plain, info.record_bytes).is_none() {
                return Err(invalid(format!(
                    "a record here is salted and padded to {} bytes",
                    info.record_bytes
                )));
            }
            // A halo2 record is exactly the program's bits, so every one of its seats reads it.
            if info.proven()
                && crate::manifest::unpad_record(&plain, info.record_bytes)
                    .is_some_and(|r| r.len() != info.record_bytes as usize)
            {
                return Err(invalid(format!(
                    "a record here is {} bytes",
                    info.record_bytes
                )));
            }
            crate::manifest::record_words(&plain)
        } else {
            if plain.len() != 32 * width as usize {
                return Err(invalid(format!(
                    "a masked input here is {width} field elements"
                )));
            }
            let y: Vec<[u8; 32]> = plain
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32-byte chunks"))
                .collect();
            for element in &y {
                fp(element)?;
            }
            y
        };
        if !open {
            // A device retrying an input already held here is told it is in (it will run);
            // anything else is too late.
            let held = self
                .store
                .inputs(&task)
                .map_err(|e| refuse(e.to_string()))?
                .into_iter()
                .any(|(s, held)| s == slot && held == y);
            return if held {
                Ok(Response::Accepted)
            } else {
                Err(closed())
            };
        }
        let existing = self
            .store
            .put_input(&task, slot, &y)
            .map_err(|e| refuse(e.to_string()))?;
        if existing.is_some_and(|e| e != y) {
            return Err(invalid("this slot already holds another input"));
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
        let result = info.result(&output, proof_hash);
        let attestations: Vec<Attestation> = signatures
            .into_iter()
            .map(|(signer, signature)| Attestation {
                signer: alloy::primitives::Address::from(signer),
                signature: Bytes::from(signature),
            })
            .filter(|a| result.verify(a, self.chain_id, self.router).is_ok())
            .collect();
        let receipt = self
            .submit_attested(&info, &result, attestations)
            .await
            .map_err(|e| refuse(format!("submission failed: {e}")))?;
        Ok(Response::Submitted {
            tx_hash: receipt.tx_hash.0,
            block: receipt.block_number,
        })
    }

    /// This member's shares of a task's private-output masks, sealed for the program's
    /// receiver, once the output this member signed is published on chain: a run that never
    /// publishes (short of signatures, or held back by a coordinator who re-runs the task over
    /// the same devices' inputs) must not give the receiver its values. Anyone may ask; only the
    /// receiver's key opens the envelope.
    async fn sealed_output(&self, task: TaskId) -> Result<Response, Response> {
        let (record, _) = self.member_task(&task)?;
        let sealed = self
            .store
            .sealed_output(&task)
            .map_err(|e| refuse(e.to_string()))?
            .ok_or_else(|| unknown("no private output of this task here"))?;
        let published = self
            .contracts
            .result(U256::from_be_bytes(task))
            .await
            .map_err(|e| refuse(format!("reading the result on chain: {e}")))?;
        may_release_private_output(
            published.as_ref().map(|p| p.output.as_ref()),
            record.output.as_deref(),
        )?;
        Ok(Response::Shares(sealed))
    }

    /// Which slots this member holds, with a hash of each masked input: for the coordinator
    /// only, which closes the window over the slots every member agrees on.
    fn digest(&self, from: PeerId, task: TaskId) -> Result<Response, Response> {
        let (record, info) = self.member_task(&task)?;
        if info.coordinator != from.to_bytes() {
            return Err(refuse("only the coordinator asks which inputs arrived"));
        }
        self.still_able(&task, &record, &info)?;
        let inputs = self
            .store
            .inputs(&task)
            .map_err(|e| refuse(e.to_string()))?;
        Ok(Response::Digest(
            inputs
                .into_iter()
                .map(|(slot, y)| (slot, *blake3::hash(&y.concat()).as_bytes()))
                .collect(),
        ))
    }

    /// Refuses as [`RefusalKind::Aborted`] a task this member can no longer compute: its
    /// preprocessing failed, or (after a restart) it has neither material nor preprocessing.
    /// Saying so at once lets the coordinator re-run the task instead of waiting out its window.
    fn still_able(
        &self,
        task: &TaskId,
        record: &crate::store::TaskRecord,
        info: &TaskInfo,
    ) -> Result<(), Response> {
        if info.sealed_records() || record.state != TaskState::Committee {
            return Ok(());
        }
        let aborted = |reason: String| Response::refused(RefusalKind::Aborted, reason);
        match self.volatile().prep.get(task) {
            Some(rx) => match &*rx.borrow() {
                PrepStatus::Failed(reason) => {
                    Err(aborted(format!("preprocessing failed: {reason}")))
                }
                _ => Ok(()),
            },
            None => match self.store.alpha(task) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(aborted("no preprocessing for this task here".into())),
                Err(e) => Err(refuse(e.to_string())),
            },
        }
    }

    async fn run(&self, from: PeerId, task: TaskId, slots: Vec<u32>) -> Result<Response, Response> {
        let (mut record, info) = self.member_task(&task)?;
        if info.coordinator != from.to_bytes() {
            return Err(refuse("only the coordinator starts the computation"));
        }
        if slots.is_empty() || slots.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid("slots must be ascending and not empty"));
        }
        // The run's shape first, before waiting for preprocessing: it does not change while
        // waiting (held inputs stay held), and a malformed run is refused at once.
        let owner_slot = info.owner_slot();
        let (device_slots, owner_in_run) = match (owner_slot, slots.last()) {
            (Some(o), Some(&last)) if last == o => (&slots[..slots.len() - 1], true),
            _ => (&slots[..], false),
        };
        if owner_slot.is_some() && !owner_in_run {
            return Err(refuse(
                "the program reads the owner's parameters; a run must include the owner slot",
            ));
        }
        // Every slot named must be held here, checked before the run is claimed: a run that
        // failed on a missing slot would still spend the task's one run.
        let holds = self
            .store
            .inputs(&task)
            .map_err(|e| refuse(e.to_string()))?;
        if let Some(missing) = slots.iter().find(|s| !holds.iter().any(|(h, _)| h == *s)) {
            return Err(refuse(format!("no input for slot {missing} here")));
        }
        let alpha = if info.sealed_records() {
            None
        } else {
            let alpha = self.ready(&task, PREP_WAIT).await?;
            if self
                .store
                .is_poisoned(&task)
                .map_err(|e| refuse(e.to_string()))?
            {
                return Err(refuse(
                    "the task's MAC key is poisoned: a check under it failed or was abandoned",
                ));
            }
            Some(alpha)
        };
        // What is held after the wait: inputs may have arrived during it.
        let held = self
            .store
            .inputs(&task)
            .map_err(|e| refuse(e.to_string()))?;
        let stored_count = held.iter().filter(|(s, _)| Some(*s) != owner_slot).count();
        let owner_held = owner_slot.is_some_and(|o| held.iter().any(|(s, _)| *s == o));
        check_run_covers(device_slots.len(), stored_count)?;
        // Inputs close when the window ends or every slot is in: a coordinator closing early over
        // the few inputs it chose (its own devices' and one victim's) would read the victim's.
        let all_in =
            stored_count >= info.max_inputs as usize && (owner_slot.is_none() || owner_held);
        if now_ms() + CLOCK_SLACK_MS < info.closes_at_ms && !all_in {
            return Err(refuse("the input window is still open"));
        }
        // One run per task: a second run under the same MAC key could pair a check whose σ was
        // revealed with a forged one (each run has its own key state), or open another subset.
        if !self
            .store
            .claim_run(&task)
            .map_err(|e| refuse(e.to_string()))?
        {
            return Err(refuse("this task already ran here; a task runs once"));
        }
        // Whatever comes of the run, the task's masks, key share and y values are not needed
        // again (a task runs once): they go when this function returns.
        let _forget = ForgetMaterial { inner: self, task };
        if info.sealed_records() {
            crate::node::insert_capped(
                &mut self.volatile().run_slots,
                crate::node::MAX_CACHED_INFOS,
                task,
                slots.clone(),
            );
        }
        // Inputs close here only once a run was accepted: a refused one changes nothing.
        if record.state == TaskState::Committee {
            record.state = TaskState::Running;
            self.store
                .put_task(&record)
                .map_err(|e| refuse(e.to_string()))?;
        }
        let stored: BTreeMap<u32, MaskedInput> = held.into_iter().collect();
        tracing::info!(task = %hex::encode(task), inputs = slots.len(), "inputs closed; computing");
        let started = std::time::Instant::now();
        let (prover, ran) = match alpha {
            Some(alpha) => {
                let owner = owner_slot.filter(|_| owner_in_run);
                let ran = self
                    .run_spdz(&info, alpha, device_slots, owner, &stored)
                    .await;
                ("spdz", ran)
            }
            None if info.proven() => {
                let program = self.task_program(&task).await?;
                let ran = self.run_proven(&info, device_slots, &stored, program).await;
                ("halo2", ran)
            }
            None => (
                info.prover_name(),
                self.run_module(&info, device_slots, &stored).await,
            ),
        };
        self.metrics.observe_run(
            prover,
            ran.as_ref().map(|_| started.elapsed()).map_err(|_| ()),
        );
        let (output, proof_hash) = match ran {
            Ok(ran) => ran,
            Err(refused) => {
                tracing::warn!(task = %hex::encode(task), answer = ?refused, "computing failed");
                return Err(refused);
            }
        };
        let result = info.result(&output, proof_hash);
        let att = result
            .sign(&self.operator, self.chain_id, self.router)
            .map_err(|e| refuse(e.to_string()))?;
        tracing::info!(task = %hex::encode(task), elapsed = ?started.elapsed(), "computed; result signed");
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

    /// Computes the task's Tally program over `device_slots` (and the owner slot) by SPDZ and
    /// keeps this member's shares of private outputs sealed for the receiver: the output
    /// and the proof hash to sign.
    async fn run_spdz(
        &self,
        info: &TaskInfo,
        alpha: [u8; 32],
        device_slots: &[u32],
        owner_slot: Option<u32>,
        stored: &BTreeMap<u32, MaskedInput>,
    ) -> Result<(Vec<u8>, [u8; 32]), Response> {
        let task = info.task_id;
        let mut digest = blake3::Hasher::new_derive_key("conclave spdz proof v1");
        digest.update(&task);
        for m in &info.committee {
            digest.update(&m.operator);
        }
        let mut slot_input = |slot: u32| -> Result<spdz::SlotInput, Response> {
            let y = stored
                .get(&slot)
                .ok_or_else(|| refuse(format!("no input for slot {slot}")))?;
            let triples = self.triples(&task, slot)?;
            if triples.len() != y.len() {
                return Err(refuse(format!(
                    "slot {slot}'s input and triples differ in width"
                )));
            }
            digest.update(&slot.to_be_bytes());
            let mut input = spdz::SlotInput {
                triples: Vec::with_capacity(triples.len()),
                masked_bits: Vec::with_capacity(y.len()),
            };
            for (t, y) in triples.iter().zip(y) {
                let share = |value: usize| -> Result<Share, Response> {
                    Ok(Share {
                        value: fp(&t[value])?,
                        mac: fp(&t[value + 1])?,
                    })
                };
                input.triples.push(Triple {
                    a: share(0)?,
                    b: share(2)?,
                    c: share(4)?,
                });
                digest.update(y);
                input.masked_bits.push(fp(y)?);
            }
            Ok(input)
        };
        let inputs = device_slots
            .iter()
            .map(|&slot| slot_input(slot))
            .collect::<Result<Vec<_>, _>>()?;
        let owner = match owner_slot {
            Some(slot) => Some(slot_input(slot)?),
            None => None,
        };
        let program = self.task_program(&task).await?;
        let Body::Tally(parsed) = &program.body else {
            return Err(refuse("the task's program is not a Tally program"));
        };
        let material = self
            .store
            .program_material(&task)
            .map_err(|e| refuse(e.to_string()))?
            .ok_or_else(|| refuse("the program's material is missing"))?;
        let share = |b: &[u8; 32], m: &[u8; 32]| -> Result<Share, Response> {
            Ok(Share {
                value: fp(b)?,
                mac: fp(m)?,
            })
        };
        let mut program_material = ProgramMaterial::default();
        for t in &material.triples {
            program_material.triples.push(Triple {
                a: share(&t[0], &t[1])?,
                b: share(&t[2], &t[3])?,
                c: share(&t[4], &t[5])?,
            });
        }
        for b in &material.bits {
            program_material.bits.push(share(&b[0], &b[1])?);
        }
        let job = ProgramJob {
            sessions: spdz::session_ids(&task, 0).1,
            committee: info.peers().map_err(|e| refuse(e.to_string()))?,
            alpha: fp(&alpha)?,
            program: parsed.clone(),
            bits: info.input_bits,
            inputs,
            owner,
            material: program_material,
            min_counted: MIN_RUN_INPUTS,
            proof_context: *digest.finalize().as_bytes(),
        };
        let started = std::time::Instant::now();
        let proven = self.prover.prove(job).await.map_err(|e| {
            if matches!(e, spdz::SpdzError::KeyPoisoned(_))
                && let Err(store) = self.store.poison_key(&task)
            {
                tracing::error!(%store, "could not persist a poisoned MAC key");
            }
            refuse(format!("computation failed: {e}"))
        })?;
        self.metrics.observe_phase("online", started.elapsed());
        if proven.excluded > 0 {
            tracing::warn!(
                task = %hex::encode(task),
                excluded = proven.excluded,
                "ill-formed inputs were left out"
            );
        }
        // The receiver's shares are kept before the result is signed: once it can publish, the
        // receiver must be able to read it.
        if let Some(receiver) = program
            .receiver
            .filter(|_| !proven.receiver_shares.is_empty())
        {
            let party = info
                .committee
                .iter()
                .position(|m| m.peer == self.network.peer_id().to_bytes())
                .ok_or_else(|| refuse("not in this committee"))?;
            let sealed = crate::receiver::seal_shares(
                &self.input_key,
                &receiver,
                &task,
                party,
                &proven.receiver_shares,
            )
            .map_err(|e| refuse(format!("sealing the receiver's shares: {e}")))?;
            self.store
                .put_sealed_output(&task, &sealed)
                .map_err(|e| refuse(e.to_string()))?;
        }
        Ok((encode_outputs(&proven.outputs), proven.proof_hash))
    }

    /// The slots this member was asked to run `task` over, for another member of the task.
    fn run_slots(&self, from: PeerId, task: TaskId) -> Result<Response, Response> {
        let (_, info) = self.member_task(&task)?;
        if !info.committee.iter().any(|m| m.peer == from.to_bytes()) {
            return Err(refuse("only the task's members compare its run"));
        }
        let slots = self.volatile().run_slots.get(&task).cloned();
        slots
            .map(Response::RunSlots)
            .ok_or_else(|| unknown("not asked to run this task yet"))
    }

    /// Waits until members holding more than half of the task's seats, and at least its
    /// threshold (this member's included), say the coordinator asked them to run over `slots`.
    /// Seats that see the records answer the coordinator with their output: a coordinator that
    /// asked some to run over every slot and others over all but one would read that one
    /// device's record from the difference. Honest seats confirm one list each, so no second
    /// list can gather a majority; a member answering with another list is only logged (it
    /// cannot stop the run alone).
    pub(crate) async fn confirm_slots(
        &self,
        info: &TaskInfo,
        slots: &[u32],
    ) -> Result<(), Response> {
        let task = info.task_id;
        let id = U256::from_be_bytes(task);
        let chain = |e: conclave_chain::ContractError| refuse(format!("reading the task: {e}"));
        let seats = crate::committee::seats(&self.contracts, id)
            .await
            .map_err(chain)?
            .ok_or_else(|| refuse("the task's committee is not drawn"))?;
        let total = seats.total();
        let threshold = u32::from(self.contracts.task(id).await.map_err(chain)?.threshold);
        let needed = threshold.max(total / 2 + 1);
        let me = self.network.peer_id().to_bytes();
        let mut confirmed = seats.of(&self.operator.address().0.0);
        let mut pending: Vec<&crate::messages::Member> =
            info.committee.iter().filter(|m| m.peer != me).collect();
        let deadline = std::time::Instant::now() + SLOTS_WAIT;
        while confirmed < needed {
            if std::time::Instant::now() >= deadline {
                return Err(refuse(format!(
                    "members holding {needed} of {total} seats did not confirm the run's slots"
                )));
            }
            let asks = pending.iter().map(|m| async move {
                let peer = PeerId::from_bytes(&m.peer).ok()?;
                let ask = self.ask(peer, Request::RunSlots { task_id: task });
                match tokio::time::timeout(SLOTS_POLL * 10, ask).await {
                    Ok(Ok(Response::RunSlots(theirs))) => Some(theirs == slots),
                    _ => None,
                }
            });
            let answers = futures::future::join_all(asks).await;
            let mut still = Vec::new();
            for (member, answer) in pending.into_iter().zip(answers) {
                match answer {
                    Some(true) => confirmed += seats.of(&member.operator),
                    Some(false) => tracing::warn!(
                        task = %hex::encode(task),
                        operator = %alloy::primitives::Address::from(member.operator),
                        "another member was asked to run over other slots"
                    ),
                    None => still.push(member),
                }
            }
            pending = still;
            if confirmed < needed {
                tokio::time::sleep(SLOTS_POLL).await;
            }
        }
        Ok(())
    }

    /// Runs the task's module over the records of `device_slots`, in slot order, on a
    /// blocking thread: its output, and a proof hash committing to the module and the slots run
    /// over (not to the records: the hash is public, and a low-entropy record would be read
    /// back from it; members agreed on each slot's record before the run). A `byop` manifest's
    /// code goes to this seat's prover instead ([`Inner::run_byop`]).
    async fn run_module(
        &self,
        info: &TaskInfo,
        device_slots: &[u32],
        stored: &BTreeMap<u32, MaskedInput>,
    ) -> Result<(Vec<u8>, [u8; 32]), Response> {
        let task = info.task_id;
        let program = self.task_program(&task).await?;
        let Body::Wasm(spec) = &program.body else {
            return Err(refuse("the task's program is not a wasm manifest"));
        };
        if let Some(byop) = spec.byop() {
            return self.run_byop(info, device_slots, stored, spec, byop).await;
        }
        let module = self
            .module(spec, crate::programs::Fetch::MeshOrUrl, None)
            .await
            .map_err(|e| refuse(format!("the task's module: {e}")))?;
        let (records, commitment) = self
            .agreed_records(info, device_slots, stored, spec, b"conclave wasm run v1")
            .await?;
        let input = conclave_provers::wasm::TaskInput {
            project_id: info.project_id,
            task_id: task,
            chain_id: self.chain_id,
            records,
        };
        let engine = self.wasm.clone();
        let ran = tokio::task::spawn_blocking(move || engine.run(&module, input))
            .await
            .map_err(|e| refuse(format!("the module's run: {e}")))?
            .map_err(|e| refuse(format!("the module failed: {e}")))?;
        tracing::info!(
            task = %hex::encode(task),
            fuel = ran.fuel_used,
            output_bytes = ran.output.len(),
            log_lines = ran.logs.len(),
            "module ran"
        );
        Ok((ran.output, commitment))
    }

    /// The records of `device_slots` in slot order, once the seats confirmed the slot list,
    /// and the run's proof hash: `domain`, the code's hash and the slots.
    pub(crate) async fn agreed_records(
        &self,
        info: &TaskInfo,
        device_slots: &[u32],
        stored: &BTreeMap<u32, MaskedInput>,
        spec: &crate::manifest::WasmSpec,
        domain: &[u8],
    ) -> Result<(Vec<Vec<u8>>, [u8; 32]), Response> {
        self.confirm_slots(info, device_slots).await?;
        let mut commitment = alloy::primitives::Keccak256::new();
        commitment.update(domain);
        commitment.update(spec.module);
        let mut records = Vec::with_capacity(device_slots.len());
        for slot in device_slots {
            let record = stored
                .get(slot)
                .and_then(|words| crate::manifest::words_record(words))
                .and_then(|padded| crate::manifest::unpad_record(&padded, info.record_bytes))
                .ok_or_else(|| refuse(format!("no record for slot {slot}")))?;
            commitment.update(slot.to_be_bytes());
            records.push(record);
        }
        Ok((records, commitment.finalize().0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that never published (or published something else) gives the receiver nothing.
    #[test]
    fn private_output_shares_go_out_only_for_the_published_output() {
        let ours: &[u8] = b"output we signed";
        assert!(may_release_private_output(Some(ours), Some(ours)).is_ok());
        assert!(may_release_private_output(None, Some(ours)).is_err());
        assert!(may_release_private_output(Some(b"another output"), Some(ours)).is_err());
        assert!(may_release_private_output(Some(ours), None).is_err());
    }
}
