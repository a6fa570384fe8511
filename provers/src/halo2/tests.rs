use super::*;
use conclave_mpc::lang::{InputValues, Program};

const SALT: Fr = Fr::from_raw([0x5a17, 0, 0, 0]);

/// Sum and count of valid 16-bit readings: a range check per device (two comparisons).
const SUM: &str = "devices 3;\nwindow 60;\ninput reading: int16 in -1000..=1000 from devices;\noutput sum = sum(reading);\noutput counted = sum(valid);\n";

fn compiled(readings: &[i128]) -> (Program, Vec<Vec<Fp>>, Vec<Fr>) {
    let program = Program::compile(SUM, 2, Some(readings.len())).unwrap();
    let values = InputValues {
        devices: readings.iter().map(|r| vec![*r]).collect(),
        owner: Vec::new(),
    };
    let inputs = program.party_inputs(&values).unwrap();
    let expected = program
        .evaluate(&values)
        .unwrap()
        .iter()
        .map(|o| to_fr(Fp::from_i128(o.scaled)))
        .collect();
    (program, inputs, expected)
}

#[test]
fn signed_values_keep_their_meaning() {
    assert_eq!(to_fr(Fp::from_i64(-5)), -Fr::from(5));
    assert_eq!(to_fr(Fp::from_i64(7)), Fr::from(7));
    assert_eq!(to_fr(Fp::from_i128(-(1 << 100))), -Fr::from_u128(1 << 100));
}

#[test]
fn a_program_proves_its_plaintext_outputs_and_nothing_else_verifies() {
    // One reading out of range: it is left out inside the circuit, as in the evaluator.
    let (program, inputs, expected) = compiled(&[5, -12, 4000]);
    let circuit = &program.lowered.circuit;
    let bound = [Fr::from(77), Fr::from(88)];
    let k = rows_needed(circuit, bound.len()).unwrap();
    let params = insecure_params(k, [1; 32]);
    let keys = keygen(&params, circuit, bound.len()).unwrap();
    let (proof, instances) = prove(&params, &keys, circuit, &inputs, &bound, SALT).unwrap();
    assert_eq!(&instances[..2], &bound);
    let commitment = input_commitment(circuit, &inputs, SALT).unwrap();
    assert_eq!(instances[2], commitment);
    assert_eq!(&instances[3..], &expected[..]);
    assert_eq!(instances[3..], [Fr::from(0) - Fr::from(7), Fr::from(2)]);
    verify(&params, &keys, &instances, &proof).unwrap();

    // A flipped byte, another output, another bound value: each refused.
    let mut tampered = proof.clone();
    tampered[100] ^= 1;
    assert_eq!(
        verify(&params, &keys, &instances, &tampered),
        Err(Halo2Error::Rejected)
    );
    let mut other_output = instances.clone();
    other_output[3] += Fr::from(1);
    assert_eq!(
        verify(&params, &keys, &other_output, &proof),
        Err(Halo2Error::Rejected)
    );
    let mut other_task = instances.clone();
    other_task[0] = Fr::from(78);
    assert_eq!(
        verify(&params, &keys, &other_task, &proof),
        Err(Halo2Error::Rejected)
    );
    // Other inputs (one bit of one record flipped) prove another commitment: a verifier that
    // expects the devices' commitment refuses it. Another salt gives another commitment too.
    let mut other_inputs = inputs.clone();
    let party = other_inputs.iter().position(|p| !p.is_empty()).unwrap();
    other_inputs[party][0] = Fp::ONE - other_inputs[party][0];
    let (_, forged) = prove(&params, &keys, circuit, &other_inputs, &bound, SALT).unwrap();
    assert_ne!(forged[2], commitment);
    assert_ne!(
        input_commitment(circuit, &inputs, Fr::from(5)).unwrap(),
        commitment
    );
    // A shortened instance list (a missing output would read as 0) is refused.
    assert!(matches!(
        verify(&params, &keys, &instances[..4], &proof),
        Err(Halo2Error::InstanceCount { .. })
    ));
    // Another program's key does not take this proof.
    let other =
        Program::compile(&SUM.replace("sum(reading)", "sum(reading) * 2"), 2, Some(3)).unwrap();
    let other_keys = keygen(&params, &other.lowered.circuit, bound.len()).unwrap();
    assert_eq!(
        verify(&params, &other_keys, &instances, &proof),
        Err(Halo2Error::Rejected)
    );
}

