//! The `halo2` prover's circuits: a program's circuit IR (the one SPDZ computes) laid out gate by
//! gate in a halo2-base circuit over BN254 and proven with KZG (SHPLONK, Keccak transcript: the
//! proof the generated Solidity verifier checks).
//!
//! The IR's values are integers kept far from the field's size (the program compiler proves
//! every range), so arithmetic gates mean the same in BN254's scalar field as in the MPC field;
//! constants are carried over as signed integers. The MPC-only gates become:
//! - `Input`: a private witness constrained to a bit (a device's record arrives bit by bit);
//! - `RandomBit`: the constant 0, as in the plaintext evaluation (a proof has nothing to mask;
//!   a constant leaves the prover no choice, so soundness does not rest on the gadgets being exact
//!   for every bit);
//! - `Open`: nothing (the prover knows every value; nothing is revealed);
//! - `Bit(a, i)`: bit `i` of a full 253-bit decomposition of `a` (unique, as 2^253 < the field);
//! - `Random` (a private output's mask): refused, since a proof has no receiver to hand a mask.
//!
//! The public instances are the `bound` values first (the task's id), then the **input
//! commitment** — Poseidon over a secret salt and the input bits packed 250 to an element,
//! computed in the circuit ([`input_commitment`] computes the same natively) — then the
//! program's outputs. The commitment is what ties a proof to the task's inputs: a prover using
//! other inputs proves another commitment. The node path (not built) must have the verifying seats
//! and the chain take the commitment from the devices' own submissions (the salt from the devices'
//! salts, so the chain cannot search the commitment), and the contract must refuse instances ≥ r
//! (snark-verifier's verifier reads them mod r) and read outputs above r/2 as negative.

use std::collections::HashMap;

use conclave_mpc::Fp;
use conclave_mpc::circuit::{Circuit, Gate};
use halo2_base::AssignedValue;
use halo2_base::gates::circuit::builder::BaseCircuitBuilder;
use halo2_base::gates::circuit::{BaseCircuitParams, CircuitBuilderStage};
use halo2_base::gates::flex_gate::MultiPhaseThreadBreakPoints;
use halo2_base::gates::flex_gate::{GateChip, GateInstructions};
pub use halo2_base::halo2_proofs::halo2curves::bn256::Fr;
use halo2_base::halo2_proofs::halo2curves::bn256::{Bn256, G1Affine};
use halo2_base::halo2_proofs::halo2curves::ff::PrimeField;
use halo2_base::halo2_proofs::plonk::{
    ProvingKey, VerifyingKey, create_proof, keygen_pk, keygen_vk, verify_proof,
};
use halo2_base::halo2_proofs::poly::commitment::{Params, ParamsProver};
use halo2_base::halo2_proofs::poly::kzg::commitment::{KZGCommitmentScheme, ParamsKZG};
use halo2_base::halo2_proofs::poly::kzg::multiopen::{ProverSHPLONK, VerifierSHPLONK};
use halo2_base::halo2_proofs::poly::kzg::strategy::SingleStrategy;
use halo2_base::halo2_proofs::transcript::{TranscriptReadBuffer, TranscriptWriterBuffer};
use snark_verifier_sdk::SHPLONK;
use snark_verifier_sdk::snark_verifier::system::halo2::transcript::evm::EvmTranscript;

/// Bits of the decomposition behind `Bit` gates: every value below 2^253 has one.
const DECOMPOSITION_BITS: usize = 253;

/// Rows kept free of witnesses at the end of the circuit (blinding factors).
const BLINDING_ROWS: usize = 9;

/// Largest circuit size, as log2 of its rows: proving keys grow with it.
pub const MAX_K: u32 = 20;

