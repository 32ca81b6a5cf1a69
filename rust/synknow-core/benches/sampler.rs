//! Criterion benchmarks of the sampler (`cargo bench -p synknow-core --bench sampler`).
//!
//! Measures, on the bios preset: whole-corpus sampling with 1 and 2 threads (tokens/s), the
//! three stages on their own (PYCRP pass, records, render), and two memcpy references of the
//! same bytes (u16 tokens + u8 roles): into a warm buffer, and into a freshly allocated one (which
//! pays the page faults the sampler's fresh output also pays). The end-to-end Python benchmark
//! with the numpy baselines is `benches/bench_sampler.py`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use synknow_core::{sample, Config, Sampler};

const DOCS: u64 = 200_000;

fn bios() -> Config {
    Config {
        seed: 1,
        ..Config::default()
    }
}

fn n_tokens() -> u64 {
    sample(&bios(), DOCS, None).unwrap().tokens.len() as u64
}

fn whole_corpus(c: &mut Criterion) {
    let tokens = n_tokens();
    let mut g = c.benchmark_group("sample_bios_200k");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(tokens));
    for threads in [1usize, 2] {
        g.bench_function(format!("threads={threads}"), |b| {
            b.iter(|| black_box(sample(&bios(), DOCS, Some(threads)).unwrap()))
        });
    }
    g.finish();
}

fn memcpy_reference(c: &mut Criterion) {
    let tokens = n_tokens() as usize;
    let src16 = vec![7u16; tokens];
    let src8 = vec![3u8; tokens];
    let mut g = c.benchmark_group("memcpy_same_bytes");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(tokens as u64));
    let mut dst16 = vec![0u16; tokens];
    let mut dst8 = vec![0u8; tokens];
    g.bench_function("warm_destination", |b| {
        b.iter(|| {
            dst16.copy_from_slice(black_box(&src16));
            dst8.copy_from_slice(black_box(&src8));
        })
    });
    g.bench_function("fresh_destination", |b| {
        b.iter(|| {
            let d16 = src16.clone();
            let d8 = src8.clone();
            black_box((d16, d8))
        })
    });
    g.finish();
}

/// Stage 1 alone: a sampler drawing all documents' entities with one thread, then the records
/// and render stages measured through `stage_times` (criterion cannot split one call).
fn stages(c: &mut Criterion) {
    let mut g = c.benchmark_group("stages_bios_200k");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.bench_function("next_batch_threads=1", |b| {
        b.iter_batched(
            || Sampler::new(&bios(), DOCS).unwrap(),
            |mut s| black_box(s.next_batch::<u16>(DOCS as usize, Some(1)).unwrap()),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    // Stage times of the fastest of several runs (the least disturbed by other processes on a
    // shared machine), printed for the profile.
    for threads in [1usize, 2] {
        let t = (0..15)
            .map(|_| {
                let mut s = Sampler::new(&bios(), DOCS).unwrap();
                black_box(s.next_batch::<u16>(DOCS as usize, Some(threads)).unwrap());
                s.stage_times()
            })
            .min_by_key(|t| t.total)
            .unwrap();
        println!(
            "stage times, threads={threads}, {DOCS} docs (fastest of 15): crp {:.1} ms, records \
             {:.1} ms (concurrent with crp), render {:.1} ms, total {:.1} ms",
            t.crp.as_secs_f64() * 1e3,
            t.records.as_secs_f64() * 1e3,
            t.render.as_secs_f64() * 1e3,
            t.total.as_secs_f64() * 1e3,
        );
    }
}

criterion_group!(benches, whole_corpus, memcpy_reference, stages);
criterion_main!(benches);
