//! Private outputs, read only by the program's receiver.
//!
//! The circuit opens value + a for each private output, where a is the first share of a
//! preprocessed triple (a, b, c = a·b) used for nothing else; the chain gets value + a. Each
//! member seals its shares of every such triple for the receiver's X25519 key (authenticated by
//! the member's registered input key) and keeps the envelope. The receiver opens every member's
//! envelope, checks Σc = Σa·Σb for each output, and reads value = (value + a) − Σa.
//!
//! The check is what keeps a member from shifting the receiver's value: sending a + δ instead of
//! its share of a passes only with c shifted by δ·b, and b is a secret no member knows (the
//! relation fails with probability 1 − 1/l). It cannot say *which* member lied, only that the
//! output is not to be trusted. The value needs every member's envelope (the shares are
//! additive over the whole committee).

use conclave_mpc::Fp;
use conclave_mpc::lang::OutputValue;
use conclave_provers::Opened;

use crate::envelope::{self, EnvelopeError, Sealed, SecretKey};
use crate::messages::TaskId;

/// Bytes of one output's shares in an envelope: a, b and c.
const SHARE_BYTES: usize = 96;

/// Why private outputs could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiverError {
    #[error("{got} envelopes for a committee of {expected}")]
    Count { expected: usize, got: usize },
    #[error("member {party}'s envelope does not open with this key: {error}")]
    Envelope { party: usize, error: EnvelopeError },
    #[error("member {party}'s envelope holds {got} bytes, not {expected}")]
    Size {
        party: usize,
        expected: usize,
        got: usize,
    },
    #[error("member {party}'s envelope holds a non-canonical field element")]
    NonCanonical { party: usize },
    #[error(
        "the mask of output {0} fails its check (c ≠ a·b): a member sent a wrong share, so its value cannot be trusted"
    )]
    Cheated(String),
    #[error("output {0} is not an integer of at most 127 bits")]
    Range(String),
}

/// What member `party`'s envelope for task `task` is bound to.
fn context(task: &TaskId, party: usize) -> Vec<u8> {
    [
        b"conclave private output v1".as_slice(),
        task,
        &(party as u64).to_be_bytes(),
    ]
    .concat()
}

/// Seals this member's (a, b, c) shares of each private output's triple for `receiver`.
pub fn seal_shares(
    input_key: &SecretKey,
    receiver: &[u8; 32],
    task: &TaskId,
    party: usize,
    shares: &[[Fp; 3]],
) -> Result<Sealed, EnvelopeError> {
    let plaintext: Vec<u8> = shares
        .iter()
        .flat_map(|t| t.iter().flat_map(|f| f.to_bytes()))
        .collect();
    envelope::seal_from(input_key, receiver, &context(task, party), &plaintext)
}