/// Why a program cannot be proven, or a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Halo2Error {
    #[error(
        "the program has private outputs, which a proof cannot keep from its prover's seat's chain"
    )]
    PrivateOutputs,
    #[error("the circuit has a constant that is neither a small integer nor 1/2^m")]
    UnsupportedConstant,
    #[error("the circuit is malformed: {0}")]
    Circuit(String),
    #[error("{got} public instances where the program's key has {expected}")]
    InstanceCount { expected: usize, got: usize },
    #[error("input {0} is missing or not a bit")]
    BadInput(usize),
    #[error("the circuit needs 2^{0} rows, more than the 2^{MAX_K} this node proves")]
    TooLarge(u32),
    #[error("the parameters hold 2^{have} rows, the circuit needs 2^{need}")]
    ParamsTooSmall { have: u32, need: u32 },
    #[error("proving failed: {0}")]
    Prove(String),
    #[error("the proof does not verify")]
    Rejected,
    #[error("compiling the verifier: {0}")]
    Compile(String),
    #[error("KZG parameters: {0}")]
    Srs(String),
    #[error("the program reads the owner's parameters, which the halo2 prover does not take yet")]
    OwnerInputs,
    #[error("the task's inputs: {0}")]
    Inputs(String),
}

/// A program's keys: what its prover needs and the verifying key its verifier is made from.
pub struct Halo2Keys {
    pub config: BaseCircuitParams,
    pub break_points: MultiPhaseThreadBreakPoints,
    pub pk: ProvingKey<G1Affine>,
    /// Public instances: the bound values, then the outputs.
    pub instances: usize,
}

impl Halo2Keys {
    pub fn vk(&self) -> &VerifyingKey<G1Affine> {
        self.pk.get_vk()
    }
}

/// Largest magnitude of an integer constant the program compiler emits (powers of two up to
/// the gadgets' widths plus κ, range bounds, fixed-point scales).
const MAX_CONSTANT_BITS: usize = 250;

/// A circuit constant in BN254's scalar field: a signed integer, or 1/2^m (the gadgets divide
/// exactly by powers of two; in the MPC field that is a multiplication by the inverse, which as
/// an integer means nothing in another field).
fn constant(c: Fp) -> Result<Fr, Halo2Error> {
    let (magnitude, _) = signed(c);
    let bits = magnitude
        .iter()
        .enumerate()
        .rev()
        .find(|(_, b)| **b != 0)
        .map_or(0, |(i, b)| i * 8 + 8 - b.leading_zeros() as usize);
    if bits <= MAX_CONSTANT_BITS {
        return Ok(to_fr(c));
    }
    // 1/2^m and −1/2^m for m = 1..=253, in both fields, computed once.
    static INVERSES: std::sync::OnceLock<HashMap<[u8; 32], Fr>> = std::sync::OnceLock::new();
    let table = INVERSES.get_or_init(|| {
        let half = Fp::from_u64(2).inverse().expect("2 is invertible");
        let fr_half = Fr::from(2).invert().expect("2 is invertible");
        let (mut inverse, mut fr_inverse) = (Fp::ONE, Fr::one());
        let mut table = HashMap::new();
        for _ in 1..=DECOMPOSITION_BITS {
            inverse *= half;
            fr_inverse *= fr_half;
            table.insert(inverse.to_bytes(), fr_inverse);
            table.insert((-inverse).to_bytes(), -fr_inverse);
        }
        table
    });
    table
        .get(&c.to_bytes())
        .copied()
        .ok_or(Halo2Error::UnsupportedConstant)
}

/// The magnitude (little-endian) and sign of an IR value as a signed integer.
fn signed(v: Fp) -> ([u8; 32], bool) {
    // The smaller of v and −v (as integers in [0, l)) is the magnitude.
    let (a, b) = (v.to_bytes(), (-v).to_bytes());
    if a.iter().rev().cmp(b.iter().rev()) == std::cmp::Ordering::Greater {
        (b, true)
    } else {
        (a, false)
    }
}

/// An IR value (a signed integer of magnitude below l/2) in BN254's scalar field.
pub fn to_fr(v: Fp) -> Fr {
    let (value, negative) = signed(v);
    let fr = Fr::from_repr(value).expect("below l, so below BN254's r");
    if negative { -fr } else { fr }
}

/// Input bits packed into one field element for the commitment.
const PACKED_BITS: usize = 250;

