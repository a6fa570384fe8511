//! Durable state in redb: projects as last read from chain, tasks and their state, each member's
//! preprocessed material, accepted client inputs (masked bits: y_j = β_j − a_j, never x) and
//! results. A
//! write returns only after its transaction committed, so an input is durable before the node
//! acknowledges it.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::envelope::Sealed;
use crate::messages::{TaskId, TaskInfo};
use crate::task::TaskState;

const TASKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tasks");
/// task → the member's MAC key share; written with the task's triples, so its presence means the
/// material is complete.
const MATERIAL: TableDefinition<&[u8], &[u8]> = TableDefinition::new("material");
/// task ‖ slot → the member's shares of that slot's triples, one per input bit.
const TRIPLES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("triples");
/// task ‖ slot → the slot's masked input bits y_j, 32 bytes each.
const INPUTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("inputs");
const PROJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("projects");
/// task → (empty): this member has started the task's computation; it never starts another.
const RUNS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("runs");
/// task → (empty): the task's MAC key share is poisoned (a MAC check under it failed or was
/// abandoned); nothing may run under it again, restart or not.
const POISONED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("poisoned");
/// (task, slot) → the client key a slot's mask shares were released to.
const RELEASED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("released");
/// (task, client key) → the slot the coordinator granted that key.
const GRANTED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("granted");
/// Program sources by keccak256 hash.
const PROGRAMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("programs");
/// Task id → this member's shares of the private-output masks, sealed for the receiver (kept
/// with the task record: the receiver fetches them after the result is published).
const SEALED_OUTPUTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sealed_outputs");
/// WebAssembly modules of `wasm` projects by keccak256 hash.
const MODULES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("modules");

/// A project as this node last read it from the ProjectRegistry (the chain stays authoritative;
/// this records what the node's tasks ran under).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub project_id: u64,
    pub owner: [u8; 20],
    pub program_uri: String,
    pub prover_kind: u8,
    pub committee_size: u16,
    pub threshold: u16,
    pub paused: bool,
    pub read_ms: u64,
}

/// A task as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub project_id: u64,
    pub task_id: TaskId,
    pub info: Option<TaskInfo>,
    /// This node opened the task and coordinates it.
    pub coordinating: bool,
    /// This node is in the task's committee.
    pub member: bool,
    pub state: TaskState,
    /// Slots handed out so far (coordinator).
    pub next_slot: u32,
    /// The published output (abi-encoded), once known.
    pub output: Option<Vec<u8>>,
    pub created_ms: u64,
    /// Which attempt at the project's work this task is (1 for the first).
    pub attempt: u32,
    /// The task that re-runs this one after it failed.
    pub retried_as: Option<TaskId>,
    /// How long each phase took at the coordinator, in milliseconds.
    pub timings: Vec<(String, u64)>,
    /// Operators of members whose signed output differed from the one published (coordinator).
    pub dissent: Vec<[u8; 20]>,
}

/// A member's shares of one triple (a value, a MAC, b value, b MAC, c value, c MAC), canonical
/// encodings.
pub type TripleRecord = [[u8; 32]; 6];

/// A slot's masked input: one field element per input bit.
pub type MaskedInput = Vec<[u8; 32]>;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("the task ran or is over here; its material is not stored again")]
    TaskOver,
}

fn db<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("records serialise")
}

fn dec<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn slot_key(task: &TaskId, slot: u32) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(task);
    k[32..].copy_from_slice(&slot.to_be_bytes());
    k
}

/// Where a task's program material lives among its slots' triples (deleted with them).
const PROGRAM_SLOT: u32 = u32::MAX;

/// A member's shares of a program's triples (a, a's MAC, b, …) and random bits (value, MAC).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgramMaterialRecord {
    pub triples: Vec<TripleRecord>,
    pub bits: Vec<[[u8; 32]; 2]>,
}

impl ProgramMaterialRecord {
    fn encode(&self) -> Vec<u8> {
        let mut out = (self.triples.len() as u32).to_be_bytes().to_vec();
        out.extend(self.triples.iter().flat_map(|r| r.concat()));
        out.extend(self.bits.iter().flat_map(|b| b.concat()));
        out
    }

