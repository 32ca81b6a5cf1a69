//! Stage 1 of the sampler: the PYCRP draw of each document's entity, and the creation of new
//! entities (a name uniform over the unused ones, values from `H_a`).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::CorpusError;
use crate::grammar::Grammar;
use crate::hash::IntSet;
use crate::rng::{Rng, StreamKey};

/// The CRP state, borrowed apart from the rest of the sampler so that stage 1 can run beside
/// stages 2 and 3. New entities' names and values go to side buffers, appended to the table by
/// [`Crp::flush`] between pieces, so the render stage can read the table meanwhile.
pub(super) struct Crp<'a> {
    pub(super) grammar: &'a Grammar,
    pub(super) entity_key: StreamKey,
    pub(super) rng: &'a mut Rng,
    pub(super) z: &'a mut Vec<u32>,
    pub(super) counts: &'a mut Vec<u64>,
    pub(super) first_doc: &'a mut Vec<u64>,
    pub(super) used_names: &'a mut IntSet,
    pub(super) name_space: u64,
    pub(super) new_names: Vec<u32>,
    pub(super) new_values: Vec<u32>,
}

impl Crp<'_> {
    /// Creates entity `k` for document `doc`: a name uniform over the unused ones, values from
    /// `H_a`, all from the entity's own stream.
    fn new_entity(&mut self, doc: u64) -> Result<u32, CorpusError> {
        let k = self.counts.len() as u64;
        if k >= self.name_space || k >= u32::MAX as u64 {
            return Err(CorpusError::Argument(format!(
                "names ran out after {k} entities (U = {}); enlarge name_parts",
                self.name_space
            )));
        }
        let mut rng = self.entity_key.rng(k);
        // Uniform over unused names: rejection keeps the draw exactly uniform on the remainder.
        let mut index = loop {
            let idx = rng.below(self.name_space);
            if self.used_names.insert(idx) {
                break idx;
            }
        };
        let layout = &self.grammar.layout;
        let j_count = layout.name_start.len();
        let start = self.new_names.len();
        self.new_names.resize(start + j_count, 0);
        for j in (0..j_count).rev() {
            let l = layout.name_size[j] as u64;
            self.new_names[start + j] = layout.name_start[j] + (index % l) as u32;
            index /= l;
        }
        for a in 0..self.grammar.n_attributes() {
            self.new_values.push(self.grammar.draw_value(a, &mut rng));
        }
        self.first_doc.push(doc);
        self.counts.push(0);
        Ok(k as u32)
    }

    /// The PYCRP draws of the next `n` documents' entities (docs/model.md#knowledge; O(1) expected
    /// per draw,
    /// docs/model.md#randomness).
    pub(super) fn draw(&mut self, n: usize) -> Result<(), CorpusError> {
        let alpha = self.grammar.config.alpha;
        let beta = self.grammar.config.beta;
        for _ in 0..n {
            let i = self.z.len() as u64;
            // Through i64: a u64 -> f64 conversion is a slow instruction sequence on x86-64.
            let k_now = self.counts.len() as i64 as f64;
            let is_new =
                i == 0 || self.rng.uniform() * (i as i64 as f64 + beta) < beta + k_now * alpha;
            let k = if is_new {
                self.new_entity(i)?
            } else {
                // Existing entity with probability ∝ c_k - alpha: pick an earlier document
                // uniformly (∝ c_k), accept with 1 - alpha/c_k, and retry only the pick.
                loop {
                    let k = self.z[self.rng.below(i) as usize];
                    if alpha == 0.0 {
                        break k;
                    }
                    let c = self.counts[k as usize] as i64 as f64;
                    if self.rng.uniform() * c >= alpha {
                        break k;
                    }
                }
            };
            self.counts[k as usize] += 1;
            self.z.push(k);
        }
        Ok(())
    }

    /// Draws up to `n` documents, stopping early (at a multiple of 256 documents) once `stop`
    /// is set; returns the number drawn. The draws do not depend on where it stops.
    pub(super) fn draw_until(&mut self, n: usize, stop: &AtomicBool) -> Result<usize, CorpusError> {
        let mut done = 0;
        while done < n && !stop.load(Ordering::Relaxed) {
            let step = (n - done).min(256);
            self.draw(step)?;
            done += step;
        }
        Ok(done)
    }

    /// Appends the entities created since the last flush to the table.
    pub(super) fn flush(&mut self, names: &mut Vec<u32>, values: &mut Vec<u32>) {
        names.append(&mut self.new_names);
        values.append(&mut self.new_values);
    }
}