/// Poseidon over (salt, packed bits): the commitment to `bits` a proof exposes.
fn commit(
    ctx: &mut halo2_base::Context<Fr>,
    gate: &GateChip<Fr>,
    salt: AssignedValue<Fr>,
    bits: &[AssignedValue<Fr>],
) -> AssignedValue<Fr> {
    let mut elements = vec![salt];
    for chunk in bits.chunks(PACKED_BITS) {
        let weights = gate.pow_of_two()[..chunk.len()]
            .iter()
            .map(|w| halo2_base::QuantumCell::Constant(*w));
        elements.push(gate.inner_product(ctx, chunk.iter().copied(), weights));
    }
    let mut hasher = halo2_base::poseidon::hasher::PoseidonHasher::<Fr, 3, 2>::new(
        halo2_base::poseidon::hasher::spec::OptimizedPoseidonSpec::new::<8, 57, 0>(),
    );
    hasher.initialize_consts(ctx, gate);
    hasher.hash_fix_len_array(ctx, gate, &elements)
}

/// The commitment a proof of `circuit` over `inputs` exposes with `salt`, computed natively (by
/// the same gates, outside any proof): what a verifying seat expects from the devices' inputs.
pub fn input_commitment(circuit: &Circuit, inputs: &[Vec<Fp>], salt: Fr) -> Result<Fr, Halo2Error> {
    let mut b = BaseCircuitBuilder::<Fr>::new(true);
    let gate = GateChip::<Fr>::default();
    let ctx = b.main(0);
    let mut next = vec![0usize; inputs.len()];
    let mut bits = Vec::new();
    for g in circuit.gates() {
        if let Gate::Input(p) = *g {
            let p = usize::from(p);
            let v = inputs
                .get(p)
                .and_then(|party| party.get(next[p]))
                .copied()
                .ok_or(Halo2Error::BadInput(bits.len()))?;
            next[p] += 1;
            bits.push(ctx.load_witness(to_fr(v)));
        }
    }
    let salt = ctx.load_witness(salt);
    Ok(*commit(ctx, &gate, salt, &bits).value())
}

/// Lays out `circuit` over `inputs` (per party, in input order; `None` for key generation, which
/// needs only the shape) with `bound` as the first public instances and the input commitment
/// under `salt` next; returns the instances.
fn lay_out(
    builder: &mut BaseCircuitBuilder<Fr>,
    circuit: &Circuit,
    inputs: Option<&[Vec<Fp>]>,
    bound: &[Fr],
    salt: Fr,
) -> Result<Vec<Fr>, Halo2Error> {
    circuit
        .validate()
        .map_err(|e| Halo2Error::Circuit(e.to_string()))?;
    let gate = GateChip::<Fr>::default();
    let ctx = builder.main(0);
    let max_cells = 8usize << MAX_K;
    let mut public: Vec<AssignedValue<Fr>> = bound.iter().map(|b| ctx.load_witness(*b)).collect();
    let mut next_input = vec![0usize; circuit.parties()];
    let mut decomposed: HashMap<usize, Vec<AssignedValue<Fr>>> = HashMap::new();
    let mut wires: Vec<AssignedValue<Fr>> = Vec::with_capacity(circuit.gates().len());
    let mut input_bits = Vec::new();
    let mut seen_inputs = 0usize;
    for g in circuit.gates() {
        let w = match *g {
            Gate::Input(p) => {
                let p = usize::from(p);
                let value = match inputs {
                    Some(inputs) => {
                        let v = inputs
                            .get(p)
                            .and_then(|party| party.get(next_input[p]))
                            .copied()
                            .ok_or(Halo2Error::BadInput(seen_inputs))?;
                        if v != Fp::ZERO && v != Fp::ONE {
                            return Err(Halo2Error::BadInput(seen_inputs));
                        }
                        to_fr(v)
                    }
                    None => Fr::zero(),
                };
                next_input[p] += 1;
                seen_inputs += 1;
                let w = ctx.load_witness(value);
                gate.assert_bit(ctx, w);
                input_bits.push(w);
                w
            }
            Gate::Random => return Err(Halo2Error::PrivateOutputs),
            Gate::Const(c) => ctx.load_constant(constant(c)?),
            Gate::Add(a, b) => gate.add(ctx, wires[a.index()], wires[b.index()]),
            Gate::Sub(a, b) => gate.sub(ctx, wires[a.index()], wires[b.index()]),
            Gate::Neg(a) => gate.neg(ctx, wires[a.index()]),
            Gate::Mul(a, b) => gate.mul(ctx, wires[a.index()], wires[b.index()]),
            Gate::MulConst(a, c) => gate.mul(
                ctx,
                wires[a.index()],
                halo2_base::QuantumCell::Constant(constant(c)?),
            ),
            Gate::RandomBit => ctx.load_zero(),
            Gate::Open(a) => wires[a.index()],
            Gate::Bit(a, i) => {
                let bits = decomposed
                    .entry(a.index())
                    .or_insert_with(|| gate.num_to_bits(ctx, wires[a.index()], DECOMPOSITION_BITS));
                *bits
                    .get(usize::from(i))
                    .ok_or_else(|| Halo2Error::Circuit(format!("bit {i} of a value")))?
            }
        };
        wires.push(w);
        // Checked as the layout grows: a circuit far past the largest size stops here, before
        // it takes gigabytes.
        if ctx.advice.len() > max_cells {
            return Err(Halo2Error::TooLarge(MAX_K + 1));
        }
    }
    let salt = ctx.load_witness(salt);
    public.push(commit(ctx, &gate, salt, &input_bits));
    public.extend(circuit.outputs().iter().map(|o| wires[o.index()]));
    let values = public.iter().map(|v| *v.value()).collect();
    builder.assigned_instances = vec![public];
    Ok(values)
}

