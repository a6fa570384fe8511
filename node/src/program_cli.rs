//! `conclave program check|eval|publish`: compile a Tally file and report on it, evaluate it in
//! the clear on JSON inputs (the reference semantics), and hand a registered program's source to
//! a node so that the mesh can fetch it.

use std::path::Path;

use alloy::primitives::keccak256;
use anyhow::{Context, bail};
use conclave_mpc::lang::{FieldSpec, InputValues, Kind};
use conclave_node::program::Program as MeshProgram;
use serde_json::Value;

/// Reads a program source, refusing files over the compiler's limit before reading them whole.
pub fn read_source(file: &Path) -> anyhow::Result<String> {
    let len = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if len > conclave_mpc::lang::lexer::MAX_SOURCE as u64 {
        bail!(
            "{} is {len} bytes, more than the limit of {}",
            file.display(),
            conclave_mpc::lang::lexer::MAX_SOURCE
        );
    }
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

fn compile(file: &Path, slots: Option<usize>) -> anyhow::Result<conclave_mpc::lang::Program> {
    let source = read_source(file)?;
    conclave_mpc::lang::Program::compile(&source, 2, slots).map_err(|d| {
        eprint!("{}", d.render(&file.display().to_string(), &source));
        anyhow::anyhow!("{} does not compile", file.display())
    })
}

fn kind_name(kind: Kind, bits: Option<u32>) -> String {
    match (kind, bits) {
        (Kind::Int, Some(b)) => format!("int{b}"),
        (Kind::Int, None) => "int".into(),
        (Kind::Fixed(f), Some(b)) => format!("fixed<{b}, {f}>"),
        (Kind::Fixed(f), None) => format!("fixed (F = {f})"),
        (Kind::Bool, _) => "bool".into(),
    }
}

fn range(f: &FieldSpec) -> String {
    match f.kind {
        Kind::Fixed(frac) => format!(
            "[{}, {}]",
            conclave_mpc::lang::fixed_to_decimal(f.lo, frac),
            conclave_mpc::lang::fixed_to_decimal(f.hi, frac)
        ),
        Kind::Bool => "{false, true}".into(),
        Kind::Int => format!("[{}, {}]", f.lo, f.hi),
    }
}

/// `conclave program check FILE`.
pub fn check(file: &Path) -> anyhow::Result<()> {
    let source = read_source(file)?;
    let program = compile(file, None)?;
    // A task runs over however many well-formed records arrived: the fewest a run takes must
    // compile too.
    if program.lowered.max_devices >= 2 {
        compile(file, Some(2))
            .context("compiling for 2 device slots (the fewest a task runs over)")?;
    }
    let l = &program.lowered;
    let s = program.summary();
    println!("program   {}", file.display());
    println!("hash      {}", keccak256(source.as_bytes()));
    println!(
        "task      {} device slots, input window {}",
        l.max_devices,
        l.window_secs
            .map_or("not declared".into(), |w| format!("{w} s"))
    );
    for (who, fields) in [("device", &l.device_fields), ("owner", &l.owner_fields)] {
        for f in fields {
            println!(
                "input     {who} {}: {} in {}",
                f.name,
                kind_name(f.kind, Some(f.bits)),
                range(f)
            );
        }
    }
    for o in &l.outputs {
        let visibility = if o.private { "private" } else { "public" };
        println!(
            "output    {visibility} {}: {}",
            o.name,
            kind_name(o.kind, None)
        );
    }
    if let Some(key) = l.receiver {
        println!(
            "receiver  {} (X25519; private outputs are sealed to it)",
            hex::encode(key)
        );
    }
    println!(
        "circuit   {} gates, {} secret products, {} masked openings, {} rounds (all {} slots filled)",
        s.gates, s.secret_products, s.openings, s.rounds, l.slots
    );
    let record_bits: u32 = l.device_fields.iter().map(|f| f.bits).sum();
    let owner_bits: u32 = l.owner_fields.iter().map(|f| f.bits).sum();
    let private = l.outputs.iter().filter(|o| o.private).count();
    println!(
        "needs     {} triples and {} random bits for the program, plus {} triples for the device bits ({} per record), {} for the owner's and {} to mask private outputs",
        s.requirements.triples,
        s.requirements.bits,
        l.slots as u64 * u64::from(record_bits),
        record_bits,
        owner_bits,
        private
    );
    match MeshProgram::from_source(&source) {
        Ok(_) => println!("mesh      runs on the mesh (prover spdz)"),
        Err(e) => println!("mesh      not runnable on the mesh: {e}"),
    }
    Ok(())
}

/// Scalars of a JSON value under `name` (`name`, `name[0]`, `name[0][1]`, ...).
fn flatten(name: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{name}[{i}]"), item, out);
            }
        }
        other => out.push((name.to_string(), other.clone())),
    }
}

/// One record's scaled values from a JSON object keyed by input name.
fn record(fields: &[FieldSpec], v: &Value, what: &str) -> anyhow::Result<Vec<i128>> {
    let Value::Object(map) = v else {
        bail!("{what} must be an object of input names to values");
    };
    let mut flat = Vec::new();
    for (k, v) in map {
        flatten(k, v, &mut flat);
    }
    let mut values = Vec::with_capacity(fields.len());
    for f in fields {
        let (_, v) = flat
            .iter()
            .find(|(n, _)| *n == f.name)
            .with_context(|| format!("{what} has no value for {}", f.name))?;
        let x = match v {
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => n.as_f64().context("not a number")?,
            other => bail!("{what}: {} must be a number, not {other}", f.name),
        };
        values.push(f.scale(x));
    }
    if flat.len() != fields.len() {
        bail!("{what} has values for inputs the program does not declare");
    }
    Ok(values)
}

/// `conclave program eval FILE --inputs inputs.json`: `{"devices": [{..}, ..], "owner": {..}}`.
pub fn eval(file: &Path, inputs: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(inputs).with_context(|| format!("reading {}", inputs.display()))?;
    let json: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", inputs.display()))?;
    let devices = match json.get("devices") {
        Some(Value::Array(d)) => d.clone(),
        None => Vec::new(),
        Some(_) => bail!("\"devices\" must be an array of records"),
    };
    let program = compile(file, Some(devices.len()))?;
    let l = &program.lowered;
    let mut values = InputValues::default();
    for (i, d) in devices.iter().enumerate() {
        values
            .devices
            .push(record(&l.device_fields, d, &format!("device {i}"))?);
    }
    if !l.owner_fields.is_empty() {
        let owner = json
            .get("owner")
            .context("the program takes owner inputs: give \"owner\"")?;
        values.owner = record(&l.owner_fields, owner, "owner")?;
    }
    for out in program.evaluate(&values)? {
        let visibility = if out.private { " (private)" } else { "" };
        println!("{} = {out}{visibility}", out.name);
    }
    Ok(())
}
