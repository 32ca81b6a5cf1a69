//! The capacity-limited Bayes reference `L(n, C)`: the Bayes learner of [`super::predictive`]
//! that may keep only `C` bits of knowledge (docs/capacity.md).
//!
//! After the first `n` training documents the learner keeps its full syntax counts but stores
//! only the top-k entities by training count (ties by creation index), `k` the largest with
//! two-part model bits `M(S_k) <= C` ([`super::structure`] prices a stored set the same way). A
//! stored entity keeps its CRP weight `c_k - alpha`, its name and its revealed values; every
//! other entity is lumped into one "other" hypothesis with the remaining mass
//! `beta + K alpha + sum_{k not in S} (c_k - alpha)`, a name uniform over the `U - |S|` names
//! not in `S` and every value from `H_a`.
//!
//! Why a per-document closed form is exact: the predictive of a whole document is a mixture
//! over hypotheses (each stored entity, and "other"), and a full name is consistent with exactly
//! one of them (names are unique: a name in `S` is that stored entity's, any other name is
//! "other"'s). The mixture therefore collapses to one term, the product of the chosen
//! hypothesis' weight, its name probability, the syntax factors and the value factors, exactly
//! as the full learner's document code length collapses to its per-document closed form
//! (docs/codelength.md, "Per document"). The syntax factors do not depend on `S` at all.
//!
//! Two readings of `L(n, C)` come out of one pass:
//! - **realised**: the code length of each test document (the last `n_test` documents, each
//!   scored on its own against the frozen prefix state, as in the Bayes learning curve);
//! - **expected**: the expectation of that code length when the document is drawn from the full
//!   Bayes predictive of document `n` (by exchangeability, the law of any test document given the
//!   prefix). Going from `S` to `S + {j}` changes the expectation by minus a binary KL divergence
//!   minus the value bits saved on `j`, so the expected loss is non-increasing in `C`; a
//!   realised test split only approximates it (storing an entity no test document is about
//!   takes predictive mass from the documents that are there).

use rayon::prelude::*;

use crate::error::CorpusError;
use crate::sampler::TokenWord;
use crate::threads::thread_pool;

use super::closed_form::log_attribute_orders;
use super::predictive::{check_offsets, learn};
use super::state::{parse_doc, Model, Sentence, State, NONE};
use super::{run_with_progress, Neumaier, Progress, Report, LN_2};

/// Closed-form parts of a document's code length: syntax (attribute order and templates),
/// name (entity choice and name) and value.
pub const N_PARTS: usize = 3;
pub const PART_SYNTAX: usize = 0;
pub const PART_NAME: usize = 1;
pub const PART_VALUE: usize = 2;

/// What a learner that stores the top-k entities knows, for every `k`.
#[derive(Clone, Debug, Default)]
pub struct StoragePlan {
    /// Entity ids in storage order (count descending, ties by creation index).
    pub order: Vec<u32>,
    /// Storage rank of each entity id.
    pub rank: Vec<u32>,
    /// `M(S_k)` in bits, `K + 1` entries (the syntax term alone for `k = 0`).
    pub model_bits: Vec<f64>,
    /// `sum_{rank >= k} c`, `K + 1` entries: the documents about unstored entities.
    pub unstored_docs: Vec<u64>,
}

impl StoragePlan {
    /// Number of stored entities under a budget of `capacity_bits`: the largest `k` with
    /// `M(S_k) <= C`, or 0 when even the syntax term exceeds the budget (the syntax counts are
    /// kept whatever the budget).
    pub fn stored_for(&self, capacity_bits: f64) -> usize {
        // model_bits is strictly increasing (each entity adds at least log2 U > 0).
        self.model_bits
            .partition_point(|&m| m <= capacity_bits)
            .saturating_sub(1)
    }
}

