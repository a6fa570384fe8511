//! A program under the `halo2` prover on the mesh: the KZG parameters a node loads, the keys of
//! a program compiled for all its device slots (one circuit per program, so one verifier on
//! chain), and the statement of one task (inputs, salt, public instances) that the proving seat
//! proves and every other seat recomputes before it checks the proof.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use conclave_mpc::Fp;
use conclave_mpc::lang::{InputValues, OutputValue, Program};
use halo2_base::halo2_proofs::SerdeFormat;
use halo2_base::halo2_proofs::halo2curves::CurveAffine;
use halo2_base::halo2_proofs::halo2curves::bn256::Bn256;
use halo2_base::halo2_proofs::halo2curves::ff::PrimeField;
use halo2_base::halo2_proofs::poly::commitment::{Params, ParamsProver};
use halo2_base::halo2_proofs::poly::kzg::commitment::ParamsKZG;

use super::{Fr, Halo2Error, Halo2Keys, MAX_K, to_fr};

/// Largest parameters a node reads: 2^`MAX_SRS_K` points.
pub const MAX_SRS_K: u32 = 24;

/// Bytes of one G1 and one G2 point in the raw format.
const G1_BYTES: u64 = 64;
const G2_BYTES: u64 = 128;

/// KZG parameters (a structured reference string): from a ceremony's file, or — insecure, for
/// tests and the quickstart only — from a seed.
pub struct Srs(
    pub(super) Arc<ParamsKZG<Bn256>>,
    /// The parameters cut to fewer rows, by k (cutting recomputes the Lagrange form: slow).
    Mutex<HashMap<u32, Arc<ParamsKZG<Bn256>>>>,
);