    fn decode(bytes: &[u8]) -> Result<ProgramMaterialRecord, StoreError> {
        let bad = || StoreError::Corrupt("program material".into());
        let (count, rest) = bytes.split_first_chunk::<4>().ok_or_else(bad)?;
        let split = (u32::from_be_bytes(*count) as usize)
            .checked_mul(192)
            .ok_or_else(bad)?;
        if split > rest.len() || (rest.len() - split) % 64 != 0 {
            return Err(bad());
        }
        let (triples, bits) = rest.split_at(split);
        Ok(ProgramMaterialRecord {
            triples: if triples.is_empty() {
                Vec::new()
            } else {
                decode_triples(triples)?
            },
            bits: bits
                .chunks_exact(64)
                .map(|c| {
                    [
                        c[..32].try_into().expect("32"),
                        c[32..].try_into().expect("32"),
                    ]
                })
                .collect(),
        })
    }
}

/// The node's database.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let database = Database::create(path).map_err(db)?;
        let txn = database.begin_write().map_err(db)?;
        for table in [
            TASKS,
            MATERIAL,
            TRIPLES,
            INPUTS,
            PROJECTS,
            RUNS,
            POISONED,
            RELEASED,
            GRANTED,
            PROGRAMS,
            SEALED_OUTPUTS,
            MODULES,
        ] {
            txn.open_table(table).map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(Store { db: database })
    }

    fn put(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        txn.open_table(table)
            .map_err(db)?
            .insert(key, value)
            .map_err(db)?;
        txn.commit().map_err(db)
    }

    fn get(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let t = txn.open_table(table).map_err(db)?;
        Ok(t.get(key).map_err(db)?.map(|v| v.value().to_vec()))
    }

    /// Inserts `value` under `key` unless something is there, in one write transaction; returns
    /// what was there.
    fn insert_if_absent(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        let existing = {
            let mut t = txn.open_table(table).map_err(db)?;
            let existing = t.get(key).map_err(db)?.map(|v| v.value().to_vec());
            if existing.is_none() {
                t.insert(key, value).map_err(db)?;
            }
            existing
        };
        txn.commit().map_err(db)?;
        Ok(existing)
    }

    pub fn put_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        self.put(TASKS, &task.task_id, &enc(task))
    }

    pub fn task(&self, id: &TaskId) -> Result<Option<TaskRecord>, StoreError> {
        self.get(TASKS, id)?.map(|b| dec(&b)).transpose()
    }

    pub fn tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let t = txn.open_table(TASKS).map_err(db)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db)? {
            let (_, v) = row.map_err(db)?;
            out.push(dec(v.value())?);
        }
        Ok(out)
    }

    pub fn put_project(&self, p: &ProjectRecord) -> Result<(), StoreError> {
        self.put(PROJECTS, &p.project_id.to_be_bytes(), &enc(p))
    }

    pub fn project(&self, id: u64) -> Result<Option<ProjectRecord>, StoreError> {
        self.get(PROJECTS, &id.to_be_bytes())?
            .map(|b| dec(&b))
            .transpose()
    }

    /// Stores a member's MAC key share, its triple shares slot by slot, and the program's own
    /// triples and random bits, in one transaction.
    pub fn put_material(
        &self,
        task: &TaskId,
        alpha: &[u8; 32],
        slots: &[Vec<TripleRecord>],
        program: &ProgramMaterialRecord,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db)?;
        {
            // Checked in the same transaction that writes: a run or a sweep that marked the
            // task in between cannot see material reappear.
            if txn
                .open_table(RUNS)
                .map_err(db)?
                .get(task.as_slice())
                .map_err(db)?
                .is_some()
            {
                return Err(StoreError::TaskOver);
            }
            let mut t = txn.open_table(TRIPLES).map_err(db)?;
            t.insert(
                slot_key(task, PROGRAM_SLOT).as_slice(),
                program.encode().as_slice(),
            )
            .map_err(db)?;
            for (slot, triples) in (0u32..).zip(slots) {
                let bytes: Vec<u8> = triples.iter().flat_map(|r| r.concat()).collect();
                t.insert(slot_key(task, slot).as_slice(), bytes.as_slice())
                    .map_err(db)?;
            }
            txn.open_table(MATERIAL)
                .map_err(db)?
                .insert(task.as_slice(), alpha.as_slice())
                .map_err(db)?;
        }
        txn.commit().map_err(db)
    }

    /// Keeps a program source under its hash (the caller checked the hash).
    pub fn put_program_source(&self, hash: &[u8; 32], source: &str) -> Result<(), StoreError> {
        self.put(PROGRAMS, hash, source.as_bytes())
    }

    /// A kept program source.
    pub fn program_source(&self, hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        self.get(PROGRAMS, hash)?
            .map(|b| String::from_utf8(b).map_err(|_| StoreError::Corrupt("program source".into())))
            .transpose()
    }

    /// Keeps a module (the caller checked it against its hash).
    pub fn put_module(&self, hash: &[u8; 32], module: &[u8]) -> Result<(), StoreError> {
        self.put(MODULES, hash, module)
    }

    /// A kept module.
    pub fn module(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(MODULES, hash)
    }

    /// Keeps this member's sealed private-output shares of a task.
    pub fn put_sealed_output(&self, task: &TaskId, sealed: &Sealed) -> Result<(), StoreError> {
        self.put(SEALED_OUTPUTS, task, &enc(sealed))
    }

    /// This member's sealed private-output shares of a task, if it computed one.
    pub fn sealed_output(&self, task: &TaskId) -> Result<Option<Sealed>, StoreError> {
        self.get(SEALED_OUTPUTS, task)?.map(|b| dec(&b)).transpose()
    }

    /// The member's MAC key share for a task, once its material is complete.
    pub fn alpha(&self, task: &TaskId) -> Result<Option<[u8; 32]>, StoreError> {
        self.get(MATERIAL, task)?
            .map(|v| {
                v.try_into()
                    .map_err(|_| StoreError::Corrupt("MAC key share".into()))
            })
            .transpose()
    }

    /// Records that the task's computation starts (or that it is over without one); false if it
    /// had been recorded before. Durable before it returns, so neither a second request nor a
    /// restart gets a second run under the same MAC key, nor material stored again.
    pub fn claim_run(&self, task: &TaskId) -> Result<bool, StoreError> {
        Ok(self.insert_if_absent(RUNS, task, &[])?.is_none())
    }

    /// Whether the task's computation started here (see [`Store::claim_run`]).
    pub fn has_run(&self, task: &TaskId) -> Result<bool, StoreError> {
        Ok(self.get(RUNS, task)?.is_some())
    }

    /// Marks the task's MAC key share as never to be used again.
    pub fn poison_key(&self, task: &TaskId) -> Result<(), StoreError> {
        self.put(POISONED, task, &[])
    }

    /// Whether the task's MAC key share was poisoned.
    pub fn is_poisoned(&self, task: &TaskId) -> Result<bool, StoreError> {
        Ok(self.get(POISONED, task)?.is_some())
    }

    /// The member's shares of one slot's triples.
    pub fn triples(
        &self,
        task: &TaskId,
        slot: u32,
    ) -> Result<Option<Vec<TripleRecord>>, StoreError> {
        self.get(TRIPLES, &slot_key(task, slot))?
            .map(|v| decode_triples(&v))
            .transpose()
    }

    /// The member's shares of the program's own triples and random bits.
    pub fn program_material(
        &self,
        task: &TaskId,
    ) -> Result<Option<ProgramMaterialRecord>, StoreError> {
        self.get(TRIPLES, &slot_key(task, PROGRAM_SLOT))?
            .map(|v| ProgramMaterialRecord::decode(&v))
            .transpose()
    }

    /// Stores slot's masked input unless one is already there; returns the one already there.
    pub fn put_input(
        &self,
        task: &TaskId,
        slot: u32,
        y: &[[u8; 32]],
    ) -> Result<Option<MaskedInput>, StoreError> {
        self.insert_if_absent(INPUTS, &slot_key(task, slot), &y.concat())?
            .map(|v| decode_input(&v))
            .transpose()
    }

    /// The slot granted to `client_key` in `task`: the one granted before, or `next` now.
    pub fn grant_slot(
        &self,
        task: &TaskId,
        client_key: &[u8; 32],
        next: u32,
    ) -> Result<u32, StoreError> {
        let key = [task.as_slice(), client_key].concat();
        match self.insert_if_absent(GRANTED, &key, &next.to_be_bytes())? {
            None => Ok(next),
            Some(bytes) => bytes
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("granted slot".into())),
        }
    }

    /// The client key a slot's mask shares went to, if any.
    pub fn released_to(&self, task: &TaskId, slot: u32) -> Result<Option<[u8; 32]>, StoreError> {
        self.get(RELEASED, &slot_key(task, slot))?
            .map(|v| {
                v.try_into()
                    .map_err(|_| StoreError::Corrupt("client key of wrong length".into()))
            })
            .transpose()
    }

    /// Binds a slot's mask shares to `client_key`, durably: true for the first key that asks and
    /// for that key again, false for any other.
    pub fn release_slot_to(
        &self,
        task: &TaskId,
        slot: u32,
        client_key: &[u8; 32],
    ) -> Result<bool, StoreError> {
        let bound = self.insert_if_absent(RELEASED, &slot_key(task, slot), client_key)?;
        Ok(bound.is_none_or(|b| b == client_key))
    }

    /// Deletes a task's MAC key share, triple shares and masked inputs, in one transaction, once
    /// the task has run (or can no longer run). The run and poison flags stay: they are what
    /// refuses a second run.
    pub fn forget_material(&self, task: &TaskId) -> Result<(), StoreError> {
        let (lo, hi) = (slot_key(task, 0), slot_key(task, u32::MAX));
        let txn = self.db.begin_write().map_err(db)?;
        {
            for table in [TRIPLES, INPUTS, RELEASED] {
                let mut t = txn.open_table(table).map_err(db)?;
                t.retain_in(lo.as_slice()..=hi.as_slice(), |_, _| false)
                    .map_err(db)?;
            }
            txn.open_table(MATERIAL)
                .map_err(db)?
                .remove(task.as_slice())
                .map_err(db)?;
        }
        txn.commit().map_err(db)
    }

    /// Whether any secret material of a task is stored: its MAC key share, a triple share or a
    /// masked input.
    pub fn holds_material(&self, task: &TaskId) -> Result<bool, StoreError> {
        Ok(self.alpha(task)?.is_some()
            || self.triples(task, 0)?.is_some()
            || !self.inputs(task)?.is_empty())
    }

    /// Every stored masked input of a task, by slot.
    pub fn inputs(&self, task: &TaskId) -> Result<Vec<(u32, MaskedInput)>, StoreError> {
        let txn = self.db.begin_read().map_err(db)?;
        let t = txn.open_table(INPUTS).map_err(db)?;
        let (lo, hi) = (slot_key(task, 0), slot_key(task, u32::MAX));
        let mut out = Vec::new();
        for row in t.range(lo.as_slice()..=hi.as_slice()).map_err(db)? {
            let (k, v) = row.map_err(db)?;
            let slot = u32::from_be_bytes(k.value()[32..36].try_into().expect("36-byte key"));
            out.push((slot, decode_input(v.value())?));
        }
        Ok(out)
    }
}

