//! The `tee` verifier on real evidence from the crates' packages (`tests/data/tee`, see its
//! README), each at a fixed time inside its window, and the policy on unsigned test evidence.

use super::*;

const SGX_QUOTE: &[u8] = include_bytes!("../../tests/data/tee/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("../../tests/data/tee/sgx_quote_collateral.json");
const TDX_QUOTE: &[u8] = include_bytes!("../../tests/data/tee/tdx_quote");
const TDX_COLLATERAL: &[u8] = include_bytes!("../../tests/data/tee/tdx_quote_collateral.json");
const NITRO_DOC: &[u8] = include_bytes!("../../tests/data/tee/nitro_attestation.cose");
const SNP_REPORT_HEX: &str = include_str!("../../tests/data/tee/report_milan.hex");
const SNP_VCEK_DER: &[u8] = include_bytes!("../../tests/data/tee/vcek_milan.der");
const SNP_ASK_ARK_PEM: &str = include_str!("../../tests/data/tee/cert_chain_milan");

/// 2025-07-01T00:00:00Z, inside both DCAP samples' collateral windows: TCB Info and QE Identity
/// issued 2025-06-19 with next update 2025-07-19, PCK CRLs likewise (dcap-qvl's own tests pick
/// a time in the same window, just before the earliest next update).
const DCAP_NOW: u64 = 1_751_328_000;
/// 2025-08-01T00:00:00Z: after the collateral's next update.
const DCAP_AFTER: u64 = 1_754_006_400;
/// 2025-06-01T00:00:00Z: before the collateral was issued.
const DCAP_BEFORE: u64 = 1_748_736_000;
/// The SGX collateral's oldest issue date: QE Identity, 2025-06-19T10:01:18Z.
const SGX_ISSUED: u64 = 1_750_327_278;
/// The TDX collateral's oldest issue date: TCB Info, 2025-06-19T10:16:03Z.
const TDX_ISSUED: u64 = 1_750_328_163;
/// The Nitro document's own time, 2025-01-06T16:07:05Z; nitro_attest's test verifies at it.
/// Its leaf certificate is valid from 16:07:02Z to 19:07:05Z that day.
const NITRO_TIME: u64 = 1_736_179_625;
/// One second after the Nitro leaf certificate's notAfter.
const NITRO_AFTER: u64 = 1_736_190_426;
/// 2025-01-01T00:00:00Z, inside the Milan VCEK's validity (2023-04-03T19:23:43Z –
/// 2030-04-03T19:23:43Z); sev's own tests check no time at all.
const SNP_NOW: u64 = 1_735_689_600;
/// 2030-04-04T00:00:00Z: after the VCEK expired.
const SNP_AFTER: u64 = 1_901_491_200;
/// 2023-04-01T00:00:00Z: before the VCEK was issued.
const SNP_BEFORE: u64 = 1_680_307_200;

const SGX_MRENCLAVE: &str = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
const SGX_MRSIGNER: &str = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6";
const TDX_MRTD: &str = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";
const TDX_RTMR0: &str = "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0";
const TDX_RTMR1: &str = "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b3093d54e579e9378";
const TDX_RTMR2: &str = "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c3132";
const NITRO_PCR0: &str = "8bb159f202bb95d6d4d98e0e103918246cea734f1d57cd263e4fd56075ed53f6fa8c68854817a32749a241e11874c26b";
const SNP_MEASUREMENT: &str = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
const SNP_REPORT_DATA: &str = "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd";

/// The SGX report body starts after the 48-byte quote header; MRENCLAVE is at body offset 64.
const SGX_MRENCLAVE_AT: usize = 48 + 64;
/// The TDX (quote v4) report body starts after the header; MRTD is at body offset 136.
const TDX_MRTD_AT: usize = 48 + 136;
/// SEV-SNP report offsets: MEASUREMENT, a reserved range, the guest policy's debug byte, and the
/// last byte of the signature field (past r and s, so not signed).
const SNP_MEASUREMENT_AT: usize = 0x90;
const SNP_RESERVED_AT: usize = 0x1f8;
const SNP_POLICY_DEBUG_BYTE: usize = 0x08 + 2;
const SNP_UNSIGNED_TAIL_AT: usize = 0x4a0 - 1;

const DAY: u64 = 86_400;

fn bytes<const N: usize>(hex_text: &str) -> [u8; N] {
    hex::decode(hex_text).unwrap().try_into().unwrap()
}

fn tdx_policy_value() -> String {
    format!(
        "{TDX_MRTD}{TDX_RTMR0}{TDX_RTMR1}{TDX_RTMR2}{}",
        "00".repeat(48)
    )
}

fn evidence(kind: EvidenceKind, evidence: &[u8], collateral: &[u8]) -> Evidence {
    Evidence {
        kind,
        evidence: evidence.to_vec(),
        collateral: collateral.to_vec(),
    }
}

fn sgx() -> Evidence {
    evidence(EvidenceKind::Dcap, SGX_QUOTE, SGX_COLLATERAL)
}

fn tdx() -> Evidence {
    evidence(EvidenceKind::Dcap, TDX_QUOTE, TDX_COLLATERAL)
}

fn nitro() -> Evidence {
    evidence(EvidenceKind::Nitro, NITRO_DOC, &[])
}

fn snp_report() -> Vec<u8> {
    hex::decode(SNP_REPORT_HEX.trim()).unwrap()
}

fn snp() -> Evidence {
    evidence(EvidenceKind::SevSnp, &snp_report(), SNP_VCEK_DER)
}

/// A policy allowing every sample's measurement, Intel statuses down to the SGX sample's, and
/// evidence up to 30 days old.
fn policy() -> Policy {
    Policy {
        sgx: vec![SGX_MRENCLAVE.into()],
        tdx: vec![tdx_policy_value()],
        nitro: vec![NITRO_PCR0.into()],
        sev_snp: vec![SNP_MEASUREMENT.into()],
        min_tcb: TcbStatus::ConfigurationAndSwHardeningNeeded,
        max_age_secs: 30 * DAY,
    }
}

/// The sample's own binding: the first 32 bytes of its report data.
fn own_binding(attested: &Attested) -> [u8; 32] {
    attested.report_data[..32].try_into().unwrap()
}

fn flipped(data: &[u8], at: usize) -> Vec<u8> {
    let mut data = data.to_vec();
    data[at] ^= 0x01;
    data
}

fn position(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
        .unwrap()
}

/// A DER certificate as PEM (base64 in 64-column lines), to build SEV-SNP bundles.
fn pem(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut base64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &byte)| {
            acc | u32::from(byte) << (16 - 8 * i)
        });
        for i in 0..4 {
            if i <= chunk.len() {
                base64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                base64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in base64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

// ---- DCAP: SGX -------------------------------------------------------------------------------

#[test]
fn sgx_sample_verifies() {
    let attested = verify_evidence(&sgx(), DCAP_NOW).unwrap();
    assert_eq!(attested.kind, EvidenceKind::Dcap);
    assert_eq!(
        attested.measurements,
        Measurements::Sgx {
            mrenclave: bytes(SGX_MRENCLAVE),
            mrsigner: bytes(SGX_MRSIGNER),
        }
    );
    assert_eq!(
        attested.tcb_status,
        TcbStatus::ConfigurationAndSwHardeningNeeded
    );
    assert!(attested.report_data.starts_with(b"Hello, world!"));
    assert_eq!(attested.report_data.len(), 64);
    assert_eq!(attested.issued_at, Some(SGX_ISSUED));

    let binding = own_binding(&attested);
    assert_eq!(verify(&sgx(), &policy(), &binding, DCAP_NOW), Ok(attested));
}

#[test]
fn sgx_flipped_byte_is_bad_signature() {
    // MRENCLAVE is in the signed report body: the quote still parses, the signature fails.
    assert_eq!(
        &SGX_QUOTE[SGX_MRENCLAVE_AT..SGX_MRENCLAVE_AT + 32],
        &bytes::<32>(SGX_MRENCLAVE)
    );
    let tampered = Evidence {
        evidence: flipped(SGX_QUOTE, SGX_MRENCLAVE_AT),
        ..sgx()
    };
    let result = verify_evidence(&tampered, DCAP_NOW);
    assert!(
        matches!(result, Err(TeeError::BadSignature(_))),
        "{result:?}"
    );
}

#[test]
fn sgx_tampered_collateral_signature_is_bad_signature() {
    let mut collateral: dcap_qvl::QuoteCollateralV3 =
        serde_json::from_slice(SGX_COLLATERAL).unwrap();
    let last = collateral.tcb_info_signature.len() - 1;
    collateral.tcb_info_signature[last] ^= 0x01;
    let tampered = Evidence {
        collateral: serde_json::to_vec(&collateral).unwrap(),
        ..sgx()
    };
    let result = verify_evidence(&tampered, DCAP_NOW);
    assert!(
        matches!(result, Err(TeeError::BadSignature(_))),
        "{result:?}"
    );
}

#[test]
fn sgx_collateral_outside_its_window_is_expired() {
    for now in [DCAP_AFTER, DCAP_BEFORE] {
        let result = verify_evidence(&sgx(), now);
        assert!(
            matches!(result, Err(TeeError::CollateralExpired(_))),
            "at {now}: {result:?}"
        );
    }
}

#[test]
fn sgx_measurement_outside_policy_is_refused() {
    let policy = Policy {
        sgx: vec!["11".repeat(32)],
        ..policy()
    };
    let attested = verify_evidence(&sgx(), DCAP_NOW).unwrap();
    assert_eq!(
        policy.check(&attested, &own_binding(&attested), DCAP_NOW),
        Err(TeeError::MeasurementNotAllowed {
            kind: "sgx",
            measurement: SGX_MRENCLAVE.into(),
        })
    );
}

#[test]
fn sgx_old_collateral_is_stale() {
    let policy = Policy {
        max_age_secs: DAY,
        ..policy()
    };
    let attested = verify_evidence(&sgx(), DCAP_NOW).unwrap();
    assert_eq!(
        policy.check(&attested, &own_binding(&attested), DCAP_NOW),
        Err(TeeError::Stale {
            age: DCAP_NOW - SGX_ISSUED,
            max: DAY,
        })
    );
}

#[test]
fn sgx_tcb_below_minimum_is_refused() {
    let policy = Policy {
        min_tcb: TcbStatus::UpToDate,
        ..policy()
    };
    let attested = verify_evidence(&sgx(), DCAP_NOW).unwrap();
    assert_eq!(
        policy.check(&attested, &own_binding(&attested), DCAP_NOW),
        Err(TeeError::TcbTooLow {
            got: TcbStatus::ConfigurationAndSwHardeningNeeded,
            min: TcbStatus::UpToDate,
        })
    );
}

#[test]
fn sgx_other_binding_is_refused() {
    let binding = report_data_for(&[9; 32], b"another output");
    assert_eq!(
        verify(&sgx(), &policy(), &binding, DCAP_NOW),
        Err(TeeError::BindingMismatch)
    );
}

// ---- DCAP: TDX -------------------------------------------------------------------------------

#[test]
fn tdx_sample_verifies() {
    let attested = verify_evidence(&tdx(), DCAP_NOW).unwrap();
    assert_eq!(
        attested.measurements,
        Measurements::Tdx {
            mrtd: bytes(TDX_MRTD),
            rtmr: [
                bytes(TDX_RTMR0),
                bytes(TDX_RTMR1),
                bytes(TDX_RTMR2),
                [0; 48]
            ],
        }
    );
    assert_eq!(attested.measurements.policy_value(), tdx_policy_value());
    assert_eq!(attested.tcb_status, TcbStatus::UpToDate);
    assert_eq!(attested.issued_at, Some(TDX_ISSUED));

    let strict = Policy {
        min_tcb: TcbStatus::UpToDate,
        ..policy()
    };
    let binding = own_binding(&attested);
    assert_eq!(verify(&tdx(), &strict, &binding, DCAP_NOW), Ok(attested));
}

#[test]
fn tdx_flipped_byte_is_bad_signature() {
    assert_eq!(
        &TDX_QUOTE[TDX_MRTD_AT..TDX_MRTD_AT + 48],
        &bytes::<48>(TDX_MRTD)
    );
    let tampered = Evidence {
        evidence: flipped(TDX_QUOTE, TDX_MRTD_AT),
        ..tdx()
    };
    let result = verify_evidence(&tampered, DCAP_NOW);
    assert!(
        matches!(result, Err(TeeError::BadSignature(_))),
        "{result:?}"
    );
}

#[test]
fn tdx_collateral_after_next_update_is_expired() {
    let result = verify_evidence(&tdx(), DCAP_AFTER);
    assert!(
        matches!(result, Err(TeeError::CollateralExpired(_))),
        "{result:?}"
    );
}

#[test]
fn tdx_other_runtime_measurement_is_refused() {
    // Same firmware (MRTD), different application (RTMR3): not the allowed guest.
    let allowed = format!(
        "{TDX_MRTD}{TDX_RTMR0}{TDX_RTMR1}{TDX_RTMR2}{}",
        "11".repeat(48)
    );
    let policy = Policy {
        tdx: vec![allowed],
        ..policy()
    };
    let attested = verify_evidence(&tdx(), DCAP_NOW).unwrap();
    assert_eq!(
        policy.check(&attested, &own_binding(&attested), DCAP_NOW),
        Err(TeeError::MeasurementNotAllowed {
            kind: "tdx",
            measurement: tdx_policy_value(),
        })
    );
}

#[test]
fn tdx_not_listed_is_kind_not_allowed() {
    let policy = Policy {
        tdx: vec![],
        ..policy()
    };
    let attested = verify_evidence(&tdx(), DCAP_NOW).unwrap();
    assert_eq!(
        policy.check(&attested, &own_binding(&attested), DCAP_NOW),
        Err(TeeError::KindNotAllowed { kind: "tdx" })
    );
}

#[test]
fn tdx_stale_and_other_binding_are_refused() {
    let attested = verify_evidence(&tdx(), DCAP_NOW).unwrap();
    let binding = own_binding(&attested);
    let short = Policy {
        max_age_secs: 60,
        ..policy()
    };
    assert_eq!(
        short.check(&attested, &binding, DCAP_NOW),
        Err(TeeError::Stale {
            age: DCAP_NOW - TDX_ISSUED,
            max: 60,
        })
    );
    assert_eq!(
        policy().check(&attested, &[0; 32], DCAP_NOW),
        Err(TeeError::BindingMismatch)
    );
}

// ---- Nitro -------------------------------------------------------------------------------------

#[test]
fn nitro_sample_verifies() {
    let attested = verify_evidence(&nitro(), NITRO_TIME).unwrap();
    assert_eq!(attested.kind, EvidenceKind::Nitro);
    let Measurements::Nitro { pcrs } = &attested.measurements else {
        panic!("{:?}", attested.measurements);
    };
    assert_eq!(pcrs.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert!(pcrs.values().all(|pcr| pcr.len() == 48));
    assert_eq!(attested.measurements.policy_value(), NITRO_PCR0);
    assert_eq!(attested.tcb_status, TcbStatus::UpToDate);
    assert_eq!(attested.issued_at, Some(NITRO_TIME));
    // The sample carries neither user_data nor nonce: it verifies, passes the policy's
    // measurement, TCB and age, and is refused only because it is bound to no task.
    assert!(attested.report_data.is_empty());
    assert_eq!(
        verify(&nitro(), &policy(), &[0; 32], NITRO_TIME),
        Err(TeeError::BindingMismatch)
    );
}

#[test]
fn nitro_flipped_byte_is_bad_signature() {
    // PCR0's value sits inside the signed CBOR payload: flipping one of its bits keeps the
    // document well-formed and breaks the COSE signature.
    let at = position(NITRO_DOC, &hex::decode(NITRO_PCR0).unwrap());
    let tampered = Evidence {
        evidence: flipped(NITRO_DOC, at),
        ..nitro()
    };
    let result = verify_evidence(&tampered, NITRO_TIME);
    assert!(
        matches!(result, Err(TeeError::BadSignature(_))),
        "{result:?}"
    );
}

#[test]
fn nitro_certificate_outside_its_validity_is_expired() {
    // After the leaf's notAfter, and before its notBefore.
    for now in [NITRO_AFTER, NITRO_TIME - 600] {
        let result = verify_evidence(&nitro(), now);
        assert!(
            matches!(result, Err(TeeError::CollateralExpired(_))),
            "at {now}: {result:?}"
        );
    }
}

#[test]
fn nitro_measurement_outside_policy_is_refused() {
    let policy = Policy {
        nitro: vec!["22".repeat(48)],
        ..policy()
    };
    let attested = verify_evidence(&nitro(), NITRO_TIME).unwrap();
    assert_eq!(
        policy.check(&attested, &[0; 32], NITRO_TIME),
        Err(TeeError::MeasurementNotAllowed {
            kind: "nitro",
            measurement: NITRO_PCR0.into(),
        })
    );
}

#[test]
fn nitro_old_document_is_stale() {
    // An hour later the certificates are still valid, but the policy takes ten minutes.
    let now = NITRO_TIME + 3600;
    let policy = Policy {
        max_age_secs: 600,
        ..policy()
    };
    let attested = verify_evidence(&nitro(), now).unwrap();
    assert_eq!(
        policy.check(&attested, &[0; 32], now),
        Err(TeeError::Stale {
            age: 3600,
            max: 600
        })
    );
}

#[test]
fn nitro_refuses_collateral() {
    let result = verify_evidence(&evidence(EvidenceKind::Nitro, NITRO_DOC, b"x"), NITRO_TIME);
    assert!(matches!(result, Err(TeeError::Malformed(_))), "{result:?}");
}

// ---- SEV-SNP -----------------------------------------------------------------------------------

#[test]
fn snp_sample_verifies() {
    let attested = verify_evidence(&snp(), SNP_NOW).unwrap();
    assert_eq!(attested.kind, EvidenceKind::SevSnp);
    assert_eq!(
        attested.measurements,
        Measurements::SevSnp {
            measurement: bytes(SNP_MEASUREMENT),
        }
    );
    assert_eq!(attested.report_data, hex::decode(SNP_REPORT_DATA).unwrap());
    assert_eq!(attested.tcb_status, TcbStatus::UpToDate);
    assert_eq!(attested.issued_at, None);

    let binding = own_binding(&attested);
    assert_eq!(
        verify(&snp(), &policy(), &binding, SNP_NOW),
        Ok(attested.clone())
    );
    // SEV-SNP reports carry no time: no age is checked, even with a zero maximum. Their
    // freshness is the binding to the task (see the other-binding test below).
    let no_age = Policy {
        max_age_secs: 0,
        ..policy()
    };
    assert_eq!(verify(&snp(), &no_age, &binding, SNP_NOW), Ok(attested));
}

#[test]
fn snp_with_supplied_amd_chain_verifies() {
    let collateral = format!("{}{SNP_ASK_ARK_PEM}", pem(SNP_VCEK_DER));
    let supplied = evidence(EvidenceKind::SevSnp, &snp_report(), collateral.as_bytes());
    assert_eq!(
        verify_evidence(&supplied, SNP_NOW),
        verify_evidence(&snp(), SNP_NOW)
    );
    assert!(verify_evidence(&supplied, SNP_NOW).is_ok());
}

#[test]
fn snp_foreign_root_is_bad_signature() {
    const END: &str = "-----END CERTIFICATE-----";
    let ask = &SNP_ASK_ARK_PEM[..SNP_ASK_ARK_PEM.find(END).unwrap() + END.len()];
    let vcek = pem(SNP_VCEK_DER);
    // An "ARK" that is not AMD's (here the VCEK itself) is refused outright...
    let foreign = format!("{vcek}{ask}\n{vcek}");
    // ...and AMD's Genoa ARK did not sign the Milan ASK.
    let genoa = std::str::from_utf8(sev::certs::snp::builtin::genoa::ARK).unwrap();
    let mismatched = format!("{vcek}{ask}\n{genoa}");
    for collateral in [foreign, mismatched] {
        let result = verify_evidence(
            &evidence(EvidenceKind::SevSnp, &snp_report(), collateral.as_bytes()),
            SNP_NOW,
        );
        assert!(
            matches!(result, Err(TeeError::BadSignature(_))),
            "{result:?}"
        );
    }
}

#[test]
fn snp_flipped_byte_is_bad_signature() {
    let report = snp_report();
    assert_eq!(
        &report[SNP_MEASUREMENT_AT..SNP_MEASUREMENT_AT + 48],
        &bytes::<48>(SNP_MEASUREMENT)
    );
    let tampered = evidence(
        EvidenceKind::SevSnp,
        &flipped(&report, SNP_MEASUREMENT_AT),
        SNP_VCEK_DER,
    );
    let result = verify_evidence(&tampered, SNP_NOW);
    assert!(
        matches!(result, Err(TeeError::BadSignature(_))),
        "{result:?}"
    );
}

#[test]
fn snp_bytes_outside_the_signed_fields_are_malformed() {
    // A reserved byte (sev refuses it) and a byte after the signature's r and s (unsigned,
    // refused by the canonical re-encoding check).
    let report = snp_report();
    for at in [SNP_RESERVED_AT, SNP_UNSIGNED_TAIL_AT] {
        assert_eq!(report[at], 0);
        let tampered = evidence(EvidenceKind::SevSnp, &flipped(&report, at), SNP_VCEK_DER);
        let result = verify_evidence(&tampered, SNP_NOW);
        assert!(
            matches!(result, Err(TeeError::Malformed(_))),
            "at {at:#x}: {result:?}"
        );
    }
}

#[test]
fn snp_debug_guest_is_refused() {
    let mut report = snp_report();
    report[SNP_POLICY_DEBUG_BYTE] |= 0x08; // policy bit 19: DEBUG
    let result = verify_evidence(
        &evidence(EvidenceKind::SevSnp, &report, SNP_VCEK_DER),
        SNP_NOW,
    );
    assert!(matches!(result, Err(TeeError::Refused(_))), "{result:?}");
}

#[test]
fn snp_vcek_outside_its_validity_is_expired() {
    for now in [SNP_AFTER, SNP_BEFORE] {
        let result = verify_evidence(&snp(), now);
        assert!(
            matches!(result, Err(TeeError::CollateralExpired(_))),
            "at {now}: {result:?}"
        );
    }
}

#[test]
fn snp_measurement_outside_policy_is_refused() {
    let policy = Policy {
        sev_snp: vec!["33".repeat(48)],
        ..policy()
    };
    let attested = verify_evidence(&snp(), SNP_NOW).unwrap();
    assert_eq!(
        policy.check(&attested, &own_binding(&attested), SNP_NOW),
        Err(TeeError::MeasurementNotAllowed {
            kind: "sev_snp",
            measurement: SNP_MEASUREMENT.into(),
        })
    );
}

#[test]
fn snp_other_binding_is_refused() {
    let binding = report_data_for(&[1; 32], b"output");
    assert_eq!(
        verify(&snp(), &policy(), &binding, SNP_NOW),
        Err(TeeError::BindingMismatch)
    );
}

#[test]
fn snp_malformed_inputs() {
    let report = snp_report();
    let cases = [
        evidence(EvidenceKind::SevSnp, &report[..1000], SNP_VCEK_DER),
        evidence(EvidenceKind::SevSnp, &report, b"not a certificate"),
        evidence(
            EvidenceKind::SevSnp,
            &report,
            b"-----BEGIN CERTIFICATE-----\nAAAA",
        ),
    ];
    for case in cases {
        let result = verify_evidence(&case, SNP_NOW);
        assert!(matches!(result, Err(TeeError::Malformed(_))), "{result:?}");
    }
}

#[test]
fn snp_certificate_validity_is_read_from_der() {
    // 2023-04-03T19:23:43Z – 2030-04-03T19:23:43Z, as `openssl x509 -dates` prints it.
    assert_eq!(
        snp::validity(SNP_VCEK_DER),
        Some((1_680_549_823, 1_901_474_623))
    );
    assert_eq!(snp::validity(&SNP_VCEK_DER[..100]), None);
    assert_eq!(snp::validity(b""), None);
}

// ---- Policy and binding, on unsigned test evidence ------------------------------------------

/// Test-only evidence source: what a TEE would vouch for, with no signature at all, to exercise
/// [`Policy::check`] on report data, measurements and times of our choosing.
struct UnsignedTestEvidence {
    measurements: Measurements,
    tcb_status: TcbStatus,
    report_data: Vec<u8>,
    issued_at: Option<u64>,
}

impl UnsignedTestEvidence {
    /// A Nitro enclave with the sample's PCR0, issued at `issued_at`.
    fn nitro(issued_at: u64) -> Self {
        let pcrs = [(0, hex::decode(NITRO_PCR0).unwrap())]
            .into_iter()
            .collect();
        UnsignedTestEvidence {
            measurements: Measurements::Nitro { pcrs },
            tcb_status: TcbStatus::UpToDate,
            report_data: Vec::new(),
            issued_at: Some(issued_at),
        }
    }

    /// An SEV-SNP guest with the sample's measurement.
    fn sev_snp() -> Self {
        UnsignedTestEvidence {
            measurements: Measurements::SevSnp {
                measurement: bytes(SNP_MEASUREMENT),
            },
            tcb_status: TcbStatus::UpToDate,
            report_data: Vec::new(),
            issued_at: None,
        }
    }

    fn report_data(mut self, data: &[u8]) -> Self {
        self.report_data = data.to_vec();
        self
    }

    fn tcb(mut self, status: TcbStatus) -> Self {
        self.tcb_status = status;
        self
    }

    fn attested(self) -> Attested {
        let kind = match self.measurements {
            Measurements::Sgx { .. } | Measurements::Tdx { .. } => EvidenceKind::Dcap,
            Measurements::Nitro { .. } => EvidenceKind::Nitro,
            Measurements::SevSnp { .. } => EvidenceKind::SevSnp,
        };
        Attested {
            kind,
            measurements: self.measurements,
            tcb_status: self.tcb_status,
            report_data: self.report_data,
            issued_at: self.issued_at,
        }
    }
}

#[test]
fn binding_ties_report_to_task_and_output() {
    let task = [7; 32];
    let other_task = [8; 32];
    let now = NITRO_TIME;
    let bound = report_data_for(&task, b"42");
    let attested = UnsignedTestEvidence::nitro(now)
        .report_data(&bound)
        .attested();
    assert_eq!(
        policy().check(&attested, &report_data_for(&task, b"42"), now),
        Ok(())
    );
    // The same report offered for another task, or for another output of this task.
    assert_eq!(
        policy().check(&attested, &report_data_for(&other_task, b"42"), now),
        Err(TeeError::BindingMismatch)
    );
    assert_eq!(
        policy().check(&attested, &report_data_for(&task, b"43"), now),
        Err(TeeError::BindingMismatch)
    );
}

#[test]
fn binding_is_a_prefix_of_report_data() {
    let binding = report_data_for(&[7; 32], b"42");
    // The TEE may put more after the binding (say, a key's hash): still bound.
    let mut longer = binding.to_vec();
    longer.extend_from_slice(&[0xee; 32]);
    let attested = UnsignedTestEvidence::sev_snp()
        .report_data(&longer)
        .attested();
    assert_eq!(policy().check(&attested, &binding, SNP_NOW), Ok(()));
    // Shorter than a binding, or the binding later than at the start: not bound.
    for data in [binding[..16].to_vec(), [&[0u8][..], &binding[..]].concat()] {
        let attested = UnsignedTestEvidence::sev_snp()
            .report_data(&data)
            .attested();
        assert_eq!(
            policy().check(&attested, &binding, SNP_NOW),
            Err(TeeError::BindingMismatch)
        );
    }
}

#[test]
fn the_context_binds_deployment_task_code_and_inputs() {
    let payloads = vec![b"5".to_vec(), b"7".to_vec()];
    let base = TaskContext {
        chain_id: 1,
        router: [2; 20],
        project_id: 3,
        task_id: [4; 32],
        code_hash: [5; 32],
        payloads: &payloads,
    };
    let moved = [b"57".to_vec()];
    let fewer = [b"5".to_vec()];
    let others = [
        TaskContext {
            chain_id: 2,
            ..base
        },
        TaskContext {
            router: [3; 20],
            ..base
        },
        TaskContext {
            project_id: 4,
            ..base
        },
        TaskContext {
            task_id: [5; 32],
            ..base
        },
        TaskContext {
            code_hash: [6; 32],
            ..base
        },
        // The same bytes split otherwise, and a payload left out.
        TaskContext {
            payloads: &moved,
            ..base
        },
        TaskContext {
            payloads: &fewer,
            ..base
        },
    ];
    for other in others {
        assert_ne!(other.digest(), base.digest(), "{other:?}");
    }
    assert_eq!(base.digest(), TaskContext { ..base }.digest());
}

#[test]
fn report_data_for_is_pinned() {
    // sha256("conclave-tee-v1" ‖ [7; 32] ‖ sha256("42")), computed independently.
    assert_eq!(
        hex::encode(report_data_for(&[7; 32], b"42")),
        "a4ae461106cdc24954c978c18000b56eaf46457dfe657eaa3087c12b15912c1e"
    );
}

#[test]
fn policy_checks_in_order() {
    let binding = report_data_for(&[7; 32], b"42");
    let now = NITRO_TIME;
    let fresh = || UnsignedTestEvidence::nitro(now).report_data(&binding);
    assert_eq!(policy().check(&fresh().attested(), &binding, now), Ok(()));
    // A clock behind the enclave's counts as age zero.
    assert_eq!(
        policy().check(&fresh().attested(), &binding, now - 5),
        Ok(())
    );
    assert_eq!(
        policy().check(&fresh().attested(), &binding, now + 31 * DAY),
        Err(TeeError::Stale {
            age: 31 * DAY,
            max: 30 * DAY
        })
    );
    assert_eq!(
        policy().check(&fresh().tcb(TcbStatus::OutOfDate).attested(), &binding, now),
        Err(TeeError::TcbTooLow {
            got: TcbStatus::OutOfDate,
            min: TcbStatus::ConfigurationAndSwHardeningNeeded,
        })
    );
    let nitro_off = Policy {
        nitro: vec![" ".into()],
        ..policy()
    };
    assert_eq!(
        nitro_off.check(&fresh().attested(), &binding, now),
        Err(TeeError::KindNotAllowed { kind: "nitro" })
    );
    // A debug enclave's PCRs are all zero and nitro_attest leaves them out: no PCR0, no match.
    let mut no_pcr0 = fresh().attested();
    no_pcr0.measurements = Measurements::Nitro {
        pcrs: Default::default(),
    };
    assert_eq!(
        policy().check(&no_pcr0, &binding, now),
        Err(TeeError::MeasurementNotAllowed {
            kind: "nitro",
            measurement: String::new(),
        })
    );
    // Policy entries are compared as hex, whatever their case or `0x`.
    let upper = Policy {
        nitro: vec![format!("0x{}", NITRO_PCR0.to_uppercase())],
        ..policy()
    };
    assert_eq!(upper.check(&fresh().attested(), &binding, now), Ok(()));
}

#[test]
fn kind_not_allowed_is_refused_before_verification() {
    let only_sgx = Policy {
        tdx: vec![],
        nitro: vec![],
        sev_snp: vec![],
        ..policy()
    };
    // Garbage evidence: refused for its kind, never parsed.
    let junk = evidence(EvidenceKind::Nitro, b"junk", b"");
    assert_eq!(
        verify(&junk, &only_sgx, &[0; 32], NITRO_TIME),
        Err(TeeError::KindNotAllowed { kind: "nitro" })
    );
    assert!(verify(&sgx(), &only_sgx, &[0; 32], DCAP_NOW).is_err());
}

#[test]
fn policy_reads_from_json_and_validates() {
    let json = format!(
        r#"{{"sgx": ["{SGX_MRENCLAVE}"], "min_tcb": "SWHardeningNeeded", "max_age_secs": 600}}"#
    );
    let parsed: Policy = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.min_tcb, TcbStatus::SwHardeningNeeded);
    assert!(parsed.tdx.is_empty() && parsed.nitro.is_empty() && parsed.sev_snp.is_empty());
    assert_eq!(parsed.validate(), Ok(()));

    let misspelt = r#"{"min_tcb": "UpToDate", "max_age": 600, "max_age_secs": 600}"#;
    assert!(serde_json::from_str::<Policy>(misspelt).is_err());
    let unknown_status = r#"{"min_tcb": "Fine", "max_age_secs": 600}"#;
    assert!(serde_json::from_str::<Policy>(unknown_status).is_err());

    for bad in [
        Policy {
            sgx: vec!["zz".repeat(32)],
            ..policy()
        },
        Policy {
            sev_snp: vec![SGX_MRENCLAVE.into()],
            ..policy()
        },
    ] {
        assert!(matches!(bad.validate(), Err(TeeError::BadPolicy(_))));
    }
    assert_eq!(policy().validate(), Ok(()));
}

#[test]
fn tcb_status_order_and_names() {
    use TcbStatus::*;
    let worst_to_best = [
        Revoked,
        OutOfDateConfigurationNeeded,
        OutOfDate,
        TdRelaunchAdvisedConfigurationNeeded,
        TdRelaunchAdvised,
        ConfigurationAndSwHardeningNeeded,
        ConfigurationNeeded,
        SwHardeningNeeded,
        UpToDate,
    ];
    assert!(worst_to_best.windows(2).all(|pair| pair[0] < pair[1]));
    for status in worst_to_best {
        assert_eq!(
            TcbStatus::from_intel_name(status.intel_name()),
            Some(status)
        );
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(json, format!("\"{}\"", status.intel_name()));
    }
    assert_eq!(TcbStatus::from_intel_name("Fine"), None);
}

// ---- Evidence encoding ---------------------------------------------------------------------

#[test]
fn evidence_round_trips_as_json() {
    for original in [sgx(), nitro(), snp()] {
        assert_eq!(Evidence::decode(&original.encode()), Ok(original));
    }
    let text = String::from_utf8(nitro().encode()).unwrap();
    assert!(
        text.starts_with(r#"{"kind":"nitro","evidence":""#),
        "{text}"
    );
    assert!(text.contains(r#""kind":"nitro""#));
    let snp_text = String::from_utf8(snp().encode()).unwrap();
    assert!(snp_text.contains(r#""kind":"sev-snp""#));
}

#[test]
fn evidence_too_large_or_malformed_is_refused() {
    let huge = vec![b' '; MAX_EVIDENCE_BYTES + 1];
    assert_eq!(
        Evidence::decode(&huge),
        Err(TeeError::TooLarge {
            len: MAX_EVIDENCE_BYTES + 1,
            max: MAX_EVIDENCE_BYTES
        })
    );
    let oversized = evidence(EvidenceKind::Dcap, &vec![0; MAX_EVIDENCE_BYTES], b"{}");
    assert!(matches!(
        verify_evidence(&oversized, DCAP_NOW),
        Err(TeeError::TooLarge { .. })
    ));
    for bad in [
        &b"{}"[..],
        br#"{"kind":"sgx","evidence":"","collateral":""}"#,
        br#"{"kind":"nitro","evidence":"zz","collateral":""}"#,
        b"\xff",
    ] {
        assert!(matches!(Evidence::decode(bad), Err(TeeError::Malformed(_))));
    }
}

#[test]
fn garbage_evidence_never_panics() {
    let inputs: [&[u8]; 5] = [
        b"",
        b"\x00",
        &[0xff; 64],
        &SGX_QUOTE[..100],
        &NITRO_DOC[..100],
    ];
    for kind in [
        EvidenceKind::Dcap,
        EvidenceKind::Nitro,
        EvidenceKind::SevSnp,
    ] {
        for input in inputs {
            for collateral in [&b""[..], SGX_COLLATERAL, SNP_VCEK_DER] {
                assert!(verify_evidence(&evidence(kind, input, collateral), DCAP_NOW).is_err());
            }
        }
    }
    assert!(matches!(
        verify_evidence(&sgx(), u64::MAX),
        Err(TeeError::CollateralExpired(_))
    ));
    assert!(matches!(
        verify_evidence(&nitro(), u64::MAX),
        Err(TeeError::CollateralExpired(_))
    ));
}

// ---- Helpers: dcap-qvl messages, dates --------------------------------------------------------

#[test]
fn dcap_messages_map_to_error_kinds() {
    use dcap::classify;
    let expired = [
        "TCBInfo expired",
        "QE Identity expired",
        "TCBInfo issue date is in the future",
        "Failed to verify certificate chain: CertExpired { time: UnixTime(1), not_after: UnixTime(0) }",
        "Failed to verify certificate chain: CertNotValidYet { time: UnixTime(0), not_before: UnixTime(1) }",
        "CrlExpired { time: UnixTime(1), next_update: UnixTime(0) }",
    ];
    for message in expired {
        assert!(
            matches!(classify(message), TeeError::CollateralExpired(_)),
            "{message}"
        );
    }
    let bad_signature = [
        "ISV enclave report signature is invalid",
        "Signature is invalid for tcb_info in quote_collateral",
        "Signature is invalid for qe_report in quote",
        "QE report hash mismatch",
        "Failed to verify certificate chain: UnknownIssuer",
        "TCB Info signer must be issued directly by the root CA",
        "Failed to parse root CA CRL: InvalidCrlSignatureForPublicKey",
    ];
    for message in bad_signature {
        assert!(
            matches!(classify(message), TeeError::BadSignature(_)),
            "{message}"
        );
    }
    let malformed = [
        "Failed to decode TcbInfo: expected value at line 1 column 1",
        "Failed to parse certs: BadDer",
        "Certificate chain is too short in quote",
    ];
    for message in malformed {
        assert!(
            matches!(classify(message), TeeError::Malformed(_)),
            "{message}"
        );
    }
    let refused = [
        "TCB status is invalid: Revoked",
        "Debug mode is enabled",
        "QE MRSIGNER mismatch: expected AA, got BB",
        "No matching TCB level found",
        "Fmspc mismatch",
    ];
    for message in refused {
        assert!(
            matches!(classify(message), TeeError::Refused(_)),
            "{message}"
        );
    }
}

#[test]
fn dates_are_read_exactly() {
    use dcap::parse_rfc3339;
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2025-06-19T10:56:11Z"), Some(1_750_330_571));
    assert_eq!(
        parse_rfc3339("2025-06-19T10:56:11.250Z"),
        Some(1_750_330_571)
    );
    assert_eq!(
        parse_rfc3339("2025-06-19T10:56:11+02:00"),
        Some(1_750_323_371)
    );
    assert_eq!(
        parse_rfc3339("2025-06-19T10:56:11-00:30"),
        Some(1_750_332_371)
    );
    assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
    for bad in [
        "",
        "2025-06-19",
        "2025-06-19T10:56:11",
        "2025-13-19T10:56:11Z",
        "2025-06-19T10:56:11.Z",
        "1969-12-31T23:59:59Z",
        "2025-06-19 10:56:11Z",
        "２025-06-19T10:56:11Z",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
    }
}