/// A builder of `k` rows with one instance column.
fn builder(stage: CircuitBuilderStage, k: u32) -> BaseCircuitBuilder<Fr> {
    BaseCircuitBuilder::from_stage(stage)
        .use_k(k as usize)
        .use_instance_columns(1)
}

/// The smallest `k` whose rows hold `circuit` with `bound` instances.
pub fn rows_needed(circuit: &Circuit, bound: usize) -> Result<u32, Halo2Error> {
    let mut b = builder(CircuitBuilderStage::Keygen, MAX_K);
    lay_out(&mut b, circuit, None, &vec![Fr::zero(); bound], Fr::zero())?;
    let cells = b.statistics().gate.total_advice_per_phase[0];
    // One advice column of up to 2^k rows per 2^k cells; aim for a few columns.
    let mut k = 10;
    while (cells >> k) > 8 && k < MAX_K {
        k += 1;
    }
    if (cells >> k) > 8 {
        return Err(Halo2Error::TooLarge(k + 1));
    }
    Ok(k)
}

/// The keys of `circuit` with `bound` leading instances, under `params`.
pub fn keygen(
    params: &ParamsKZG<Bn256>,
    circuit: &Circuit,
    bound: usize,
) -> Result<Halo2Keys, Halo2Error> {
    let k = params.k();
    let need = rows_needed(circuit, bound)?;
    if k < need {
        return Err(Halo2Error::ParamsTooSmall { have: k, need });
    }
    let mut b = builder(CircuitBuilderStage::Keygen, k);
    let instances = lay_out(&mut b, circuit, None, &vec![Fr::zero(); bound], Fr::zero())?.len();
    let config = b.calculate_params(Some(BLINDING_ROWS));
    let vk = keygen_vk(params, &b).map_err(|e| Halo2Error::Prove(e.to_string()))?;
    let pk = keygen_pk(params, vk, &b).map_err(|e| Halo2Error::Prove(e.to_string()))?;
    Ok(Halo2Keys {
        config,
        break_points: b.break_points(),
        pk,
        instances,
    })
}

/// Proves `circuit` over `inputs` with `bound` leading instances and the input commitment under
/// `salt`: the proof and all public instances (bound values, commitment, outputs).
pub fn prove(
    params: &ParamsKZG<Bn256>,
    keys: &Halo2Keys,
    circuit: &Circuit,
    inputs: &[Vec<Fp>],
    bound: &[Fr],
    salt: Fr,
) -> Result<(Vec<u8>, Vec<Fr>), Halo2Error> {
    let got = bound.len() + 1 + circuit.outputs().len();
    if got != keys.instances {
        return Err(Halo2Error::InstanceCount {
            expected: keys.instances,
            got,
        });
    }
    let mut b = BaseCircuitBuilder::prover(keys.config.clone(), keys.break_points.clone());
    let instances = lay_out(&mut b, circuit, Some(inputs), bound, salt)?;
    let mut transcript = TranscriptWriterBuffer::<_, G1Affine, _>::init(Vec::new());
    let rng = rand08::rngs::OsRng;
    create_proof::<KZGCommitmentScheme<Bn256>, ProverSHPLONK<_>, _, _, EvmTranscript<_, _, _, _>, _>(
        params,
        &keys.pk,
        &[b],
        &[&[&instances]],
        rng,
        &mut transcript,
    )
    .map_err(|e| Halo2Error::Prove(e.to_string()))?;
    Ok((transcript.finalize(), instances))
}

