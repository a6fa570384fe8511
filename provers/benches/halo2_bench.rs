//! The halo2 prover on the example programs over 100 devices: circuit size, key generation,
//! proving (the median of 3 runs), proof size, native verification, and on the embedded chain the
//! generated verifier's deploy gas and the gas of one verification. Prints one JSON line per
//! program. Needs solc-js in `.tools` (`chain/scripts/install-tools`).
//!
//! `cargo bench -p conclave-provers --bench halo2-bench --profile dev`

use std::time::{Duration, Instant};

use alloy::primitives::{Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use conclave_chain::backend::{Chain, DevChain, TxRequest};
use conclave_mpc::lang::{InputValues, Program};
use conclave_provers::halo2::{self, Fr};

const RUNS: usize = 3;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::main]
async fn main() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/programs");
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools");
    let chain = conclave_chain::EmbeddedChain::new();
    let deployer = PrivateKeySigner::random();
    chain
        .set_balance(deployer.address(), U256::from(10u64).pow(U256::from(24)))
        .await
        .unwrap();
    for (name, file, value) in [
        ("average", "average.tally", 1_000i128),
        ("auction", "auction.tally", 5_000i128),
    ] {
        let text = std::fs::read_to_string(examples.join(file)).unwrap();
        let source = regex_devices(&text, 100);
        let program = Program::compile(&source, 2, Some(100)).unwrap();
        let values = InputValues {
            devices: (0..100).map(|i| vec![value + i * 7]).collect(),
            owner: Vec::new(),
        };
        let inputs = program.party_inputs(&values).unwrap();
        let circuit = &program.lowered.circuit;
        let bound = [Fr::from(1), Fr::from(2)];
        let k = halo2::rows_needed(circuit, bound.len()).unwrap();
        let params = halo2::insecure_params(k, [9; 32]);
        let started = Instant::now();
        let keys = halo2::keygen(&params, circuit, bound.len()).unwrap();
        let keygen = started.elapsed();
        let mut proof = Vec::new();
        let mut instances = Vec::new();
        let prove = median(
            (0..RUNS)
                .map(|_| {
                    let started = Instant::now();
                    (proof, instances) =
                        halo2::prove(&params, &keys, circuit, &inputs, &bound, Fr::from(7))
                            .unwrap();
                    started.elapsed()
                })
                .collect(),
        );
        let started = Instant::now();
        halo2::verify(&params, &keys, &instances, &proof).unwrap();
        let verify = started.elapsed();
        let sol = halo2::verifier_source(&params, keys.vk(), instances.len());
        let bytecode = halo2::compile_verifier(&sol, &tools).unwrap();
        let deployed = chain
            .send(
                &deployer,
                TxRequest {
                    to: None,
                    data: Bytes::from(bytecode.clone()),
                    value: U256::ZERO,
                },
            )
            .await
            .unwrap();
        let verified = chain
            .send(
                &deployer,
                TxRequest {
                    to: deployed.contract_address,
                    data: Bytes::from(halo2::calldata(&instances, &proof)),
                    value: U256::ZERO,
                },
            )
            .await
            .unwrap();
        println!(
            "{}",
            serde_json::json!({
                "bench": "halo2",
                "program": name,
                "devices": 100,
                "k": k,
                "gates": circuit.gates().len(),
                "keygen_ms": ms(keygen),
                "prove_ms": ms(prove),
                "verify_ms": ms(verify),
                "proof_bytes": proof.len(),
                "instances": instances.len(),
                "verifier_bytes": bytecode.len(),
                "deploy_gas": deployed.gas_used,
                "verify_tx_gas": verified.gas_used,
            })
        );
    }
}

/// `text` with its `devices N;` declaration set to `n`.
fn regex_devices(text: &str, n: u32) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("devices ") {
                format!("devices {n};")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
