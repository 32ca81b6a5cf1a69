//! The two-part code and the structure function of a training corpus
//! (docs/codelength.md#structure-function).
//!
//! A model stores the syntax parameters and a set `S` of entities (the top-k by count); the data
//! are then coded with the maximum-likelihood `theta`, stored entities by their empirical
//! frequency, and each document about an unstored entity as "unstored" followed by its name and
//! its stated values, every time. `h(C) = min D(S)` over `M(S) <= C`.

use crate::error::CorpusError;

use super::closed_form::{log_attribute_orders, Latents};
use super::state::Model;
use super::{Neumaier, LN_2};

/// Model and data bits for storing the top-k entities, `k = 0..=K`.
#[derive(Clone, Debug, Default)]
pub struct StructureFunction {
    /// Documents in the training corpus, `N`.
    pub n_docs: u64,
    /// Entity ids in storage order (count descending, ties by id).
    pub order: Vec<u32>,
    /// Counts `c_k` in storage order.
    pub counts: Vec<u64>,
    /// `M(S_k)` in bits, `K + 1` entries.
    pub model_bits: Vec<f64>,
    /// `D(S_k)` in bits, `K + 1` entries.
    pub data_bits: Vec<f64>,
}

/// docs/codelength.md#structure-function for the first `n_docs` documents.
///
/// A stored entity's model cost is `log2 U + log2 N` plus `-log2 H_a(v_{k,a})` for each
/// attribute stated about it in the corpus (a fact never stated cannot be learnt, so it is not
/// stored; when `m = A` every attribute of every seen entity is stated and the value term is
/// the plain `sum_a`).
pub fn structure_function(
    model: &Model,
    latents: &Latents<'_>,
    n_docs: usize,
) -> Result<StructureFunction, CorpusError> {
    if n_docs == 0 {
        return Err(CorpusError::Argument(
            "the structure function needs n_train >= 1 documents".into(),
        ));
    }
    let k_count = latents.validate(model, n_docs)?;
    let (m, a_count) = (model.m, model.n_attributes);
    let mut counts = vec![0u64; k_count];
    let mut revealed = vec![false; k_count * a_count];
    // Per entity: -log2 H of its stated facts once (model) and at every statement (data).
    let mut stored_value_bits = vec![0.0f64; k_count];
    let mut stated_value_bits = vec![0.0f64; k_count];
    let mut template_counts = vec![0u64; *model.template_offset.last().unwrap() as usize];
    for i in 0..n_docs {
        let k = latents.doc_entity[i] as usize;
        counts[k] += 1;
        for s in 0..m {
            let a = latents.sentence_attribute[i * m + s] as usize;
            let g =
                (model.template_offset[a] + latents.sentence_template[i * m + s] as u32) as usize;
            template_counts[g] += 1;
            let bits = -model.value_log_prior(a, latents.entity_values[k * a_count + a]) / LN_2;
            stated_value_bits[k] += bits;
            if !revealed[k * a_count + a] {
                revealed[k * a_count + a] = true;
                stored_value_bits[k] += bits;
            }
        }
    }
    let mut order: Vec<u32> = (0..k_count as u32)
        .filter(|&k| counts[k as usize] > 0)
        .collect();
    order.sort_by(|&x, &y| counts[y as usize].cmp(&counts[x as usize]).then(x.cmp(&y)));
    let n = n_docs as f64;
    let log2_n = n.log2();
    let log2_u = (model.name_space as f64).log2();

    // Syntax: (d_syn / 2) log2 N in the model; the ML code of the templates and the attribute
    // orders in the data.
    let syntax_model = model.syntax_dimension() as f64 / 2.0 * log2_n;
    let mut syntax_data = Neumaier::default();
    for a in 0..a_count {
        let lo = model.template_offset[a] as usize;
        let hi = model.template_offset[a + 1] as usize;
        let n_a: u64 = template_counts[lo..hi].iter().sum();
        for &c in &template_counts[lo..hi] {
            if c > 0 {
                syntax_data.add(-(c as f64) * (c as f64 / n_a as f64).log2());
            }
        }
    }
    syntax_data.add(n * log_attribute_orders(model) / LN_2);
    let syntax_data = syntax_data.value();

    // Unstored entities: every document pays its name and its stated values.
    let kk = order.len();
    let mut unstored_suffix = vec![0.0f64; kk + 1];
    {
        let mut acc = Neumaier::default();
        for (r, &k) in order.iter().enumerate().rev() {
            let k = k as usize;
            acc.add(counts[k] as f64 * log2_u + stated_value_bits[k]);
            unstored_suffix[r] = acc.value();
        }
    }
    let mut model_bits = Vec::with_capacity(kk + 1);
    let mut data_bits = Vec::with_capacity(kk + 1);
    let mut stored_model = Neumaier::default();
    let mut stored_data = Neumaier::default();
    let mut stored_docs = 0u64;
    for r in 0..=kk {
        let unstored_docs = n_docs as u64 - stored_docs;
        let flag_bits = if unstored_docs > 0 {
            -(unstored_docs as f64) * (unstored_docs as f64 / n).log2()
        } else {
            0.0
        };
        model_bits.push(syntax_model + stored_model.value());
        data_bits.push(Neumaier::of([
            syntax_data,
            stored_data.value(),
            flag_bits,
            unstored_suffix[r],
        ]));
        if r < kk {
            let k = order[r] as usize;
            let c = counts[k] as f64;
            stored_model.add(log2_u + stored_value_bits[k] + log2_n);
            stored_data.add(-c * (c / n).log2());
            stored_docs += counts[k];
        }
    }
    let sorted_counts = order.iter().map(|&k| counts[k as usize]).collect();
    Ok(StructureFunction {
        n_docs: n_docs as u64,
        order,
        counts: sorted_counts,
        model_bits,
        data_bits,
    })
}
