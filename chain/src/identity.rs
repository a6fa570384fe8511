//! A node's on-chain identity: operator address ↔ libp2p peer id ↔ X25519 input key.
//!
//! The operator's transaction binds its address to the record; the proof of possession binds the
//! peer id: the peer key signs [`binding_message`], which names the chain, the registry, the
//! operator and the input key. The EVM cannot check an ed25519 signature cheaply, so the
//! registry stores the proof and every node and device checks it (`conclave_node::identity`),
//! ignoring records that fail.

use alloy::primitives::{Address, B256};

/// What `NodeRegistry.register` takes besides the stake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The libp2p peer id, as bytes.
    pub peer_id: Vec<u8>,
    /// The X25519 public key devices seal their mask requests to.
    pub input_key: B256,
    /// The peer key's signature over [`binding_message`] (64 bytes).
    pub proof_of_possession: Vec<u8>,
}

/// Domain separation for the binding signature.
const BINDING_DOMAIN: &[u8] = b"conclave/1/node-binding";

/// The bytes the peer key signs: domain ‖ chain id ‖ registry ‖ operator ‖ peer id ‖ input key.
/// Naming the chain and registry keeps a proof from being replayed on another deployment;
/// naming the operator keeps anyone else from registering the peer id as theirs.
pub fn binding_message(
    chain_id: u64,
    registry: Address,
    operator: Address,
    peer_id: &[u8],
    input_key: B256,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(BINDING_DOMAIN.len() + 8 + 20 + 20 + 1 + peer_id.len() + 32);
    m.extend_from_slice(BINDING_DOMAIN);
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(registry.as_slice());
    m.extend_from_slice(operator.as_slice());
    m.push(peer_id.len().min(255) as u8);
    m.extend_from_slice(peer_id);
    m.extend_from_slice(input_key.as_slice());
    m
}
