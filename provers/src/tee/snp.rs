//! AMD SEV-SNP attestation reports, verified with the `sev` crate (pure-Rust `crypto_nossl`):
//! ARK self-signed → ARK signs ASK → ASK signs VCEK → VCEK signs the report.
//!
//! What `sev` does not do, done here:
//! - pin the root: `sev` only checks that the ARK signs itself, so a supplied ARK must equal one
//!   of AMD's ARKs built into `sev` (Milan, Genoa, Turin); without one those are tried;
//! - validity periods: every certificate of the chain must be valid at `now`;
//! - canonical bytes: `sev` checks the signature over its re-encoding of the parsed report, so the
//!   report must re-encode to exactly the bytes given (no unsigned bytes slipped in);
//! - debug guests: a guest whose policy allows debugging can be read by its host, so its report
//!   vouches for nothing and is refused.
//!
//! Reports carry no time and `sev` gives no TCB verdict offline: `issued_at` is `None` and the
//! status is `UpToDate` once the chain verifies. Freshness comes from the binding to the task.

use sev::certs::snp::{Certificate, Chain, Verifiable, builtin, ca};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;

use super::{Attested, EvidenceKind, Measurements, TcbStatus, TeeError, digits, unix_time};

/// The guest policy (report offset 0x08, little-endian u64) bit that allows debugging.
const POLICY_DEBUG_BIT: u64 = 1 << 19;

