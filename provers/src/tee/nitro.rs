//! AWS Nitro Enclaves attestation documents, verified by nitro_attest: the COSE_Sign1 signature
//! by the document's leaf certificate, each certificate of its bundle signed by its parent up to
//! the AWS Nitro root (pinned by fingerprint inside nitro_attest), and every certificate valid at
//! `now`. Nitro leaf certificates live about three hours, so `now` must be close to the
//! document's time anyway; the policy's `max_age_secs` bounds it further.

use std::time::{Duration, UNIX_EPOCH};

use super::{Attested, EvidenceKind, Measurements, TcbStatus, TeeError};

/// Last second nitro_attest's clock (the `time` crate, years up to 9999) can represent; later
/// times would make it panic, and no certificate is valid then anyway.
const LAST_REPRESENTABLE: u64 = 253_402_300_799;

pub(super) fn verify(document: &[u8], collateral: &[u8], now: u64) -> Result<Attested, TeeError> {
    if !collateral.is_empty() {
        return Err(TeeError::Malformed(
            "Nitro evidence takes no collateral: the document carries its certificates".into(),
        ));
    }
    if now > LAST_REPRESENTABLE {
        return Err(TeeError::CollateralExpired(format!(
            "verification time {now} is past every certificate"
        )));
    }
    let at = UNIX_EPOCH
        .checked_add(Duration::from_secs(now))
        .ok_or_else(|| TeeError::CollateralExpired(format!("verification time {now}")))?;
    // `time::OffsetDateTime: From<SystemTime>`; the `time` crate is not named here, so that
    // this crate does not depend on it directly.
    let doc = nitro_attest::UnparsedAttestationDoc::from(document)
        .parse_and_verify(at.into())
        .map_err(map_error)?;

    let issued_at = u64::try_from(doc.timestamp.unix_timestamp())
        .map_err(|_| TeeError::Malformed("Nitro document time is before 1970".into()))?;
    let pcrs = doc
        .pcrs
        .into_iter()
        .map(|(index, digest)| (index, digest.value))
        .collect();
    // The enclave binds its report through `user_data`; `nonce` is accepted where an SDK only
    // lets the enclave set that one.
    let report_data = doc
        .user_data
        .or(doc.nonce)
        .map(|bytes| bytes.into_vec())
        .unwrap_or_default();

    Ok(Attested {
        kind: EvidenceKind::Nitro,
        measurements: Measurements::Nitro { pcrs },
        // Nitro gives no TCB verdict: a verified chain is as good as it gets.
        tcb_status: TcbStatus::UpToDate,
        report_data,
        issued_at: Some(issued_at),
    })
}

/// nitro_attest's errors, each to the one kind it means. Exhaustive on purpose: a new variant in
/// a future version must be mapped by hand.
fn map_error(error: nitro_attest::Error) -> TeeError {
    use nitro_attest::Error as E;
    let message = error.to_string();
    match error {
        E::CertificateExpired { .. } | E::CertificateNotYetValid { .. } => {
            TeeError::CollateralExpired(message)
        }
        E::CertificateSignatureInvalid { .. }
        | E::CertificateRootInvalid { .. }
        | E::CertificateUnexpectedAlgorithm { .. }
        | E::CoseSignatureVerificationFailed(..) => TeeError::BadSignature(message),
        E::CommonNameMalformed(_)
        | E::CommonNameMissing
        | E::CoseSignatureMalformed(_)
        | E::CosePayloadMissing
        | E::CosePayloadMalformed { .. }
        | E::CertificateMalformed { .. }
        | E::CertificateMalformedStructure { .. }
        | E::NoCertificatesFound
        | E::CoseTimestampInvalid { .. } => TeeError::Malformed(message),
    }
}
