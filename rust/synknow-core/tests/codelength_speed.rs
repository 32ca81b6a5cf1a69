//! A fixed workload for profiling the per-token engine under `perf stat` (ignored by default):
//! `cargo test --release -p synknow-core --test codelength_speed -- --ignored --nocapture`.

use std::time::Instant;

use synknow_core::{code_lengths, no_report, sample, Config, Model, Tokens};

#[test]
#[ignore]
fn per_token_single_thread_workload() {
    let config = Config {
        seed: 1,
        ..Config::default()
    };
    let corpus = sample(&config, 200_000, None).unwrap();
    let model = Model::new(&config).unwrap();
    let Tokens::U16(tokens) = &corpus.tokens else {
        panic!("u16")
    };
    let reps = 5;
    let t0 = Instant::now();
    for _ in 0..reps {
        let cl = code_lengths(
            &model,
            tokens,
            &corpus.doc_offsets,
            true,
            Some(1),
            &mut no_report,
        )
        .unwrap();
        assert!(cl.total > 0.0);
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{} tokens x {reps} in {secs:.3} s wall: {:.1} M tokens/s",
        tokens.len(),
        (tokens.len() * reps) as f64 / secs / 1e6
    );
}