pub(super) fn verify(report: &[u8], collateral: &[u8], now: u64) -> Result<Attested, TeeError> {
    let parsed = AttestationReport::from_bytes(report)
        .map_err(|e| TeeError::Malformed(format!("SEV-SNP report: {e}")))?;
    let canonical = parsed
        .to_bytes()
        .map_err(|e| TeeError::Malformed(format!("SEV-SNP report: {e}")))?;
    if canonical.as_slice() != report {
        return Err(TeeError::Malformed(
            "SEV-SNP report has bytes outside its fields (reserved bytes are not zero)".into(),
        ));
    }
    let policy = report
        .get(0x08..0x10)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| TeeError::Malformed("SEV-SNP report too short".into()))?;
    if policy & POLICY_DEBUG_BIT != 0 {
        return Err(TeeError::Refused(
            "SEV-SNP guest policy allows debugging".into(),
        ));
    }

    let certs = parse_certs(collateral)?;
    let (vek, ask, ark) = match certs.as_slice() {
        [vek] => (vek, None, None),
        [vek, ask] => (vek, Some(ask), None),
        [vek, ask, ark] => (vek, Some(ask), Some(ark)),
        _ => {
            return Err(TeeError::Malformed(
                "SEV-SNP collateral must be VCEK [ASK [ARK]]".into(),
            ));
        }
    };

    let mut last_error = String::from("no AMD root to try");
    let mut verified = None;
    for ca in ca_candidates(ask, ark)? {
        let chain = Chain {
            ca,
            vek: vek.clone(),
        };
        match (&chain, &parsed).verify() {
            Ok(()) => {
                verified = Some(chain.ca);
                break;
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    let ca = verified.ok_or(TeeError::BadSignature(last_error))?;

    for (name, cert) in [("VCEK", vek), ("ASK", &ca.ask), ("ARK", &ca.ark)] {
        let der = cert
            .to_der()
            .map_err(|e| TeeError::Malformed(format!("SEV-SNP {name}: {e}")))?;
        let (not_before, not_after) = validity(&der).ok_or_else(|| {
            TeeError::Malformed(format!("SEV-SNP {name}: cannot read its validity"))
        })?;
        if now < not_before || now > not_after {
            return Err(TeeError::CollateralExpired(format!(
                "SEV-SNP {name} is valid from {not_before} to {not_after}, not at {now}"
            )));
        }
    }

    Ok(Attested {
        kind: EvidenceKind::SevSnp,
        measurements: Measurements::SevSnp {
            measurement: parsed.measurement,
        },
        tcb_status: TcbStatus::UpToDate,
        report_data: parsed.report_data.to_vec(),
        issued_at: None,
    })
}

/// AMD's CA chains built into `sev`, one per product.
fn builtin_chains() -> Vec<ca::Chain> {
    [
        (builtin::milan::ark(), builtin::milan::ask()),
        (builtin::genoa::ark(), builtin::genoa::ask()),
        (builtin::turin::ark(), builtin::turin::ask()),
    ]
    .into_iter()
    .filter_map(|(ark, ask)| {
        Some(ca::Chain {
            ark: ark.ok()?,
            ask: ask.ok()?,
        })
    })
    .collect()
}

/// The CA chains to try: the built-in ones; a supplied ASK (or ASVK, for a VLEK) under each
/// built-in ARK; or a supplied ASK under a supplied ARK if that ARK is one of AMD's.
fn ca_candidates(
    ask: Option<&Certificate>,
    ark: Option<&Certificate>,
) -> Result<Vec<ca::Chain>, TeeError> {
    let builtin = builtin_chains();
    Ok(match (ask, ark) {
        (None, _) => builtin,
        (Some(ask), None) => builtin
            .into_iter()
            .map(|chain| ca::Chain {
                ark: chain.ark,
                ask: ask.clone(),
            })
            .collect(),
        (Some(ask), Some(ark)) => {
            if !builtin.iter().any(|chain| &chain.ark == ark) {
                return Err(TeeError::BadSignature(
                    "the supplied ARK is not one of AMD's".into(),
                ));
            }
            vec![ca::Chain {
                ark: ark.clone(),
                ask: ask.clone(),
            }]
        }
    })
}

/// The collateral's certificates: one DER certificate, or up to three PEM ones.
fn parse_certs(collateral: &[u8]) -> Result<Vec<Certificate>, TeeError> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let malformed = |e: std::io::Error| TeeError::Malformed(format!("SEV-SNP certificate: {e}"));
    if find(collateral, BEGIN).is_none() {
        return Ok(vec![Certificate::from_der(collateral).map_err(malformed)?]);
    }
    let mut certs = Vec::new();
    let mut rest = collateral;
    while let Some(start) = find(rest, BEGIN) {
        let block = rest.get(start..).unwrap_or_default();
        let end = find(block, END)
            .map(|at| at + END.len())
            .ok_or_else(|| TeeError::Malformed("SEV-SNP certificate: PEM without END".into()))?;
        if certs.len() == 3 {
            return Err(TeeError::Malformed(
                "SEV-SNP collateral has more than three certificates".into(),
            ));
        }
        certs.push(Certificate::from_pem(block.get(..end).unwrap_or_default()).map_err(malformed)?);
        rest = block.get(end..).unwrap_or_default();
    }
    Ok(certs)
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// One DER element: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (len_bytes, rest) = rest.split_at_checked(count)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &byte| (acc << 8) | usize::from(byte));
        (len, rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// A certificate's validity (notBefore, notAfter) in unix seconds, read from its DER:
/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity SEQUENCE { notBefore, notAfter }, … }, … }.
pub(super) fn validity(cert_der: &[u8]) -> Option<(u64, u64)> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0;
    let (SEQUENCE, certificate, _) = der_element(cert_der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = der_element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after_version) = der_element(rest)?;
    if tag == VERSION {
        rest = after_version;
    }
    // serialNumber, signature algorithm, issuer.
    for _ in 0..3 {
        rest = der_element(rest)?.2;
    }
    let (SEQUENCE, validity, _) = der_element(rest)? else {
        return None;
    };
    let (before_tag, before, rest) = der_element(validity)?;
    let (after_tag, after, _) = der_element(rest)?;
    Some((der_time(before_tag, before)?, der_time(after_tag, after)?))
}

/// An X.509 time: UTCTime `YYMMDDHHMMSSZ` (years 1950–2049, RFC 5280) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`.
fn der_time(tag: u8, text: &[u8]) -> Option<u64> {
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    let (year, rest) = match tag {
        UTC_TIME => {
            let (yy, rest) = text.split_at_checked(2)?;
            let yy = digits(Some(yy))?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, rest)
        }
        GENERALIZED_TIME => {
            let (yyyy, rest) = text.split_at_checked(4)?;
            (digits(Some(yyyy))?, rest)
        }
        _ => return None,
    };
    if rest.len() != 11 || rest.last() != Some(&b'Z') {
        return None;
    }
    let field = |from: usize| digits(rest.get(from..from + 2));
    unix_time(
        i64::from(year),
        field(0)?,
        field(2)?,
        field(4)?,
        field(6)?,
        field(8)?,
    )
}
