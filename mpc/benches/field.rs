//! Field multiply: the Montgomery `Fp` against dalek's `Scalar`, plus encoding costs.

use std::hint::black_box;

use conclave_mpc::Fp;
use criterion::{Criterion, criterion_group, criterion_main};

fn field(c: &mut Criterion) {
    let mut rng = rand::rng();
    let (a, b) = (Fp::random(&mut rng), Fp::random(&mut rng));
    let (sa, sb) = (a.to_scalar(), b.to_scalar());
    c.bench_function("fp_mul", |bench| bench.iter(|| black_box(a) * black_box(b)));
    c.bench_function("fp_add", |bench| bench.iter(|| black_box(a) + black_box(b)));
    c.bench_function("dalek_scalar_mul", |bench| {
        bench.iter(|| black_box(sa) * black_box(sb))
    });
    // A dependent chain measures latency rather than throughput.
    c.bench_function("fp_mul_chain_1000", |bench| {
        bench.iter(|| {
            let mut x = black_box(a);
            for _ in 0..1000 {
                x *= b;
            }
            x
        })
    });
    let bytes = a.to_bytes();
    c.bench_function("fp_to_bytes", |bench| {
        bench.iter(|| black_box(a).to_bytes())
    });
    c.bench_function("fp_from_bytes", |bench| {
        bench.iter(|| Fp::from_bytes(black_box(&bytes)))
    });
}

criterion_group!(benches, field);
criterion_main!(benches);
