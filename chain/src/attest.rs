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
        check_submittable(&attestation.signature)?;
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

/// A `halo2` task's proof as `TaskRouter.submitProven` takes it: the commitment to the task's
/// inputs (a public instance of the proof) and the proof's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaloProof {
    pub input_commitment: U256,
    pub proof: Bytes,
}

impl HaloProof {
    /// The proof hash members sign: `keccak256(abi.encode(inputCommitment, keccak256(proof)))`,
    /// so a signature covers the exact proof and commitment.
    pub fn proof_hash(&self) -> B256 {
        let mut packed = self.input_commitment.to_be_bytes::<32>().to_vec();
        packed.extend_from_slice(keccak256(&self.proof).as_slice());
        keccak256(packed)
    }
}

/// The first public instance of a `halo2` task's proof: `keccak256(abi.encode(chainId, router,
/// taskId)) >> 8` (below BN254's field), as `TaskRouter.proofInstances` computes it.
pub fn task_binding(chain_id: u64, router: Address, task_id: U256) -> U256 {
    let mut packed = U256::from(chain_id).to_be_bytes::<32>().to_vec();
    packed.extend_from_slice(&[0u8; 12]);
    packed.extend_from_slice(router.as_slice());
    packed.extend_from_slice(&task_id.to_be_bytes::<32>());
    U256::from_be_bytes(keccak256(packed).0) >> 8
}

/// secp256k1's order / 2: `TaskRouter` refuses signatures with a larger s.
const HALF_ORDER: U256 = alloy::primitives::uint!(
    0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0_U256
);

/// What `TaskRouter` accepts: 65 bytes, v ∈ {27, 28} (or 0, 1), s at most half the order. A
/// signature the library would normalise but the contract refuses would sink a whole submission.
fn check_submittable(signature: &[u8]) -> Result<(), AttestError> {
    if signature.len() != 65 {
        return Err(AttestError::Malformed(format!(
            "{} bytes, not 65",
            signature.len()
        )));
    }
    if ![0, 1, 27, 28].contains(&signature[64]) {
        return Err(AttestError::Malformed(format!("v = {}", signature[64])));
    }
    if U256::from_be_slice(&signature[32..64]) > HALF_ORDER {
        return Err(AttestError::Malformed("s is in the upper half".into()));
    }
    Ok(())
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

    /// Copies the library would accept but the contract refuses: high s, v = 37, a byte short.
    #[test]
    fn signatures_the_contract_refuses_are_refused_here() {
        let key = PrivateKeySigner::random();
        let router = Address::repeat_byte(0x42);
        let result = TaskResult {
            project_id: U256::from(1),
            task_id: U256::from(2),
            output: Bytes::from_static(b"out"),
            proof_hash: B256::ZERO,
        };
        let att = result.sign(&key, 7, router).unwrap();
        let order = U256::from_be_slice(&alloy::primitives::hex!(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
        ));
        let mut high = att.signature.to_vec();
        let s = U256::from_be_slice(&high[32..64]);
        high[32..64].copy_from_slice(&(order - s).to_be_bytes::<32>());
        high[64] = if high[64] == 27 { 28 } else { 27 };
        let mut v37 = att.signature.to_vec();
        v37[64] = 37 + (v37[64] - 27);
        for bad in [high, v37, att.signature[..64].to_vec()] {
            let forged = Attestation {
                signer: key.address(),
                signature: Bytes::from(bad),
            };
            assert!(matches!(
                result.verify(&forged, 7, router),
                Err(AttestError::Malformed(_))
            ));
        }
    }
}
