//! Sealed envelopes: X25519 key agreement with a fresh ephemeral key, BLAKE3 key derivation and
//! ChaCha20-Poly1305. Client inputs and triple shares travel in these, so the node relaying them
//! (the device's entry node) learns nothing. An *authenticated* envelope also mixes in the key
//! agreement of the sender's static key with the recipient's, so it opens only for a recipient
//! who names that sender: a device's masked input can come only from the key its slot was
//! granted to.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use curve25519_dalek::montgomery::MontgomeryPoint;
use rand::Rng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Largest plaintext an envelope may carry (a slot's triple shares at the widest inputs).
pub const MAX_PLAINTEXT: usize = 32 << 10;

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

fn agree(secret: &[u8; 32], their_public: &[u8; 32]) -> Result<[u8; 32], EnvelopeError> {
    let shared = MontgomeryPoint(*their_public)
        .mul_clamped(*secret)
        .to_bytes();
    if shared == [0u8; 32] {
        return Err(EnvelopeError::WeakKey);
    }
    Ok(shared)
}

/// Refuses a public key no envelope can be sealed for (a low-order point: every key agreement
/// with it gives the same secret).
pub fn check_public_key(public: &[u8; 32]) -> Result<(), EnvelopeError> {
    agree(&[1; 32], public).map(|_| ())
}

/// The envelope's cipher from the ephemeral key agreement and, for an authenticated envelope,
/// the static one with the sender's public key.
fn cipher(
    shared: &[u8; 32],
    sender: Option<([u8; 32], &[u8; 32])>,
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
) -> ChaCha20Poly1305 {
    let mut h = match sender {
        None => blake3::Hasher::new_derive_key("conclave envelope v1"),
        Some((static_shared, sender)) => {
            let mut h = blake3::Hasher::new_derive_key("conclave authenticated envelope v1");
            h.update(&static_shared);
            h.update(sender);
            h
        }
    };
    h.update(shared);
    h.update(ephemeral);
    h.update(recipient);
    ChaCha20Poly1305::new(Key::from_slice(h.finalize().as_bytes()))
}

/// Seals `plaintext` for the holder of `recipient`'s secret; `context` is bound but not sent.
pub fn seal(
    recipient: &[u8; 32],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, EnvelopeError> {
    seal_with(None, recipient, context, plaintext)
}

/// Seals like [`seal`], so that it opens only with [`open_from`] naming `sender`'s public key.
pub fn seal_from(
    sender: &SecretKey,
    recipient: &[u8; 32],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, EnvelopeError> {
    seal_with(Some(sender), recipient, context, plaintext)
}

fn seal_with(
    sender: Option<&SecretKey>,
    recipient: &[u8; 32],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, EnvelopeError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EnvelopeError::TooLarge);
    }
    let eph = SecretKey::generate();
    let ephemeral = eph.public();
    let shared = agree(&eph.0, recipient)?;
    let sender = match sender {
        Some(key) => Some((agree(&key.0, recipient)?, key.public())),
        None => None,
    };
    let aead = cipher(
        &shared,
        sender.as_ref().map(|(s, p)| (*s, p)),
        &ephemeral,
        recipient,
    );
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
    open_with(key, None, context, sealed)
}

/// Opens an envelope that `sender` sealed with [`seal_from`] for `key`; fails for any other
/// sender, and for an envelope sealed without a sender.
pub fn open_from(
    key: &SecretKey,
    sender: &[u8; 32],
    context: &[u8],
    sealed: &Sealed,
) -> Result<Vec<u8>, EnvelopeError> {
    open_with(key, Some(sender), context, sealed)
}

fn open_with(
    key: &SecretKey,
    sender: Option<&[u8; 32]>,
    context: &[u8],
    sealed: &Sealed,
) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.ciphertext.len() > MAX_PLAINTEXT + 16 {
        return Err(EnvelopeError::TooLarge);
    }
    let shared = agree(&key.0, &sealed.ephemeral)?;
    let sender = match sender {
        Some(public) => Some((agree(&key.0, public)?, public)),
        None => None,
    };
    let aead = cipher(&shared, sender, &sealed.ephemeral, &key.public());
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

    /// An authenticated envelope opens only for the sender it names: not for another sender's
    /// key, not as a plain envelope, and a plain envelope does not pass as an authenticated one.
    #[test]
    fn authenticated_envelopes_name_their_sender() {
        let (member, device, other) = (
            SecretKey::generate(),
            SecretKey::generate(),
            SecretKey::generate(),
        );
        let sealed = seal_from(&device, &member.public(), b"slot 3", b"y").unwrap();
        assert_eq!(
            open_from(&member, &device.public(), b"slot 3", &sealed).unwrap(),
            b"y"
        );
        for wrong in [
            open_from(&member, &other.public(), b"slot 3", &sealed),
            open_from(&member, &device.public(), b"slot 4", &sealed),
            open(&member, b"slot 3", &sealed),
        ] {
            assert_eq!(wrong, Err(EnvelopeError::Open));
        }
        let forged = seal_from(&other, &member.public(), b"slot 3", b"y").unwrap();
        let plain = seal(&member.public(), b"slot 3", b"y").unwrap();
        for wrong in [forged, plain] {
            assert_eq!(
                open_from(&member, &device.public(), b"slot 3", &wrong),
                Err(EnvelopeError::Open)
            );
        }
        assert_eq!(
            open_from(&member, &[0; 32], b"slot 3", &sealed),
            Err(EnvelopeError::WeakKey)
        );
    }
}
