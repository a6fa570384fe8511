//! `halo2` tasks at a member. Records reach every seat sealed whole (like `wasm`); one seat, drawn
//! from the task's seed ([`proving_seat`]), proves the program over them, and every other seat recomputes the statement (the
//! task binding, the commitment to the records, the outputs) from its own copy and verifies the
//! proof for it before it signs. The chain checks the same proof again (`submitProven`).
//!
//! The node reads its KZG parameters once (`[provers] halo2_srs`) and generates each program's
//! keys once, on a blocking thread; both are kept in memory.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{B256, Bytes, Keccak256, U256};
use conclave_chain::attest::{HaloProof, task_binding};
use conclave_provers::halo2::{ProgramProver, Srs, fr_from_be, fr_to_be};
use libp2p::PeerId;
use tokio::sync::OnceCell;

use crate::messages::{Member, RefusalKind, Request, Response, TaskId, TaskInfo};
use crate::node::{Inner, NodeError, insert_capped};
use crate::program::{Body, Opened, Program, encode_outputs};
use crate::store::MaskedInput;

/// How long a verifying seat waits for the proving seat's proof.
const PROOF_WAIT: Duration = Duration::from_secs(100);
const PROOF_POLL: Duration = Duration::from_millis(250);
/// Programs whose keys a node keeps (a proving key takes up to a few hundred megabytes).
const MAX_PROGRAMS: usize = 4;
/// Tasks whose proof (or failure) a node keeps for its peers and its submission.
const MAX_PROOFS: usize = 1024;

type Shared<T> = Arc<OnceCell<Result<Arc<T>, String>>>;

/// The node's parameters, program keys and proofs.
pub(crate) struct Halo2State {
    srs_path: Option<PathBuf>,
    srs: OnceCell<Arc<Srs>>,
    provers: Mutex<HashMap<B256, Shared<ProgramProver>>>,
    /// One key generation at a time: each takes seconds of every core and much memory.
    keygen: Arc<tokio::sync::Semaphore>,
    proofs: Mutex<HashMap<TaskId, Result<HaloProof, String>>>,
}

impl Halo2State {
    pub fn new(srs_path: Option<PathBuf>) -> Halo2State {
        Halo2State {
            srs_path,
            srs: OnceCell::new(),
            provers: Mutex::default(),
            keygen: Arc::new(tokio::sync::Semaphore::new(1)),
            proofs: Mutex::default(),
        }
    }

    /// Whether this node has parameters configured (read or not yet).
    pub fn configured(&self) -> bool {
        self.srs_path.is_some()
    }

    fn keep(&self, task: TaskId, proof: Result<HaloProof, String>) {
        let mut proofs = self.proofs.lock().unwrap_or_else(|p| p.into_inner());
        insert_capped(&mut proofs, MAX_PROOFS, task, proof);
    }

    fn proof(&self, task: &TaskId) -> Option<Result<HaloProof, String>> {
        let proofs = self.proofs.lock().unwrap_or_else(|p| p.into_inner());
        proofs.get(task).cloned()
    }

    /// Reads the parameters at the first call that succeeds (a missing or bad file is tried
    /// again at the next task).
    pub(crate) async fn srs(&self) -> Result<Arc<Srs>, String> {
        let Some(path) = self.srs_path.clone() else {
            return Err(
                "this node has no KZG parameters for halo2 tasks (set [provers] halo2_srs)".into(),
            );
        };
        self.srs
            .get_or_try_init(|| async move {
                let read = tokio::task::spawn_blocking(move || Srs::read(&path))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                tracing::info!(k = read.k(), "KZG parameters read");
                Ok(Arc::new(read))
            })
            .await
            .cloned()
    }

    /// Reads the configured parameters now, so that a bad file shows when the node starts.
    pub(crate) async fn warm_up(&self) {
        let Some(path) = &self.srs_path else {
            return;
        };
        if !path.exists() {
            tracing::info!(path = %path.display(), "no KZG parameters there yet: halo2 seats are refused until there are");
            return;
        }
        if let Err(e) = self.srs().await {
            tracing::error!(error = %e, "halo2 seats are refused");
        }
    }
}