/// Checks `proof` for exactly the key's `instances` (missing instances would read as zero).
pub fn verify(
    params: &ParamsKZG<Bn256>,
    keys: &Halo2Keys,
    instances: &[Fr],
    proof: &[u8],
) -> Result<(), Halo2Error> {
    if instances.len() != keys.instances {
        return Err(Halo2Error::InstanceCount {
            expected: keys.instances,
            got: instances.len(),
        });
    }
    let vk = keys.vk();
    let mut transcript = TranscriptReadBuffer::<_, G1Affine, _>::init(proof);
    verify_proof::<_, VerifierSHPLONK<_>, _, EvmTranscript<_, _, _, _>, _>(
        params.verifier_params(),
        vk,
        SingleStrategy::new(params),
        &[&[instances]],
        &mut transcript,
    )
    .map_err(|_| Halo2Error::Rejected)
}

/// The Solidity verifier of `vk` for `instances` public instances, as snark-verifier generates
/// it (deterministic; no compiler involved), with its exact `pragma solidity 0.8.19` relaxed so
/// that the pinned solc compiles it.
pub fn verifier_source(
    params: &ParamsKZG<Bn256>,
    vk: &VerifyingKey<G1Affine>,
    instances: usize,
) -> String {
    snark_verifier_sdk::evm::gen_evm_verifier_sol_code::<BaseCircuitBuilder<Fr>, SHPLONK>(
        params,
        vk,
        vec![instances],
    )
    .replacen("pragma solidity 0.8.19;", "pragma solidity ^0.8.19;", 1)
}

/// The script that compiles a verifier with the pinned solc-js (optimizer off).
const COMPILE_VERIFIER: &str = include_str!("../../chain/scripts/compile-verifier.mjs");

/// Compiles a verifier's source with the pinned solc-js under `tools` (the folder
/// `chain/scripts/install-tools` fills; Node.js must be on the PATH): its creation bytecode.
pub fn compile_verifier(source: &str, tools: &std::path::Path) -> Result<Vec<u8>, Halo2Error> {
    let fail = |e: String| Halo2Error::Compile(e);
    let dir = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
    let (script, sol) = (
        dir.path().join("compile.mjs"),
        dir.path().join("Verifier.sol"),
    );
    std::fs::write(&script, COMPILE_VERIFIER).map_err(|e| fail(e.to_string()))?;
    std::fs::write(&sol, source).map_err(|e| fail(e.to_string()))?;
    let out = std::process::Command::new("node")
        .arg(&script)
        .arg(&sol)
        .env("CONCLAVE_TOOLS", tools)
        .output()
        .map_err(|e| fail(format!("running node: {e}")))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    hex::decode(String::from_utf8_lossy(&out.stdout).trim()).map_err(|e| fail(e.to_string()))
}

/// What the chain's verifier takes: the instances (32 bytes each, big-endian), then the proof.
pub fn calldata(instances: &[Fr], proof: &[u8]) -> Vec<u8> {
    snark_verifier_sdk::evm::encode_calldata(&[instances.to_vec()], proof)
}

/// KZG parameters from a seed: **insecure** (whoever knows the seed forges proofs), for tests and
/// the quickstart only; nodes load a ceremony's parameters from a file.
pub fn insecure_params(k: u32, seed: [u8; 32]) -> ParamsKZG<Bn256> {
    use rand08::SeedableRng;
    ParamsKZG::setup(k, rand08::rngs::StdRng::from_seed(seed))
}

mod task;
pub use task::{MAX_SRS_K, ProgramProver, Srs, Statement, fr_from_be, fr_to_be};

#[cfg(test)]
mod tests;
