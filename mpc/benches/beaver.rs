//! Beaver multiplications: a session of one layer of multiplications, MAC checks included, for 2
//! and 3 parties over the in-memory transport (preprocessing from the test-only dealer, untimed).

mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn beaver(c: &mut Criterion) {
    let mut group = c.benchmark_group("beaver_layer");
    group.sample_size(10);
    for parties in [2, 3] {
        for batch in [1_000, 10_000] {
            let circuit = support::multiplication_batch(parties, batch);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{parties}_parties"), batch),
                &circuit,
                |b, circuit| {
                    b.iter_custom(|iters| {
                        (0..iters)
                            .map(|i| support::timed_run(circuit, i, false))
                            .sum::<Duration>()
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, beaver);
criterion_main!(benches);
