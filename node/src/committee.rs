//! A task's committee as every node and device computes it from chain: the seat holders of the
//! task's draw whose registry record passes the identity check ([`crate::identity`]). Nobody's
//! word is taken for who is on a committee, which peer id a seat holder runs, or which key seals
//! its inputs.

use alloy::primitives::{Address, U256};
use conclave_chain::contracts::Task;
use conclave_chain::sortition::seat_count;
use conclave_chain::{ContractError, Contracts};
use libp2p::PeerId;

use crate::identity::verify_record;
use crate::messages::Member;

/// One seat holder with a valid identity record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatHolder {
    pub operator: Address,
    pub peer: PeerId,
    pub input_key: [u8; 32],
    pub seats: u32,
}

/// Why a committee does not match the chain.
#[derive(Debug, thiserror::Error)]
pub enum CommitteeError {
    #[error("no such task on chain")]
    UnknownTask,
    #[error("the task belongs to project {actual}, not {claimed}")]
    WrongProject { claimed: u64, actual: U256 },
    #[error("the task's seed is not drawn yet")]
    SeedNotYet,
    #[error("listed member {0} holds no seat in this task")]
    NotSeated(String),
    #[error("listed member {0} does not have its registered operator or input key")]
    WrongIdentity(String),
    #[error("a member is listed twice")]
    Duplicate,
    #[error("the list leaves out {0} of the task's seat holders")]
    Incomplete(usize),
    #[error("the listed members hold {seats} seats; the task needs {needed}")]
    TooFewSeats { seats: u32, needed: u16 },
    #[error("reading the chain: {0}")]
    Chain(#[from] ContractError),
}

/// The task's seat holders with valid records, in ascending operator order, or `None` while the
/// block the seed comes from is not mined. A peer id or input key in two valid records (its key
/// signed for two operators) counts once, for the earlier registration.
pub async fn seat_holders(
    contracts: &Contracts,
    task: U256,
) -> Result<Option<Vec<SeatHolder>>, ContractError> {
    let Some(seated) = contracts.committee(task).await? else {
        return Ok(None);
    };
    let a = contracts.addresses();
    let mut holders: Vec<(u64, SeatHolder)> = Vec::with_capacity(seated.len());
    for (operator, mask) in seated {
        let record = contracts.node(operator).await?;
        match verify_record(&record, a.chain_id, a.node_registry, operator) {
            Ok((peer, input_key)) => holders.push((
                record.registeredAt,
                SeatHolder {
                    operator,
                    peer,
                    input_key,
                    seats: seat_count(mask),
                },
            )),
            Err(e) => {
                tracing::info!(%operator, error = %e, "seat holder's record fails its identity check; ignored")
            }
        }
    }
    holders.sort_by_key(|(at, h)| (*at, h.operator));
    // One node per peer id and per input key: a second valid record for either (the key holder
    // signed twice) gets no separate place.
    let mut peers = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    holders.retain(|(_, h)| peers.insert(h.peer) & keys.insert(h.input_key));
    let mut holders: Vec<SeatHolder> = holders.into_iter().map(|(_, h)| h).collect();
    holders.sort_by_key(|h| h.operator);
    Ok(Some(holders))
}

/// The task, read from chain, if it exists and belongs to `project`.
pub async fn task_of_project(
    contracts: &Contracts,
    task_id: U256,
    project: u64,
) -> Result<Task, CommitteeError> {
    let task = match contracts.task(task_id).await {
        Ok(task) => task,
        Err(e) if e.revert().is_some() => return Err(CommitteeError::UnknownTask),
        Err(e) => return Err(e.into()),
    };
    if task.projectId != U256::from(project) {
        return Err(CommitteeError::WrongProject {
            claimed: project,
            actual: task.projectId,
        });
    }
    Ok(task)
}

/// Checks a committee someone announced for a task against chain: the task exists and belongs to
/// `project`, and the list is exactly its valid seat holders ([`check_members`]). Returns the
/// task.
pub async fn check_committee(
    contracts: &Contracts,
    task_id: U256,
    project: u64,
    committee: &[Member],
) -> Result<Task, CommitteeError> {
    let task = task_of_project(contracts, task_id, project).await?;
    check_members(contracts, task_id, &task, committee).await?;
    Ok(task)
}

/// The list must be exactly the task's seat holders with valid records (each with its registered
/// operator and input key), holding at least the task's threshold of seats. A list that leaves a
/// seat holder out is refused even with enough seats: privacy needs the honest seat holders in,
/// and whoever announces the committee could otherwise drop them as "absent" and keep the ones
/// it controls. This reads every registered operator's units: do the cheap checks first.
pub async fn check_members(
    contracts: &Contracts,
    task_id: U256,
    task: &Task,
    committee: &[Member],
) -> Result<(), CommitteeError> {
    let holders = seat_holders(contracts, task_id)
        .await?
        .ok_or(CommitteeError::SeedNotYet)?;
    let mut seats = 0u32;
    let mut seen = std::collections::HashSet::new();
    for member in committee {
        let shown = PeerId::from_bytes(&member.peer)
            .map(|p| p.to_string())
            .unwrap_or_else(|_| hex::encode(&member.peer));
        let holder = holders
            .iter()
            .find(|h| h.peer.to_bytes() == member.peer)
            .ok_or_else(|| CommitteeError::NotSeated(shown.clone()))?;
        if holder.operator.0.0 != member.operator || holder.input_key != member.key {
            return Err(CommitteeError::WrongIdentity(shown));
        }
        if !seen.insert(holder.peer) {
            return Err(CommitteeError::Duplicate);
        }
        seats += holder.seats;
    }
    if seen.len() < holders.len() {
        return Err(CommitteeError::Incomplete(holders.len() - seen.len()));
    }
    if seats < u32::from(task.threshold) {
        return Err(CommitteeError::TooFewSeats {
            seats,
            needed: task.threshold,
        });
    }
    Ok(())
}

/// Seats per operator in a task's committee, as the chain draws them.
pub struct Seats(std::collections::HashMap<[u8; 20], u32>);

impl Seats {
    /// `operator`'s seats (0 if it holds none).
    pub fn of(&self, operator: &[u8; 20]) -> u32 {
        self.0.get(operator).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u32 {
        self.0.values().sum()
    }
}

/// The task's seats per operator, or `None` while its seed's block is not mined.
pub async fn seats(contracts: &Contracts, task: U256) -> Result<Option<Seats>, ContractError> {
    Ok(contracts.committee(task).await?.map(|seated| {
        Seats(
            seated
                .into_iter()
                .map(|(who, mask)| (who.0.0, seat_count(mask)))
                .collect(),
        )
    }))
}

/// The peer id of `operator`'s node, if its record passes the identity check.
pub async fn verified_peer(
    contracts: &Contracts,
    operator: Address,
) -> Result<Option<PeerId>, ContractError> {
    let record = contracts.node(operator).await?;
    let a = contracts.addresses();
    Ok(
        verify_record(&record, a.chain_id, a.node_registry, operator)
            .ok()
            .map(|(peer, _)| peer),
    )
}