/// The keys of a Tally program for all its slots under `srs` (what registration's verifier and
/// every node's prover must share).
pub fn program_prover(srs: &Srs, program: &Program) -> Result<ProgramProver, String> {
    if !matches!(program.body, Body::Tally(_)) {
        return Err("a halo2 project runs a Tally program".into());
    }
    ProgramProver::new(srs, &program.source, program.max_inputs as usize).map_err(|e| e.to_string())
}

/// The member that proves a task: the least keccak256(seed, task id, operator), a draw from the
/// task's seed that neither the coordinator (which orders the committee) nor an operator (which
/// picks its address) chooses.
pub fn proving_seat(committee: &[Member], seed: B256, task: TaskId) -> Option<&Member> {
    committee.iter().min_by_key(|m| {
        let mut h = Keccak256::new();
        h.update(b"conclave halo2 prover v1");
        h.update(seed);
        h.update(task);
        h.update(m.operator);
        h.finalize()
    })
}

fn refuse(reason: impl Into<String>) -> Response {
    Response::refused(RefusalKind::Failed, reason)
}

impl Inner {
    /// The program's keys, generated at the first call (concurrent callers share one run).
    pub(crate) async fn halo2_prover(
        &self,
        program: &Arc<Program>,
    ) -> Result<Arc<ProgramProver>, String> {
        let srs = self.halo2.srs().await?;
        let cell = {
            let mut provers = self.halo2.provers.lock().unwrap_or_else(|p| p.into_inner());
            match provers.get(&program.hash) {
                Some(cell) => cell.clone(),
                None => {
                    let cell = Shared::default();
                    insert_capped(&mut provers, MAX_PROGRAMS, program.hash, cell.clone());
                    cell
                }
            }
        };
        let program = program.clone();
        let permits = self.halo2.keygen.clone();
        cell.get_or_init(|| async move {
            // Held by the blocking work itself: a caller that gives up does not free it early.
            let permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let started = std::time::Instant::now();
            let made = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                program_prover(&srs, &program)
            })
            .await;
            let made = made.map_err(|e| e.to_string()).and_then(|r| r);
            if let Ok(p) = &made {
                tracing::info!(
                    k = p.k(),
                    seconds = started.elapsed().as_secs_f64(),
                    "halo2 keys generated"
                );
            }
            made.map(Arc::new)
        })
        .await
        .clone()
    }

    /// Runs a `halo2` task over every device slot: the proving seat proves, the others check
    /// its proof against the statement of their own records. The output and the proof hash to
    /// sign.
    pub(crate) async fn run_proven(
        &self,
        info: &TaskInfo,
        device_slots: &[u32],
        stored: &BTreeMap<u32, MaskedInput>,
        program: Arc<Program>,
    ) -> Result<(Vec<u8>, [u8; 32]), Response> {
        let task = info.task_id;
        let ran = self
            .prove_or_check(info, device_slots, stored, program)
            .await;
        self.halo2.keep(
            task,
            ran.as_ref().map(|(_, p)| p.clone()).map_err(|r| match r {
                Response::Refused { reason, .. } => reason.clone(),
                other => format!("{other:?}"),
            }),
        );
        let (output, proof) = ran?;
        Ok((output, proof.proof_hash().0))
    }

    async fn prove_or_check(
        &self,
        info: &TaskInfo,
        device_slots: &[u32],
        stored: &BTreeMap<u32, MaskedInput>,
        program: Arc<Program>,
    ) -> Result<(Vec<u8>, HaloProof), Response> {
        let task = info.task_id;
        self.confirm_slots(info, device_slots).await?;
        let prover = self
            .halo2_prover(&program)
            .await
            .map_err(|e| refuse(format!("the program's halo2 keys: {e}")))?;
        // The commitment's salt comes from the devices' salts, which the chain never sees: it
        // cannot test guesses of the records against the commitment.
        let mut salts = Keccak256::new();
        salts.update(b"conclave halo2 salt v1");
        // The circuit has every slot of the program; those not run over are absent (excluded).
        let mut records = vec![None; program.max_inputs as usize];
        for slot in device_slots {
            let padded = stored
                .get(slot)
                .and_then(|words| crate::manifest::words_record(words))
                .ok_or_else(|| refuse(format!("no record for slot {slot}")))?;
            let values = crate::manifest::unpad_record(&padded, info.record_bytes)
                .and_then(|record| program.unpack_record(&record))
                .ok_or_else(|| refuse(format!("slot {slot}'s record is not the program's")))?;
            salts.update(&padded[..crate::manifest::RECORD_SALT]);
            *records
                .get_mut(*slot as usize)
                .ok_or_else(|| refuse(format!("no slot {slot} in this program")))? = Some(values);
        }
        let field =
            |v: U256| fr_from_be(v.to_be_bytes()).expect("248-bit values are field elements");
        let salt = field(U256::from_be_bytes(salts.finalize().0) >> 8);
        let binding = field(task_binding(
            self.chain_id,
            self.router,
            U256::from_be_bytes(task),
        ));
        let blocking = |e: tokio::task::JoinError| refuse(format!("the halo2 run: {e}"));
        let p = prover.clone();
        let statement = tokio::task::spawn_blocking(move || p.statement(records, salt, binding))
            .await
            .map_err(blocking)?
            .map_err(|e| refuse(e.to_string()))?;
        let commitment = fr_to_be(statement.input_commitment());
        let me = self.network.peer_id().to_bytes();
        let seed = self
            .contracts
            .seed(U256::from_be_bytes(task))
            .await
            .map_err(|e| refuse(format!("reading the task's seed: {e}")))?
            .ok_or_else(|| refuse("the task's seed is not drawn yet"))?;
        let proving = proving_seat(&info.committee, seed, task)
            .ok_or_else(|| refuse("the task has no committee"))?;
        let proof = if proving.peer == me {
            let (p, s) = (prover.clone(), statement.clone());
            let proof = tokio::task::spawn_blocking(move || p.prove(&s))
                .await
                .map_err(blocking)?
                .map_err(|e| refuse(format!("proving failed: {e}")))?;
            tracing::info!(task = %hex::encode(task), bytes = proof.len(), "halo2 proof made");
            proof
        } else {
            let peer =
                PeerId::from_bytes(&proving.peer).map_err(|_| refuse("bad committee peer id"))?;
            let (their_commitment, proof) = self.await_proof(task, peer).await?;
            if their_commitment != commitment {
                return Err(refuse(
                    "the proving seat committed to other records than this seat holds",
                ));
            }
            let (p, s, checked) = (prover.clone(), statement.clone(), proof.clone());
            tokio::task::spawn_blocking(move || p.verify(&s, &checked))
                .await
                .map_err(blocking)?
                .map_err(|e| {
                    tracing::warn!(task = %hex::encode(task), error = %e, "the proving seat's proof was refused");
                    refuse(format!(
                        "the proving seat's proof does not hold for this seat's records and output: {e}"
                    ))
                })?;
            proof
        };
        let output = encode_outputs(
            &statement
                .outputs
                .into_iter()
                .map(Opened::Public)
                .collect::<Vec<_>>(),
        );
        Ok((
            output,
            HaloProof {
                input_commitment: U256::from_be_bytes(commitment),
                proof: Bytes::from(proof),
            },
        ))
    }

    /// Asks the proving seat for its proof until it has one (or its run failed).
    async fn await_proof(
        &self,
        task: TaskId,
        peer: PeerId,
    ) -> Result<([u8; 32], Vec<u8>), Response> {
        let deadline = tokio::time::Instant::now() + PROOF_WAIT;
        loop {
            match self
                .ask_remote(peer, Request::Proof { task_id: task })
                .await
            {
                Ok(Response::Proof {
                    input_commitment,
                    proof,
                }) => return Ok((input_commitment, proof)),
                Err(NodeError::Refused {
                    kind: RefusalKind::Failed,
                    reason,
                    ..
                }) => return Err(refuse(format!("the proving seat failed: {reason}"))),
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(refuse("the proving seat did not deliver a proof in time"));
                }
                _ => tokio::time::sleep(PROOF_POLL).await,
            }
        }
    }

    /// A task's proof, for its members and coordinator: only a lookup (the proof goes on chain
    /// with the result anyway).
    pub(crate) fn serve_proof(&self, from: PeerId, task: TaskId) -> Result<Response, Response> {
        let (_, info) = self.member_task(&task)?;
        let asker = from.to_bytes();
        if info.coordinator != asker && !info.committee.iter().any(|m| m.peer == asker) {
            return Err(refuse_unknown(
                "only the task's members and coordinator ask for its proof",
            ));
        }
        match self.halo2.proof(&task) {
            Some(Ok(p)) => Ok(Response::Proof {
                input_commitment: p.input_commitment.to_be_bytes(),
                proof: p.proof.to_vec(),
            }),
            Some(Err(reason)) => Err(refuse(reason)),
            None => Err(refuse_unknown("no proof of this task here yet")),
        }
    }

    /// The proof of a `halo2` task whose hash the result's signers signed: this node's, or a
    /// member's (one answering with another proof is passed over).
    pub(crate) async fn proof_for(
        &self,
        info: &TaskInfo,
        proof_hash: B256,
    ) -> Result<HaloProof, NodeError> {
        if let Some(Ok(proof)) = self.halo2.proof(&info.task_id)
            && proof.proof_hash() == proof_hash
        {
            return Ok(proof);
        }
        let me = self.network.peer_id();
        let peers = info.peers().map_err(|e| NodeError::Task(e.to_string()))?;
        for peer in peers.into_iter().filter(|p| *p != me) {
            if let Ok(Response::Proof {
                input_commitment,
                proof,
            }) = self
                .ask_remote(
                    peer,
                    Request::Proof {
                        task_id: info.task_id,
                    },
                )
                .await
            {
                let proof = HaloProof {
                    input_commitment: U256::from_be_bytes(input_commitment),
                    proof: Bytes::from(proof),
                };
                if proof.proof_hash() == proof_hash {
                    return Ok(proof);
                }
            }
        }
        Err(NodeError::Task(
            "no member has the proof the result's signers signed".into(),
        ))
    }
}

