//! Semantics of the language checked in the plaintext evaluator against direct computation.

use super::*;
use rand::RngExt;

fn program(source: &str) -> Program {
    Program::compile(source, 2, Some(0)).unwrap_or_else(|d| panic!("{}", d.render("t", source)))
}

fn owner_outputs(p: &Program, owner: &[i128]) -> Vec<f64> {
    let v = InputValues {
        devices: Vec::new(),
        owner: owner.to_vec(),
    };
    p.evaluate(&v)
        .unwrap()
        .iter()
        .map(|o| o.scaled as f64 / 2f64.powi(o.kind_frac() as i32))
        .collect()
}

impl OutputValue {
    fn kind_frac(&self) -> u32 {
        match self.kind {
            Kind::Fixed(f) => f,
            _ => 0,
        }
    }
}

#[test]
fn division_and_square_root_are_within_their_documented_precision() {
    let p = program(
        "input a: fixed<40, 16> in -100000.0..=100000.0 from owner;
         input b: fixed<40, 16> in -1000.0..=1000.0 from owner;
         input i: int32 in -1000000..=1000000 from owner;
         input j: int16 in 1..=1000 from owner;
         output q = a / b;
         output r = sqrt(a);
         output k = i / j;",
    );
    let mut rng = rand::rng();
    let ulp = 2f64.powi(-16);
    for _ in 0..200 {
        let a: i128 = rng.random_range(-100_000i128 << 16..=100_000 << 16);
        let b: i128 = match rng.random_range(0..3) {
            0 => rng.random_range(-1000i128 << 16..=1000 << 16),
            1 => rng.random_range(-64i128..64),
            _ => rng.random_range(1..1 << 16),
        };
        let i: i128 = rng.random_range(-1_000_000..=1_000_000);
        let j: i128 = rng.random_range(1..=1000);
        let out = owner_outputs(&p, &[a, b, i, j]);
        let k = i as f64 / j as f64;
        assert!(
            (out[2] - k).abs() <= k.abs() * 2f64.powi(-24) + 2.0 * ulp,
            "{i} / {j} = {k}, got {}",
            out[2]
        );
        let (x, y) = (a as f64 * ulp, b as f64 * ulp);
        let q = if b == 0 { 0.0 } else { x / y };
        assert!(
            (out[0] - q).abs() <= q.abs() * 2f64.powi(-24) + 2.0 * ulp,
            "{x} / {y} = {q}, got {}",
            out[0]
        );
        let r = if a <= 0 { 0.0 } else { x.sqrt() };
        assert!(
            (out[1] - r).abs() <= r * 2f64.powi(-24) + 2.0 * ulp,
            "sqrt {x} = {r}, got {}",
            out[1]
        );
    }
}

#[test]
fn integer_division_by_constants_is_floor_division() {
    let p = program(
        "input a: int32 from owner;
         output q = a / 7;
         output m = a % 7;
         output h = a / 8;
         output n = a / -3;",
    );
    let mut rng = rand::rng();
    for _ in 0..200 {
        let a: i128 = rng.random_range(-(1i128 << 31)..1 << 31);
        let out = owner_outputs(&p, &[a]);
        assert_eq!(
            out,
            vec![
                a.div_euclid(7) as f64,
                a.rem_euclid(7) as f64,
                a.div_euclid(8) as f64,
                (a as f64 / -3.0).floor()
            ],
            "a = {a}"
        );
    }
}

#[test]
fn fixed_point_products_truncate_toward_minus_infinity() {
    let p = program(
        "input a: fixed<32, 8> from owner;
         input b: fixed<32, 8> from owner;
         output p = a * b;
         output lt = a < b;
         output eq = a == b;",
    );
    let mut rng = rand::rng();
    for _ in 0..200 {
        let a: i128 = rng.random_range(-(1i128 << 31)..1 << 31);
        let b: i128 = if rng.random_range(0..4) == 0 {
            a
        } else {
            rng.random_range(-(1i128 << 31)..1 << 31)
        };
        let v = InputValues {
            devices: Vec::new(),
            owner: vec![a, b],
        };
        let out: Vec<i128> = p.evaluate(&v).unwrap().iter().map(|o| o.scaled).collect();
        assert_eq!(
            out,
            vec![
                (a * b).div_euclid(256),
                i128::from(a < b),
                i128::from(a == b)
            ]
        );
    }
}

#[test]
fn errors_point_at_their_source() {
    let source = "devices 3;\ninput x: int8 from devices;\nlet y: int8 = x[0] * 1000;\nlet z = nope + 1;\nif x[0] > 1 { let w = 1; }\noutput y = y;\n";
    let errors = Program::compile(source, 2, None).unwrap_err();
    let text = errors.render("bad.tally", source);
    assert_eq!(errors.0.len(), 3, "{text}");
    for (needle, line) in [
        ("may not fit its declared type", "bad.tally:3:1"),
        ("unknown name `nope`", "bad.tally:4:9"),
        ("an `if` condition must be public", "bad.tally:5:4"),
    ] {
        let at = text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} missing:\n{text}"));
        assert!(text[at..].contains(line), "{needle} not at {line}:\n{text}");
    }
    assert!(text.contains("^^^^"), "{text}");
}

