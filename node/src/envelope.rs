//! Sealed envelopes: X25519 key agreement with a fresh ephemeral key, BLAKE3 key derivation and
//! ChaCha20-Poly1305. Client inputs and triple shares travel in these, so the node relaying them
//! (the device's entry node) learns nothing.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use curve25519_dalek::montgomery::MontgomeryPoint;
use rand::Rng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Largest plaintext an envelope may carry.
pub const MAX_PLAINTEXT: usize = 4096;

/// An X25519 secret key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SecretKey(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    pub fn public(&self) -> [u8; 32] {
        MontgomeryPoint::mul_base_clamped(self.0).to_bytes()
    }
}

/// A sealed message for one recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub ephemeral: [u8; 32],
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

/// Why an envelope could not be opened or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the key agreement gave a degenerate secret (low-order public key)")]
    WeakKey,
    #[error("the envelope does not open with this key and context (tampered or misaddressed)")]
    Open,
    #[error("the plaintext is larger than {MAX_PLAINTEXT} bytes")]
    TooLarge,
}

fn cipher(
    secret: &[u8; 32],
    their_public: &[u8; 32],
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
) -> Result<ChaCha20Poly1305, EnvelopeError> {
    let shared = MontgomeryPoint(*their_public)
        .mul_clamped(*secret)
        .to_bytes();
    if shared == [0u8; 32] {
        return Err(EnvelopeError::WeakKey);
    }
    let mut h = blake3::Hasher::new_derive_key("conclave envelope v1");
    h.update(&shared);
    h.update(ephemeral);
    h.update(recipient);
    Ok(ChaCha20Poly1305::new(Key::from_slice(
        h.finalize().as_bytes(),
    )))
}

/// Seals `plaintext` for the holder of `recipient`'s secret; `context` is bound but not sent.
pub fn seal(
    recipient: &[u8; 32],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, EnvelopeError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EnvelopeError::TooLarge);
    }
    let eph = SecretKey::generate();
    let ephemeral = eph.public();
    let aead = cipher(&eph.0, recipient, &ephemeral, recipient)?;
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let ciphertext = aead
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .map_err(|_| EnvelopeError::Open)?;
    Ok(Sealed {
        ephemeral,
        nonce,
        ciphertext,
    })
}

/// Opens an envelope sealed for `key` with the same `context`.
pub fn open(key: &SecretKey, context: &[u8], sealed: &Sealed) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.ciphertext.len() > MAX_PLAINTEXT + 16 {
        return Err(EnvelopeError::TooLarge);
    }
    let aead = cipher(&key.0, &sealed.ephemeral, &sealed.ephemeral, &key.public())?;
    aead.decrypt(
        Nonce::from_slice(&sealed.nonce),
        Payload {
            msg: &sealed.ciphertext,
            aad: context,
        },
    )
    .map_err(|_| EnvelopeError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_right_key_and_context() {
        let alice = SecretKey::generate();
        let sealed = seal(&alice.public(), b"task 1 slot 2", b"reading 42").unwrap();
        assert_eq!(
            open(&alice, b"task 1 slot 2", &sealed).unwrap(),
            b"reading 42"
        );
        assert_eq!(
            open(&alice, b"task 1 slot 3", &sealed),
            Err(EnvelopeError::Open)
        );
        assert_eq!(
            open(&SecretKey::generate(), b"task 1 slot 2", &sealed),
            Err(EnvelopeError::Open)
        );
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(
            open(&alice, b"task 1 slot 2", &tampered),
            Err(EnvelopeError::Open)
        );
        let weak = Sealed {
            ephemeral: [0; 32],
            ..sealed
        };
        assert_eq!(
            open(&alice, b"task 1 slot 2", &weak),
            Err(EnvelopeError::WeakKey)
        );
    }
}