fn decode_triples(bytes: &[u8]) -> Result<Vec<TripleRecord>, StoreError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(192) {
        return Err(StoreError::Corrupt("triples of wrong length".into()));
    }
    Ok(bytes
        .chunks_exact(192)
        .map(|record| {
            let mut t = [[0u8; 32]; 6];
            for (part, bytes) in t.iter_mut().zip(record.chunks_exact(32)) {
                part.copy_from_slice(bytes);
            }
            t
        })
        .collect())
}

fn decode_input(bytes: &[u8]) -> Result<MaskedInput, StoreError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt("input of wrong length".into()));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32-byte chunks"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot's shares go to one key: the first that asks, again to it, never to another.
    #[test]
    fn a_slot_is_released_to_one_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        {
            let s = Store::open(&path).unwrap();
            assert!(s.release_slot_to(&[3; 32], 0, &[1; 32]).unwrap());
            assert!(s.release_slot_to(&[3; 32], 0, &[1; 32]).unwrap());
            assert!(!s.release_slot_to(&[3; 32], 0, &[2; 32]).unwrap());
            assert!(s.release_slot_to(&[3; 32], 1, &[2; 32]).unwrap());
            assert!(s.release_slot_to(&[4; 32], 0, &[2; 32]).unwrap());
        }
        let s = Store::open(&path).unwrap();
        assert!(
            !s.release_slot_to(&[3; 32], 0, &[2; 32]).unwrap(),
            "after a restart too"
        );
    }

    /// A finished task's masks, key share and inputs go; another task's stay, and so does the
    /// flag that refuses a second run.
    #[test]
    fn forgetting_a_task_deletes_its_material_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("node.redb")).unwrap();
        let triples = vec![[[1; 32], [2; 32], [3; 32], [4; 32], [5; 32], [6; 32]]; 2];
        let program = ProgramMaterialRecord {
            triples: triples.clone(),
            bits: vec![[[7; 32], [8; 32]]; 3],
        };
        for task in [[3; 32], [4; 32]] {
            s.put_material(&task, &[5; 32], &vec![triples.clone(); 3], &program)
                .unwrap();
            s.put_input(&task, 0, &[[7; 32], [8; 32]]).unwrap();
            s.put_input(&task, 2, &[[8; 32], [9; 32]]).unwrap();
        }
        assert!(s.claim_run(&[3; 32]).unwrap());
        s.forget_material(&[3; 32]).unwrap();
        assert_eq!(s.alpha(&[3; 32]).unwrap(), None);
        assert_eq!(s.triples(&[3; 32], 0).unwrap(), None);
        assert_eq!(s.triples(&[3; 32], 2).unwrap(), None);
        assert_eq!(s.program_material(&[3; 32]).unwrap(), None);
        assert!(s.inputs(&[3; 32]).unwrap().is_empty());
        assert!(!s.claim_run(&[3; 32]).unwrap(), "still ran");
        assert_eq!(s.program_material(&[4; 32]).unwrap(), Some(program));
        assert_eq!(s.alpha(&[4; 32]).unwrap(), Some([5; 32]));
        assert_eq!(s.triples(&[4; 32], 2).unwrap(), Some(triples));
        assert_eq!(s.inputs(&[4; 32]).unwrap().len(), 2);
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let record = [[1; 32], [2; 32], [3; 32], [4; 32], [5; 32], [6; 32]];
        let task = TaskRecord {
            project_id: 1,
            task_id: [3; 32],
            info: None,
            coordinating: true,
            member: false,
            state: TaskState::Committee,
            next_slot: 4,
            output: None,
            created_ms: 5,
            attempt: 1,
            retried_as: None,
            timings: Vec::new(),
            dissent: Vec::new(),
        };
        {
            let s = Store::open(&path).unwrap();
            s.put_task(&task).unwrap();
            assert_eq!(s.put_input(&[3; 32], 2, &[[9; 32]]).unwrap(), None);
            assert_eq!(
                s.put_input(&[3; 32], 2, &[[8; 32]]).unwrap(),
                Some(vec![[9; 32]]),
                "first input stays"
            );
            s.put_material(
                &[3; 32],
                &[5; 32],
                &[vec![record], vec![record]],
                &ProgramMaterialRecord::default(),
            )
            .unwrap();
            s.put_input(&[3; 32], 0, &[[7; 32]]).unwrap();
            s.put_input(&[4; 32], 0, &[[1; 32]]).unwrap();
            assert!(s.release_slot_to(&[3; 32], 1, &[6; 32]).unwrap());
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.task(&[3; 32]).unwrap(), Some(task));
        assert_eq!(s.alpha(&[3; 32]).unwrap(), Some([5; 32]));
        assert_eq!(s.alpha(&[4; 32]).unwrap(), None);
        assert!(!s.is_poisoned(&[3; 32]).unwrap());
        s.poison_key(&[3; 32]).unwrap();
        assert!(s.is_poisoned(&[3; 32]).unwrap());
        assert!(!s.is_poisoned(&[4; 32]).unwrap());
        assert!(s.claim_run(&[3; 32]).unwrap());
        assert!(!s.claim_run(&[3; 32]).unwrap());
        assert!(s.claim_run(&[4; 32]).unwrap());
        assert_eq!(s.triples(&[3; 32], 1).unwrap(), Some(vec![record]));
        assert_eq!(s.triples(&[3; 32], 2).unwrap(), None);
        assert_eq!(s.released_to(&[3; 32], 1).unwrap(), Some([6; 32]));
        assert_eq!(s.released_to(&[3; 32], 0).unwrap(), None);
        let project = ProjectRecord {
            project_id: 7,
            owner: [1; 20],
            program_uri: "builtin:private-average?max_inputs=1&window_secs=1".into(),
            prover_kind: 0,
            committee_size: 3,
            threshold: 2,
            paused: false,
            read_ms: 9,
        };
        s.put_project(&project).unwrap();
        assert_eq!(s.project(7).unwrap(), Some(project));
        assert_eq!(s.project(8).unwrap(), None);
        assert_eq!(
            s.inputs(&[3; 32]).unwrap(),
            vec![(0, vec![[7; 32]]), (2, vec![[9; 32]])]
        );
        assert_eq!(s.tasks().unwrap().len(), 1);
    }
}
