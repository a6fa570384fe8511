//! Three parties each input a secret and learn only the sum and the product.
//!
//! `cargo run -p conclave-mpc --example private_sum -- 12 30 7`
//!
//! Preprocessing here comes from the test-only `InsecureDealer`, which knows every secret it deals:
//! this example shows the online phase only. The node uses the OT-based generator.

use conclave_mpc::dealer::InsecureDealer;
use conclave_mpc::driver::run;
use conclave_mpc::prep::Material;
use conclave_mpc::transport::MemoryTransport;
use conclave_mpc::wire::SessionId;
use conclave_mpc::{CircuitBuilder, Fp, Session, SessionConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secrets: Vec<u64> = if args.is_empty() {
        vec![12, 30, 7]
    } else {
        let parsed: Result<Vec<u64>, _> = args.iter().map(|a| a.parse()).collect();
        match parsed {
            Ok(v) if v.len() == 3 => v,
            _ => return Err("usage: private_sum [A B C] (three non-negative integers)".into()),
        }
    };

    let parties = 3;
    let mut b = CircuitBuilder::new(parties);
    let x: Vec<_> = (0..parties).map(|p| b.input(p)).collect();
    let sum = b.add(x[0], x[1]);
    let sum = b.add(sum, x[2]);
    let product = b.mul(x[0], x[1]);
    let product = b.mul(product, x[2]);
    b.reveal(sum);
    b.reveal(product);
    let circuit = b.build();

    eprintln!("warning: preprocessing from the test-only InsecureDealer (it sees every secret)");
    let mut dealer = InsecureDealer::new(parties, rand::random());
    let materials: Vec<Material> = dealer.deal(&circuit.requirements());
    let session = SessionId(rand::random());

    let mut tasks = Vec::new();
    for ((party, mut transport), material) in MemoryTransport::mesh(parties)
        .into_iter()
        .enumerate()
        .zip(materials)
    {
        let cfg = SessionConfig::new(session, party, parties);
        let input = vec![Fp::from_u64(secrets[party])];
        let s = Session::new(cfg, circuit.clone(), input, material)?;
        tasks.push(tokio::spawn(async move { run(s, &mut transport).await }));
    }
    for (party, task) in tasks.into_iter().enumerate() {
        let out = task.await??;
        println!(
            "party {party} (secret {:>4}) learned: sum = {}, product = {}",
            secrets[party], out[0], out[1]
        );
    }
    Ok(())
}