fn refuse_unknown(reason: &str) -> Response {
    Response::refused(RefusalKind::Unknown, reason)
}

/// The creation bytecode of `program`'s verifier under `srs`: generated from the verifying key
/// every node derives the same way, compiled with the pinned solc-js under `tools` (Node.js must
/// be on the PATH). What `conclave project register` deploys for a `halo2` project.
pub fn verifier_bytecode(
    srs: &Srs,
    program: &Program,
    tools: &std::path::Path,
) -> Result<Vec<u8>, String> {
    let prover = program_prover(srs, program)?;
    conclave_provers::halo2::compile_verifier(&prover.verifier_source(), tools)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(operator: u8) -> Member {
        Member {
            peer: vec![operator],
            operator: [operator; 20],
            key: [0; 32],
        }
    }

    /// The proving seat follows the seed, not the committee's order or the lowest address: over
    /// many seeds each member proves about as often (an operator with a low address gains
    /// nothing), and reordering the committee changes nothing.
    #[test]
    fn the_proving_seat_is_drawn_from_the_seed() {
        let committee: Vec<Member> = [0x00, 0x01, 0x80, 0xff].map(member).to_vec();
        let mut reversed = committee.clone();
        reversed.reverse();
        let mut counts = [0u32; 4];
        for i in 0..400u32 {
            let seed = alloy::primitives::keccak256(i.to_be_bytes());
            let chosen = proving_seat(&committee, seed, [7; 32]).unwrap();
            assert_eq!(proving_seat(&reversed, seed, [7; 32]).unwrap(), chosen);
            let at = committee.iter().position(|m| m == chosen).unwrap();
            counts[at] += 1;
        }
        for c in counts {
            assert!((60..=140).contains(&c), "{counts:?}");
        }
    }
}
