//! `halo2` projects on the mesh (4 real nodes, embedded chain): the verifier generated from the
//! program's key is deployed at registration; devices seal their records to every seat; the seat
//! of lowest rank proves, the others check the proof against their own records before signing;
//! `TaskRouter.submitProven` checks the proof again. Then a whole committee that tries to publish
//! with a tampered proof, a proof for other instances or one of another program is refused by the
//! chain.

use std::time::Duration;

use alloy::primitives::{Bytes, U256};
use conclave_chain::attest::{Attestation, HaloProof, TaskResult, task_binding};
use conclave_chain::bindings::TaskRouter::TaskRouterErrors;
use conclave_chain::{ContractError, Revert};
use conclave_node::client::Client;
use conclave_node::program::{Opened, Program, encode_outputs};
use conclave_provers::halo2::{Fr, ProgramProver, Srs, fr_from_be, fr_to_be};
use conclave_sim::Cluster;

/// Sum and count of the readings in range: one comparison pair per device. Four slots, of which
/// the test's devices fill three: the window (8 s) ends the task.
const SOURCE: &str = "devices 4;\nwindow 8;\ninput reading: int16 in -1000..=1000 from devices;\noutput sum = sum(reading);\noutput counted = sum(valid);\n";

fn tools() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools")
}

