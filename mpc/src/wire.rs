//! MPC frames on the wire: versioned, length-limited, decoded without panics.
//!
//! ```text
//! version u8 | session [u8; 16] | round u32 LE | tag u8 | body
//! body:  Values = count u32 LE, count × 32-byte field elements
//!        Commit = 32 bytes        Seed = 32 bytes
//!        Reveal = sigma, opened view, public view (3 × 32 bytes), nonce 32 bytes
//! ```
//! The codec is written by hand rather than with bincode so that a frame of field elements costs no
//! per-element framing and a decoder never allocates more than the frame it was given.

use bytes::{BufMut, Bytes, BytesMut};

use crate::field::{ENCODED_LEN, Fp};

/// The wire format version this build speaks.
pub const WIRE_VERSION: u8 = 1;
/// The default limit on one frame: room for a layer of 250,000 multiplications.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

const HEADER_LEN: usize = 1 + 16 + 4 + 1;

/// Identifies one MPC session; every frame and commitment is bound to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SessionId(pub [u8; 16]);

/// One party's message for one round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub session: SessionId,
    pub round: u32,
    pub body: Body,
}

/// What a round carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Masked inputs, or shares of values being opened.
    Values(Vec<Fp>),
    /// A commitment (to a coin seed or to a MAC-check reveal).
    Commit([u8; 32]),
    /// The opening of a coin-seed commitment.
    Seed([u8; 32]),
    /// The opening of a MAC-check commitment.
    Reveal(CheckReveal),
}

/// What a party reveals in the last round of a MAC check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckReveal {
    /// σ_i = Σ r^k m_{k,i} − α_i · Σ r^k v_k; the σ_i of all parties sum to zero if no MAC was forged.
    pub sigma: Fp,
    /// Σ r^k v_k over the authenticated values this party opened.
    pub opened_view: Fp,
    /// Σ r^k p_k over the public values (masked inputs) this party received.
    pub public_view: Fp,
    pub nonce: [u8; 32],
}

impl Body {
    /// A short name for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Values(_) => "values",
            Body::Commit(_) => "commitment",
            Body::Seed(_) => "coin seed",
            Body::Reveal(_) => "MAC-check reveal",
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("frame is truncated")]
    Truncated,
    #[error("frame has {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("unsupported wire version {0} (this build speaks {WIRE_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown body tag {0}")]
    UnknownTag(u8),
    #[error("a field element is not canonically encoded")]
    NonCanonical,
}

const TAG_VALUES: u8 = 1;
const TAG_COMMIT: u8 = 2;
const TAG_SEED: u8 = 3;
const TAG_REVEAL: u8 = 4;

impl Frame {
    pub fn encode(&self) -> Bytes {
        let body_len = match &self.body {
            Body::Values(v) => 4 + v.len() * ENCODED_LEN,
            Body::Commit(_) | Body::Seed(_) => 32,
            Body::Reveal(_) => 4 * 32,
        };
        let mut out = BytesMut::with_capacity(HEADER_LEN + body_len);
        out.put_u8(WIRE_VERSION);
        out.put_slice(&self.session.0);
        out.put_u32_le(self.round);
        match &self.body {
            Body::Values(values) => {
                out.put_u8(TAG_VALUES);
                out.put_u32_le(values.len() as u32);
                for v in values {
                    out.put_slice(&v.to_bytes());
                }
            }
            Body::Commit(c) => {
                out.put_u8(TAG_COMMIT);
                out.put_slice(c);
            }
            Body::Seed(s) => {
                out.put_u8(TAG_SEED);
                out.put_slice(s);
            }
            Body::Reveal(r) => {
                out.put_u8(TAG_REVEAL);
                out.put_slice(&r.sigma.to_bytes());
                out.put_slice(&r.opened_view.to_bytes());
                out.put_slice(&r.public_view.to_bytes());
                out.put_slice(&r.nonce);
            }
        }
        out.freeze()
    }

