//! What nodes ask each other (p2p application requests), encoded with bincode 2 under a size
//! limit. Anything from a peer is untrusted: decoding refuses oversized or trailing bytes.

use serde::{Deserialize, Serialize};

use crate::envelope::Sealed;

/// Largest encoded request or response.
pub const MAX_MESSAGE: usize = 1 << 20;

pub type TaskId = [u8; 32];

/// A committee member as the coordinator announces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// libp2p peer id bytes.
    pub peer: Vec<u8>,
    /// Operator chain address.
    pub operator: [u8; 20],
    /// The member's X25519 key for sealed inputs.
    pub key: [u8; 32],
}

/// A task as its coordinator fixed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub project_id: u64,
    pub task_id: TaskId,
    /// The node that opened the task, allocates slots and gathers signatures.
    pub coordinator: Vec<u8>,
    /// Committee in party order.
    pub committee: Vec<Member>,
    /// keccak256 of the task's program source, as the chain pins it.
    pub program_hash: [u8; 32],
    pub max_inputs: u32,
    /// Bits of one device record (the program's input fields): a device sends one masked bit
    /// each.
    pub input_bits: u32,
    /// Bits of the project owner's parameters (0 if the program reads none); they go into the
    /// owner slot, numbered `max_inputs`.
    pub owner_bits: u32,
    pub closes_at_ms: u64,
    /// The project's prover kind as the task's snapshot records it (`ProverKind`).
    pub prover_kind: u8,
    /// Largest device record sealed whole to each member, for provers that see inputs
    /// (`wasm`); 0 when records are secret-shared bit by bit.
    pub record_bytes: u32,
}

impl TaskInfo {
    /// The committee's peer ids in party order.
    pub fn peers(&self) -> Result<Vec<libp2p::PeerId>, DecodeError> {
        self.committee
            .iter()
            .map(|m| libp2p::PeerId::from_bytes(&m.peer))
            .collect::<Result<_, _>>()
            .map_err(|_| DecodeError::Malformed("bad committee peer id".into()))
    }

    /// The owner slot, if the task's program reads the owner's parameters.
    pub fn owner_slot(&self) -> Option<u32> {
        (self.owner_bits > 0).then_some(self.max_inputs)
    }

    /// The result members sign for `output` of this task.
    pub fn result(
        &self,
        output: &[u8],
        proof_hash: [u8; 32],
    ) -> conclave_chain::attest::TaskResult {
        conclave_chain::attest::TaskResult {
            project_id: alloy::primitives::U256::from(self.project_id),
            task_id: alloy::primitives::U256::from_be_bytes(self.task_id),
            output: alloy::primitives::Bytes::from(output.to_vec()),
            proof_hash: alloy::primitives::B256::from(proof_hash),
        }
    }

    /// Devices seal their records whole to each member, instead of secret-sharing them.
    pub fn sealed_records(&self) -> bool {
        self.record_bytes > 0
    }

    /// Whether the task's result needs a halo2 proof (`TaskRouter.submitProven`).
    pub fn proven(&self) -> bool {
        self.prover_kind == conclave_chain::contracts::ProverKind::Halo2 as u8
    }

    /// The task's prover kind by name, as metrics and `/health` count runs.
    pub fn prover_name(&self) -> &'static str {
        conclave_chain::contracts::ProverKind::from_u8(self.prover_kind)
            .map_or("unknown", |k| k.name())
    }

    /// How many masked bits `slot` holds, if the task has that slot.
    pub fn slot_bits(&self, slot: u32) -> Option<u32> {
        if slot < self.max_inputs {
            Some(self.input_bits)
        } else {
            (self.owner_slot() == Some(slot)).then_some(self.owner_bits)
        }
    }
}

/// A slot granted to one device key, signed by the task's coordinator (its libp2p key): members
/// release the slot's mask shares to that key only and accept the slot's input only from it, so
/// nobody fills or takes over a slot the coordinator did not grant them. The owner slot's ticket
/// is signed instead by the project owner's chain key ([`SlotTicket::owner_message`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotTicket {
    pub task_id: TaskId,
    pub slot: u32,
    pub client_key: [u8; 32],
    pub signature: Vec<u8>,
}

impl SlotTicket {
    /// What the coordinator signs.
    pub fn message(task_id: &TaskId, slot: u32, client_key: &[u8; 32]) -> Vec<u8> {
        [
            b"conclave slot ticket v1".as_slice(),
            task_id,
            &slot.to_be_bytes(),
            client_key,
        ]
        .concat()
    }