/// The two-part model bits of storing the top-k entities of `state` (docs/structure
/// function): `(d_syn/2) log2 n + sum_{k in S} (log2 U + log2 n + sum_{a revealed} -log2 H_a)`.
/// For `n = 0` nothing has been read and the syntax term is 0.
pub fn storage_plan(model: &Model, state: &State) -> StoragePlan {
    let k_count = state.n_entities();
    let a_count = model.n_attributes;
    let mut order: Vec<u32> = (0..k_count as u32).collect();
    order.sort_by(|&x, &y| {
        state.counts[y as usize]
            .cmp(&state.counts[x as usize])
            .then(x.cmp(&y))
    });
    let mut rank = vec![0u32; k_count];
    for (r, &k) in order.iter().enumerate() {
        rank[k as usize] = r as u32;
    }
    let n = state.n_docs;
    let log2_n = if n > 0 { (n as f64).log2() } else { 0.0 };
    let log2_u = (model.name_space as f64).log2();
    let mut acc = Neumaier::default();
    acc.add(model.syntax_dimension() as f64 / 2.0 * log2_n);
    let mut model_bits = Vec::with_capacity(k_count + 1);
    model_bits.push(acc.value());
    for &k in &order {
        let k = k as usize;
        acc.add(log2_u + log2_n);
        for a in 0..a_count {
            let v = state.values[k * a_count + a];
            if v != NONE {
                acc.add(-model.value_log_prior(a, v) / LN_2);
            }
        }
        model_bits.push(acc.value());
    }
    let mut unstored_docs = vec![0u64; k_count + 1];
    for r in (0..k_count).rev() {
        unstored_docs[r] = unstored_docs[r + 1] + state.counts[order[r] as usize];
    }
    StoragePlan {
        order,
        rank,
        model_bits,
        unstored_docs,
    }
}

/// `-ln` of the probability of "other" and of one of its names, with `s` entities stored
/// (`O_s = beta + alpha s + sum_{k not in S} c_k`, which equals docs/capacity.md's
/// `beta + K alpha + sum_{k not in S} (c_k - alpha)` with integer counts kept exact).
fn other_nats(model: &Model, state: &State, plan: &StoragePlan, s: usize) -> f64 {
    let log_names = ((model.name_space - s as u64) as f64).ln();
    if state.n_docs == 0 {
        // The first document is new with probability 1 (docs/model.md, 3.2); this also avoids 0/0 at
        // beta = 0.
        return log_names;
    }
    let other = model.beta + model.alpha * s as f64 + plan.unstored_docs[s] as f64;
    -(other / (state.n_docs as f64 + model.beta)).ln() + log_names
}

/// One test document against one frozen prefix state, in nats.
#[derive(Clone, Copy, Debug, Default)]
struct DocParts {
    syntax: f64,
    /// Storage rank of its entity (`NONE`: unseen in the prefix).
    rank: u32,
    /// `-ln (c_k - alpha)/(n + beta)` if seen.
    entity_if_stored: f64,
    /// Values when the entity is stored (revealed ones known) and when it is not.
    values_if_stored: f64,
    values_if_unstored: f64,
    count: u64,
}

fn doc_parts(
    model: &Model,
    state: &State,
    plan: &StoragePlan,
    order_nats: f64,
    name: &[u32],
    sentences: &[Sentence],
) -> Result<DocParts, String> {
    let a_count = model.n_attributes;
    let mut parts = DocParts {
        syntax: order_nats,
        rank: NONE,
        ..DocParts::default()
    };
    let entity = state.entity_of_name(model, name);
    if let Some(k) = entity {
        let k = k as usize;
        parts.rank = plan.rank[k];
        parts.count = state.counts[k];
        parts.entity_if_stored =
            -((state.counts[k] as f64 - model.alpha) / (state.n_docs as f64 + model.beta)).ln();
    }
    // Template counts would be updated after each sentence (docs/codelength.md), but every sentence of a
    // document has its own attribute, so no sentence sees another's update.
    let mut values_stored = Neumaier::default();
    let mut values_unstored = Neumaier::default();
    let mut syntax = Neumaier::default();
    syntax.add(order_nats);
    for s in sentences {
        let a = s.attribute as usize;
        let g = (model.template_offset[a] + s.template) as usize;
        let norm = state.attribute_counts[a] as f64 + model.n_templates[a] as f64 * model.gamma;
        syntax.add(-((state.template_counts[g] as f64 + model.gamma) / norm).ln());
        let prior = -model.value_log_prior(a, s.value);
        values_unstored.add(prior);
        let revealed = entity.map_or(NONE, |k| state.values[k as usize * a_count + a]);
        if revealed == NONE {
            values_stored.add(prior);
        } else if revealed != s.value {
            return Err(format!(
                "it states {} as the {} of a known entity whose value {} was revealed in the training prefix",
                model.describe(s.value),
                model.grammar.attribute_names[a],
                model.describe(revealed)
            ));
        }
    }
    parts.syntax = syntax.value();
    parts.values_if_stored = values_stored.value();
    parts.values_if_unstored = values_unstored.value();
    Ok(parts)
}

