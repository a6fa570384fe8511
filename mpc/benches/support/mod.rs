//! What the MPC benches share: the multiplication-batch circuit and one timed honest run.

use std::time::{Duration, Instant};

use conclave_mpc::dealer::InsecureDealer;
use conclave_mpc::driver::run;
use conclave_mpc::transport::MemoryTransport;
use conclave_mpc::wire::SessionId;
use conclave_mpc::{Circuit, CircuitBuilder, Session, SessionConfig};

/// `batch` independent multiplications of shared random values (one layer); the products are
/// summed and revealed, so a run covers the Beaver round, both MAC checks and the output opening.
pub fn multiplication_batch(parties: usize, batch: usize) -> Circuit {
    let mut b = CircuitBuilder::new(parties);
    let mut sum = None;
    for _ in 0..batch {
        let (x, y) = (b.random(), b.random());
        let p = b.mul(x, y);
        sum = Some(match sum {
            None => p,
            Some(s) => b.add(s, p),
        });
    }
    b.reveal(sum.expect("batch > 0"));
    b.build()
}

/// One honest run of `circuit` over the in-memory transport. Dealing preprocessing is not timed.
pub fn timed_run(rt: &tokio::runtime::Runtime, circuit: &Circuit, seed: u64) -> Duration {
    let parties = circuit.parties();
    let materials = InsecureDealer::new(parties, seed).deal(&circuit.requirements());
    let sessions: Vec<Session> = materials
        .into_iter()
        .enumerate()
        .map(|(party, m)| {
            let cfg = SessionConfig::new(SessionId([seed as u8; 16]), party, parties);
            Session::new(cfg, circuit.clone(), vec![], m).expect("session")
        })
        .collect();
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = sessions
            .into_iter()
            .zip(MemoryTransport::mesh(parties))
            .map(|(s, mut t)| tokio::spawn(async move { run(s, &mut t).await }))
            .collect();
        for t in tasks {
            t.await.expect("party task").expect("honest run");
        }
    });
    start.elapsed()
}
