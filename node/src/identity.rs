//! Proof of possession for a node's registry record: the libp2p key signs the binding of its peer
//! id to the operator address and the input key (`conclave_chain::identity::binding_message`).
//! The input key itself is derived from the libp2p key (the X25519 form of the ed25519 key), so
//! the peer id names it: nobody can register another node's input key as theirs.
//! The registry cannot check ed25519, so nodes and devices check records here and ignore those
//! that fail: a record naming someone else's peer id, or another input key, is useless.

use alloy::primitives::{Address, B256};
use conclave_chain::bindings::NodeRegistry;
use conclave_chain::identity::{NodeIdentity, binding_message};
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};

use crate::envelope::SecretKey;
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
    #[error("the input key is not the one the peer id's key derives")]
    UnboundInputKey,
    #[error("signing the binding failed: {0}")]
    Sign(String),
}

/// The registration record for this node: its peer id, input key and proof of possession.
pub fn node_identity(
    keypair: &Keypair,
    chain_id: u64,
    registry: Address,
    operator: Address,
) -> Result<NodeIdentity, IdentityError> {
    let peer_id = keypair.public().to_peer_id().to_bytes();
    let input_key = input_key_of(keypair)?.public();
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
    // A low-order key (a small-order peer key passes libp2p's verification) could be sealed
    // for by nobody.
    if bound_input_key(&key) != Some(record.inputKey.0)
        || crate::envelope::check_public_key(&record.inputKey.0).is_err()
    {
        return Err(IdentityError::UnboundInputKey);
    }
    Ok((peer, record.inputKey.0))
}

/// A node's X25519 input key, derived from its ed25519 libp2p key: the scalar ed25519 signs
/// with (the first half of SHA-512 of the seed), whose public point is the ed25519 public key in
/// Montgomery form ([`bound_input_key`]).
pub fn input_key_of(keypair: &Keypair) -> Result<SecretKey, IdentityError> {
    use sha2::Digest;
    let ed = keypair
        .clone()
        .try_into_ed25519()
        .map_err(|_| IdentityError::NoInlineKey)?;
    let mut hash = sha2::Sha512::digest(ed.secret().as_ref());
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&hash[..32]);
    zeroize::Zeroize::zeroize(hash.as_mut_slice());
    let key = SecretKey::from_bytes(scalar);
    zeroize::Zeroize::zeroize(&mut scalar);
    Ok(key)
}