/// The expected code length (nats) of the next document under the full Bayes predictive, for
/// the capacity-limited predictor storing `S_k`, every `k` (`K + 1` entries), split in parts.
fn expected_parts(model: &Model, state: &State, plan: &StoragePlan) -> Vec<[f64; N_PARTS]> {
    let a_count = model.n_attributes;
    let k_count = state.n_entities();
    let n = state.n_docs as f64;
    // P(attribute a is stated in the document).
    let stated: Vec<f64> = (0..a_count)
        .map(|a| {
            if model.shuffled {
                model.m as f64 / a_count as f64
            } else if a < model.m {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let prior_entropy: Vec<f64> = (0..a_count)
        .map(|a| {
            Neumaier::of(
                model.value_prob[a]
                    .iter()
                    .zip(&model.value_log_prob[a])
                    .filter(|(&p, _)| p > 0.0)
                    .map(|(&p, &lp)| -p * lp),
            )
        })
        .collect();
    let mut syntax = Neumaier::default();
    syntax.add(log_attribute_orders(model));
    for (a, &p_stated) in stated.iter().enumerate() {
        let lo = model.template_offset[a] as usize;
        let hi = model.template_offset[a + 1] as usize;
        let norm = state.attribute_counts[a] as f64 + model.n_templates[a] as f64 * model.gamma;
        let mut h = Neumaier::default();
        for &c in &state.template_counts[lo..hi] {
            let p = (c as f64 + model.gamma) / norm;
            h.add(-p * p.ln());
        }
        syntax.add(p_stated * h.value());
    }
    let syntax = syntax.value();
    let new_values = Neumaier::of((0..a_count).map(|a| stated[a] * prior_entropy[a]));
    // Per entity (storage order): P_n(k), and its value bits unstored minus stored (the
    // revealed facts, known once stored).
    let (weight, unstored_values, saved_values): (Vec<f64>, Vec<f64>, Vec<f64>) = plan
        .order
        .iter()
        .map(|&k| {
            let k = k as usize;
            let p = (state.counts[k] as f64 - model.alpha) / (n + model.beta);
            let mut unstored = Neumaier::default();
            let mut saved = Neumaier::default();
            for a in 0..a_count {
                let v = state.values[k * a_count + a];
                if v == NONE {
                    unstored.add(stated[a] * prior_entropy[a]);
                } else {
                    let bits = -stated[a] * model.value_log_prior(a, v);
                    unstored.add(bits);
                    saved.add(bits);
                }
            }
            (p, unstored.value(), saved.value())
        })
        .fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |(mut w, mut u, mut s), (p, uv, sv)| {
                w.push(p);
                u.push(uv);
                s.push(sv);
                (w, u, s)
            },
        );
    let p_new = if state.n_docs == 0 {
        1.0
    } else {
        (model.beta + k_count as f64 * model.alpha) / (n + model.beta)
    };
    let mut all_unstored = Neumaier::default();
    all_unstored.add(p_new * new_values);
    for r in 0..k_count {
        all_unstored.add(weight[r] * unstored_values[r]);
    }
    let mut out = Vec::with_capacity(k_count + 1);
    let mut stored_entity = Neumaier::default();
    let mut saved = Neumaier::default();
    for s in 0..=k_count {
        let other_p = if state.n_docs == 0 {
            1.0
        } else {
            (model.beta + model.alpha * s as f64 + plan.unstored_docs[s] as f64) / (n + model.beta)
        };
        let other = if other_p > 0.0 {
            other_p * other_nats(model, state, plan, s)
        } else {
            0.0
        };
        out.push([
            syntax,
            stored_entity.value() + other,
            all_unstored.value() - saved.value(),
        ]);
        if s < k_count {
            stored_entity.add(-weight[s] * weight[s].ln());
            saved.add(weight[s] * saved_values[s]);
        }
    }
    out
}

/// `L(n, C)` for every checkpoint `n` and capacity `C` (row-major `checkpoints x capacities`).
#[derive(Clone, Debug, Default)]
pub struct CapacityOutput {
    pub checkpoints: Vec<u64>,
    pub capacities: Vec<f64>,
    /// Index of the first test document in the corpus.
    pub test_start: usize,
    pub n_test: usize,
    /// Tokens of the test documents, all roles (BOS and EOS included).
    pub n_tokens: u64,
    /// Per checkpoint: entities seen `K(n)`, and `M` of storing all of them.
    pub n_entities: Vec<u64>,
    pub full_model_bits: Vec<f64>,
    /// Per checkpoint and capacity: `|S|`, `M(S)`, test documents about stored entities.
    pub n_stored: Vec<u64>,
    pub model_bits: Vec<f64>,
    pub stored_docs: Vec<u64>,
    /// Per checkpoint and capacity: realised bits summed over the test documents, by part
    /// (syntax, name, value), `x 3`.
    pub part_bits: Vec<f64>,
    /// Per checkpoint and capacity: expected bits of one document drawn from the full Bayes
    /// predictive, by part, `x 3`.
    pub expected_part_bits: Vec<f64>,
    /// Per checkpoint, capacity and test document: realised bits (when asked for).
    pub doc_bits: Option<Vec<f64>>,
}

/// Checks the capacities (bits): each `>= 0` (infinity stores everything), strictly increasing.
pub fn check_capacities(capacities: &[f64]) -> Result<(), CorpusError> {
    let bad = |m: String| Err(CorpusError::Argument(m));
    if capacities.is_empty() {
        return bad("capacities_bits must list at least one capacity".into());
    }
    for (i, &c) in capacities.iter().enumerate() {
        if c.is_nan() || c < 0.0 {
            return bad(format!(
                "capacities_bits[{i}] = {c} must be >= 0 bits (inf stores every entity)"
            ));
        }
        if i > 0 && c <= capacities[i - 1] {
            return bad(format!(
                "capacities_bits must be strictly increasing, got {} then {c}",
                capacities[i - 1]
            ));
        }
    }
    Ok(())
}

/// `L(n, C)` on the test split (the last `n_test` documents) for each prefix length `n` in
/// `checkpoints` (strictly increasing, `<= n_train`) and each capacity in `capacities` bits.
/// The split and checkpoints follow [`super::bayes_curve`], so both are measured on the same
/// documents.
#[allow(clippy::too_many_arguments)]
pub fn capacity_limited_loss<T: TokenWord>(
    model: &Model,
    tokens: &[T],
    offsets: &[u64],
    n_train: usize,
    n_test: usize,
    checkpoints: &[u64],
    capacities: &[f64],
    keep_doc_bits: bool,
    threads: Option<usize>,
    report: Report<'_>,
) -> Result<CapacityOutput, CorpusError> {
    check_offsets(offsets, tokens.len())?;
    let n_docs = offsets.len() - 1;
    let test_start = super::curve::check_curve_arguments(n_docs, n_train, n_test, checkpoints)?;
    check_capacities(capacities)?;
    let pool = thread_pool(threads)?;
    let (j_count, m) = (model.n_name_parts, model.m);
    let (n_cp, n_cap) = (checkpoints.len(), capacities.len());
    let total = *checkpoints.last().unwrap() + ((n_cp + 1) * n_test) as u64;
    let doc = |d: usize| &tokens[offsets[d] as usize..offsets[d + 1] as usize];
    let order_nats = log_attribute_orders(model);

    let work = |progress: &Progress| -> Result<CapacityOutput, CorpusError> {
        pool.install(|| {
            // Parse the test documents once: their parse does not depend on the state.
            let mut names = vec![0u32; n_test * j_count];
            let mut sentences = vec![Sentence::default(); n_test * m];
            let parsed: Result<u64, CorpusError> = names
                .par_chunks_mut(j_count)
                .zip(sentences.par_chunks_mut(m))
                .enumerate()
                .map(|(i, (nm, st))| {
                    let d = test_start + i;
                    let tokens = doc(d);
                    parse_doc(model, tokens, nm, st)
                        .map_err(|e| e.into_corpus_error(d, offsets[d]))?;
                    Ok(tokens.len() as u64)
                })
                .try_reduce(|| 0, |a, b| Ok(a + b));
            // The first failing document in corpus order, whatever thread found one.
            let n_tokens = match parsed {
                Ok(t) => t,
                Err(_) => {
                    let (mut nm, mut st) = (vec![0u32; j_count], vec![Sentence::default(); m]);
                    for (d, &start) in offsets.iter().enumerate().take(n_docs).skip(test_start) {
                        parse_doc(model, doc(d), &mut nm, &mut st)
                            .map_err(|e| e.into_corpus_error(d, start))?;
                    }
                    unreachable!("a test document failed to parse in parallel only")
                }
            };
            progress.add(n_test as u64);
            let mut out = CapacityOutput {
                checkpoints: checkpoints.to_vec(),
                capacities: capacities.to_vec(),
                test_start,
                n_test,
                n_tokens,
                n_entities: Vec::with_capacity(n_cp),
                full_model_bits: Vec::with_capacity(n_cp),
                n_stored: Vec::with_capacity(n_cp * n_cap),
                model_bits: Vec::with_capacity(n_cp * n_cap),
                stored_docs: Vec::with_capacity(n_cp * n_cap),
                part_bits: Vec::with_capacity(n_cp * n_cap * N_PARTS),
                expected_part_bits: Vec::with_capacity(n_cp * n_cap * N_PARTS),
                doc_bits: keep_doc_bits.then(|| Vec::with_capacity(n_cp * n_cap * n_test)),
            };
            let mut state = State::new(model, false);
            let mut done = 0usize;
            for &n_c in checkpoints {
                learn(
                    model,
                    &mut state,
                    tokens,
                    offsets,
                    done..n_c as usize,
                    progress,
                )
                .map_err(|(_, e)| e)?;
                done = n_c as usize;
                let state = &state;
                let plan = storage_plan(model, state);
                let parts: Vec<Result<DocParts, String>> = (0..n_test)
                    .into_par_iter()
                    .with_min_len(64)
                    .map(|i| {
                        doc_parts(
                            model,
                            state,
                            &plan,
                            order_nats,
                            &names[i * j_count..(i + 1) * j_count],
                            &sentences[i * m..(i + 1) * m],
                        )
                    })
                    .collect();
                let mut doc_parts_ok = Vec::with_capacity(n_test);
                for (i, p) in parts.into_iter().enumerate() {
                    let d = test_start + i;
                    doc_parts_ok.push(p.map_err(|message| {
                        CorpusError::Argument(format!(
                            "document {d}: {message}; the tokens do not fit this configuration"
                        ))
                    })?);
                }
                let expected = expected_parts(model, state, &plan);
                let k_count = state.n_entities();
                out.n_entities.push(k_count as u64);
                out.full_model_bits.push(plan.model_bits[k_count]);
                let syntax = Neumaier::of(doc_parts_ok.iter().map(|p| p.syntax)) / LN_2;
                for &capacity in capacities {
                    let s = plan.stored_for(capacity);
                    let other = other_nats(model, state, &plan, s);
                    let mut name = Neumaier::default();
                    let mut value = Neumaier::default();
                    let mut stored_docs = 0u64;
                    for p in &doc_parts_ok {
                        let (e, v) = if p.rank != NONE && (p.rank as usize) < s {
                            stored_docs += 1;
                            (p.entity_if_stored, p.values_if_stored)
                        } else {
                            (other, p.values_if_unstored)
                        };
                        name.add(e);
                        value.add(v);
                        if let Some(bits) = out.doc_bits.as_mut() {
                            bits.push(Neumaier::of([p.syntax, e, v]) / LN_2);
                        }
                    }
                    out.n_stored.push(s as u64);
                    out.model_bits.push(plan.model_bits[s]);
                    out.stored_docs.push(stored_docs);
                    out.part_bits
                        .extend([syntax, name.value() / LN_2, value.value() / LN_2]);
                    out.expected_part_bits
                        .extend(expected[s].iter().map(|x| x / LN_2));
                }
                progress.add(n_test as u64);
                if progress.cancelled() {
                    return Err(super::cancelled_error());
                }
            }
            Ok(out)
        })
    };
    run_with_progress(total, report, work)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codelength::closed_form::Latents;
    use crate::codelength::{bayes_curve, no_report, structure_function, N_ROLES};
    use crate::config::{AttributeOrder, PerAttribute, Preset, ValuePrior};
    use crate::sampler::sample;
    use crate::{Config, Corpus};

    fn tokens_u32(c: &Corpus) -> Vec<u32> {
        c.tokens.to_u32_vec()
    }

    /// Small corpora covering shuffled and fixed orders, m < A, a shared pool, zipf priors,
    /// beta < 0 and alpha = 0.
    fn configs() -> Vec<(&'static str, Config, u64)> {
        let procedural = |alpha: f64, beta: f64, seed: u64| Config {
            preset: Preset::Procedural,
            n_attributes: 3,
            pool_sizes: vec![5, 7],
            attribute_pool: vec![0, 0, 1],
            value_prior: ValuePrior::Zipf(0.9),
            name_parts: vec![20, 25, 30],
            templates_per_attribute: PerAttribute::Each(vec![3, 2, 4]),
            template_length: [1, 3],
            syntax_vocab: 12,
            attrs_per_doc: Some(2),
            alpha,
            beta,
            seed,
            ..Config::default()
        };
        vec![
            (
                "bios shuffled",
                Config {
                    seed: 4,
                    alpha: 0.5,
                    beta: 2.0,
                    ..Config::default()
                },
                1500,
            ),
            (
                "bios fixed m<A zipf",
                Config {
                    seed: 6,
                    alpha: 0.3,
                    beta: -0.2,
                    attrs_per_doc: Some(3),
                    attribute_order: AttributeOrder::Fixed,
                    value_prior: ValuePrior::Zipf(1.1),
                    ..Config::default()
                },
                1200,
            ),
            ("procedural shared pool", procedural(0.6, 1.0, 8), 800),
            ("procedural alpha=0", procedural(0.0, 3.0, 9), 800),
        ]
    }

    fn run(
        config: &Config,
        corpus: &Corpus,
        n_train: usize,
        checkpoints: &[u64],
        capacities: &[f64],
    ) -> CapacityOutput {
        let model = Model::new(config).unwrap();
        let toks = tokens_u32(corpus);
        let n_test = corpus.n_docs() - n_train;
        capacity_limited_loss(
            &model,
            &toks,
            &corpus.doc_offsets,
            n_train,
            n_test,
            checkpoints,
            capacities,
            true,
            Some(2),
            &mut no_report,
        )
        .unwrap()
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(1e-300)
    }

    #[test]
    fn infinite_capacity_is_the_bayes_curve() {
        for (label, config, n) in configs() {
            let corpus = sample(&config, n, Some(1)).unwrap();
            let n_train = n as usize * 3 / 4;
            let n_test = n as usize - n_train;
            let checkpoints = [0u64, 1, 7, 100, n_train as u64];
            let out = run(&config, &corpus, n_train, &checkpoints, &[f64::INFINITY]);
            let model = Model::new(&config).unwrap();
            let curve = bayes_curve(
                &model,
                &tokens_u32(&corpus),
                &corpus.doc_offsets,
                n_train,
                n_test,
                &checkpoints,
                Some(2),
                &mut no_report,
            )
            .unwrap();
            let doc_bits = out.doc_bits.as_ref().unwrap();
            for c in 0..checkpoints.len() {
                assert_eq!(out.n_stored[c], out.n_entities[c], "{label}");
                assert_eq!(out.model_bits[c], out.full_model_bits[c], "{label}");
                for i in 0..n_test {
                    let bayes: f64 = curve.doc_bits[(c * n_test + i) * N_ROLES..][..N_ROLES]
                        .iter()
                        .sum();
                    let ours = doc_bits[c * n_test + i];
                    assert!(
                        rel(ours, bayes) < 1e-9,
                        "{label}: checkpoint {c}, test doc {i}: {ours} vs Bayes {bayes}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_capacity_is_the_prior_predictor() {
        for (label, config, n) in configs() {
            let corpus = sample(&config, n, Some(1)).unwrap();
            let n_train = n as usize / 2;
            let out = run(&config, &corpus, n_train, &[n_train as u64], &[0.0]);
            let model = Model::new(&config).unwrap();
            assert_eq!(out.n_stored[0], 0, "{label}");
            // Prior only: "other" has all the mass, so the entity choice is free and the
            // name costs log2 U; every value costs -log2 H_a.
            let log2_u = (model.name_space as f64).log2();
            let mut name = 0.0;
            let mut value = 0.0;
            let (m, a_count) = (model.m, model.n_attributes);
            for d in n_train..corpus.n_docs() {
                name += log2_u;
                let k = corpus.doc_entity[d] as usize;
                for s in 0..m {
                    let a = corpus.sentence_attribute[d * m + s] as usize;
                    let v = corpus.entities.values[k * a_count + a];
                    value -= model.value_log_prior(a, v) / LN_2;
                }
            }
            assert!(rel(out.part_bits[PART_NAME], name) < 1e-12, "{label}");
            assert!(rel(out.part_bits[PART_VALUE], value) < 1e-12, "{label}");
        }
    }

    #[test]
    fn model_bits_match_the_structure_function() {
        for (label, config, n) in configs() {
            let corpus = sample(&config, n, Some(1)).unwrap();
            let model = Model::new(&config).unwrap();
            let n_train = n as usize - 10;
            let latents = Latents {
                doc_entity: &corpus.doc_entity,
                sentence_attribute: &corpus.sentence_attribute,
                sentence_template: &corpus.sentence_template,
                entity_names: &corpus.entities.names,
                entity_values: &corpus.entities.values,
            };
            let sf = structure_function(&model, &latents, n_train).unwrap();
            let mut state = State::new(&model, false);
            let toks = tokens_u32(&corpus);
            learn(
                &model,
                &mut state,
                &toks,
                &corpus.doc_offsets,
                0..n_train,
                &Progress::default(),
            )
            .unwrap();
            let plan = storage_plan(&model, &state);
            assert_eq!(plan.order, sf.order, "{label}");
            // k is the largest with M(S_k) <= C: at, between and just below the breakpoints.
            for (k, &bits) in plan.model_bits.iter().enumerate() {
                assert_eq!(plan.stored_for(bits), k, "{label}");
                assert_eq!(
                    plan.stored_for(bits * (1.0 - 1e-12)),
                    k.max(1) - 1,
                    "{label}"
                );
            }
            assert_eq!(plan.stored_for(0.0), 0);
            assert_eq!(plan.stored_for(f64::INFINITY), state.n_entities());
            assert_eq!(plan.model_bits.len(), sf.model_bits.len());
            for (a, b) in plan.model_bits.iter().zip(&sf.model_bits) {
                assert!(rel(*a, *b) < 1e-12, "{label}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn monotone_in_capacity() {
        for (label, config, n) in configs() {
            let corpus = sample(&config, n, Some(1)).unwrap();
            let n_train = n as usize * 3 / 4;
            let checkpoints = [10u64, 200, n_train as u64];
            let first = run(&config, &corpus, n_train, &checkpoints, &[f64::INFINITY]);
            let top = first.full_model_bits.iter().cloned().fold(0.0, f64::max);
            let grid: Vec<f64> = (0..400).map(|i| top * 1.1 * i as f64 / 399.0).collect();
            let out = run(&config, &corpus, n_train, &checkpoints, &grid);
            let n_cap = grid.len();
            for c in 0..checkpoints.len() {
                let row = c * n_cap..(c + 1) * n_cap;
                let stored = &out.n_stored[row.clone()];
                let bits = &out.model_bits[row.clone()];
                assert!(stored.windows(2).all(|w| w[0] <= w[1]), "{label}");
                assert!(bits.windows(2).all(|w| w[0] <= w[1]), "{label}");
                for (i, &cap) in grid.iter().enumerate() {
                    // The budget binds, except that the syntax term is always paid.
                    let s = stored[i] as usize;
                    assert!(s == 0 || bits[i] <= cap, "{label}");
                }
                assert_eq!(*stored.last().unwrap(), out.n_entities[c], "{label}");
                let expected: Vec<f64> = row
                    .clone()
                    .map(|r| {
                        out.expected_part_bits[r * N_PARTS..][..N_PARTS]
                            .iter()
                            .sum()
                    })
                    .collect();
                for w in expected.windows(2) {
                    // Rounding of sums of O(K) terms: a few ulps of the total.
                    assert!(w[1] <= w[0] * (1.0 + 1e-12), "{label}: {} > {}", w[1], w[0]);
                }
            }
        }
    }

    #[test]
    fn bad_capacities_are_rejected() {
        for (caps, needle) in [
            (vec![], "at least one"),
            (vec![-1.0], ">= 0"),
            (vec![f64::NAN], ">= 0"),
            (vec![5.0, 5.0], "strictly increasing"),
            (vec![5.0, 1.0], "strictly increasing"),
        ] {
            let err = check_capacities(&caps).unwrap_err().to_string();
            assert!(err.contains(needle), "{caps:?}: {err}");
        }
        check_capacities(&[0.0, 1.0, f64::INFINITY]).unwrap();
    }
}
