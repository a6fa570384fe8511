//! Three parties each input a secret and learn only the sum and the product.
//!
//! `cargo run --release -p conclave-mpc --example private_sum -- 12 30 7`
//!
//! Each party runs a MASCOT preprocessing pool (base OTs, then OT-extension triples, all checked)
//! over its own channels, then the SPDZ online phase on that material. All three parties run in
//! this one process over in-memory channels.

use std::time::Instant;

use conclave_mpc::driver::run;
use conclave_mpc::mascot::pool::{Pool, PoolConfig};
use conclave_mpc::prep::Material;
use conclave_mpc::share::MacKeyShare;
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
    let req = circuit.requirements();

    let started = Instant::now();
    let prep_session = SessionId(rand::random());
    let online_session = SessionId(rand::random());
    let mut tasks = Vec::new();
    let channels = MemoryTransport::mesh(parties)
        .into_iter()
        .zip(MemoryTransport::mesh(parties));
    for (party, (prep, mut online)) in channels.enumerate() {
        let (circuit, req) = (circuit.clone(), req.clone());
        let secret = Fp::from_u64(secrets[party]);
        tasks.push(tokio::spawn(async move {
            // Each party's own MAC key share; nobody ever learns the others'.
            let key = MacKeyShare::new(Fp::random(&mut rand::rng()));
            let config = PoolConfig::for_triples(parties, 16, 16);
            let mut pool = Pool::start(prep_session, key, prep, config).await?;
            pool.ready(&req).await?;
            // Stopped while idle, before taking wakes it for a refill whose MAC check would run
            // beside the session's on the same key.
            pool.stop().await;
            let prep_done = started.elapsed();
            let material = Material::take(&mut pool, &req)?;
            let cfg = SessionConfig::new(online_session, party, parties);
            let session = Session::new(cfg, circuit, vec![secret], material)?;
            let out = run(session, &mut online).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((out, prep_done, started.elapsed()))
        }));
    }
    for (party, task) in tasks.into_iter().enumerate() {
        let (out, prep, total) = task.await?.map_err(|e| e.to_string())?;
        println!(
            "party {party} (secret {:>4}) learned: sum = {}, product = {}   [preprocessing ready after {:.0} ms, done after {:.0} ms]",
            secrets[party],
            out[0],
            out[1],
            prep.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