    /// Decodes an untrusted frame of at most `limit` bytes.
    pub fn decode(bytes: &[u8], limit: usize) -> Result<Frame, FrameError> {
        if bytes.len() > limit {
            return Err(FrameError::TooLarge {
                len: bytes.len(),
                limit,
            });
        }
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != WIRE_VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let session = SessionId(r.array()?);
        let round = u32::from_le_bytes(r.array()?);
        let body = match r.u8()? {
            TAG_VALUES => {
                let count = u32::from_le_bytes(r.array()?) as usize;
                if r.0.len() < count.saturating_mul(ENCODED_LEN) {
                    return Err(FrameError::Truncated);
                }
                let mut values = Vec::with_capacity(count);
                for _ in 0..count {
                    values.push(r.field()?);
                }
                Body::Values(values)
            }
            TAG_COMMIT => Body::Commit(r.array()?),
            TAG_SEED => Body::Seed(r.array()?),
            TAG_REVEAL => Body::Reveal(CheckReveal {
                sigma: r.field()?,
                opened_view: r.field()?,
                public_view: r.field()?,
                nonce: r.array()?,
            }),
            tag => return Err(FrameError::UnknownTag(tag)),
        };
        if !r.0.is_empty() {
            return Err(FrameError::TrailingBytes(r.0.len()));
        }
        Ok(Frame {
            session,
            round,
            body,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(FrameError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }

    fn field(&mut self) -> Result<Fp, FrameError> {
        Fp::from_bytes(&self.array()?).map_err(|_| FrameError::NonCanonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<Frame> {
        let session = SessionId([7; 16]);
        let values = vec![Fp::from_u64(1), -Fp::ONE, Fp::from_u64(1 << 40)];
        vec![
            Frame {
                session,
                round: 3,
                body: Body::Values(values),
            },
            Frame {
                session,
                round: 4,
                body: Body::Values(vec![]),
            },
            Frame {
                session,
                round: 5,
                body: Body::Commit([9; 32]),
            },
            Frame {
                session,
                round: 6,
                body: Body::Seed([1; 32]),
            },
            Frame {
                session,
                round: 7,
                body: Body::Reveal(CheckReveal {
                    sigma: Fp::from_u64(5),
                    opened_view: Fp::from_u64(6),
                    public_view: Fp::from_u64(7),
                    nonce: [3; 32],
                }),
            },
        ]
    }

    #[test]
    fn round_trip() {
        for f in frames() {
            assert_eq!(Frame::decode(&f.encode(), DEFAULT_MAX_FRAME).unwrap(), f);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for f in frames() {
            let bytes = f.encode();
            for cut in 0..bytes.len() {
                assert_eq!(
                    Frame::decode(&bytes[..cut], DEFAULT_MAX_FRAME),
                    Err(FrameError::Truncated),
                    "cut at {cut} of {:?}",
                    f.body.kind()
                );
            }
        }
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        let good = frames()[0].encode().to_vec();
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            Frame::decode(&long, DEFAULT_MAX_FRAME),
            Err(FrameError::TrailingBytes(1))
        );
        assert!(matches!(
            Frame::decode(&good, 10),
            Err(FrameError::TooLarge { .. })
        ));
        let mut version = good.clone();
        version[0] = 9;
        assert_eq!(
            Frame::decode(&version, DEFAULT_MAX_FRAME),
            Err(FrameError::UnsupportedVersion(9))
        );
        let mut tag = good.clone();
        tag[HEADER_LEN - 1] = 77;
        assert_eq!(
            Frame::decode(&tag, DEFAULT_MAX_FRAME),
            Err(FrameError::UnknownTag(77))
        );
        let mut huge_count = good.clone();
        huge_count[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Frame::decode(&huge_count, DEFAULT_MAX_FRAME),
            Err(FrameError::Truncated)
        );
        let mut non_canonical = good;
        non_canonical[HEADER_LEN + 4..HEADER_LEN + 36].copy_from_slice(&[0xff; 32]);
        assert_eq!(
            Frame::decode(&non_canonical, DEFAULT_MAX_FRAME),
            Err(FrameError::NonCanonical)
        );
    }
}
