//! What travels on the gossip topics, and the strict validation every message passes before it
//! is forwarded: a size limit, a canonical encoding with no trailing bytes, the right topic for
//! its kind, its sender's signature, and (for heartbeats) a signer that is the peer it describes.
//!
//! The signature is the application's, not gossipsub's: gossipsub's strict mode verifies every
//! copy a node receives (one per mesh peer that forwards it), before it drops duplicates; here
//! gossipsub runs anonymous with content-addressed message ids, so each message is verified once
//! per node, after de-duplication ([`GossipMessage::open`]).

use libp2p::identity::{KeyType, Keypair, PublicKey, SigningError};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::addresses::{MAX_ADDR_BYTES, MAX_HEARTBEAT_ADDRS};

/// Largest gossip message the application accepts (gossipsub's own transmit limit is higher, so
/// oversized messages reach validation and count against their sender).
pub const MAX_GOSSIP_MESSAGE: usize = 16 * 1024;
/// Longest software-version string in a heartbeat.
pub const MAX_VERSION_LEN: usize = 64;
/// Longest encoded public key or signature a sealed message may carry (an ed25519 key is 36
/// bytes in libp2p's encoding, its signature 64).
pub const MAX_KEY_BYTES: usize = 128;
/// What a gossip signature covers besides the topic and body: no other Conclave signature can be
/// replayed as one.
const SIGNING_CONTEXT: &[u8] = b"conclave gossip v1\0";

/// The versioned gossip topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    Tasks,
    Heartbeats,
    Results,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Tasks, Topic::Heartbeats, Topic::Results];

    pub fn name(self) -> &'static str {
        match self {
            // Version 2 (3 for heartbeats, which carry their sender's addresses since version 2):
            // messages are sealed by the application, not signed by gossipsub ([`Sealed`]).
            Topic::Tasks => "/conclave/2/tasks",
            Topic::Heartbeats => "/conclave/3/heartbeats",
            Topic::Results => "/conclave/2/results",
        }
    }

    pub fn gossip(self) -> libp2p::gossipsub::IdentTopic {
        libp2p::gossipsub::IdentTopic::new(self.name())
    }

    /// The topic with this gossipsub hash, if it is one of ours.
    pub fn from_hash(hash: &libp2p::gossipsub::TopicHash) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.gossip().hash() == *hash)
    }
}

/// A node's periodic announcement of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The announcing peer's id (bytes of its libp2p `PeerId`).
    pub peer_id: Vec<u8>,
    /// The operator's chain address.
    pub chain_address: [u8; 20],
    /// The node's software version.
    pub version: String,
    /// How many more tasks the node is willing to take on now.
    pub free_capacity: u32,
    /// Sender's clock, milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// Where the sender listens (encoded multiaddrs without a `/p2p` part; at most
    /// [`MAX_HEARTBEAT_ADDRS`] of at most [`MAX_ADDR_BYTES`] each), so that any node can reach it
    /// without keeping a connection open.
    pub addresses: Vec<Vec<u8>>,
}

impl Heartbeat {
    /// The announced addresses; [`GossipMessage::decode`] has checked them.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.addresses
            .iter()
            .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
            .collect()
    }
}

/// Checks an announced address: within the size limit, a well-formed multiaddr naming no peer
/// (the sender's id is added by whoever dials it).
fn check_address(bytes: &[u8]) -> Result<(), GossipError> {
    if bytes.len() > MAX_ADDR_BYTES {
        return Err(GossipError::BadAddress(format!("{} bytes", bytes.len())));
    }
    let addr =
        Multiaddr::try_from(bytes.to_vec()).map_err(|e| GossipError::BadAddress(e.to_string()))?;
    if addr
        .iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
    {
        return Err(GossipError::BadAddress(format!("{addr} names a peer")));
    }
    Ok(())
}

/// A task open for inputs or ready for its committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAnnouncement {
    pub project_id: u64,
    pub task_id: [u8; 32],
    pub inputs_closed_at_ms: u64,
}

/// A task's published result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultAnnouncement {
    pub project_id: u64,
    pub task_id: [u8; 32],
    pub output_hash: [u8; 32],
    pub transaction: Option<[u8; 32]>,
}

/// Any message on one of the gossip topics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipMessage {
    Heartbeat(Heartbeat),
    Task(TaskAnnouncement),
    Result(ResultAnnouncement),
}