impl Srs {
    /// Reads parameters in halo2's raw format (k as 4 bytes little-endian, then the G1 powers,
    /// their Lagrange form, and two G2 points): the file's length must be exactly what its k
    /// says, every coordinate canonical, every point on its curve and not the identity, and the
    /// whole consistent ([`consistent`]). The Lagrange form is checked, not recomputed:
    /// recomputing is an FFT over curve points (a minute at k = 16 on two cores).
    pub fn read(path: &Path) -> Result<Srs, Halo2Error> {
        use halo2_base::halo2_proofs::halo2curves::bn256::{G1Affine, G2Affine};
        use halo2_base::halo2_proofs::halo2curves::group::cofactor::CofactorCurveAffine;
        use halo2_base::halo2_proofs::halo2curves::serde::SerdeObject;
        let fail = |e: String| Halo2Error::Srs(format!("{}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let len = file.metadata().map_err(|e| fail(e.to_string()))?.len();
        let mut reader = std::io::BufReader::new(file);
        let mut k = [0u8; 4];
        reader.read_exact(&mut k).map_err(|e| fail(e.to_string()))?;
        let k = u32::from_le_bytes(k);
        if k > MAX_SRS_K {
            return Err(fail(format!(
                "k = {k} is above the {MAX_SRS_K} a node reads"
            )));
        }
        let expected = 4 + 2 * (1u64 << k) * G1_BYTES + 2 * G2_BYTES;
        if len != expected {
            return Err(fail(format!(
                "{len} bytes, where parameters of k = {k} take {expected}"
            )));
        }
        let mut g1 = || -> Result<G1Affine, Halo2Error> {
            let p = G1Affine::read_raw(&mut reader).map_err(|e| fail(e.to_string()))?;
            if bool::from(p.is_on_curve()) && !bool::from(p.is_identity()) {
                Ok(p)
            } else {
                Err(fail("a G1 point is not on the curve".into()))
            }
        };
        let g = (0..1u64 << k)
            .map(|_| g1())
            .collect::<Result<Vec<_>, _>>()?;
        let g_lagrange = (0..1u64 << k)
            .map(|_| g1())
            .collect::<Result<Vec<_>, _>>()?;
        let mut g2 = || -> Result<G2Affine, Halo2Error> {
            let p = G2Affine::read_raw(&mut reader).map_err(|e| fail(e.to_string()))?;
            if bool::from(p.is_on_curve()) && !bool::from(p.is_identity()) {
                Ok(p)
            } else {
                Err(fail("a G2 point is not on the curve".into()))
            }
        };
        let (h, s_h) = (g2()?, g2()?);
        if !consistent(k, &g, &g_lagrange, h, s_h) {
            return Err(fail(
                "the points are not powers of one secret from the generators (or their Lagrange form is not theirs)".into(),
            ));
        }
        // `from_parts` takes a receiver it does not read: any parameters will do.
        let any = super::insecure_params(0, [0; 32]);
        Ok(Srs(
            Arc::new(any.from_parts(k, g, Some(g_lagrange), h, s_h)),
            Mutex::default(),
        ))
    }

    /// Writes the parameters in the format [`Srs::read`] takes.
    pub fn write(&self, path: &Path) -> Result<(), Halo2Error> {
        let fail = |e: std::io::Error| Halo2Error::Srs(format!("{}: {e}", path.display()));
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(fail)?);
        self.0
            .write_custom(&mut out, SerdeFormat::RawBytes)
            .map_err(fail)?;
        std::io::Write::flush(&mut out).map_err(fail)
    }

    /// Parameters from a seed: **insecure** (whoever knows the seed forges proofs).
    pub fn insecure(k: u32, seed: [u8; 32]) -> Srs {
        Srs(Arc::new(super::insecure_params(k, seed)), Mutex::default())
    }

    pub fn k(&self) -> u32 {
        self.0.k()
    }

    /// The parameters cut to 2^k rows (the same cut at every node and at registration), kept
    /// for the next program of that size.
    fn for_k(&self, k: u32) -> Result<Arc<ParamsKZG<Bn256>>, Halo2Error> {
        if k > self.k() {
            return Err(Halo2Error::ParamsTooSmall {
                have: self.k(),
                need: k,
            });
        }
        let mut cut = self.1.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(params) = cut.get(&k) {
            return Ok(params.clone());
        }
        if k == self.k() {
            return Ok(self.0.clone());
        }
        // From the first 2^k powers only, not a copy of the whole set cut down.
        let g = self.0.get_g()[..1 << k].to_vec();
        let params = Arc::new(self.0.from_parts(k, g, None, self.0.g2(), self.0.s_g2()));
        cut.insert(k, params.clone());
        Ok(params)
    }
}

/// Whether `g` are powers s^i·G of one secret from the G1 generator, (h, s_h) = (H, s·H) from the
/// G2 generator (one pairing check: e(g₁, H) = e(G, s·H)), and `g_lagrange` their Lagrange form
/// (at a random polynomial p of full degree: Σ p(ωⁱ)·Lᵢ = Σ pⱼ·gⱼ, two multi-exponentiations).
/// Without it a file whose G2 points are forged would let this node accept proofs of anything.
fn consistent(
    k: u32,
    g: &[halo2_base::halo2_proofs::halo2curves::bn256::G1Affine],
    g_lagrange: &[halo2_base::halo2_proofs::halo2curves::bn256::G1Affine],
    h: halo2_base::halo2_proofs::halo2curves::bn256::G2Affine,
    s_h: halo2_base::halo2_proofs::halo2curves::bn256::G2Affine,
) -> bool {
    use halo2_base::halo2_proofs::arithmetic::{best_fft, best_multiexp};
    use halo2_base::halo2_proofs::fft::recursive::FFTData;
    use halo2_base::halo2_proofs::halo2curves::bn256::{G1Affine, G2Affine, pairing};
    use halo2_base::halo2_proofs::halo2curves::ff::Field;
    use halo2_base::halo2_proofs::poly::EvaluationDomain;
    if k == 0 || g[0] != G1Affine::generator() || h != G2Affine::generator() {
        return false;
    }
    if pairing(&g[1], &h) != pairing(&g[0], &s_h) {
        return false;
    }
    let n = 1usize << k;
    let domain = EvaluationDomain::<Fr>::new(1, k);
    let (omega, omega_inv) = (domain.get_omega(), domain.get_omega_inv());
    let coeffs: Vec<Fr> = (0..n).map(|_| Fr::random(rand08::rngs::OsRng)).collect();
    let mut evals = coeffs.clone();
    best_fft(
        &mut evals,
        omega,
        k,
        &FFTData::new(n, omega, omega_inv),
        false,
    );
    best_multiexp(&coeffs, g) == best_multiexp(&evals, g_lagrange)
}

/// One task's statement: what the proof is over and what it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The circuit's inputs (one party: every device slot's record bits in slot order).
    pub inputs: Vec<Vec<Fp>>,
    pub salt: Fr,
    /// The task binding, the input commitment, then the outputs.
    pub instances: Vec<Fr>,
    pub outputs: Vec<OutputValue>,
}

