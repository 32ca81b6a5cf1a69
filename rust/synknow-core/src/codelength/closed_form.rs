//! Closed forms of the Bayes code length from the latent records (docs/codelength.md#per-document
//! and docs/codelength.md#whole-corpus).
//!
//! These use what the sampler recorded (each document's entity, each sentence's attribute and
//! template, the entity table), not the tokens: they are the independent side of the identity
//! "per-token code lengths sum to the closed form".

use libm::lgamma;

use crate::error::CorpusError;
use crate::special::ln_rising;

use super::state::Model;
use super::{Neumaier, LN_2};

/// The latent records of a corpus (docs/model.md#corpus-contents), borrowed (possibly from
/// memory-mapped files).
#[derive(Clone, Copy, Debug)]
pub struct Latents<'a> {
    /// Entity of each document (`N`).
    pub doc_entity: &'a [u32],
    /// Attribute of each sentence, `N x m` row-major.
    pub sentence_attribute: &'a [u16],
    /// Template of each sentence, `N x m` row-major.
    pub sentence_template: &'a [u16],
    /// Name tokens of each entity, `K x J` row-major.
    pub entity_names: &'a [u32],
    /// Value tokens of each entity, `K x A` row-major.
    pub entity_values: &'a [u32],
}

impl Latents<'_> {
    pub fn n_docs(&self) -> usize {
        self.doc_entity.len()
    }

    /// Checks that the arrays fit each other and the configuration; `n_docs` is the prefix the
    /// caller will read.
    pub fn validate(&self, model: &Model, n_docs: usize) -> Result<usize, CorpusError> {
        let bad = |m: String| CorpusError::Argument(m);
        let (m, a_count, j_count) = (model.m, model.n_attributes, model.n_name_parts);
        let n = self.doc_entity.len();
        // Array lengths are bounded by memory, so these products fit; checked all the same.
        let records = n
            .checked_mul(m)
            .ok_or_else(|| bad(format!("{n} documents x m = {m} sentences overflow")))?;
        if n_docs > n {
            return Err(bad(format!(
                "n_docs={n_docs} exceeds the {n} documents of the corpus"
            )));
        }
        for (name, arr) in [
            ("sentence_attribute", self.sentence_attribute),
            ("sentence_template", self.sentence_template),
        ] {
            if arr.len() != records {
                return Err(bad(format!(
                    "{name} has {} entries, expected N x m = {n} x {m} = {records}",
                    arr.len(),
                )));
            }
        }
        if self.entity_names.len() % j_count != 0 {
            return Err(bad(format!(
                "entity_names has {} entries, not a multiple of J = {j_count} name parts",
                self.entity_names.len()
            )));
        }
        let k_count = self.entity_names.len() / j_count;
        if k_count.checked_mul(a_count) != Some(self.entity_values.len()) {
            return Err(bad(format!(
                "entity_values has {} entries, expected K x A = {k_count} x {a_count}",
                self.entity_values.len()
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(k_count);
        for k in 0..k_count {
            let name = &self.entity_names[k * j_count..(k + 1) * j_count];
            for (j, &t) in name.iter().enumerate() {
                if t < model.name_start[j] || t >= model.name_start[j] + model.name_size[j] {
                    return Err(bad(format!(
                        "entity_names[{k}, {j}] = {t} is not a token of name position {j}"
                    )));
                }
            }
            if !seen.insert(model.name_code(name)) {
                return Err(bad(format!(
                    "entity {k} has the same name as an earlier entity (names are unique)"
                )));
            }
            for a in 0..a_count {
                let v = self.entity_values[k * a_count + a];
                if !model.in_pool(a, v) {
                    return Err(bad(format!(
                        "entity_values[{k}, {a}] = {v} is not in the pool of attribute {a}"
                    )));
                }
            }
        }
        let mut used = vec![false; a_count];
        for i in 0..n_docs {
            if self.doc_entity[i] as usize >= k_count {
                return Err(bad(format!(
                    "doc_entity[{i}] = {} but the entity table has {k_count} entities",
                    self.doc_entity[i]
                )));
            }
            for s in 0..m {
                let a = self.sentence_attribute[i * m + s] as usize;
                let t = self.sentence_template[i * m + s] as u32;
                if a >= a_count {
                    return Err(bad(format!(
                        "sentence_attribute[{i}, {s}] = {a}, valid: 0..{a_count}"
                    )));
                }
                if t >= model.n_templates[a] {
                    return Err(bad(format!(
                        "sentence_template[{i}, {s}] = {t}, attribute {a} has {} templates",
                        model.n_templates[a]
                    )));
                }
                let allowed = if model.shuffled { !used[a] } else { a == s };
                if !allowed {
                    return Err(bad(format!(
                        "sentence_attribute[{i}, {s}] = {a} is not allowed by the attribute order"
                    )));
                }
                used[a] = true;
            }
            for s in 0..m {
                used[self.sentence_attribute[i * m + s] as usize] = false;
            }
        }
        Ok(k_count)
    }
}

/// `ln (A! / (A - m)!)`: the code length of one document's attribute order when shuffled.
pub(crate) fn log_attribute_orders(model: &Model) -> f64 {
    if model.shuffled {
        (0..model.m)
            .map(|s| ((model.n_attributes - s) as f64).ln())
            .sum()
    } else {
        0.0
    }
}

/// docs/codelength.md#per-document: the code length of each of the first `n_docs` documents given
/// the earlier ones, in
/// bits, sequentially from the latent records.
pub fn closed_form_per_doc(
    model: &Model,
    latents: &Latents<'_>,
    n_docs: usize,
) -> Result<Vec<f64>, CorpusError> {
    let k_count = latents.validate(model, n_docs)?;
    let (m, a_count) = (model.m, model.n_attributes);
    let (alpha, beta, gamma) = (model.alpha, model.beta, model.gamma);
    let order = log_attribute_orders(model);
    let mut counts = vec![0u64; k_count];
    let mut revealed = vec![false; k_count * a_count];
    let mut template_counts = vec![0u64; *model.template_offset.last().unwrap() as usize];
    let mut attribute_counts = vec![0u64; a_count];
    let mut k_seen = 0u64;
    let mut out = Vec::with_capacity(n_docs);
    for i in 0..n_docs {
        let k = latents.doc_entity[i] as usize;
        let mut nats = order;
        let is_new = counts[k] == 0;
        if i > 0 {
            let weight = if is_new {
                beta + k_seen as f64 * alpha
            } else {
                counts[k] as f64 - alpha
            };
            nats -= (weight / (i as f64 + beta)).ln();
        }
        if is_new {
            nats += ((model.name_space - k_seen) as f64).ln();
            k_seen += 1;
        }
        counts[k] += 1;
        for s in 0..m {
            let a = latents.sentence_attribute[i * m + s] as usize;
            let g =
                (model.template_offset[a] + latents.sentence_template[i * m + s] as u32) as usize;
            let norm = attribute_counts[a] as f64 + model.n_templates[a] as f64 * gamma;
            nats -= ((template_counts[g] as f64 + gamma) / norm).ln();
            template_counts[g] += 1;
            attribute_counts[a] += 1;
            if !revealed[k * a_count + a] {
                revealed[k * a_count + a] = true;
                nats -= model.value_log_prior(a, latents.entity_values[k * a_count + a]);
            }
        }
        out.push(nats / LN_2);
    }
    Ok(out)
}

/// docs/codelength.md#whole-corpus, term by term, in bits.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClosedFormParts {
    /// `-log2 EPPF(z)`: which entity each document is about.
    pub entities: f64,
    /// `sum_{j<K} log2(U - j)`: the names of new entities.
    pub names: f64,
    /// `-sum_a log2 DM_a`: the templates.
    pub templates: f64,
    /// `N log2(A!/(A-m)!)` when shuffled: the attribute orders.
    pub attribute_order: f64,
    /// `sum_{revealed (k,a)} -log2 H_a(v_{k,a})`: first statements of values.
    pub values: f64,
    pub total: f64,
}

/// docs/codelength.md#whole-corpus: the code length of the first `n_docs` documents from counts
/// alone (order-free), in
/// bits, with every term.
pub fn closed_form_total(
    model: &Model,
    latents: &Latents<'_>,
    n_docs: usize,
) -> Result<ClosedFormParts, CorpusError> {
    let k_count = latents.validate(model, n_docs)?;
    let (m, a_count) = (model.m, model.n_attributes);
    let mut counts = vec![0u64; k_count];
    let mut revealed = vec![false; k_count * a_count];
    let mut template_counts = vec![0u64; *model.template_offset.last().unwrap() as usize];
    let mut values = Neumaier::default();
    for i in 0..n_docs {
        let k = latents.doc_entity[i] as usize;
        counts[k] += 1;
        for s in 0..m {
            let a = latents.sentence_attribute[i * m + s] as usize;
            let g =
                (model.template_offset[a] + latents.sentence_template[i * m + s] as u32) as usize;
            template_counts[g] += 1;
            if !revealed[k * a_count + a] {
                revealed[k * a_count + a] = true;
                values.add(-model.value_log_prior(a, latents.entity_values[k * a_count + a]));
            }
        }
    }
    let present: Vec<u64> = counts.into_iter().filter(|&c| c > 0).collect();
    let parts = closed_form_from_counts(
        model,
        n_docs as u64,
        &present,
        &template_counts,
        values.value(),
    );
    Ok(parts)
}

/// docs/codelength.md#whole-corpus from sufficient statistics: `entity_counts` (the nonzero `c_k`),
/// template counts by
/// global template index, and the summed `-ln H_a` of the revealed pairs (nats).
pub fn closed_form_from_counts(
    model: &Model,
    n_docs: u64,
    entity_counts: &[u64],
    template_counts: &[u64],
    revealed_value_nats: f64,
) -> ClosedFormParts {
    if n_docs == 0 {
        return ClosedFormParts::default();
    }
    let (alpha, beta, gamma) = (model.alpha, model.beta, model.gamma);
    let k_count = entity_counts.len() as u64;
    // log EPPF = sum_{j=1}^{K-1} log(beta + j alpha) - ln (beta+1)_{N-1}
    //          + sum_k ln (1 - alpha)_{c_k - 1}
    // Every argument is positive (beta > -alpha > -1, c_k >= 1 > alpha), so no sign of Gamma
    // needs carrying. The rising factorial of `beta + 1` comes from `ln_rising`: a difference of
    // two lgamma values cancels to nothing once beta is large (at beta = 1e20 the rounding error
    // of one lgamma exceeds the whole code length). The entity terms have arguments below
    // `1 - alpha <= 1` and `c_k`, where lgamma is accurate, and there are K of them: plain lgamma.
    let mut eppf = Neumaier::default();
    for j in 1..k_count {
        eppf.add((beta + j as f64 * alpha).ln());
    }
    eppf.add(-ln_rising(beta + 1.0, n_docs - 1));
    let lg_one = lgamma(1.0 - alpha);
    for &c in entity_counts {
        eppf.add(lgamma(c as f64 - alpha) - lg_one);
    }
    // sum_{j<K} ln(U - j) = K ln U + sum_j log1p(-j/U): no cancellation even at U = 1e18.
    let u = model.name_space as f64;
    let mut names = Neumaier::default();
    names.add(k_count as f64 * u.ln());
    for j in 0..k_count {
        names.add((-(j as f64) / u).ln_1p());
    }
    let mut dm = Neumaier::default();
    for a in 0..model.n_attributes {
        let lo = model.template_offset[a] as usize;
        let hi = model.template_offset[a + 1] as usize;
        let tg = model.n_templates[a] as f64 * gamma;
        let n_a: u64 = template_counts[lo..hi].iter().sum();
        dm.add(-ln_rising(tg, n_a));
        for &c in &template_counts[lo..hi] {
            if c > 0 {
                dm.add(ln_rising(gamma, c));
            }
        }
    }
    let order = n_docs as f64 * log_attribute_orders(model);
    let parts = ClosedFormParts {
        entities: -eppf.value() / LN_2,
        names: names.value() / LN_2,
        templates: -dm.value() / LN_2,
        attribute_order: order / LN_2,
        values: revealed_value_nats / LN_2,
        total: 0.0,
    };
    let total = Neumaier::of([
        parts.entities,
        parts.names,
        parts.templates,
        parts.attribute_order,
        parts.values,
    ]);
    ClosedFormParts { total, ..parts }
}
