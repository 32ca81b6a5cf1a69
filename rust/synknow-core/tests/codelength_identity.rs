//! The per-token predictive (from tokens) against the closed forms (from latent records):
//! The required identity (docs/codelength.md#per-token), chunking invariance, and normalisation of
//! the predictive.

use synknow_core::{
    closed_form_per_doc, closed_form_total, code_lengths, code_lengths_chunked, no_report,
    predictive_distributions, sample, AttributeOrder, Config, Corpus, Latents, Model, PerAttribute,
    Preset, Tokens, ValuePrior,
};

fn latents(c: &Corpus) -> Latents<'_> {
    Latents {
        doc_entity: &c.doc_entity,
        sentence_attribute: &c.sentence_attribute,
        sentence_template: &c.sentence_template,
        entity_names: &c.entities.names,
        entity_values: &c.entities.values,
    }
}

fn tokens_u32(c: &Corpus) -> Vec<u32> {
    c.tokens.to_u32_vec()
}

/// Configurations covering the careful cases: alpha = 0, beta < 0, shared pools, m < A, fixed
/// and shuffled orders, zipf priors, parse ambiguity surviving the value token.
fn configs() -> Vec<(&'static str, Config, u64)> {
    let ambiguous = Config {
        n_attributes: 3,
        pool_sizes: vec![6, 4],
        attribute_pool: vec![0, 0, 1],
        value_prior: ValuePrior::Zipf(1.3),
        name_parts: vec![30, 40],
        templates: Some(vec![
            vec![
                "[NAME] lives in [VALUE] now .".into(),
                "[NAME] in the [VALUE] lives .".into(),
            ],
            vec![
                "[NAME] lives in [VALUE] today .".into(),
                "[NAME] lives in [VALUE] .".into(),
            ],
            vec![
                "[NAME] lives [VALUE] .".into(),
                "[NAME] lives in the [VALUE] .".into(),
            ],
        ]),
        alpha: 0.3,
        beta: 0.5,
        seed: 11,
        ..Config::default()
    };
    let tiny_procedural = Config {
        preset: Preset::Procedural,
        n_attributes: 3,
        pool_sizes: vec![3, 4],
        attribute_pool: vec![0, 0, 1],
        value_prior: ValuePrior::Zipf(0.8),
        name_parts: vec![8, 9, 12],
        templates_per_attribute: PerAttribute::Each(vec![3, 2, 4]),
        template_length: [1, 2],
        syntax_vocab: 4,
        attrs_per_doc: Some(2),
        alpha: 0.5,
        beta: -0.2,
        seed: 5,
        ..Config::default()
    };
    vec![
        (
            "bios default",
            Config {
                seed: 1,
                ..Config::default()
            },
            3000,
        ),
        (
            "bios alpha=0",
            Config {
                alpha: 0.0,
                beta: 3.0,
                seed: 2,
                ..Config::default()
            },
            2000,
        ),
        (
            "bios beta<0 fixed m<A",
            Config {
                alpha: 0.5,
                beta: -0.3,
                attrs_per_doc: Some(3),
                attribute_order: AttributeOrder::Fixed,
                value_prior: ValuePrior::Zipf(1.1),
                seed: 3,
                ..Config::default()
            },
            2000,
        ),
        ("ambiguous past value", ambiguous, 150),
        ("tiny procedural", tiny_procedural, 100),
    ]
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn per_token_sums_equal_closed_forms() {
    for (label, config, n) in configs() {
        let corpus = sample(&config, n, Some(2)).unwrap();
        let model = Model::new(&config).unwrap();
        let toks = tokens_u32(&corpus);
        let cl = code_lengths(
            &model,
            &toks,
            &corpus.doc_offsets,
            true,
            Some(1),
            &mut no_report,
        )
        .unwrap();
        let per_token = cl.per_token.as_ref().unwrap();
        let closed = closed_form_per_doc(&model, &latents(&corpus), n as usize).unwrap();
        for (d, &expected) in closed.iter().enumerate() {
            let lo = corpus.doc_offsets[d] as usize;
            let hi = corpus.doc_offsets[d + 1] as usize;
            let s: f64 = per_token[lo..hi].iter().sum();
            assert!(
                rel(s, expected) < 1e-9,
                "{label}: doc {d}: per-token {s} vs closed form {expected}"
            );
            assert!(rel(cl.per_doc[d], expected) < 1e-9, "{label}: doc {d}");
        }
        let total = closed_form_total(&model, &latents(&corpus), n as usize).unwrap();
        assert!(
            rel(cl.total, total.total) < 1e-9,
            "{label}: {} vs {}",
            cl.total,
            total.total
        );
        let seq: f64 = closed.iter().sum();
        assert!(
            rel(seq, total.total) < 1e-9,
            "{label}: 4.1 sum {seq} vs 4.2 {}",
            total.total
        );
        assert_eq!(cl.n_entities as usize, corpus.entities.len(), "{label}");
        assert_eq!(cl.tokens_by_role.iter().sum::<u64>() as usize, toks.len());
    }
}

/// The whole-corpus closed form at extreme concentrations. Its `ln (beta+1)_{N-1}` and the
/// Dirichlet-multinomial terms used to be differences of two lgamma values, which cancel to
/// nothing once the argument is large: at beta = 1e20 it gave 82,373 bits against 215,184 from
/// the per-token engine, at 1e300 a negative number and at 1e308 NaN. All three routes must agree
/// to 1e-9 relative (the identity's own tolerance) at every beta and template prior the
/// configuration accepts (beta up to `MAX_BETA` = 1e300, gamma in [1e-100, 1e100]).
#[test]
fn closed_form_is_stable_for_extreme_concentrations() {
    let cases = [
        (0.5, 1e12, 1.0),
        (0.5, 1e20, 1.0),
        (0.5, 1e300, 1.0),
        (0.9, 1e300, 1.0),
        (0.0, 1e20, 1.0),
        (0.0, 1e300, 1.0),
        (0.5, 10.0, 1e-100),
        (0.5, 10.0, 1e-10),
        (0.5, 10.0, 1e10),
        (0.5, 10.0, 1e100),
    ];
    for (alpha, beta, gamma) in cases {
        let config = Config {
            alpha,
            beta,
            template_prior: gamma,
            name_parts: vec![4000, 4000, 4000],
            seed: 7,
            ..Config::default()
        };
        let n = 2000;
        let corpus = sample(&config, n, Some(2)).unwrap();
        let model = Model::new(&config).unwrap();
        let cl = code_lengths(
            &model,
            &tokens_u32(&corpus),
            &corpus.doc_offsets,
            false,
            Some(2),
            &mut no_report,
        )
        .unwrap();
        let total = closed_form_total(&model, &latents(&corpus), n as usize).unwrap();
        let per_doc: f64 = closed_form_per_doc(&model, &latents(&corpus), n as usize)
            .unwrap()
            .iter()
            .sum();
        let label = format!("alpha={alpha} beta={beta:e} gamma={gamma:e}");
        assert!(
            cl.total.is_finite() && cl.total > 0.0,
            "{label}: {}",
            cl.total
        );
        assert!(
            rel(total.total, cl.total) < 1e-9,
            "{label}: closed form {} vs per token {}",
            total.total,
            cl.total
        );
        assert!(
            rel(per_doc, cl.total) < 1e-9,
            "{label}: per document {per_doc} vs per token {}",
            cl.total
        );
    }
}

#[test]
fn chunking_and_token_width_do_not_change_anything() {
    let config = Config {
        seed: 9,
        alpha: 0.6,
        beta: 2.0,
        ..Config::default()
    };
    let corpus = sample(&config, 5000, Some(2)).unwrap();
    let model = Model::new(&config).unwrap();
    let offsets = &corpus.doc_offsets;
    let Tokens::U16(t16) = &corpus.tokens else {
        panic!("bios tokens are u16")
    };
    let t32 = tokens_u32(&corpus);
    let pool = synknow_core::thread_pool(Some(2)).unwrap();
    let one = code_lengths_chunked(&model, t16, offsets, true, &pool, 1, &mut no_report).unwrap();
    for chunks in [2, 3, 7] {
        let many = code_lengths_chunked(&model, &t32, offsets, true, &pool, chunks, &mut no_report)
            .unwrap();
        assert_eq!(one.per_token, many.per_token, "{chunks} chunks");
        assert_eq!(one.per_doc, many.per_doc);
        assert_eq!(one.n_entities, many.n_entities);
        assert!(rel(one.total, many.total) < 1e-12);
    }
}

#[test]
fn predictive_is_normalised_at_every_position() {
    for (label, config, n) in configs().into_iter().skip(3) {
        let corpus = sample(&config, n, Some(1)).unwrap();
        let model = Model::new(&config).unwrap();
        let toks = tokens_u32(&corpus);
        let v = model.vocab_size() as usize;
        let positions: Vec<u64> = (0..toks.len() as u64).collect();
        let dist =
            predictive_distributions(&model, &toks, &corpus.doc_offsets, &positions).unwrap();
        let cl = code_lengths(
            &model,
            &toks,
            &corpus.doc_offsets,
            true,
            Some(1),
            &mut no_report,
        )
        .unwrap();
        let bits = cl.per_token.unwrap();
        for (i, &x) in toks.iter().enumerate() {
            let row = &dist[i * v..(i + 1) * v];
            let total: f64 = row.iter().sum();
            assert!(
                (total - 1.0).abs() < 1e-12,
                "{label}: position {i}: sums to {total}"
            );
            assert!(row.iter().all(|&p| p >= 0.0));
            let p = 2f64.powf(-bits[i]);
            assert!(
                rel(row[x as usize], p) < 1e-12,
                "{label}: position {i}: {} vs {p}",
                row[x as usize]
            );
        }
    }
}

#[test]
fn bad_tokens_are_reported_with_their_position() {
    let config = Config {
        seed: 4,
        ..Config::default()
    };
    let corpus = sample(&config, 50, Some(1)).unwrap();
    let model = Model::new(&config).unwrap();
    let mut toks = tokens_u32(&corpus);
    let pos = corpus.doc_offsets[7] as usize + 3;
    toks[pos] = model.vocab_size() + 5;
    let err = code_lengths(
        &model,
        &toks,
        &corpus.doc_offsets,
        false,
        Some(1),
        &mut no_report,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("document 7") && err.contains(&format!("token {pos}")),
        "{err}"
    );
    assert!(err.contains("outside the vocabulary"), "{err}");

    // A value restated differently is impossible under the model.
    let mut toks = tokens_u32(&corpus);
    let later = (1..50)
        .find(|&d| corpus.entities.first_doc[corpus.doc_entity[d] as usize] < d as u64)
        .unwrap();
    let lo = corpus.doc_offsets[later] as usize;
    let hi = corpus.doc_offsets[later + 1] as usize;
    let vpos = (lo..hi).find(|&i| corpus.roles[i] == 3).unwrap();
    let pool = model.grammar.config.attribute_pool[corpus.sentence_attribute[later * 6] as usize];
    let base = model.grammar.layout.pool_start[pool];
    toks[vpos] = if toks[vpos] == base { base + 1 } else { base };
    let err = code_lengths(
        &model,
        &toks,
        &corpus.doc_offsets,
        false,
        Some(1),
        &mut no_report,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!("document {later}")) && err.contains("probability 0"),
        "{err}"
    );

    let err = code_lengths(
        &model,
        &tokens_u32(&corpus),
        &corpus.doc_offsets[..10],
        false,
        None,
        &mut no_report,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("doc_offsets"), "{err}");
}
