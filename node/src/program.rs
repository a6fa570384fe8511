//! Programs a project can run, named by URI so the chain's `programHash` (keccak256 of the URI)
//! pins them. The one program today:
//! `builtin:private-average?max_inputs=N&window_secs=S[&input_bits=B]` — the committee computes
//! by SPDZ the sum of the inputs that lie in [−2^(B−1), 2^(B−1)) (B = 32 unless given; an input
//! out of range is left out, not fatal); the output is `abi.encode(int256 sum, uint256 count)`
//! over the inputs counted, and the mean is sum / count.

use alloy::primitives::{B256, I256, U256, keccak256};
use alloy::sol_types::SolValue;

/// Largest number of inputs a task may take.
pub const MAX_INPUTS: u32 = 10_000;

/// Bits per input unless the program says otherwise.
pub const DEFAULT_INPUT_BITS: u32 = 32;

/// Largest number of triples (inputs × bits) one task may preprocess: it bounds a member's
/// storage and the size of the range check's one round of openings.
pub const MAX_TASK_TRIPLES: u64 = 200_000;

/// A project's program, parsed from its URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub uri: String,
    pub max_inputs: u32,
    pub window_secs: u64,
    /// Each input is a signed integer of this many bits.
    pub input_bits: u32,
}

/// Why a program URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("unknown program {0:?} (this node runs builtin:private-average)")]
    Unknown(String),
    #[error("bad program parameter {0:?}")]
    BadParameter(String),
    #[error("{max_inputs} inputs of {input_bits} bits exceed a task's {MAX_TASK_TRIPLES} triples")]
    TooLarge { max_inputs: u32, input_bits: u32 },
    #[error("program hash {found} does not match keccak256 of the URI {expected}")]
    HashMismatch { expected: B256, found: B256 },
}

impl Program {
    pub fn private_average(max_inputs: u32, window_secs: u64) -> Program {
        Program {
            uri: format!(
                "builtin:private-average?max_inputs={max_inputs}&window_secs={window_secs}"
            ),
            max_inputs,
            window_secs,
            input_bits: DEFAULT_INPUT_BITS,
        }
    }

    /// Parses a URI and checks it against the registered hash.
    pub fn from_chain(uri: &str, hash: B256) -> Result<Program, ProgramError> {
        let expected = keccak256(uri.as_bytes());
        if expected != hash {
            return Err(ProgramError::HashMismatch {
                expected,
                found: hash,
            });
        }
        Program::parse(uri)
    }

    pub fn parse(uri: &str) -> Result<Program, ProgramError> {
        let query = uri
            .strip_prefix("builtin:private-average?")
            .ok_or_else(|| ProgramError::Unknown(uri.to_string()))?;
        let (mut max_inputs, mut window_secs, mut input_bits) = (None, None, None);
        for pair in query.split('&') {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| ProgramError::BadParameter(pair.to_string()))?;
            let bad = || ProgramError::BadParameter(pair.to_string());
            match k {
                "max_inputs" => max_inputs = Some(v.parse::<u32>().map_err(|_| bad())?),
                "window_secs" => window_secs = Some(v.parse::<u64>().map_err(|_| bad())?),
                "input_bits" => input_bits = Some(v.parse::<u32>().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        let max_inputs = max_inputs
            .filter(|n| (1..=MAX_INPUTS).contains(n))
            .ok_or_else(|| ProgramError::BadParameter("max_inputs".into()))?;
        let window_secs = window_secs
            .filter(|s| (1..=86_400).contains(s))
            .ok_or_else(|| ProgramError::BadParameter("window_secs".into()))?;
        let input_bits = input_bits.unwrap_or(DEFAULT_INPUT_BITS);
        if !(1..=conclave_provers::spdz::MAX_INPUT_BITS).contains(&input_bits) {
            return Err(ProgramError::BadParameter("input_bits".into()));
        }
        if u64::from(max_inputs) * u64::from(input_bits) > MAX_TASK_TRIPLES {
            return Err(ProgramError::TooLarge {
                max_inputs,
                input_bits,
            });
        }
        Ok(Program {
            uri: uri.to_string(),
            max_inputs,
            window_secs,
            input_bits,
        })
    }

    pub fn hash(&self) -> B256 {
        keccak256(self.uri.as_bytes())
    }
}

/// Why a reading cannot go into a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the reading {reading} is outside the program's range [−2^{bits_less_one}, 2^{bits_less_one})"
)]
pub struct OutOfRange {
    pub reading: i64,
    pub bits_less_one: u32,
}