    /// What the project owner signs (EIP-191) to take the owner slot of a task with
    /// `client_key`: bound to the deployment, so that it is good for this task only.
    pub fn owner_message(
        chain_id: u64,
        router: &[u8; 20],
        task_id: &TaskId,
        client_key: &[u8; 32],
    ) -> Vec<u8> {
        [
            b"conclave owner slot v1".as_slice(),
            &chain_id.to_be_bytes(),
            router,
            task_id,
            client_key,
        ]
        .concat()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Coordinator → candidate: are you there, and what is your input key?
    Prepare { task_id: TaskId, project_id: u64 },
    /// Coordinator → member: the final committee; start preprocessing.
    Start(TaskInfo),
    /// Entry node → coordinator: the task's committee and window.
    GetTask { task_id: TaskId },
    /// Entry node → coordinator: a slot for one more input, granted to the device's key.
    AllocateSlot {
        task_id: TaskId,
        client_key: [u8; 32],
    },
    /// Entry node → member: your shares of the ticket's slot's triples, sealed for its key.
    TripleShares(SlotTicket),
    /// Entry node → member: a client's masked input bits y_j = β_j − a_j, sealed for this
    /// member by the key the slot was granted to.
    Input {
        task_id: TaskId,
        slot: u32,
        sealed: Sealed,
    },
    /// Coordinator → member: which slots you hold, with a hash of each y.
    Digest { task_id: TaskId },
    /// Coordinator → member: compute over these slots and sign the result.
    Run { task_id: TaskId, slots: Vec<u32> },
    /// Entry node → coordinator: the task's state.
    Status { task_id: TaskId },
    /// Coordinator → member (in rank order): submit the result with these signatures.
    Submit {
        task_id: TaskId,
        output: Vec<u8>,
        proof_hash: [u8; 32],
        /// (operator address, 65-byte signature) per signing member.
        signatures: Vec<([u8; 20], Vec<u8>)>,
    },
    /// Any peer → any node: the program source with this keccak256 hash, if you keep it.
    ProgramSource { hash: [u8; 32] },
    /// Entry node → member: your shares of the task's private-output masks, sealed for the
    /// program's receiver (answered with `Shares`).
    SealedOutput { task_id: TaskId },
    /// Any peer → any node: the WebAssembly module with this keccak256 hash, if you keep it.
    Module { hash: [u8; 32] },
    /// Member → member of a task whose seats see the records (`wasm`): the slots the
    /// coordinator asked you to run over (answered with `RunSlots` once you were asked).
    RunSlots { task_id: TaskId },
    /// A `halo2` task's proof, from a seat that made or checked it (for the task's members and
    /// coordinator).
    Proof { task_id: TaskId },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Prepared {
        key: [u8; 32],
    },
    Started,
    Task(Box<TaskInfo>),
    Slot(SlotTicket),
    Shares(Sealed),
    Accepted,
    Digest(Vec<(u32, [u8; 32])>),
    Ran {
        output: Vec<u8>,
        proof_hash: [u8; 32],
        signature: Vec<u8>,
    },
    Submitted {
        tx_hash: [u8; 32],
        block: u64,
    },
    Status(Box<crate::task::TaskReport>),
    ProgramSource(String),
    Module(Vec<u8>),
    RunSlots(Vec<u32>),
    Proof {
        input_commitment: [u8; 32],
        proof: Vec<u8>,
    },
    /// The request was understood and refused; the reason is for people.
    Refused {
        kind: RefusalKind,
        reason: String,
    },
}

/// Why a peer refused a request, so that an entry node can tell its device the right thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalKind {
    /// No such task (or slot) here.
    Unknown,
    /// The task's input window is closed.
    Closed,
    /// The request itself is malformed.
    Invalid,
    /// The peer could not do it (storage, preprocessing, computation, chain).
    Failed,
    /// The peer is at its limit for this asker or for everyone: retry later.
    Busy,
    /// The member cannot take part in the task any more (its preprocessing aborted: a cheating
    /// or lost peer; or its material is gone after a restart): the task cannot run.
    Aborted,
}

impl Response {
    pub fn refused(kind: RefusalKind, reason: impl Into<String>) -> Response {
        Response::Refused {
            kind,
            reason: reason.into(),
        }
    }
}

/// A message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {0} bytes exceeds the limit of {MAX_MESSAGE}")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE>()
}

pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(message, config()).expect("node messages serialise")
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refuse_garbage() {
        let r = Request::Run {
            task_id: [7; 32],
            slots: vec![0, 1, 5],
        };
        assert_eq!(decode::<Request>(&encode(&r)).unwrap(), r);
        let mut long = encode(&r);
        long.push(0);
        assert!(matches!(
            decode::<Request>(&long),
            Err(DecodeError::Trailing(1))
        ));
        assert!(decode::<Request>(&[0xff; 9]).is_err());
        assert!(decode::<Request>(&vec![0; MAX_MESSAGE + 1]).is_err());
        // A length prefix claiming far more than the limit is refused, not allocated.
        let mut huge = vec![7u8];
        huge.extend_from_slice(&[0; 32]);
        huge.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(decode::<Request>(&huge).is_err());
    }
}
