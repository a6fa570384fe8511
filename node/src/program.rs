//! Programs a project can run, named by URI so the chain's `programHash` (keccak256 of the URI)
//! pins them. The one program today: `builtin:private-average?max_inputs=N&window_secs=S` — the
//! committee computes the sum of the inputs by SPDZ; count is public; the output is
//! `abi.encode(int256 sum, uint256 count)` and the mean is sum / count.

use alloy::primitives::{B256, I256, U256, keccak256};
use alloy::sol_types::SolValue;

/// Largest number of inputs a task may take.
pub const MAX_INPUTS: u32 = 10_000;

/// A project's program, parsed from its URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub uri: String,
    pub max_inputs: u32,
    pub window_secs: u64,
}

/// Why a program URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("unknown program {0:?} (this node runs builtin:private-average)")]
    Unknown(String),
    #[error("bad program parameter {0:?}")]
    BadParameter(String),
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
        let (mut max_inputs, mut window_secs) = (None, None);
        for pair in query.split('&') {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| ProgramError::BadParameter(pair.to_string()))?;
            let bad = || ProgramError::BadParameter(pair.to_string());
            match k {
                "max_inputs" => max_inputs = Some(v.parse::<u32>().map_err(|_| bad())?),
                "window_secs" => window_secs = Some(v.parse::<u64>().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        let max_inputs = max_inputs
            .filter(|n| (1..=MAX_INPUTS).contains(n))
            .ok_or_else(|| ProgramError::BadParameter("max_inputs".into()))?;
        let window_secs = window_secs
            .filter(|s| (1..=86_400).contains(s))
            .ok_or_else(|| ProgramError::BadParameter("window_secs".into()))?;
        Ok(Program {
            uri: uri.to_string(),
            max_inputs,
            window_secs,
        })
    }

    pub fn hash(&self) -> B256 {
        keccak256(self.uri.as_bytes())
    }
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
        let avg = Average { sum: -42, count: 7 };
        assert_eq!(Average::decode(&avg.encode()), Some(avg));
        assert_eq!(Average::decode(b"short"), None);
    }
}
