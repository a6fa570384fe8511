//! Intel DCAP quotes (SGX and TDX), verified by dcap-qvl against Intel's root CA (built into
//! dcap-qvl) with the collateral the prover shipped: TCB Info, QE Identity, CRLs and their
//! issuer chains. dcap-qvl checks, at `now`: the collateral's validity windows and signatures,
//! the PCK chain and CRLs, the quoting enclave's report and identity, the quote's signature, the
//! platform's TCB level, and refuses debug enclaves, debug TDs and revoked platforms.

use dcap_qvl::QuoteCollateralV3;
use serde::Deserialize;

use super::{Attested, EvidenceKind, Measurements, TcbStatus, TeeError, digits, unix_time};

pub(super) fn verify(quote: &[u8], collateral: &[u8], now: u64) -> Result<Attested, TeeError> {
    let collateral: QuoteCollateralV3 = serde_json::from_slice(collateral)
        .map_err(|e| TeeError::Malformed(format!("DCAP collateral: {e}")))?;
    // dcap-qvl parses the quote again; parsing it first tells a malformed quote from the rest.
    dcap_qvl::quote::Quote::parse(quote)
        .map_err(|e| TeeError::Malformed(format!("DCAP quote: {e:#}")))?;

    let verified = dcap_qvl::verify::ring::verify(quote, &collateral, now)
        .map_err(|e| classify(&format!("{e:#}")))?;

    let tcb_status = TcbStatus::from_intel_name(&verified.status).ok_or_else(|| {
        TeeError::Malformed(format!("unknown DCAP TCB status {:?}", verified.status))
    })?;
    let (measurements, report_data) = if let Some(enclave) = verified.report.as_sgx() {
        (
            Measurements::Sgx {
                mrenclave: enclave.mr_enclave,
                mrsigner: enclave.mr_signer,
            },
            enclave.report_data.to_vec(),
        )
    } else if let Some(td) = verified.report.as_td10() {
        (
            Measurements::Tdx {
                mrtd: td.mr_td,
                rtmr: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
            },
            td.report_data.to_vec(),
        )
    } else {
        return Err(TeeError::Malformed(
            "DCAP report is neither SGX nor TDX".into(),
        ));
    };

    Ok(Attested {
        kind: EvidenceKind::Dcap,
        measurements,
        tcb_status,
        report_data,
        issued_at: Some(issued_at(&collateral)?),
    })
}

/// The oldest issue date of the collateral's TCB Info and QE Identity: how old Intel's verdict
/// is. (dcap-qvl has already refused collateral whose window does not contain `now`.)
fn issued_at(collateral: &QuoteCollateralV3) -> Result<u64, TeeError> {
    #[derive(Deserialize)]
    struct Dated {
        #[serde(rename = "issueDate")]
        issue_date: String,
    }
    let issue_date = |name: &str, json: &str| -> Result<u64, TeeError> {
        let dated: Dated = serde_json::from_str(json)
            .map_err(|e| TeeError::Malformed(format!("DCAP {name}: {e}")))?;
        parse_rfc3339(&dated.issue_date).ok_or_else(|| {
            TeeError::Malformed(format!("DCAP {name} issue date {:?}", dated.issue_date))
        })
    };
    let tcb_info = issue_date("TCB Info", &collateral.tcb_info)?;
    let qe_identity = issue_date("QE Identity", &collateral.qe_identity)?;
    Ok(tcb_info.min(qe_identity))
}

/// Unix seconds of an RFC 3339 time, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` — what Intel's
/// collateral uses (`2025-06-19T10:56:11Z`). The fraction is dropped.
pub(super) fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, sep)| b.get(at) != Some(&sep))
        || !matches!(b.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    let field = |from: usize, to: usize| digits(b.get(from..to));
    let local = unix_time(
        i64::from(field(0, 4)?),
        field(5, 7)?,
        field(8, 10)?,
        field(11, 13)?,
        field(14, 16)?,
        field(17, 19)?,
    )?;
    let mut rest = b.get(19..)?;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits_len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits_len == 0 {
            return None;
        }
        rest = fraction.get(digits_len..)?;
    }
    match rest {
        [b'Z' | b'z'] => Some(local),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let offset = u64::from(digits(Some(&[*h1, *h2][..]))?) * 3600
                + u64::from(digits(Some(&[*m1, *m2][..]))?) * 60;
            // Local time = UTC + offset, so UTC = local - offset.
            if *sign == b'+' {
                local.checked_sub(offset)
            } else {
                local.checked_add(offset)
            }
        }
        _ => None,
    }
}

/// Maps a dcap-qvl error (an `anyhow` chain, printed with `{:#}`) to our error kinds. dcap-qvl
/// has no typed errors, so this reads its messages; `tests.rs` pins the mapping on the
/// messages dcap-qvl 0.7.1 emits. Order matters: time first (an expired certificate is reported
/// inside "Failed to verify certificate chain"), then revocation, then signatures.
pub(super) fn classify(message: &str) -> TeeError {
    let lower = message.to_ascii_lowercase();
    let mentions = |words: &[&str]| words.iter().any(|word| lower.contains(word));
    let message = message.to_string();
    if mentions(&["expired", "notvalidyet", "in the future"]) {
        // "TCBInfo expired", "QE Identity expired", "... issue date is in the future",
        // webpki's CertExpired / CertNotValidYet / CrlExpired.
        TeeError::CollateralExpired(message)
    } else if mentions(&["revoked"]) {
        // "TCB status is invalid: Revoked", webpki's CertRevoked.
        TeeError::Refused(message)
    } else if mentions(&[
        "signature",
        "hash mismatch",
        "unknownissuer",
        "failed to verify certificate chain",
        "must be issued directly by the root",
    ]) {
        // "ISV enclave report signature is invalid", "Signature is invalid for tcb_info …",
        // "QE report hash mismatch", webpki's InvalidSignatureForPublicKey / UnknownIssuer.
        TeeError::BadSignature(message)
    } else if mentions(&[
        "failed to decode",
        "failed to parse",
        "failed to extract",
        "badder",
        "too short",
        "unsupported",
        "invalid",
        "trailingdata",
    ]) {
        TeeError::Malformed(message)
    } else {
        // "Debug mode is enabled", "QE MRSIGNER mismatch", "Fmspc mismatch",
        // "No matching TCB level found", "Unknown QE vendor ID", …
        TeeError::Refused(message)
    }
}
