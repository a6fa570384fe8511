//! What travels on the gossip topics, and the strict validation every message passes before it
//! is forwarded: a size limit, a canonical encoding with no trailing bytes, the right topic for
//! its kind, and (for heartbeats) a signer that is the peer it describes.

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::addresses::{MAX_ADDR_BYTES, MAX_HEARTBEAT_ADDRS};

/// Largest gossip message the application accepts (gossipsub's own transmit limit is higher, so
/// oversized messages reach validation and count against their sender).
pub const MAX_GOSSIP_MESSAGE: usize = 16 * 1024;
/// Longest software-version string in a heartbeat.
pub const MAX_VERSION_LEN: usize = 64;

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
            Topic::Tasks => "/conclave/1/tasks",
            // Version 2: heartbeats carry their sender's addresses (older nodes cannot read them).
            Topic::Heartbeats => "/conclave/2/heartbeats",
            Topic::Results => "/conclave/1/results",
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
    #[error("message carries no signing peer")]
    Unsigned,
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

    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, config()).expect("gossip messages always encode")
    }

    /// Decodes and validates a message received on `topic`, signed by `source`.
    pub fn decode(
        topic: Topic,
        bytes: &[u8],
        source: Option<&PeerId>,
    ) -> Result<Self, GossipError> {
        if bytes.len() > MAX_GOSSIP_MESSAGE {
            return Err(GossipError::TooLarge { len: bytes.len() });
        }
        let (msg, used): (GossipMessage, usize) =
            bincode::serde::decode_from_slice(bytes, config())
                .map_err(|e| GossipError::Malformed(e.to_string()))?;
        if used != bytes.len() {
            return Err(GossipError::Malformed(format!(
                "{} trailing bytes",
                bytes.len() - used
            )));
        }
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
            let signer = source.ok_or(GossipError::Unsigned)?;
            if hb.peer_id != signer.to_bytes() {
                let claimed = PeerId::from_bytes(&hb.peer_id)
                    .map_or_else(|_| "<invalid>".into(), |p| p.to_string());
                return Err(GossipError::ForeignHeartbeat {
                    claimed,
                    signer: signer.to_string(),
                });
            }
        }
        Ok(msg)
    }
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

    #[test]
    fn valid_messages_round_trip() {
        let peer = PeerId::random();
        let msg = heartbeat(&peer);
        assert_eq!(
            GossipMessage::decode(Topic::Heartbeats, &msg.encode(), Some(&peer)),
            Ok(msg)
        );
        let task = GossipMessage::Task(TaskAnnouncement {
            project_id: 4,
            task_id: [2; 32],
            inputs_closed_at_ms: 9,
        });
        assert_eq!(
            GossipMessage::decode(Topic::Tasks, &task.encode(), None),
            Ok(task)
        );
    }

    /// A heartbeat speaks only for its signer's own addresses, few and short, naming no peer.
    #[test]
    fn heartbeat_addresses_are_bounded_and_name_no_peer() {
        let peer = PeerId::random();
        let with = |addresses: Vec<Vec<u8>>| {
            let GossipMessage::Heartbeat(mut hb) = heartbeat(&peer) else {
                unreachable!()
            };
            hb.addresses = addresses;
            GossipMessage::decode(
                Topic::Heartbeats,
                &GossipMessage::Heartbeat(hb).encode(),
                Some(&peer),
            )
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
        let peer = PeerId::random();
        let msg = heartbeat(&peer).encode();
        assert!(matches!(
            GossipMessage::decode(Topic::Tasks, &msg, Some(&peer)),
            Err(GossipError::WrongTopic { .. })
        ));
        assert!(matches!(
            GossipMessage::decode(Topic::Heartbeats, &msg, Some(&PeerId::random())),
            Err(GossipError::ForeignHeartbeat { .. })
        ));
        assert_eq!(
            GossipMessage::decode(Topic::Heartbeats, &msg, None),
            Err(GossipError::Unsigned)
        );
        assert!(matches!(
            GossipMessage::decode(Topic::Heartbeats, &[0xff; 40], Some(&peer)),
            Err(GossipError::Malformed(_))
        ));
        assert!(matches!(
            GossipMessage::decode(Topic::Heartbeats, &msg[..msg.len() - 1], Some(&peer)),
            Err(GossipError::Malformed(_))
        ));
        let mut long = msg.clone();
        long.push(0);
        assert!(matches!(
            GossipMessage::decode(Topic::Heartbeats, &long, Some(&peer)),
            Err(GossipError::Malformed(_))
        ));
        assert_eq!(
            GossipMessage::decode(
                Topic::Heartbeats,
                &vec![0; MAX_GOSSIP_MESSAGE + 1],
                Some(&peer)
            ),
            Err(GossipError::TooLarge {
                len: MAX_GOSSIP_MESSAGE + 1
            })
        );
    }
}
