//! Statistical tests of the sampler in Rust, with fixed seeds and stated tolerances.
//!
//! Chi-square thresholds are the upper 1e-4 quantiles, from the Wilson–Hilferty approximation
//! `k (1 - 2/(9k) + z sqrt(2/(9k)))^3` with `z = 3.719` (accurate to a few percent for k >= 3,
//! which only moves the p-value between ~0.5e-4 and ~2e-4).

use synknow_core::theory::{expected_entities, expected_entities_fast};
use synknow_core::{sample, AttributeOrder, Config, PerAttribute, Preset, Sampler};

fn chi2_critical(dof: usize) -> f64 {
    let k = dof as f64;
    let z = 3.719;
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

fn chi2(observed: &[f64], expected: &[f64]) -> f64 {
    observed
        .iter()
        .zip(expected)
        .map(|(o, e)| (o - e).powi(2) / e)
        .sum()
}

#[test]
fn mean_number_of_entities_matches_the_closed_form() {
    // 300 seeds of n = 400 documents; |mean - E[K_n]| < 4 standard errors (sample sd).
    for (alpha, beta) in [(0.7, 10.0), (0.5, 0.0), (0.4, -0.3), (0.0, 2.0)] {
        let n = 400u64;
        let k: Vec<f64> = (0..300)
            .map(|seed| {
                let c = Config {
                    alpha,
                    beta,
                    seed,
                    ..Config::default()
                };
                sample(&c, n, Some(1)).unwrap().entities.len() as f64
            })
            .collect();
        let mean = k.iter().sum::<f64>() / k.len() as f64;
        let var = k.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k.len() - 1) as f64;
        let se = (var / k.len() as f64).sqrt();
        let exact = expected_entities(n as f64, alpha, beta);
        assert!(
            (mean - exact).abs() < 4.0 * se,
            "alpha {alpha} beta {beta}: {mean} vs {exact} (se {se})"
        );
    }
}

#[test]
fn attribute_orders_are_uniform_on_every_path() {
    // Each sentence position holds each attribute with probability 1/A: chi-square per position.
    let cases = [
        (6, 6, "table"),
        (9, 9, "one mixed-radix group"),
        (20, 12, "several mixed-radix groups"),
    ];
    for (a, m, path) in cases {
        let c = Config {
            preset: Preset::Procedural,
            n_attributes: a,
            pool_sizes: vec![10],
            attribute_pool: vec![0; a],
            attrs_per_doc: Some(m),
            templates_per_attribute: PerAttribute::All(2),
            seed: 13,
            name_parts: vec![1000, 1000],
            ..Config::default()
        };
        let n = 40_000;
        let corpus = sample(&c, n, None).unwrap();
        for s in 0..m {
            let mut counts = vec![0f64; a];
            for d in 0..n as usize {
                counts[corpus.sentence_attribute[d * m + s] as usize] += 1.0;
            }
            let expected = vec![n as f64 / a as f64; a];
            let x = chi2(&counts, &expected);
            assert!(x < chi2_critical(a - 1), "{path}: position {s}: chi2 {x}");
        }
        // Within a document, attributes are distinct.
        for row in corpus.sentence_attribute.chunks(m).take(5000) {
            let mut r = row.to_vec();
            r.sort_unstable();
            r.dedup();
            assert_eq!(r.len(), m, "{path}");
        }
    }
}

#[test]
fn fixed_order_is_the_identity() {
    let c = Config {
        attribute_order: AttributeOrder::Fixed,
        attrs_per_doc: Some(4),
        ..Config::default()
    };
    let corpus = sample(&c, 1000, None).unwrap();
    for row in corpus.sentence_attribute.chunks(4) {
        assert_eq!(row, [0, 1, 2, 3]);
    }
}

#[test]
fn template_frequencies_match_theta() {
    let c = Config {
        seed: 19,
        ..Config::default()
    };
    let corpus = sample(&c, 30_000, None).unwrap();
    for (a, theta) in corpus.theta.iter().enumerate() {
        let mut counts = vec![0f64; theta.len()];
        for (attr, t) in corpus
            .sentence_attribute
            .iter()
            .zip(&corpus.sentence_template)
        {
            if *attr as usize == a {
                counts[*t as usize] += 1.0;
            }
        }
        let total: f64 = counts.iter().sum();
        // m = A: every attribute appears once per document.
        assert_eq!(total, 30_000.0);
        // Merge templates with tiny expected counts into one cell.
        let (mut obs, mut exp, mut o_acc, mut e_acc) = (vec![], vec![], 0.0, 0.0);
        for (o, p) in counts.iter().zip(theta) {
            o_acc += o;
            e_acc += p * total;
            if e_acc >= 5.0 {
                obs.push(o_acc);
                exp.push(e_acc);
                o_acc = 0.0;
                e_acc = 0.0;
            }
        }
        *obs.last_mut().unwrap() += o_acc;
        *exp.last_mut().unwrap() += e_acc;
        let x = chi2(&obs, &exp);
        assert!(
            x < chi2_critical(obs.len() - 1),
            "attribute {a}: chi2 {x} on {} cells",
            obs.len()
        );
    }
}

#[test]
fn running_out_of_names_is_an_error() {
    // A sampler planned for 1 document (the name check passes with U = 200), then asked for many
    // more with alpha close to 1: every document brings a new entity until the 200 names are used.
    let c = Config {
        alpha: 0.99,
        beta: 1000.0,
        name_parts: vec![10, 20],
        ..Config::default()
    };
    let mut s = Sampler::new(&c, 1).unwrap();
    let err = s
        .next_batch::<u16>(100_000, Some(1))
        .expect_err("names must run out");
    assert!(err.to_string().contains("names ran out"), "{err}");
}

#[test]
fn impossible_allocations_are_errors() {
    let c = Config {
        name_parts: vec![1_000_000, 1_000_000, 1_000_000],
        ..Config::default()
    };
    let err = sample(&c, 1 << 50, Some(1)).expect_err("cannot allocate");
    assert!(err.to_string().contains("cannot allocate"), "{err}");
}

#[test]
fn fast_expected_entities_matches_the_exact_sum() {
    for (alpha, beta) in [
        (0.7, 10.0),
        (0.5, 0.0),
        (0.3, -0.29),
        (0.0, 5.0),
        (1e-4, 2.0),
        (0.99, 1.0),
    ] {
        for n in [1.0, 10.0, 9_999.0, 10_000.0, 10_001.0, 123_456.0, 999_999.0] {
            let fast = expected_entities_fast(n, alpha, beta);
            let exact = expected_entities(n, alpha, beta);
            assert!(
                (fast - exact).abs() <= 1e-6 * exact,
                "{alpha} {beta} {n}: {fast} vs {exact}"
            );
        }
    }
}
