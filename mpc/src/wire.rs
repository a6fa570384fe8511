//! MPC frames on the wire: versioned, length-limited, decoded without panics.
//!
//! ```text
//! version u8 | session [u8; 16] | round u32 LE | tag u8 | body
//! body:  Values = count u32 LE, count × 32-byte field elements (Montgomery residues, see
//!                 `Fp::to_montgomery_bytes`; canonical, so anything ≥ l is rejected)
//!        Commit = 32 bytes        Seed = 32 bytes
//!        Reveal = sigma, opened view, public view (3 × 32 bytes), nonce 32 bytes
//!        Bytes  = len u32 LE, len bytes
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
    /// Opaque bytes whose length the receiving protocol checks (OT messages, curve points).
    Bytes(Vec<u8>),
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
const TAG_BYTES: u8 = 5;

fn encode_with(
    session: SessionId,
    round: u32,
    tag: u8,
    body_len: usize,
    write: impl FnOnce(&mut BytesMut),
) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + body_len);
    out.put_u8(WIRE_VERSION);
    out.put_slice(&session.0);
    out.put_u32_le(round);
    out.put_u8(tag);
    write(&mut out);
    out.freeze()
}

/// Encodes a `Values` frame straight from a slice.
pub fn encode_values(session: SessionId, round: u32, values: &[Fp]) -> Bytes {
    encode_with(
        session,
        round,
        TAG_VALUES,
        4 + values.len() * ENCODED_LEN,
        |out| {
            out.put_u32_le(values.len() as u32);
            for v in values {
                out.put_slice(&v.to_montgomery_bytes());
            }
        },
    )
}

impl Frame {
    pub fn encode(&self) -> Bytes {
        let (session, round) = (self.session, self.round);
        match &self.body {
            Body::Values(values) => encode_values(session, round, values),
            Body::Commit(c) => encode_with(session, round, TAG_COMMIT, 32, |out| out.put_slice(c)),
            Body::Seed(s) => encode_with(session, round, TAG_SEED, 32, |out| out.put_slice(s)),
            Body::Reveal(r) => encode_with(session, round, TAG_REVEAL, 4 * 32, |out| {
                out.put_slice(&r.sigma.to_montgomery_bytes());
                out.put_slice(&r.opened_view.to_montgomery_bytes());
                out.put_slice(&r.public_view.to_montgomery_bytes());
                out.put_slice(&r.nonce);
            }),
            Body::Bytes(b) => encode_with(session, round, TAG_BYTES, 4 + b.len(), |out| {
                out.put_u32_le(b.len() as u32);
                out.put_slice(b);
            }),
        }
    }

    /// Decodes an untrusted frame of at most `limit` bytes, checking every field element.
    pub fn decode(bytes: &[u8], limit: usize) -> Result<Frame, FrameError> {
        let view = FrameView::parse(bytes, limit)?;
        let body = match view.body {
            BodyView::Values(v) => Body::Values(v.iter().collect::<Result<_, _>>()?),
            BodyView::Commit(c) => Body::Commit(c),
            BodyView::Seed(s) => Body::Seed(s),
            BodyView::Reveal(r) => Body::Reveal(r),
            BodyView::Bytes(b) => Body::Bytes(b.to_vec()),
        };
        Ok(Frame {
            session: view.session,
            round: view.round,
            body,
        })
    }
}

/// A frame parsed in place: field elements of a `Values` body are checked as they are read, so a
/// large frame is consumed in one pass without a copy.
#[derive(Clone, Debug)]
pub struct FrameView<'a> {
    pub session: SessionId,
    pub round: u32,
    pub body: BodyView<'a>,
}

/// The body of a [`FrameView`].
#[derive(Clone, Debug)]
pub enum BodyView<'a> {
    Values(FieldElements<'a>),
    Commit([u8; 32]),
    Seed([u8; 32]),
    Reveal(CheckReveal),
    Bytes(&'a [u8]),
}

impl BodyView<'_> {
    /// A short name for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            BodyView::Values(_) => "values",
            BodyView::Commit(_) => "commitment",
            BodyView::Seed(_) => "coin seed",
            BodyView::Reveal(_) => "MAC-check reveal",
            BodyView::Bytes(_) => "bytes",
        }
    }
}

/// Encoded field elements whose count has been checked against the frame length.
#[derive(Clone, Copy, Debug)]
pub struct FieldElements<'a>(&'a [u8]);

impl<'a> FieldElements<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / ENCODED_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The encoded elements, as sent.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The elements in order; a non-canonical one is an error.
    pub fn iter(&self) -> impl Iterator<Item = Result<Fp, FrameError>> + use<'a> {
        let bytes: &'a [u8] = self.0;
        bytes.chunks_exact(ENCODED_LEN).map(|c| {
            Fp::from_montgomery_bytes(c.try_into().expect("32-byte chunk"))
                .map_err(|_| FrameError::NonCanonical)
        })
    }
}

impl<'a> FrameView<'a> {
    /// Parses the header and body layout of an untrusted frame of at most `limit` bytes.
    pub fn parse(bytes: &'a [u8], limit: usize) -> Result<FrameView<'a>, FrameError> {
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
                let len = count
                    .checked_mul(ENCODED_LEN)
                    .ok_or(FrameError::Truncated)?;
                BodyView::Values(FieldElements(r.take(len)?))
            }
            TAG_COMMIT => BodyView::Commit(r.array()?),
            TAG_SEED => BodyView::Seed(r.array()?),
            TAG_REVEAL => BodyView::Reveal(CheckReveal {
                sigma: r.field()?,
                opened_view: r.field()?,
                public_view: r.field()?,
                nonce: r.array()?,
            }),
            TAG_BYTES => {
                let len = u32::from_le_bytes(r.array()?) as usize;
                BodyView::Bytes(r.take(len)?)
            }
            tag => return Err(FrameError::UnknownTag(tag)),
        };
        if !r.0.is_empty() {
            return Err(FrameError::TrailingBytes(r.0.len()));
        }
        Ok(FrameView {
            session,
            round,
            body,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }

    fn field(&mut self) -> Result<Fp, FrameError> {
        Fp::from_montgomery_bytes(&self.array()?).map_err(|_| FrameError::NonCanonical)
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
            Frame {
                session,
                round: 8,
                body: Body::Bytes(vec![1, 2, 3]),
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
                    f.body
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
