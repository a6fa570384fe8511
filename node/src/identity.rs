//! Proof of possession for a node's registry record: the libp2p key signs the binding of its peer
//! id to the operator address and the input key (`conclave_chain::identity::binding_message`).
//! The registry cannot check ed25519, so nodes and devices check records here and ignore those
//! that fail: a record naming someone else's peer id, or another input key, is useless.

use alloy::primitives::{Address, B256};
use conclave_chain::bindings::NodeRegistry;
use conclave_chain::identity::{NodeIdentity, binding_message};
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};

use crate::messages::{SlotTicket, TaskId};

/// Why a registry record is not a valid binding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("the peer id is not a valid libp2p peer id")]
    BadPeerId,
    #[error("the peer id does not embed its public key (only ed25519 peer ids do)")]
    NoInlineKey,
    #[error("the proof of possession does not verify under the peer id's key")]
    BadProof,
    #[error("signing the binding failed: {0}")]
    Sign(String),
}

/// The registration record for this node: its peer id, input key and proof of possession.
pub fn node_identity(
    keypair: &Keypair,
    input_key: [u8; 32],
    chain_id: u64,
    registry: Address,
    operator: Address,
) -> Result<NodeIdentity, IdentityError> {
    let peer_id = keypair.public().to_peer_id().to_bytes();
    let message = binding_message(
        chain_id,
        registry,
        operator,
        &peer_id,
        B256::from(input_key),
    );
    let proof_of_possession = keypair
        .sign(&message)
        .map_err(|e| IdentityError::Sign(e.to_string()))?;
    Ok(NodeIdentity {
        peer_id,
        input_key: B256::from(input_key),
        proof_of_possession,
    })
}

/// Checks `operator`'s record; returns its peer id and input key when the binding holds.
pub fn verify_record(
    record: &NodeRegistry::Node,
    chain_id: u64,
    registry: Address,
    operator: Address,
) -> Result<(PeerId, [u8; 32]), IdentityError> {
    let peer = PeerId::from_bytes(&record.peerId).map_err(|_| IdentityError::BadPeerId)?;
    let key = inline_key(&peer).ok_or(IdentityError::NoInlineKey)?;
    let message = binding_message(
        chain_id,
        registry,
        operator,
        &record.peerId,
        record.inputKey,
    );
    if !key.verify(&message, &record.proofOfPossession) {
        return Err(IdentityError::BadProof);
    }
    Ok((peer, record.inputKey.0))
}

/// A slot ticket for `client_key`, signed with the coordinator's libp2p key.
pub(crate) fn issue_ticket(
    keypair: &Keypair,
    task_id: TaskId,
    slot: u32,
    client_key: [u8; 32],
) -> Result<SlotTicket, IdentityError> {
    let signature = keypair
        .sign(&SlotTicket::message(&task_id, slot, &client_key))
        .map_err(|e| IdentityError::Sign(e.to_string()))?;
    Ok(SlotTicket {
        task_id,
        slot,
        client_key,
        signature,
    })
}

/// Whether `ticket` was signed by the node `coordinator`.
pub(crate) fn ticket_is_from(ticket: &SlotTicket, coordinator: &PeerId) -> bool {
    inline_key(coordinator).is_some_and(|key| {
        key.verify(
            &SlotTicket::message(&ticket.task_id, ticket.slot, &ticket.client_key),
            &ticket.signature,
        )
    })
}

/// The public key an identity-multihash peer id carries.
fn inline_key(peer: &PeerId) -> Option<PublicKey> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return None;
    }
    PublicKey::try_decode_protobuf(multihash.digest()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Bytes, U256};

    fn record(id: &NodeIdentity) -> NodeRegistry::Node {
        NodeRegistry::Node {
            peerId: Bytes::from(id.peer_id.clone()),
            inputKey: id.input_key,
            proofOfPossession: Bytes::from(id.proof_of_possession.clone()),
            stake: U256::from(1),
            registeredAt: 1,
            deactivatedAt: 0,
            slashed: false,
        }
    }

    #[test]
    fn a_record_verifies_only_for_its_operator_key_and_deployment() {
        let keypair = Keypair::generate_ed25519();
        let (registry, operator) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let id = node_identity(&keypair, [7; 32], 31337, registry, operator).unwrap();
        let good = record(&id);
        let (peer, key) = verify_record(&good, 31337, registry, operator).unwrap();
        assert_eq!(peer, keypair.public().to_peer_id());
        assert_eq!(key, [7; 32]);
        // Someone else registering this peer id under their address: the proof names the owner.
        assert_eq!(
            verify_record(&good, 31337, registry, Address::repeat_byte(3)),
            Err(IdentityError::BadProof)
        );
        // Another chain, another registry, another input key.
        assert!(verify_record(&good, 1, registry, operator).is_err());
        assert!(verify_record(&good, 31337, Address::repeat_byte(9), operator).is_err());
        let mut other_key = good.clone();
        other_key.inputKey = B256::repeat_byte(8);
        assert_eq!(
            verify_record(&other_key, 31337, registry, operator),
            Err(IdentityError::BadProof)
        );
        let mut garbage = good.clone();
        garbage.proofOfPossession = Bytes::from(vec![0u8; 64]);
        assert_eq!(
            verify_record(&garbage, 31337, registry, operator),
            Err(IdentityError::BadProof)
        );
        garbage.peerId = Bytes::from_static(b"not a peer id");
        assert_eq!(
            verify_record(&garbage, 31337, registry, operator),
            Err(IdentityError::BadPeerId)
        );
    }

    /// A ticket verifies for its coordinator only, and not once any field changed.
    #[test]
    fn tickets_verify_for_their_coordinator_and_fields_only() {
        let coordinator = Keypair::generate_ed25519();
        let ticket = issue_ticket(&coordinator, [1; 32], 4, [2; 32]).unwrap();
        let peer = coordinator.public().to_peer_id();
        assert!(ticket_is_from(&ticket, &peer));
        assert!(!ticket_is_from(
            &ticket,
            &Keypair::generate_ed25519().public().to_peer_id()
        ));
        for altered in [
            SlotTicket {
                slot: 5,
                ..ticket.clone()
            },
            SlotTicket {
                client_key: [3; 32],
                ..ticket.clone()
            },
            SlotTicket {
                task_id: [9; 32],
                ..ticket.clone()
            },
        ] {
            assert!(!ticket_is_from(&altered, &peer));
        }
    }
}