/// A gossip message as it travels: its body, its sender's public key (libp2p's encoding) and
/// the sender's signature over the topic and body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub signer: Vec<u8>,
    pub signature: Vec<u8>,
    pub body: Vec<u8>,
}

impl Sealed {
    /// The bytes a gossip signature covers.
    pub fn signed_bytes(topic: Topic, body: &[u8]) -> Vec<u8> {
        let name = topic.name().as_bytes();
        let mut bytes = Vec::with_capacity(SIGNING_CONTEXT.len() + 1 + name.len() + body.len());
        bytes.extend_from_slice(SIGNING_CONTEXT);
        bytes.push(name.len() as u8);
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(body);
        bytes
    }

    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, config()).expect("sealed messages always encode")
    }
}

/// Why a gossip message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    #[error("message of {len} bytes exceeds the limit of {MAX_GOSSIP_MESSAGE}")]
    TooLarge { len: usize },
    #[error("message does not decode: {0}")]
    Malformed(String),
    #[error("a {kind} message on topic {topic}")]
    WrongTopic {
        kind: &'static str,
        topic: &'static str,
    },
    #[error("heartbeat names peer {claimed:?} but was signed by {signer:?}")]
    ForeignHeartbeat { claimed: String, signer: String },
    #[error("the signer's key or signature is not acceptable: {0}")]
    BadSigner(String),
    #[error("the signature does not match the message")]
    BadSignature,
    #[error("heartbeat version string of {0} bytes is too long")]
    VersionTooLong(usize),
    #[error("heartbeat announces {0} addresses (at most {MAX_HEARTBEAT_ADDRS})")]
    TooManyAddresses(usize),
    #[error("heartbeat address is not acceptable: {0}")]
    BadAddress(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_GOSSIP_MESSAGE>()
}

impl GossipMessage {
    pub fn topic(&self) -> Topic {
        match self {
            GossipMessage::Heartbeat(_) => Topic::Heartbeats,
            GossipMessage::Task(_) => Topic::Tasks,
            GossipMessage::Result(_) => Topic::Results,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            GossipMessage::Heartbeat(_) => "heartbeat",
            GossipMessage::Task(_) => "task",
            GossipMessage::Result(_) => "result",
        }
    }

    /// The message's encoding, as a sealed message's body.
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, config()).expect("gossip messages always encode")
    }

    /// The message signed by `key` for `topic`, as it goes on the wire.
    pub fn seal(&self, topic: Topic, key: &Keypair) -> Result<Vec<u8>, SigningError> {
        let body = self.encode();
        let signature = key.sign(&Sealed::signed_bytes(topic, &body))?;
        Ok(Sealed {
            signer: key.public().encode_protobuf(),
            signature,
            body,
        }
        .encode())
    }

    /// Decodes and validates a sealed message received on `topic`; returns its signer. The
    /// cheap checks come first, so malformed messages cost no signature verification. Only the
    /// canonical encoding of a message is accepted: otherwise anyone could re-encode a signed
    /// message into many valid copies, each with its own gossip id, and replay it at will.
    pub fn open(topic: Topic, bytes: &[u8]) -> Result<(PeerId, Self), GossipError> {
        let sealed: Sealed = decode_exact(bytes)?;
        if sealed.signer.len() > MAX_KEY_BYTES || sealed.signature.len() > MAX_KEY_BYTES {
            return Err(GossipError::BadSigner(format!(
                "key of {} bytes, signature of {}",
                sealed.signer.len(),
                sealed.signature.len()
            )));
        }
        let msg = Self::decode(topic, &sealed.body)?;
        if sealed.encode() != bytes || msg.encode() != sealed.body {
            return Err(GossipError::Malformed("not canonically encoded".into()));
        }
        let key = PublicKey::try_decode_protobuf(&sealed.signer)
            .map_err(|e| GossipError::BadSigner(e.to_string()))?;
        if key.key_type() != KeyType::Ed25519 || key.encode_protobuf() != sealed.signer {
            return Err(GossipError::BadSigner(
                "not a canonically encoded ed25519 key".into(),
            ));
        }
        let signer = key.to_peer_id();
        if let GossipMessage::Heartbeat(hb) = &msg
            && hb.peer_id != signer.to_bytes()
        {
            let claimed = PeerId::from_bytes(&hb.peer_id)
                .map_or_else(|_| "<invalid>".into(), |p| p.to_string());
            return Err(GossipError::ForeignHeartbeat {
                claimed,
                signer: signer.to_string(),
            });
        }
        if !key.verify(
            &Sealed::signed_bytes(topic, &sealed.body),
            &sealed.signature,
        ) {
            return Err(GossipError::BadSignature);
        }
        Ok((signer, msg))
    }

    /// Decodes and checks a message body received on `topic` (all but its signature).
    fn decode(topic: Topic, bytes: &[u8]) -> Result<Self, GossipError> {
        let msg: GossipMessage = decode_exact(bytes)?;
        if msg.topic() != topic {
            return Err(GossipError::WrongTopic {
                kind: msg.kind(),
                topic: topic.name(),
            });
        }
        if let GossipMessage::Heartbeat(hb) = &msg {
            if hb.version.len() > MAX_VERSION_LEN {
                return Err(GossipError::VersionTooLong(hb.version.len()));
            }
            if hb.addresses.len() > MAX_HEARTBEAT_ADDRS {
                return Err(GossipError::TooManyAddresses(hb.addresses.len()));
            }
            for addr in &hb.addresses {
                check_address(addr)?;
            }
        }
        Ok(msg)
    }
}

