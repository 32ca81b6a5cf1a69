//! Determinism of the sampler (docs/model.md#randomness): bit-identical output for every thread
//! count and every
//! split into batches, nested prefixes, on configurations that exercise every code path (u16 and
//! u32 tokens, the three render paths, attribute orders from the table, from one mixed-radix
//! group and from several, fixed orders).

use synknow_core::{
    sample, AttributeOrder, Batch, Config, Corpus, PerAttribute, Preset, Sampler, TokenWord,
    Tokens, ValuePrior,
};

fn configs() -> Vec<(&'static str, Config)> {
    let procedural = |a: usize| Config {
        preset: Preset::Procedural,
        n_attributes: a,
        pool_sizes: vec![60; a],
        attribute_pool: (0..a).collect(),
        ..Config::default()
    };
    vec![
        (
            "bios",
            Config {
                seed: 1,
                ..Config::default()
            },
        ),
        (
            "bios m=2 zipf",
            Config {
                seed: 2,
                attrs_per_doc: Some(2),
                value_prior: ValuePrior::Zipf(1.1),
                ..Config::default()
            },
        ),
        (
            // Templates of 7..45 tokens: the narrow, wide and exact render paths all occur.
            "procedural long templates",
            Config {
                seed: 3,
                template_length: [2, 40],
                ..procedural(6)
            },
        ),
        (
            // 9! orders: too many for the table, one mixed-radix group.
            "procedural A=9",
            Config {
                seed: 4,
                templates_per_attribute: PerAttribute::All(3),
                ..procedural(9)
            },
        ),
        (
            // 20!/8! ordered subsets: several mixed-radix groups.
            "procedural A=20 m=12",
            Config {
                seed: 5,
                attrs_per_doc: Some(12),
                templates_per_attribute: PerAttribute::All(2),
                ..procedural(20)
            },
        ),
        (
            "procedural fixed order",
            Config {
                seed: 6,
                attribute_order: AttributeOrder::Fixed,
                ..procedural(4)
            },
        ),
        (
            // Five name parts: the name patch of any length.
            "five name parts",
            Config {
                seed: 8,
                name_parts: vec![20, 20, 20, 20, 200],
                ..Config::default()
            },
        ),
        (
            // A vocabulary beyond u16.
            "u32 tokens",
            Config {
                seed: 7,
                name_parts: vec![300, 300, 70_000],
                ..procedural(3)
            },
        ),
    ]
}

/// Tokens (as u32), roles, offsets, entities, attributes, templates.
type Flat = (Vec<u32>, Vec<u8>, Vec<u64>, Vec<u32>, Vec<u16>, Vec<u16>);

fn batches<T: TokenWord>(
    config: &Config,
    sizes: &[usize],
    threads: Option<usize>,
) -> Vec<Batch<T>> {
    let total: usize = sizes.iter().sum();
    let mut s = Sampler::new(config, total as u64).unwrap();
    sizes
        .iter()
        .map(|&n| s.next_batch::<T>(n, threads).unwrap())
        .collect()
}

/// Concatenates batches the way the streaming writer does (offsets shifted by the batch start).
fn concat<T: TokenWord>(parts: &[Batch<T>]) -> Flat {
    let (mut tok, mut rol, mut off, mut ent, mut sa, mut st) =
        (vec![], vec![], vec![0u64], vec![], vec![], vec![]);
    let mut base = 0;
    for b in parts {
        tok.extend(b.tokens.iter().map(|t| t.to_u32()));
        rol.extend_from_slice(&b.roles);
        off.extend(b.doc_offsets[1..].iter().map(|o| o + base));
        base += b.doc_offsets.last().unwrap();
        ent.extend_from_slice(&b.doc_entity);
        sa.extend_from_slice(&b.sentence_attribute);
        st.extend_from_slice(&b.sentence_template);
    }
    (tok, rol, off, ent, sa, st)
}

fn flat(c: &Corpus) -> Flat {
    (
        c.tokens.to_u32_vec(),
        c.roles.clone(),
        c.doc_offsets.clone(),
        c.doc_entity.clone(),
        c.sentence_attribute.clone(),
        c.sentence_template.clone(),
    )
}

#[test]
fn thread_counts_give_identical_corpora() {
    for (name, c) in configs() {
        let one = sample(&c, 6000, Some(1)).unwrap();
        for threads in [Some(2), Some(3), Some(8), None] {
            let other = sample(&c, 6000, threads).unwrap();
            assert!(one == other, "{name}: threads {threads:?} differ");
        }
    }
}

#[test]
fn batch_splits_give_identical_corpora() {
    for (name, c) in configs() {
        let whole = sample(&c, 6000, Some(2)).unwrap();
        for sizes in [
            &[6000][..],
            &[1, 1, 5998],
            &[2047, 2049, 1904],
            &[3000, 0, 3000],
            &[977; 6],
        ] {
            let sizes: Vec<usize> = sizes
                .iter()
                .copied()
                .chain(std::iter::once(6000 - sizes.iter().sum::<usize>()))
                .collect();
            let got = if matches!(whole.tokens, Tokens::U32(_)) {
                concat(&batches::<u32>(&c, &sizes, Some(2)))
            } else {
                concat(&batches::<u16>(&c, &sizes, Some(2)))
            };
            assert!(got == flat(&whole), "{name}: split {sizes:?} differs");
        }
    }
}

#[test]
fn prefixes_are_nested() {
    for (name, c) in configs() {
        let long = sample(&c, 5000, None).unwrap();
        for n in [1usize, 2, 100, 2048, 2049, 4999] {
            let short = sample(&c, n as u64, None).unwrap();
            let end = short.doc_offsets[n] as usize;
            assert_eq!(short.doc_offsets[..], long.doc_offsets[..=n], "{name} {n}");
            assert_eq!(
                short.tokens.to_u32_vec()[..],
                long.tokens.to_u32_vec()[..end],
                "{name} {n}"
            );
            assert_eq!(short.roles[..], long.roles[..end], "{name} {n}");
            assert_eq!(short.doc_entity[..], long.doc_entity[..n], "{name} {n}");
            let m = c.m();
            assert_eq!(
                short.sentence_template[..],
                long.sentence_template[..n * m],
                "{name} {n}"
            );
            let k = short.entities.len();
            let j = c.name_parts.len();
            assert_eq!(
                short.entities.names[..],
                long.entities.names[..k * j],
                "{name} {n}"
            );
            assert_eq!(
                short.entities.first_doc[..],
                long.entities.first_doc[..k],
                "{name} {n}"
            );
        }
    }
}

#[test]
fn stage_times_are_recorded() {
    let mut s = Sampler::new(&Config::default(), 10_000).unwrap();
    s.next_batch::<u16>(10_000, Some(2)).unwrap();
    let t = s.stage_times();
    assert!(t.total > std::time::Duration::ZERO);
    assert!(t.render <= t.total && t.records <= t.total);
}