/// The bits, least significant first, of `reading` + 2^(bits−1): what a device secret-shares.
pub fn reading_bits(reading: i64, bits: u32) -> Result<Vec<bool>, OutOfRange> {
    let refuse = OutOfRange {
        reading,
        bits_less_one: bits.saturating_sub(1),
    };
    if !(1..=conclave_provers::spdz::MAX_INPUT_BITS).contains(&bits) {
        return Err(refuse);
    }
    let offset = 1i64 << (bits - 1);
    if reading < -offset || reading >= offset {
        return Err(refuse);
    }
    let shifted = (reading + offset) as u64;
    Ok((0..bits).map(|j| shifted >> j & 1 == 1).collect())
}

/// The result of a private average.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Average {
    pub sum: i64,
    pub count: u64,
}

impl Average {
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// `abi.encode(int256 sum, uint256 count)`.
    pub fn encode(&self) -> Vec<u8> {
        (
            I256::try_from(self.sum).expect("i64 fits"),
            U256::from(self.count),
        )
            .abi_encode()
    }

    pub fn decode(bytes: &[u8]) -> Option<Average> {
        let (sum, count) = <(I256, U256)>::abi_decode(bytes).ok()?;
        Some(Average {
            sum: i64::try_from(sum).ok()?,
            count: u64::try_from(count).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_bad_ones_are_refused() {
        let p = Program::private_average(20, 30);
        assert_eq!(Program::from_chain(&p.uri, p.hash()).unwrap(), p);
        assert!(Program::from_chain(&p.uri, B256::ZERO).is_err());
        for bad in [
            "builtin:private-sum?max_inputs=1&window_secs=1",
            "builtin:private-average?max_inputs=0&window_secs=1",
            "builtin:private-average?max_inputs=x&window_secs=1",
            "builtin:private-average?max_inputs=1",
            "builtin:private-average?max_inputs=1&window_secs=1&evil=1",
        ] {
            assert!(Program::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Program::parse("builtin:private-average?max_inputs=5&window_secs=1&input_bits=8")
                .unwrap()
                .input_bits,
            8
        );
        for bad in ["input_bits=0", "input_bits=49", "max_inputs=10000"] {
            let uri = format!("builtin:private-average?max_inputs=10&window_secs=1&{bad}");
            assert!(Program::parse(&uri).is_err(), "{bad}");
        }
        let avg = Average { sum: -42, count: 7 };
        assert_eq!(Average::decode(&avg.encode()), Some(avg));
        assert_eq!(Average::decode(b"short"), None);
    }

    #[test]
    fn readings_become_offset_bits_within_range_only() {
        let value = |bits: &[bool]| {
            bits.iter()
                .enumerate()
                .map(|(j, &b)| i64::from(b) << j)
                .sum::<i64>()
        };
        assert_eq!(value(&reading_bits(0, 8).unwrap()), 128);
        assert_eq!(value(&reading_bits(-128, 8).unwrap()), 0);
        assert_eq!(value(&reading_bits(127, 8).unwrap()), 255);
        assert!(reading_bits(128, 8).is_err());
        assert!(reading_bits(-129, 8).is_err());
        assert!(reading_bits(0, 0).is_err());
        assert_eq!(reading_bits(-5, 32).unwrap().len(), 32);
    }
}