impl Statement {
    /// The commitment to the inputs (the second instance).
    pub fn input_commitment(&self) -> Fr {
        self.instances[1]
    }
}

/// A program's circuit and keys under one set of parameters.
pub struct ProgramProver {
    params: Arc<ParamsKZG<Bn256>>,
    keys: Halo2Keys,
    program: Program,
}

impl ProgramProver {
    /// The keys of `source` compiled for all its `slots` device slots, with a presence bit each
    /// (so one circuit, and one verifier, serves every task whichever slots devices filled): key
    /// generation takes seconds for a hundred slots, so callers keep the result.
    pub fn new(srs: &Srs, source: &str, slots: usize) -> Result<ProgramProver, Halo2Error> {
        let program = Program::compile_for_all_slots(source, slots)
            .map_err(|e| Halo2Error::Circuit(format!("{e:?}")))?;
        if !program.lowered.owner_fields.is_empty() {
            return Err(Halo2Error::OwnerInputs);
        }
        let circuit = &program.lowered.circuit;
        let k = super::rows_needed(circuit, 1)?;
        let params = srs.for_k(k)?;
        let keys = super::keygen(&params, circuit, 1)?;
        Ok(ProgramProver {
            params,
            keys,
            program,
        })
    }

    /// The statement of a task bound by `binding` over the devices' `records` (per slot of the
    /// program, one value per device field, or `None` where no device sent one: excluded), with
    /// the commitment under `salt`.
    pub fn statement(
        &self,
        records: Vec<Option<Vec<i128>>>,
        salt: Fr,
        binding: Fr,
    ) -> Result<Statement, Halo2Error> {
        let fields = self.program.lowered.device_fields.len();
        let devices = records
            .into_iter()
            .map(|record| match record {
                Some(mut values) => {
                    values.push(1);
                    values
                }
                None => vec![0; fields + 1],
            })
            .collect();
        let values = InputValues {
            devices,
            owner: Vec::new(),
        };
        let inputs = self
            .program
            .party_inputs(&values)
            .map_err(|e| Halo2Error::Inputs(e.to_string()))?;
        let circuit = &self.program.lowered.circuit;
        let opened = circuit
            .evaluate_plain(&inputs, &[])
            .map_err(|e| Halo2Error::Inputs(e.to_string()))?;
        let outputs = self
            .program
            .decode(&opened, None)
            .map_err(|e| Halo2Error::Inputs(e.to_string()))?;
        let mut instances = vec![binding, super::input_commitment(circuit, &inputs, salt)?];
        instances.extend(opened.iter().map(|v| to_fr(*v)));
        Ok(Statement {
            inputs,
            salt,
            instances,
            outputs,
        })
    }

    /// Proves `statement`: the proof's bytes.
    pub fn prove(&self, statement: &Statement) -> Result<Vec<u8>, Halo2Error> {
        let (proof, instances) = super::prove(
            &self.params,
            &self.keys,
            &self.program.lowered.circuit,
            &statement.inputs,
            &statement.instances[..1],
            statement.salt,
        )?;
        if instances != statement.instances {
            return Err(Halo2Error::Circuit(
                "the proof's instances differ from the plaintext evaluation".into(),
            ));
        }
        Ok(proof)
    }

    /// Checks `proof` for exactly `statement`'s instances.
    pub fn verify(&self, statement: &Statement, proof: &[u8]) -> Result<(), Halo2Error> {
        super::verify(&self.params, &self.keys, &statement.instances, proof)
    }

    /// The program's Solidity verifier ([`super::verifier_source`]).
    pub fn verifier_source(&self) -> String {
        super::verifier_source(&self.params, self.keys.vk(), self.keys.instances)
    }

    /// Rows of the circuit, as log2.
    pub fn k(&self) -> u32 {
        self.params.k()
    }
}

/// A field element as 32 big-endian bytes (how the chain reads an instance).
pub fn fr_to_be(v: Fr) -> [u8; 32] {
    let mut bytes = v.to_repr();
    bytes.as_mut().reverse();
    bytes
}

/// A field element from 32 big-endian bytes; `None` at or above the field's size.
pub fn fr_from_be(bytes: [u8; 32]) -> Option<Fr> {
    let mut le = bytes;
    le.reverse();
    Option::from(Fr::from_repr(le))
}

const _: () = assert!(MAX_K <= MAX_SRS_K);
