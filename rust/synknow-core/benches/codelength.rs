//! Criterion benchmarks of the code-length engines (`cargo bench -p synknow-core --bench codelength`).
//!
//! On the bios preset (200k documents, ~11M tokens): exact per-token code lengths with 1 and 2
//! threads, the closed forms, the parse-and-learn pass alone (the learning curve's training
//! pass) and a learning curve. The Python benchmark with the pure-Python reference is
//! `benches/bench_codelength.py`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use synknow_core::{
    bayes_curve, closed_form_per_doc, closed_form_total, code_lengths, no_report, sample, Config,
    Corpus, Latents, Model, Tokens,
};

const DOCS: u64 = 200_000;

fn corpus() -> (Model, Corpus, Vec<u16>) {
    let config = Config {
        seed: 1,
        ..Config::default()
    };
    let c = sample(&config, DOCS, None).unwrap();
    let Tokens::U16(t) = c.tokens.clone() else {
        panic!("bios tokens are u16")
    };
    (Model::new(&config).unwrap(), c, t)
}

fn per_token(c: &mut Criterion) {
    let (model, corpus, tokens) = corpus();
    let mut g = c.benchmark_group("code_lengths_bios_200k");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(tokens.len() as u64));
    for threads in [1usize, 2] {
        g.bench_function(format!("per_token threads={threads}"), |b| {
            b.iter(|| {
                black_box(
                    code_lengths(
                        &model,
                        &tokens,
                        &corpus.doc_offsets,
                        true,
                        Some(threads),
                        &mut no_report,
                    )
                    .unwrap(),
                )
            })
        });
    }
    let latents = Latents {
        doc_entity: &corpus.doc_entity,
        sentence_attribute: &corpus.sentence_attribute,
        sentence_template: &corpus.sentence_template,
        entity_names: &corpus.entities.names,
        entity_values: &corpus.entities.values,
    };
    g.bench_function("closed_form_per_doc", |b| {
        b.iter(|| black_box(closed_form_per_doc(&model, &latents, DOCS as usize).unwrap()))
    });
    g.bench_function("closed_form_total", |b| {
        b.iter(|| black_box(closed_form_total(&model, &latents, DOCS as usize).unwrap()))
    });
    g.bench_function("learning_curve 190k train, 10k test, 12 checkpoints", |b| {
        let checkpoints: Vec<u64> = (0..12)
            .map(|i| (100.0 * 1900f64.powf(i as f64 / 11.0)) as u64)
            .collect();
        b.iter(|| {
            black_box(
                bayes_curve(
                    &model,
                    &tokens,
                    &corpus.doc_offsets,
                    190_000,
                    10_000,
                    &checkpoints,
                    None,
                    &mut no_report,
                )
                .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, per_token);
criterion_main!(benches);
