//! A task's committee as every node computes it from chain: the seat holders of the task's draw
//! whose registry record passes the identity check ([`crate::identity`]). Nobody's word is taken
//! for who is on a committee, which peer id a seat holder runs, or which key seals its inputs.

use alloy::primitives::{Address, U256};
use conclave_chain::sortition::seat_count;
use libp2p::PeerId;

use crate::identity::verify_record;
use crate::node::{Inner, NodeError};

/// One seat holder with a valid identity record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatHolder {
    pub operator: Address,
    pub peer: PeerId,
    pub input_key: [u8; 32],
    pub seats: u32,
}

impl Inner {
    /// The task's seat holders with valid records, in ascending operator order, or `None` while
    /// the block the seed comes from is not mined. A peer id claimed by two valid records (its key
    /// signed for two operators) counts once, for the earlier registration.
    pub(crate) async fn seat_holders(
        &self,
        task: U256,
    ) -> Result<Option<Vec<SeatHolder>>, NodeError> {
        let Some(seated) = self.contracts.committee(task).await? else {
            return Ok(None);
        };
        let registry = self.contracts.addresses().node_registry;
        let mut holders: Vec<(u64, SeatHolder)> = Vec::with_capacity(seated.len());
        for (operator, mask) in seated {
            let record = self.contracts.node(operator).await?;
            match verify_record(&record, self.chain_id, registry, operator) {
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
        let mut seen = std::collections::HashSet::new();
        holders.retain(|(_, h)| seen.insert(h.peer));
        let mut holders: Vec<SeatHolder> = holders.into_iter().map(|(_, h)| h).collect();
        holders.sort_by_key(|h| h.operator);
        Ok(Some(holders))
    }

    /// The peer id of `operator`'s node, if its record passes the identity check.
    pub(crate) async fn verified_peer(
        &self,
        operator: Address,
    ) -> Result<Option<PeerId>, NodeError> {
        let record = self.contracts.node(operator).await?;
        let registry = self.contracts.addresses().node_registry;
        Ok(verify_record(&record, self.chain_id, registry, operator)
            .ok()
            .map(|(peer, _)| peer))
    }
}
