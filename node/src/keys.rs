//! The node's keys on disk: the libp2p identity (`node.key`, ed25519, protobuf) and the operator's
//! chain key (`operator.json`, an encrypted Ethereum keystore, scrypt + AES). The X25519 input key
//! is derived from the libp2p key. A project's receiver keeps its X25519 key in a hex file.
//! Secret files are written with mode 0600.

use std::path::Path;

use alloy::signers::local::PrivateKeySigner;
use libp2p::identity::Keypair;

pub const NODE_KEY: &str = "node.key";
pub const OPERATOR_KEY: &str = "operator.json";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("operator key: {0}")]
    Operator(String),
    #[error("{0} already exists; refusing to overwrite keys")]
    Exists(String),
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> KeyError {
    KeyError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(|e| file_err(path, e))?;
    f.write_all(bytes).map_err(|e| file_err(path, e))
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, KeyError> {
    let len = std::fs::metadata(path)
        .map_err(|e| file_err(path, e))?
        .len();
    if len > limit {
        return Err(file_err(path, "file too large"));
    }
    std::fs::read(path).map_err(|e| file_err(path, e))
}

/// Creates the two keys in `dir`; returns the operator address and the peer id.
pub fn create(dir: &Path, passphrase: &str) -> Result<(PrivateKeySigner, Keypair), KeyError> {
    for name in [NODE_KEY, OPERATOR_KEY] {
        if dir.join(name).exists() {
            return Err(KeyError::Exists(dir.join(name).display().to_string()));
        }
    }
    let keypair = Keypair::generate_ed25519();
    let encoded = keypair
        .to_protobuf_encoding()
        .map_err(|e| file_err(&dir.join(NODE_KEY), e))?;
    write_secret(&dir.join(NODE_KEY), &encoded)?;
    let operator = PrivateKeySigner::random();
    let (signer, _) = PrivateKeySigner::encrypt_keystore(
        dir,
        &mut rand08::thread_rng(),
        operator.to_bytes(),
        passphrase,
        Some(OPERATOR_KEY),
    )
    .map_err(|e| KeyError::Operator(e.to_string()))?;
    Ok((signer, keypair))
}

pub fn node_key(dir: &Path) -> Result<Keypair, KeyError> {
    let path = dir.join(NODE_KEY);
    Keypair::from_protobuf_encoding(&read_limited(&path, 4096)?).map_err(|e| file_err(&path, e))
}

pub fn operator_key(dir: &Path, passphrase: &str) -> Result<PrivateKeySigner, KeyError> {
    let path = dir.join(OPERATOR_KEY);
    read_limited(&path, 64 * 1024)?;
    PrivateKeySigner::decrypt_keystore(&path, passphrase)
        .map_err(|e| KeyError::Operator(format!("{}: {e} (wrong passphrase?)", path.display())))
}

/// Creates a receiver's X25519 key pair: the secret as hex in `path` (mode 0600, never
/// overwritten); returns the public key, which goes into a program as `receiver "…";`.
pub fn create_receiver_key(path: &Path) -> Result<[u8; 32], KeyError> {
    if path.exists() {
        return Err(KeyError::Exists(path.display().to_string()));
    }
    let key = crate::envelope::SecretKey::generate();
    let mut hex = hex::encode(key.to_bytes());
    hex.push('\n');
    write_secret(path, hex.as_bytes())?;
    zeroize::Zeroize::zeroize(&mut hex);
    Ok(key.public())
}

/// Reads a receiver's secret key written by [`create_receiver_key`].
pub fn receiver_key(path: &Path) -> Result<crate::envelope::SecretKey, KeyError> {
    let text = read_limited(path, 256)?;
    let mut bytes = hex::decode(String::from_utf8_lossy(&text).trim())
        .map_err(|_| file_err(path, "not a hex key"))?;
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| file_err(path, "a receiver key is 32 bytes"))?;
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(crate::envelope::SecretKey::from_bytes(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (operator, keypair) = create(dir.path(), "correct horse").unwrap();
        assert_eq!(
            operator_key(dir.path(), "correct horse").unwrap().address(),
            operator.address()
        );
        assert!(operator_key(dir.path(), "wrong").is_err());
        assert_eq!(node_key(dir.path()).unwrap().public(), keypair.public());
        assert!(matches!(create(dir.path(), "x"), Err(KeyError::Exists(_))));
        let text = std::fs::read_to_string(dir.path().join(OPERATOR_KEY)).unwrap();
        assert!(
            !text.contains(&hex::encode(operator.to_bytes())),
            "stored encrypted"
        );
        let receiver = dir.path().join("receiver.key");
        let public = create_receiver_key(&receiver).unwrap();
        assert_eq!(receiver_key(&receiver).unwrap().public(), public);
        assert!(matches!(
            create_receiver_key(&receiver),
            Err(KeyError::Exists(_))
        ));
    }
}