/// The input key an ed25519 peer key derives: its public point in Montgomery form.
fn bound_input_key(key: &PublicKey) -> Option<[u8; 32]> {
    let ed = key.clone().try_into_ed25519().ok()?;
    curve25519_dalek::edwards::CompressedEdwardsY(ed.to_bytes())
        .decompress()
        .map(|point| point.to_montgomery().to_bytes())
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

/// A ticket for a task's owner slot, signed (EIP-191) with the project owner's chain key.
pub fn issue_owner_ticket(
    owner: &alloy::signers::local::PrivateKeySigner,
    chain_id: u64,
    router: alloy::primitives::Address,
    task_id: TaskId,
    slot: u32,
    client_key: [u8; 32],
) -> Result<SlotTicket, IdentityError> {
    use alloy::signers::SignerSync;
    let message = SlotTicket::owner_message(chain_id, &router.0.0, &task_id, &client_key);
    let signature = owner
        .sign_message_sync(&message)
        .map_err(|e| IdentityError::Sign(e.to_string()))?;
    Ok(SlotTicket {
        task_id,
        slot,
        client_key,
        signature: signature.as_bytes().to_vec(),
    })
}

/// The owner's X25519 key for a task's owner slot: the same on every attempt, since members bind
/// the slot to the first key they release it to, and a retry after a relay failed midway (or
/// lied) must find the slot bound to its own key. Derived from the owner's signature (RFC 6979:
/// deterministic) of a message used for nothing else and never sent.
pub fn owner_slot_key(
    owner: &alloy::signers::local::PrivateKeySigner,
    chain_id: u64,
    router: alloy::primitives::Address,
    task_id: &TaskId,
) -> Result<SecretKey, IdentityError> {
    use alloy::signers::SignerSync;
    let message = [
        b"conclave owner slot key v1".as_slice(),
        &chain_id.to_be_bytes(),
        router.as_slice(),
        task_id,
    ]
    .concat();
    let signature = owner
        .sign_message_sync(&message)
        .map_err(|e| IdentityError::Sign(e.to_string()))?;
    let mut seed = blake3::Hasher::new_derive_key("conclave owner slot key v1")
        .update(&signature.as_bytes())
        .finalize()
        .into();
    let key = SecretKey::from_bytes(seed);
    zeroize::Zeroize::zeroize(&mut seed);
    Ok(key)
}

/// The chain address that signed an owner-slot ticket, if its signature is well formed.
pub(crate) fn owner_ticket_signer(
    ticket: &SlotTicket,
    chain_id: u64,
    router: alloy::primitives::Address,
) -> Option<alloy::primitives::Address> {
    let message =
        SlotTicket::owner_message(chain_id, &router.0.0, &ticket.task_id, &ticket.client_key);
    alloy::primitives::Signature::try_from(ticket.signature.as_slice())
        .ok()?
        .recover_address_from_msg(message)
        .ok()
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

    /// The owner finds its owner-slot key again on a retry, a different one per task, and
    /// its ticket's signer is recovered only for the deployment and key it signed.
    #[test]
    fn owner_slot_keys_are_stable_and_tickets_bind_their_deployment() {
        let owner = alloy::signers::local::PrivateKeySigner::random();
        let router = Address::repeat_byte(3);
        let key = |task: u8| {
            owner_slot_key(&owner, 1, router, &[task; 32])
                .unwrap()
                .to_bytes()
        };
        assert_eq!(key(7), key(7));
        assert_ne!(key(7), key(8));
        let ticket = issue_owner_ticket(&owner, 1, router, [7; 32], 4, [9; 32]).unwrap();
        assert_eq!(
            owner_ticket_signer(&ticket, 1, router),
            Some(owner.address())
        );
        assert_ne!(
            owner_ticket_signer(&ticket, 2, router),
            Some(owner.address())
        );
        let mut other_key = ticket.clone();
        other_key.client_key = [8; 32];
        assert_ne!(
            owner_ticket_signer(&other_key, 1, router),
            Some(owner.address())
        );
        other_key.signature.truncate(10);
        assert_eq!(owner_ticket_signer(&other_key, 1, router), None);
    }

    #[test]
    fn a_record_verifies_only_for_its_operator_key_and_deployment() {
        let keypair = Keypair::generate_ed25519();
        let (registry, operator) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let id = node_identity(&keypair, 31337, registry, operator).unwrap();
        let good = record(&id);
        let (peer, key) = verify_record(&good, 31337, registry, operator).unwrap();
        assert_eq!(peer, keypair.public().to_peer_id());
        assert_eq!(key, input_key_of(&keypair).unwrap().public());
        // Envelopes sealed for the derived public key open with the derived secret.
        let sealed = crate::envelope::seal(&key, b"ctx", b"hello").unwrap();
        let opened = crate::envelope::open(&input_key_of(&keypair).unwrap(), b"ctx", &sealed);
        assert_eq!(opened.unwrap(), b"hello");
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
        // A proof made for another node's input key (its own peer id, a victim's key): the
        // key is not the one its peer id derives.
        let victim = input_key_of(&Keypair::generate_ed25519()).unwrap().public();
        let message = binding_message(31337, registry, operator, &id.peer_id, B256::from(victim));
        let squatting = NodeRegistry::Node {
            inputKey: B256::from(victim),
            proofOfPossession: Bytes::from(keypair.sign(&message).unwrap()),
            ..good.clone()
        };
        assert_eq!(
            verify_record(&squatting, 31337, registry, operator),
            Err(IdentityError::UnboundInputKey)
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