#[test]
fn an_input_that_is_not_a_bit_is_refused() {
    let (program, mut inputs, _) = compiled(&[5, 6, 7]);
    let circuit = &program.lowered.circuit;
    let params = insecure_params(rows_needed(circuit, 0).unwrap(), [2; 32]);
    let keys = keygen(&params, circuit, 0).unwrap();
    let party = inputs.iter().position(|p| !p.is_empty()).unwrap();
    inputs[party][0] = Fp::from_u64(2);
    assert!(matches!(
        prove(&params, &keys, circuit, &inputs, &[], SALT),
        Err(Halo2Error::BadInput(_))
    ));
}

#[test]
fn constants_are_integers_or_powers_of_one_half() {
    let half = Fp::from_u64(2).inverse().unwrap();
    assert_eq!(
        constant(half * half).unwrap(),
        Fr::from(4).invert().unwrap()
    );
    assert_eq!(constant(-half).unwrap(), -Fr::from(2).invert().unwrap());
    assert_eq!(constant(Fp::from_i64(-3)).unwrap(), -Fr::from(3));
    // A value that is neither (a third) is refused rather than misread.
    let third = Fp::from_u64(3).inverse().unwrap();
    assert_eq!(constant(third), Err(Halo2Error::UnsupportedConstant));
}

/// The verifier snark-verifier generates for a program's key, compiled with the pinned solc-js
/// and deployed on the embedded chain, accepts exactly what verifies natively.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_verifier_accepts_on_chain_what_verifies_natively() {
    use alloy::primitives::{Bytes, U256};
    use alloy::signers::local::PrivateKeySigner;
    use conclave_chain::backend::{Chain, DevChain, TxRequest};

    let (program, inputs, _) = compiled(&[5, -12, 40]);
    let circuit = &program.lowered.circuit;
    let bound = [Fr::from(1), Fr::from(2)];
    let params = insecure_params(rows_needed(circuit, bound.len()).unwrap(), [3; 32]);
    let keys = keygen(&params, circuit, bound.len()).unwrap();
    let (proof, instances) = prove(&params, &keys, circuit, &inputs, &bound, SALT).unwrap();
    let source = verifier_source(&params, keys.vk(), instances.len());
    assert_eq!(source, verifier_source(&params, keys.vk(), instances.len()));
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools");
    let bytecode = compile_verifier(&source, &tools).expect("solc-js (scripts/test installs it)");

    let chain = conclave_chain::EmbeddedChain::new();
    let deployer = PrivateKeySigner::random();
    chain
        .set_balance(deployer.address(), U256::from(10u64).pow(U256::from(20)))
        .await
        .unwrap();
    let deployed = chain
        .send(
            &deployer,
            TxRequest {
                to: None,
                data: Bytes::from(bytecode),
                value: U256::ZERO,
            },
        )
        .await
        .unwrap();
    let verifier = deployed.contract_address.unwrap();
    let accepts = async |instances: &[Fr], proof: &[u8]| {
        chain
            .call(verifier, Bytes::from(calldata(instances, proof)))
            .await
            .is_ok()
    };
    assert!(accepts(&instances, &proof).await);
    let mut tampered = proof.clone();
    tampered[64] ^= 1;
    assert!(!accepts(&instances, &tampered).await);
    let mut other = instances.clone();
    other[0] += Fr::from(1);
    assert!(!accepts(&other, &proof).await);
}

