//! The message a node's peer key signs to bind its peer id to an operator and an input key names
//! every one of its fields: changing any changes the message.

use alloy::primitives::{Address, B256};
use conclave_chain::identity::binding_message;

#[derive(Clone)]
struct Fields {
    chain_id: u64,
    registry: Address,
    operator: Address,
    peer_id: Vec<u8>,
    input_key: B256,
}

impl Fields {
    fn message(&self) -> Vec<u8> {
        binding_message(
            self.chain_id,
            self.registry,
            self.operator,
            &self.peer_id,
            self.input_key,
        )
    }
}

#[test]
fn every_field_of_the_binding_changes_the_message() {
    let base = Fields {
        chain_id: 31337,
        registry: Address::repeat_byte(0x11),
        operator: Address::repeat_byte(0x22),
        peer_id: vec![0x33; 38],
        input_key: B256::repeat_byte(0x44),
    };
    assert_eq!(base.message(), base.message(), "deterministic");

    type Change = Box<dyn Fn(&mut Fields)>;
    let changes: Vec<(&str, Change)> = vec![
        ("chain id", Box::new(|f| f.chain_id = 1)),
        (
            "registry",
            Box::new(|f| f.registry = Address::repeat_byte(0x12)),
        ),
        (
            "operator",
            Box::new(|f| f.operator = Address::repeat_byte(0x23)),
        ),
        ("peer id byte", Box::new(|f| f.peer_id[37] ^= 1)),
        ("peer id length", Box::new(|f| f.peer_id.push(0))),
        (
            "input key",
            Box::new(|f| f.input_key = B256::repeat_byte(0x45)),
        ),
        // The registry and operator trade places: the message must tell them apart.
        (
            "registry and operator swapped",
            Box::new(|f| std::mem::swap(&mut f.registry, &mut f.operator)),
        ),
    ];
    let mut seen = vec![base.message()];
    for (what, change) in &changes {
        let mut f = base.clone();
        change(&mut f);
        let m = f.message();
        assert!(
            !seen.contains(&m),
            "changing the {what} left the message as before"
        );
        seen.push(m);
    }
}

#[test]
fn the_layout_is_domain_chain_registry_operator_then_length_prefixed_peer_id_and_key() {
    // Proofs already signed must keep verifying: the layout is pinned here.
    let registry = Address::repeat_byte(1);
    let operator = Address::repeat_byte(2);
    let mut key = [7u8; 32];
    key[31] = 9;
    let a = binding_message(5, registry, operator, &[1, 2, 3], B256::from(key));
    let b = binding_message(5, registry, operator, &[1, 2], B256::from(key));
    assert_ne!(a, b);
    assert_ne!(a.len(), b.len());
    // The message starts with the domain and names the chain in 8 big-endian bytes after it.
    assert!(a.starts_with(b"conclave/1/node-binding"));
    let after = &a[b"conclave/1/node-binding".len()..];
    assert_eq!(&after[..8], &5u64.to_be_bytes());
    assert_eq!(&after[8..28], registry.as_slice());
    assert_eq!(&after[28..48], operator.as_slice());
    assert_eq!(after[48], 3);
    assert_eq!(&after[49..52], &[1, 2, 3]);
    assert_eq!(&after[52..], &key);
}