/// Reads a task's published outputs as the receiver: public ones as they are, private ones
/// opened with every member's envelope (`members` holds each member's input key, in committee
/// order, as the chain registers them).
pub fn open_outputs(
    receiver: &SecretKey,
    task: &TaskId,
    members: &[[u8; 32]],
    envelopes: &[Sealed],
    published: &[Opened],
) -> Result<Vec<OutputValue>, ReceiverError> {
    if envelopes.len() != members.len() {
        return Err(ReceiverError::Count {
            expected: members.len(),
            got: envelopes.len(),
        });
    }
    let private = published
        .iter()
        .filter(|o| matches!(o, Opened::Masked { .. }))
        .count();
    let mut sums = vec![[Fp::ZERO; 3]; private];
    for (party, (key, sealed)) in members.iter().zip(envelopes).enumerate() {
        let plain = envelope::open_from(receiver, key, &context(task, party), sealed)
            .map_err(|error| ReceiverError::Envelope { party, error })?;
        if plain.len() != SHARE_BYTES * private {
            return Err(ReceiverError::Size {
                party,
                expected: SHARE_BYTES * private,
                got: plain.len(),
            });
        }
        for (sum, chunk) in sums.iter_mut().zip(plain.chunks_exact(SHARE_BYTES)) {
            for (s, element) in sum.iter_mut().zip(chunk.chunks_exact(32)) {
                let bytes: [u8; 32] = element.try_into().expect("32-byte chunks");
                *s += Fp::from_bytes(&bytes).map_err(|_| ReceiverError::NonCanonical { party })?;
            }
        }
    }
    let mut masks = sums.iter();
    published
        .iter()
        .map(|o| match o {
            Opened::Public(v) => Ok(v.clone()),
            Opened::Masked { name, kind, masked } => {
                let [a, b, c] = *masks.next().expect("one sum per private output");
                if a * b != c {
                    return Err(ReceiverError::Cheated(name.clone()));
                }
                let scaled = (*masked - a)
                    .to_i128()
                    .ok_or_else(|| ReceiverError::Range(name.clone()))?;
                Ok(OutputValue {
                    name: name.clone(),
                    kind: *kind,
                    private: true,
                    scaled,
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_mpc::lang::Kind;

    /// Three members' shares of one masked output, sealed; returns the published output, the
    /// members' keys and envelopes.
    fn setup(
        value: i128,
        receiver: &[u8; 32],
        tamper: impl Fn(usize, &mut [Fp; 3]),
    ) -> (Vec<Opened>, Vec<[u8; 32]>, Vec<Sealed>) {
        let rng = &mut rand::rng();
        let (a, b) = (Fp::random(rng), Fp::random(rng));
        let mut shares = |x: Fp| {
            let (s0, s1) = (Fp::random(rng), Fp::random(rng));
            [s0, s1, x - s0 - s1]
        };
        let (sa, sb, sc) = (shares(a), shares(b), shares(a * b));
        let task = [5u8; 32];
        let mut keys = Vec::new();
        let mut envelopes = Vec::new();
        for party in 0..3 {
            let key = SecretKey::generate();
            let mut mine = [sa[party], sb[party], sc[party]];
            tamper(party, &mut mine);
            envelopes.push(seal_shares(&key, receiver, &task, party, &[mine]).unwrap());
            keys.push(key.public());
        }
        let published = vec![
            Opened::Public(OutputValue {
                name: "n".into(),
                kind: Kind::Int,
                private: false,
                scaled: 3,
            }),
            Opened::Masked {
                name: "score".into(),
                kind: Kind::Fixed(12),
                masked: Fp::from_i128(value) + a,
            },
        ];
        (published, keys, envelopes)
    }

    #[test]
    fn the_receiver_reads_private_outputs_and_nobody_else_does() {
        let receiver = SecretKey::generate();
        let (published, keys, envelopes) = setup(-1234, &receiver.public(), |_, _| {});
        let outputs = open_outputs(&receiver, &[5; 32], &keys, &envelopes, &published).unwrap();
        assert_eq!(outputs[0].scaled, 3);
        assert_eq!((outputs[1].scaled, outputs[1].private), (-1234, true));

        let stranger = SecretKey::generate();
        assert!(matches!(
            open_outputs(&stranger, &[5; 32], &keys, &envelopes, &published),
            Err(ReceiverError::Envelope { party: 0, .. })
        ));
        // Envelopes are bound to their task and their member's seat.
        assert!(open_outputs(&receiver, &[6; 32], &keys, &envelopes, &published).is_err());
        let mut swapped = envelopes.clone();
        swapped.swap(0, 1);
        assert!(open_outputs(&receiver, &[5; 32], &keys, &swapped, &published).is_err());
        assert!(matches!(
            open_outputs(&receiver, &[5; 32], &keys, &envelopes[..2], &published),
            Err(ReceiverError::Count { .. })
        ));
    }

    /// A member that shifts its share of the mask (to shift the receiver's value) is caught by
    /// the triple check, whichever share it also adjusts without knowing b.
    #[test]
    fn a_member_shifting_its_mask_share_is_caught() {
        let receiver = SecretKey::generate();
        let delta = Fp::from_u64(1000);
        for tamper in [
            |m: &mut [Fp; 3], d: Fp| m[0] += d,
            |m: &mut [Fp; 3], d: Fp| {
                m[0] += d;
                m[2] += d;
            },
            |m: &mut [Fp; 3], d: Fp| m[2] += d,
        ] {
            let (published, keys, envelopes) = setup(7, &receiver.public(), |party, mine| {
                if party == 1 {
                    tamper(mine, delta)
                }
            });
            assert_eq!(
                open_outputs(&receiver, &[5; 32], &keys, &envelopes, &published),
                Err(ReceiverError::Cheated("score".into()))
            );
        }
    }
}