#[test]
fn parameters_round_trip_through_a_file_and_bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.bin");
    let srs = Srs::insecure(6, [3; 32]);
    srs.write(&path).unwrap();
    let read = Srs::read(&path).unwrap();
    assert_eq!(read.k(), 6);
    assert_eq!(read.0.s_g2(), srs.0.s_g2());
    let good = std::fs::read(&path).unwrap();
    // Cut short, one byte too many, a k far too large, a point off the curve: typed errors.
    let mut bad_files = vec![
        good[..good.len() - 1].to_vec(),
        [good.clone(), vec![0]].concat(),
    ];
    let mut huge = good.clone();
    huge[..4].copy_from_slice(&40u32.to_le_bytes());
    bad_files.push(huge);
    let mut off_curve = good.clone();
    off_curve[10] ^= 1;
    bad_files.push(off_curve);
    // Points all on their curves, but not one consistent set: another secret's s·H, or two of
    // the Lagrange points swapped.
    let other = dir.path().join("other.bin");
    Srs::insecure(6, [4; 32]).write(&other).unwrap();
    let other = std::fs::read(&other).unwrap();
    let mut forged_g2 = good.clone();
    let end = forged_g2.len();
    forged_g2[end - 128..].copy_from_slice(&other[end - 128..]);
    bad_files.push(forged_g2);
    let mut swapped = good.clone();
    let lagrange = 4 + 64 * 64;
    let (a, b) = (lagrange, lagrange + 64);
    let first: Vec<u8> = swapped[a..a + 64].to_vec();
    swapped.copy_within(b..b + 64, a);
    swapped[b..b + 64].copy_from_slice(&first);
    bad_files.push(swapped);
    for bad in bad_files {
        std::fs::write(&path, bad).unwrap();
        assert!(matches!(Srs::read(&path), Err(Halo2Error::Srs(_))));
    }
}

#[test]
fn a_task_statement_proves_and_a_seat_with_other_records_refuses_the_proof() {
    let srs = Srs::insecure(14, [4; 32]);
    let prover = ProgramProver::new(&srs, SUM, 3).unwrap();
    let binding = Fr::from(99);
    let records = |r: [i128; 3]| r.iter().map(|v| Some(vec![*v])).collect::<Vec<_>>();
    let statement = prover
        .statement(records([5, -12, 4000]), SALT, binding)
        .unwrap();
    assert_eq!(
        statement
            .outputs
            .iter()
            .map(|o| o.scaled)
            .collect::<Vec<_>>(),
        [-7, 2]
    );
    let proof = prover.prove(&statement).unwrap();
    prover.verify(&statement, &proof).unwrap();
    // A seat holding another record (or another salt, or another task) computes another
    // statement, and the proof does not verify for it.
    for other in [
        prover.statement(records([5, -12, 3]), SALT, binding),
        prover.statement(records([5, -12, 4000]), Fr::from(1), binding),
        prover.statement(records([5, -12, 4000]), SALT, Fr::from(98)),
    ] {
        assert_eq!(
            prover.verify(&other.unwrap(), &proof),
            Err(Halo2Error::Rejected)
        );
    }
    // A slot no device filled is excluded (its presence bit is 0), with the same keys: one
    // verifier serves every task. A record of the wrong shape is refused.
    let partial = prover
        .statement(vec![Some(vec![5]), None, Some(vec![-12])], SALT, binding)
        .unwrap();
    assert_eq!(
        partial.outputs.iter().map(|o| o.scaled).collect::<Vec<_>>(),
        [-7, 2]
    );
    let partial_proof = prover.prove(&partial).unwrap();
    prover.verify(&partial, &partial_proof).unwrap();
    assert!(matches!(
        prover.statement(vec![Some(vec![5, 6]), None, None], SALT, binding),
        Err(Halo2Error::Inputs(_))
    ));
    assert_eq!(
        fr_from_be(fr_to_be(statement.input_commitment())),
        Some(statement.input_commitment())
    );
    assert_eq!(fr_from_be([0xff; 32]), None);
}
