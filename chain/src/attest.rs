//! EIP-712 result attestations: what each committee member signs with its operator key, and
//! what `TaskRouter.submit` checks.

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::{SignerSync, local::PrivateKeySigner};
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};

mod typed {
    alloy::sol! {
        /// The EIP-712 type; its name and fields must match `TaskRouter.RESULT_TYPEHASH`.
        struct Result {
            uint256 projectId;
            uint256 taskId;
            bytes32 outputHash;
            bytes32 proofHash;
        }
    }
}

/// The result of one task, as the committee attests it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskResult {
    pub project_id: U256,
    pub task_id: U256,
    pub output: Bytes,
    pub proof_hash: B256,
}

/// One member's signature over a result: 65 bytes (r, s, v with v ∈ {27, 28}).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    pub signer: Address,
    pub signature: Bytes,
}

/// Errors when signing or checking attestations.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("signature is malformed: {0}")]
    Malformed(String),
    #[error("signature recovers to {recovered}, not {claimed}")]
    WrongSigner {
        claimed: Address,
        recovered: Address,
    },
}

/// The EIP-712 domain of a TaskRouter deployment.
pub fn domain(chain_id: u64, router: Address) -> Eip712Domain {
    eip712_domain! {
        name: "Conclave TaskRouter",
        version: "2",
        chain_id: chain_id,
        verifying_contract: router,
    }
}

impl TaskResult {
    /// The digest members sign (`TaskRouter.resultDigest`).
    pub fn digest(&self, chain_id: u64, router: Address) -> B256 {
        typed::Result {
            projectId: self.project_id,
            taskId: self.task_id,
            outputHash: keccak256(&self.output),
            proofHash: self.proof_hash,
        }
        .eip712_signing_hash(&domain(chain_id, router))
    }

    /// Signs the result with an operator key.
    pub fn sign(
        &self,
        key: &PrivateKeySigner,
        chain_id: u64,
        router: Address,
    ) -> Result<Attestation, AttestError> {
        let signature = key
            .sign_hash_sync(&self.digest(chain_id, router))
            .map_err(|e| AttestError::Sign(e.to_string()))?;
        Ok(Attestation {
            signer: key.address(),
            signature: Bytes::from(signature.as_bytes().to_vec()),
        })
    }

    /// Checks that `attestation` is its signer's signature over this result.
    pub fn verify(
        &self,
        attestation: &Attestation,
        chain_id: u64,
        router: Address,
    ) -> Result<(), AttestError> {
        let signature = alloy::primitives::Signature::try_from(attestation.signature.as_ref())
            .map_err(|e| AttestError::Malformed(e.to_string()))?;
        let recovered = signature
            .recover_address_from_prehash(&self.digest(chain_id, router))
            .map_err(|e| AttestError::Malformed(e.to_string()))?;
        if recovered != attestation.signer {
            return Err(AttestError::WrongSigner {
                claimed: attestation.signer,
                recovered,
            });
        }
        Ok(())
    }
}

/// Orders attestations with their signers' seat masks as `TaskRouter.submit` wants them:
/// ascending signer, one per signer.
pub fn order_for_submission(mut seated: Vec<(Attestation, U256)>) -> (Vec<Bytes>, Vec<U256>) {
    seated.sort_by_key(|(a, _)| a.signer);
    seated.dedup_by_key(|(a, _)| a.signer);
    seated
        .into_iter()
        .map(|(a, mask)| (a.signature, mask))
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_reject_other_outputs() {
        let key = PrivateKeySigner::random();
        let router = Address::repeat_byte(0x42);
        let result = TaskResult {
            project_id: U256::from(1),
            task_id: U256::from(2),
            output: Bytes::from_static(b"sum=12"),
            proof_hash: B256::repeat_byte(3),
        };
        let att = result.sign(&key, 31337, router).unwrap();
        assert_eq!(att.signature.len(), 65);
        result.verify(&att, 31337, router).unwrap();
        let other = TaskResult {
            output: Bytes::from_static(b"sum=13"),
            ..result.clone()
        };
        assert!(matches!(
            other.verify(&att, 31337, router),
            Err(AttestError::WrongSigner { .. })
        ));
        assert!(result.verify(&att, 1, router).is_err());
    }
}