fn router_error(e: ContractError) -> TaskRouterErrors {
    match e {
        ContractError::Revert(Revert::Router(r)) => r,
        other => panic!("expected a TaskRouter error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halo2_task_publishes_a_proven_result_and_no_committee_publishes_without_a_proof() {
    let cluster = Cluster::start(4, |_| {}).await.unwrap();
    let project = cluster.halo2_project(SOURCE, 3, 2, &tools()).await.unwrap();
    let from = cluster.contracts.chain().block_number().await.unwrap();
    let task = Client::new(cluster.api(0)).task(project).await.unwrap();
    assert_eq!((task.prover_kind, task.record_bytes), (1, 2));
    // One reading out of its declared range: left out inside the proof, as in the evaluator; the
    // slot no device filled is left out too (a device cannot sink a halo2 task by staying away).
    for (i, reading) in [5.0, -12.0, 4000.0].iter().enumerate() {
        Client::new(cluster.api(1 + i % 3))
            .with_chain(cluster.contracts.clone())
            .submit_record_to(&task, &[*reading])
            .await
            .unwrap();
    }
    let published = cluster
        .published(&task.task_id, from, Duration::from_secs(180))
        .await
        .unwrap();
    let program = Program::from_source(SOURCE).unwrap();
    let outputs: Vec<i128> = program
        .decode_outputs(&published.event.output)
        .unwrap()
        .iter()
        .map(|o| match o {
            Opened::Public(v) => v.scaled,
            other => panic!("a private output {other:?}"),
        })
        .collect();
    assert_eq!(outputs, [-7, 2]);

    // A second task, and its whole committee (the test holds every operator key) trying to
    // publish what its program does not give.
    let c = &cluster.contracts;
    // (A draw whose seats fall short of the threshold could never publish: open another.)
    let (second, committee) = loop {
        let (task, _) = c
            .open_task(&cluster.owner, U256::from(project))
            .await
            .unwrap();
        let committee = loop {
            if let Ok(Some(committee)) = c.committee(task).await {
                break committee;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let seats: u32 = committee
            .iter()
            .map(|(_, mask)| conclave_chain::sortition::seat_count(*mask))
            .sum();
        if seats >= 2 {
            break (task, committee);
        }
    };
    let (chain_id, router) = (c.addresses().chain_id, c.addresses().task_router);
    let sign_all = |output: &Bytes, proof: &HaloProof| -> (TaskResult, Vec<Attestation>) {
        let result = TaskResult {
            project_id: U256::from(project),
            task_id: second,
            output: output.clone(),
            proof_hash: proof.proof_hash(),
        };
        let attestations = committee
            .iter()
            .map(|(who, _)| {
                let key = cluster
                    .operators
                    .iter()
                    .find(|k| k.address() == *who)
                    .unwrap();
                result.sign(key, chain_id, router).unwrap()
            })
            .collect();
        (result, attestations)
    };
    let srs = Srs::read(&cluster.insecure_srs()).unwrap();
    let prover = ProgramProver::new(&srs, SOURCE, 4).unwrap();
    let binding =
        |task: U256| fr_from_be(task_binding(chain_id, router, task).to_be_bytes()).unwrap();
    // Three devices of four: the empty slot is excluded.
    let records = vec![Some(vec![100]), None, Some(vec![300]), Some(vec![1])];
    let salt = Fr::from(12345);
    let proven = |prover: &ProgramProver, task: U256| {
        let statement = prover
            .statement(records.clone(), salt, binding(task))
            .unwrap();
        let output = encode_outputs(
            &statement
                .outputs
                .iter()
                .cloned()
                .map(Opened::Public)
                .collect::<Vec<_>>(),
        );
        let proof = HaloProof {
            input_commitment: U256::from_be_bytes(fr_to_be(statement.input_commitment())),
            proof: Bytes::from(prover.prove(&statement).unwrap()),
        };
        (Bytes::from(output), proof)
    };
    let (output, proof) = proven(&prover, second);
    // The router builds the instances the nodes prove for: the task binding as the node computes
    // it, the commitment, the output's words.
    let built = c
        .proof_instances(second, &output, proof.input_commitment)
        .await
        .unwrap();
    assert_eq!(built[0], task_binding(chain_id, router, second));
    assert_eq!(built[1], proof.input_commitment);
    assert_eq!(built.len(), 2 + output.len() / 32);
    let owner = &cluster.owner;
    let submit = |output: Bytes, proof: HaloProof| {
        let (result, attestations) = sign_all(&output, &proof);
        async move { c.submit_proven(owner, &result, &proof, attestations).await }
    };
    let rejected = |e: ContractError| matches!(router_error(e), TaskRouterErrors::ProofRejected(_));

    // A tampered proof.
    let mut tampered = proof.clone();
    let mut bytes = tampered.proof.to_vec();
    bytes[200] ^= 1;
    tampered.proof = Bytes::from(bytes);
    assert!(rejected(
        submit(output.clone(), tampered).await.unwrap_err()
    ));
    // Other instances: another output, another input commitment, the first task's proof.
    let mut more = output.to_vec();
    more[31] += 1;
    assert!(rejected(
        submit(Bytes::from(more), proof.clone()).await.unwrap_err()
    ));
    let mut recommitted = proof.clone();
    recommitted.input_commitment += U256::from(1);
    assert!(rejected(
        submit(output.clone(), recommitted).await.unwrap_err()
    ));
    let (first_output, first_proof) =
        proven(&prover, U256::from_str_radix(&task.task_id, 16).unwrap());
    assert!(rejected(
        submit(first_output, first_proof).await.unwrap_err()
    ));
    // The output one word short, that word moved in front of the proof: the generated verifier
    // reads its instances at fixed offsets and would find it there, so the router holds the
    // output to the project's registered word count.
    let mut shifted = proof.clone();
    shifted.proof = Bytes::from([&output[output.len() - 32..], &proof.proof[..]].concat());
    let short = Bytes::copy_from_slice(&output[..output.len() - 32]);
    assert!(matches!(
        router_error(submit(short, shifted).await.unwrap_err()),
        TaskRouterErrors::MalformedOutput(_)
    ));
    // Another program (its sum doubled), proven under its own keys for this very task.
    let other_source = SOURCE.replace("sum(reading);", "sum(reading) * 2;");
    let other = ProgramProver::new(&srs, &other_source, 4).unwrap();
    let (other_output, other_proof) = proven(&other, second);
    assert!(rejected(
        submit(other_output, other_proof).await.unwrap_err()
    ));
    // Without a proof at all: plain `submit` is refused for a halo2 task.
    let (result, attestations) = sign_all(&output, &proof);
    let plain = c.submit_result(&cluster.owner, &result, attestations).await;
    assert!(matches!(
        router_error(plain.unwrap_err()),
        TaskRouterErrors::WrongSubmit(_)
    ));
    // The genuine proof publishes: the refusals above were the proof's, not the signatures'.
    let receipt = submit(output.clone(), proof).await.unwrap();
    println!(
        "submitProven gas (4 slots, {} signers): {}",
        committee.len(),
        receipt.gas_used
    );
    assert_eq!(c.result(second).await.unwrap().unwrap().output, output);
    cluster.shutdown().await;
}