/// Decodes `bytes` as one `T` within the size limit, with nothing left over.
fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, GossipError> {
    if bytes.len() > MAX_GOSSIP_MESSAGE {
        return Err(GossipError::TooLarge { len: bytes.len() });
    }
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| GossipError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(GossipError::Malformed(format!(
            "{} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(peer: &PeerId) -> GossipMessage {
        GossipMessage::Heartbeat(Heartbeat {
            peer_id: peer.to_bytes(),
            chain_address: [1; 20],
            version: "0.1.0".into(),
            free_capacity: 3,
            sent_at_ms: 1,
            addresses: vec!["/memory/7".parse::<Multiaddr>().unwrap().to_vec()],
        })
    }

    fn task() -> GossipMessage {
        GossipMessage::Task(TaskAnnouncement {
            project_id: 4,
            task_id: [2; 32],
            inputs_closed_at_ms: 9,
        })
    }

    fn sealed(msg: &GossipMessage, topic: Topic, key: &Keypair) -> Sealed {
        let bytes = msg.seal(topic, key).unwrap();
        bincode::serde::decode_from_slice(&bytes, config())
            .unwrap()
            .0
    }

    #[test]
    fn valid_messages_round_trip_with_their_signer() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let msg = heartbeat(&peer);
        assert_eq!(
            GossipMessage::open(
                Topic::Heartbeats,
                &msg.seal(Topic::Heartbeats, &key).unwrap()
            ),
            Ok((peer, msg))
        );
        assert_eq!(
            GossipMessage::open(Topic::Tasks, &task().seal(Topic::Tasks, &key).unwrap()),
            Ok((peer, task()))
        );
    }

    /// The signer a receiver reports is the key that signed: a message cannot be credited to
    /// another peer by naming its key, nor altered, nor moved to another topic.
    #[test]
    fn a_forged_altered_or_moved_message_is_rejected() {
        let (key, victim) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let mut claimed = sealed(&task(), Topic::Tasks, &key);
        claimed.signer = victim.public().encode_protobuf();
        assert_eq!(
            GossipMessage::open(Topic::Tasks, &claimed.encode()),
            Err(GossipError::BadSignature)
        );
        let mut altered = sealed(&task(), Topic::Tasks, &key);
        let GossipMessage::Task(mut t) = task() else {
            unreachable!()
        };
        t.inputs_closed_at_ms += 1;
        altered.body = GossipMessage::Task(t).encode();
        assert_eq!(
            GossipMessage::open(Topic::Tasks, &altered.encode()),
            Err(GossipError::BadSignature)
        );
        // Signed for one topic, received on another: the signature does not cover it (the
        // wrong-topic check would catch the kind; the signature binds the topic regardless).
        let moved = sealed(&task(), Topic::Results, &key);
        assert_eq!(
            GossipMessage::open(Topic::Tasks, &moved.encode()),
            Err(GossipError::BadSignature)
        );
        let mut junk_key = sealed(&task(), Topic::Tasks, &key);
        junk_key.signer = vec![1; 36];
        assert!(matches!(
            GossipMessage::open(Topic::Tasks, &junk_key.encode()),
            Err(GossipError::BadSigner(_))
        ));
        // The same signed message re-encoded (a padded key, a non-minimal length prefix) is
        // not another valid copy.
        let mut padded_key = sealed(&task(), Topic::Tasks, &key);
        padded_key.signer.extend_from_slice(&[0x18, 0x01]);
        assert!(matches!(
            GossipMessage::open(Topic::Tasks, &padded_key.encode()),
            Err(GossipError::BadSigner(_))
        ));
        let canonical = task().seal(Topic::Tasks, &key).unwrap();
        // bincode writes lengths below 251 in one byte; 251 then two bytes is the same length.
        let long_prefix = [&[251, canonical[0], 0][..], &canonical[1..]].concat();
        assert!(matches!(
            GossipMessage::open(Topic::Tasks, &long_prefix),
            Err(GossipError::Malformed(_))
        ));
        let mut long_signature = sealed(&task(), Topic::Tasks, &key);
        long_signature.signature = vec![0; MAX_KEY_BYTES + 1];
        assert!(matches!(
            GossipMessage::open(Topic::Tasks, &long_signature.encode()),
            Err(GossipError::BadSigner(_))
        ));
    }

    /// A heartbeat speaks only for its signer's own addresses, few and short, naming no peer.
    #[test]
    fn heartbeat_addresses_are_bounded_and_name_no_peer() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let with = |addresses: Vec<Vec<u8>>| {
            let GossipMessage::Heartbeat(mut hb) = heartbeat(&peer) else {
                unreachable!()
            };
            hb.addresses = addresses;
            let bytes = GossipMessage::Heartbeat(hb)
                .seal(Topic::Heartbeats, &key)
                .unwrap();
            GossipMessage::open(Topic::Heartbeats, &bytes).map(|(_, m)| m)
        };
        let addr = |s: &str| s.parse::<Multiaddr>().unwrap().to_vec();
        let ok = with(vec![addr("/ip4/10.0.0.1/tcp/4001"); MAX_HEARTBEAT_ADDRS]).unwrap();
        let GossipMessage::Heartbeat(hb) = ok else {
            unreachable!()
        };
        assert_eq!(hb.listen_addrs().len(), MAX_HEARTBEAT_ADDRS);
        assert_eq!(
            with(vec![addr("/memory/1"); MAX_HEARTBEAT_ADDRS + 1]),
            Err(GossipError::TooManyAddresses(MAX_HEARTBEAT_ADDRS + 1))
        );
        let other = PeerId::random();
        assert!(matches!(
            with(vec![addr(&format!("/memory/1/p2p/{other}"))]),
            Err(GossipError::BadAddress(_))
        ));
        assert!(matches!(
            with(vec![vec![0xff, 0xff, 0xff]]),
            Err(GossipError::BadAddress(_))
        ));
        let long = format!("/dns4/{}/tcp/1", "a".repeat(MAX_ADDR_BYTES));
        assert!(matches!(
            with(vec![addr(&long)]),
            Err(GossipError::BadAddress(_))
        ));
    }

    #[test]
    fn invalid_messages_are_typed_errors() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let msg = heartbeat(&peer).seal(Topic::Heartbeats, &key).unwrap();
        assert!(matches!(
            GossipMessage::open(Topic::Tasks, &msg),
            Err(GossipError::WrongTopic { .. })
        ));
        // A heartbeat about another peer, properly signed by its sender.
        let foreign = heartbeat(&PeerId::random())
            .seal(Topic::Heartbeats, &key)
            .unwrap();
        assert!(matches!(
            GossipMessage::open(Topic::Heartbeats, &foreign),
            Err(GossipError::ForeignHeartbeat { .. })
        ));
        assert!(matches!(
            GossipMessage::open(Topic::Heartbeats, &[0xff; 40]),
            Err(GossipError::Malformed(_))
        ));
        assert!(matches!(
            GossipMessage::open(Topic::Heartbeats, &msg[..msg.len() - 1]),
            Err(GossipError::Malformed(_))
        ));
        let mut long = msg.clone();
        long.push(0);
        assert!(matches!(
            GossipMessage::open(Topic::Heartbeats, &long),
            Err(GossipError::Malformed(_))
        ));
        let mut trailing_body = sealed(&heartbeat(&peer), Topic::Heartbeats, &key);
        trailing_body.body.push(0);
        assert!(matches!(
            GossipMessage::open(Topic::Heartbeats, &trailing_body.encode()),
            Err(GossipError::Malformed(_))
        ));
        assert_eq!(
            GossipMessage::open(Topic::Heartbeats, &vec![0; MAX_GOSSIP_MESSAGE + 1]),
            Err(GossipError::TooLarge {
                len: MAX_GOSSIP_MESSAGE + 1
            })
        );
    }
}