/// Sources an attacker could register: each is refused (or compiles) without a panic, in bounded
/// time and memory.
#[test]
fn hostile_sources_are_refused_not_fatal() {
    let many = |unit: &str, n: usize, sep: &str| vec![unit; n].join(sep);
    let doubling: String = (1..40)
        .map(|i| format!("let a{i} = [a{}, a{}];\n", i - 1, i - 1))
        .collect();
    let cases: Vec<(String, &str)> = vec![
        (
            "devices 100000000000; window 5;\ninput x: int8 from devices;\noutput s = sum(x);"
                .into(),
            "takes a whole number",
        ),
        (
            "devices 2; devices 10000; window 5;\ninput x: int8 from devices;\noutput s = sum(x);"
                .into(),
            "declared twice",
        ),
        (
            format!("output s = {};", many("1", 100_000, "+")),
            "nested deeper",
        ),
        (
            format!("let a = [1];\noutput s = a{};", many("[0]", 10_000, "")),
            "nested deeper",
        ),
        (
            format!(
                "if true {{ }} {} else {{ }}\noutput s = 1;",
                many("else if true { }", 10_000, " ")
            ),
            "nesting deeper",
        ),
        (
            format!(
                "input x: int8{} from owner;\noutput s = 1;",
                many("[1]", 5000, "")
            ),
            "dimensions",
        ),
        (
            "for i in 0..1000000000000000000000000 { }\noutput s = 1;".into(),
            "steps",
        ),
        (format!("let a0 = [1];\n{doubling}output s = 1;"), "at most 5 dimensions"),
        (
            "input x: int64[65536][65536] from owner;\noutput s = 1;".into(),
            "at most",
        ),
        (
            format!("output s = 1;\n{}", many("let y = nope;", 1000, "\n")),
            "too many errors",
        ),
        // Nesting built up across `let`s.
        (
            format!(
                "let a0 = 0;\n{}output s = 1;",
                (1..400).map(|i| format!("let a{i} = [[[a{}]]];\n", i - 1)).collect::<String>()
            ),
            "at most 5 dimensions",
        ),
        ("let a = [1, [2]];\noutput s = 1;".into(), "one shape"),
        // The receiver of private outputs.
        ("output private s = 1;".into(), "no receiver"),
        (
            "receiver \"abc\";\noutput private s = 1;".into(),
            "64 hexadecimal digits",
        ),
        (
            format!("receiver \"+{}\";\noutput private s = 1;", "f".repeat(63)),
            "64 hexadecimal digits",
        ),
        (
            format!(
                "receiver \"{k}\";\nreceiver \"{k}\";\noutput private s = 1;",
                k = "ab".repeat(32)
            ),
            "declared twice",
        ),
        ("receiver \"abc;\noutput s = 1;".into(), "a string ends"),
        (format!("receiver \"{}\";", "a".repeat(200)), "a string ends"),
        ("receiver 5;\noutput s = 1;".into(), "X25519 key"),
        // Gates past the limit from loops inside one statement.
        (
            "input x: fixed<64, 62> from owner;\nlet a = [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x];\nlet b = [a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a];\nlet c = [b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b];\nlet d = [c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c];\nlet e: fixed<64, 0>[16][16][16][16] = d;\noutput o = e[0][0][0][0];".into(),
            "gates",
        ),
        (
            "devices 1; window 60;\ninput a: int64[4096] in -1..=1 from devices;\ninput b: int64[4096] in -1..=1 from devices;\ninput c: int64[4096] in -1..=1 from devices;\noutput o = a[0][0];".into(),
            "gates",
        ),
        // Assignments into a large array cost what they assign, and loops are counted.
        (
            "let l0 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];\nlet l1 = [l0, l0, l0, l0, l0, l0, l0, l0, l0, l0, l0, l0, l0, l0, l0, l0];\nlet l2 = [l1, l1, l1, l1, l1, l1, l1, l1, l1, l1, l1, l1, l1, l1, l1, l1];\nlet mut x = [l2, l2, l2, l2, l2, l2, l2, l2, l2, l2, l2, l2, l2, l2, l2, l2];\nfor i in 0..10000000 { x[0][0][0][0] = 1; }\noutput o = 1;".into(),
            "steps",
        ),
    ];
    for (source, expected) in cases {
        let started = std::time::Instant::now();
        let err = Program::compile(&source, 2, None).expect_err(expected);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{expected}: took {:?}",
            started.elapsed()
        );
        let text = err.render("hostile.tally", &source);
        assert!(
            text.contains(expected),
            "{expected}: {}",
            &text[..text.len().min(400)]
        );
    }
    // Values whose interval leaves nothing to truncate compile (and fold).
    for ok in [
        "devices 2; window 5;\ninput x: fixed<16, 8> from devices;\noutput y = x[0] * 0.001;",
        "devices 2; window 5;\ninput x: fixed<16, 12> in 0..=0.1 from devices;\noutput y = floor(x[0]);",
        "input x: fixed<64, 60> in 0..=0.5 from owner;\noutput y = x * x;",
    ] {
        Program::compile(ok, 2, None).unwrap_or_else(|d| panic!("{}", d.render("ok", ok)));
    }
}
