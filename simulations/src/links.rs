//! The scenario's network as a [`LinkModel`] for the shaped memory transport: latency drawn
//! per chunk from the scenario's distribution, loss as a retransmission delay, a bandwidth cap,
//! and partitions that the runner opens and heals.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_p2p::shaped::{Crossing, LinkModel, Links};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{Latency, Network};

/// Memory port of node i: `base + i`.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub base: u64,
    pub count: usize,
}

impl Ports {
    pub fn port(&self, node: usize) -> u64 {
        self.base + node as u64
    }

    fn node(&self, port: u64) -> Option<usize> {
        let i = port.checked_sub(self.base)? as usize;
        (i < self.count).then_some(i)
    }
}

/// The partitions now open: each a set of nodes cut off from every node outside it.
#[derive(Default)]
struct Cuts {
    open: Vec<(usize, HashSet<usize>)>,
}

impl Cuts {
    fn separates(&self, a: usize, b: usize) -> bool {
        self.open
            .iter()
            .any(|(_, side)| side.contains(&a) != side.contains(&b))
    }
}

struct Model {
    ports: Ports,
    latency: Latency,
    loss: f64,
    /// Seconds per byte, if the bandwidth is capped.
    secs_per_byte: Option<f64>,
    cuts: Arc<Mutex<Cuts>>,
    rng: Mutex<ChaCha8Rng>,
}

impl Model {
    fn latency_ms(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self.latency {
            Latency::Fixed { ms } => ms,
            Latency::Uniform { min, max } => min + (max - min) * rng.random::<f64>(),
            Latency::Normal { mean, sd } => (mean + sd * standard_normal(rng)).max(0.0),
            Latency::Lognormal { median, sigma } => median * (sigma * standard_normal(rng)).exp(),
        }
    }
}

/// Longest delay of one chunk.
const MAX_DELAY_MS: f64 = 60_000.0;

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl LinkModel for Model {
    fn cross(&self, from: u64, to: u64, bytes: usize) -> Option<Crossing> {
        if let (Some(a), Some(b)) = (self.ports.node(from), self.ports.node(to))
            && self.cuts.lock().expect("cuts lock").separates(a, b)
        {
            return None;
        }
        if bytes == 0 {
            return Some(Crossing {
                latency: Duration::ZERO,
                transmit: Duration::ZERO,
            });
        }
        let mut rng = self.rng.lock().expect("link rng lock");
        let mut ms = self.latency_ms(&mut rng);
        if self.loss > 0.0 && rng.random::<f64>() < self.loss {
            ms += 3.0 * ms + 200.0;
        }
        // Bounded, so that no draw (a long log-normal tail) stalls a connection for good.
        let ms = ms.clamp(0.0, MAX_DELAY_MS);
        let transmit = self
            .secs_per_byte
            .map_or(0.0, |s| s * bytes as f64)
            .clamp(0.0, MAX_DELAY_MS / 1000.0);
        Some(Crossing {
            latency: Duration::from_secs_f64(ms / 1000.0),
            transmit: Duration::from_secs_f64(transmit),
        })
    }
}

/// The links of a run and the handle that opens and heals partitions.
#[derive(Clone)]
pub struct SimNetwork {
    pub links: Arc<Links>,
    cuts: Arc<Mutex<Cuts>>,
}

impl SimNetwork {
    pub fn new(spec: &Network, ports: Ports, seed: u64) -> SimNetwork {
        let cuts = Arc::new(Mutex::new(Cuts::default()));
        let model = Model {
            ports,
            latency: spec.latency_ms.clone(),
            loss: spec.loss,
            secs_per_byte: spec.bandwidth_mbps.map(|mbps| 8.0 / (mbps * 1e6)),
            cuts: cuts.clone(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x11_4b5)),
        };
        SimNetwork {
            links: Links::new(model),
            cuts,
        }
    }

    /// Cuts `nodes` off from every other node (partition `index`).
    pub fn open(&self, index: usize, nodes: &[usize]) {
        self.cuts
            .lock()
            .expect("cuts lock")
            .open
            .push((index, nodes.iter().copied().collect()));
        self.links.changed();
    }

    /// Heals partition `index`.
    pub fn heal(&self, index: usize) {
        self.cuts
            .lock()
            .expect("cuts lock")
            .open
            .retain(|(i, _)| *i != index);
        self.links.changed();
    }

    /// Whether nodes `a` and `b` can reach each other now.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        !self.cuts.lock().expect("cuts lock").separates(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cut_across_and_heal() {
        let ports = Ports {
            base: 1000,
            count: 4,
        };
        let net = SimNetwork::new(&Network::default(), ports, 1);
        net.open(0, &[2, 3]);
        assert!(net.connected(0, 1) && net.connected(2, 3));
        assert!(!net.connected(1, 2) && !net.connected(3, 0));
        net.heal(0);
        assert!(net.connected(1, 2));
    }
}
