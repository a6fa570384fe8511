//! Scheduling by round depth: every multiplication and opening of one layer shares one round.
//!
//! A wire's depth is the largest number of interactive gates (products of two secrets, and
//! openings) on any path from an input to it. Layer `L` first finishes the multiplications and
//! openings of depth `L` (their operands all have depth < `L`), then evaluates the local gates of
//! depth `L` in gate order.

use crate::circuit::{Circuit, Gate};

/// The evaluation order of a validated circuit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Products of two secrets in each layer; `mul_layers[0]` is always empty.
    pub mul_layers: Vec<Vec<u32>>,
    /// Openings of each layer; `open_layers[0]` is always empty.
    pub open_layers: Vec<Vec<u32>>,
    /// Local gates (everything but inputs, randoms, random bits, secret products and openings)
    /// of each layer.
    pub linear_layers: Vec<Vec<u32>>,
    /// Input gates of each party, in that party's input order.
    pub inputs_by_party: Vec<Vec<u32>>,
    /// Random gates in order.
    pub randoms: Vec<u32>,
    /// Random-bit gates in order.
    pub random_bits: Vec<u32>,
    /// Which wires are public ([`Circuit::public_wires`]).
    pub public: Vec<bool>,
}

impl Plan {
    /// Plans `circuit`, which must be valid (see [`Circuit::validate`]).
    pub fn new(circuit: &Circuit) -> Plan {
        let gates = circuit.gates();
        let mut depth = vec![0u32; gates.len()];
        let mut plan = Plan {
            mul_layers: vec![Vec::new()],
            open_layers: vec![Vec::new()],
            linear_layers: vec![Vec::new()],
            inputs_by_party: vec![Vec::new(); circuit.parties()],
            randoms: Vec::new(),
            random_bits: Vec::new(),
            public: circuit.public_wires(),
        };
        for (i, g) in gates.iter().enumerate() {
            let operand_depth = g.operands().map(|w| depth[w.index()]).max().unwrap_or(0);
            let secret_product = Circuit::is_secret_product(g, &plan.public);
            let interactive = secret_product || matches!(g, Gate::Open(_));
            let d = operand_depth + u32::from(interactive);
            depth[i] = d;
            let d = d as usize;
            if plan.mul_layers.len() <= d {
                plan.mul_layers.resize(d + 1, Vec::new());
                plan.open_layers.resize(d + 1, Vec::new());
                plan.linear_layers.resize(d + 1, Vec::new());
            }
            let id = i as u32;
            match g {
                Gate::Input(p) => plan.inputs_by_party[*p as usize].push(id),
                Gate::Random => plan.randoms.push(id),
                Gate::RandomBit => plan.random_bits.push(id),
                Gate::Open(_) => plan.open_layers[d].push(id),
                _ if secret_product => plan.mul_layers[d].push(id),
                _ => plan.linear_layers[d].push(id),
            }
        }
        plan
    }

    /// The multiplicative depth: the number of multiplication rounds.
    pub fn depth(&self) -> usize {
        self.mul_layers.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuit::CircuitBuilder;

    #[test]
    fn layers_follow_multiplicative_depth() {
        let mut b = CircuitBuilder::new(2);
        let x = b.input(0);
        let y = b.input(1);
        let xy = b.mul(x, y); // depth 1
        let s = b.add(xy, x); // depth 1, linear
        let t = b.add(x, y); // depth 0, linear
        let u = b.mul(s, t); // depth 2
        let v = b.mul(x, t); // depth 1
        b.reveal(u);
        b.reveal(v);
        let plan = Plan::new(&b.build());
        assert_eq!(plan.depth(), 2);
        assert_eq!(plan.mul_layers, vec![vec![], vec![xy.0, v.0], vec![u.0]]);
        assert_eq!(plan.linear_layers, vec![vec![t.0], vec![s.0], vec![]]);
        assert_eq!(plan.inputs_by_party, vec![vec![x.0], vec![y.0]]);
    }
}
