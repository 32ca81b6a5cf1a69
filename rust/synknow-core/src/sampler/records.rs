//! Stage 2 of the sampler: each document's attribute order and templates, from its own
//! counter-based stream, and its length in tokens.

use std::mem::MaybeUninit;

use crate::config::AttributeOrder;
use crate::grammar::Grammar;
use crate::rng::{alias_coin, stream, AliasTable, CounterRng, StreamKey, Words};

/// Largest product of ranges drawn from one 64-bit word (attribute orders): keeps the mixed-radix
/// rejection probability below 2^-24.
const MAX_RADIX_PRODUCT: u64 = 1 << 40;

/// Largest attribute-order table (`P * m` ids) kept to replace the swaps: 128 KB.
const MAX_ORDER_TABLE: u64 = 1 << 16;

/// What the records stage needs: the per-document law of attribute orders and templates.
pub(super) struct DocumentLaw {
    key: StreamKey,
    pub(super) m: usize,
    n_attributes: usize,
    shuffled: bool,
    /// Ranges `A, A-1, ..., A-m+1` of the partial Fisher–Yates swaps, grouped so that each
    /// group's product stays below [`MAX_RADIX_PRODUCT`]: `(first, end, product)`.
    swap_groups: Vec<(usize, usize, u64)>,
    swap_ranges: Vec<u32>,
    /// When the number of possible orders `P = A!/(A-m)!` is small: every order, `m` ids each,
    /// indexed by the mixed-radix value of its swap digits, so that one `below(P)` and one
    /// copy replace the swaps (identical results: see [`Words::mixed_radix`]).
    order_table: Option<(u64, Vec<u16>)>,
    /// Per attribute: flat index of its template 0, and its number of templates.
    pub(super) attribute_span: Vec<(u32, u32)>,
    /// The alias tables of `theta`, flat over `(attribute, template)`, with the rendered
    /// lengths of both outcomes of each column folded in.
    cells: Vec<TemplateCell>,
    /// Longest rendered template, in tokens.
    pub(super) max_template_len: usize,
}

/// Partial Fisher–Yates from the identity `order`: swap `s` exchanges positions `s` and
/// `s + digits[s]`; returns the first `digits.len()` entries (a uniform random m-subset in uniform
/// random order when each `digits[s]` is uniform in `[0, A - s)`).
fn partial_shuffle<'a>(order: &'a mut [u16], digits: &[u32]) -> &'a [u16] {
    for (s, &dg) in digits.iter().enumerate() {
        order.swap(s, s + dg as usize);
    }
    &order[..digits.len()]
}

/// Restores the identity after [`partial_shuffle`] (swaps undone in reverse).
fn undo_shuffle(order: &mut [u16], digits: &[u32]) {
    for (s, &dg) in digits.iter().enumerate().rev() {
        order.swap(s, s + dg as usize);
    }
}

/// One column of the flattened template alias tables: the coin threshold, and for both outcomes
/// (index 0: keep the column, 1: take its alias) the template id and its rendered length. The
/// outcome indexes these pairs, so the random coin never becomes a (mispredicted) branch.
#[derive(Clone, Copy, Debug)]
struct TemplateCell {
    threshold: u64,
    template: [u16; 2],
    len: [u32; 2],
}

impl DocumentLaw {
    pub(super) fn new(grammar: &Grammar, theta: &[Vec<f64>], seed: u64) -> Self {
        Self::with_order_table(grammar, theta, seed, true)
    }

    fn with_order_table(grammar: &Grammar, theta: &[Vec<f64>], seed: u64, table: bool) -> Self {
        let config = &grammar.config;
        let (m, a_count) = (config.m(), grammar.n_attributes());
        let swap_ranges: Vec<u32> = (0..m).map(|s| (a_count - s) as u32).collect();
        let mut swap_groups = Vec::new();
        let mut lo = 0;
        while lo < m {
            let (mut hi, mut product) = (lo, 1u64);
            while hi < m && product * swap_ranges[hi] as u64 <= MAX_RADIX_PRODUCT {
                product *= swap_ranges[hi] as u64;
                hi += 1;
            }
            // A range alone always fits: ranges are at most 65535.
            swap_groups.push((lo, hi, product));
            lo = hi;
        }
        let mut attribute_span = Vec::with_capacity(a_count);
        let mut cells = Vec::new();
        for (list, weights) in grammar.templates.iter().zip(theta) {
            attribute_span.push((cells.len() as u32, list.len() as u32));
            let table = AliasTable::new(weights);
            cells.extend((0..list.len()).map(|col| {
                let (threshold, alias) = table.column(col);
                TemplateCell {
                    threshold,
                    template: [col as u16, alias as u16],
                    len: [list[col].len() as u32, list[alias as usize].len() as u32],
                }
            }));
        }
        let shuffled = config.attribute_order == AttributeOrder::Shuffled;
        let order_table = match swap_groups[..] {
            [(0, _, p)] if table && shuffled && p * m as u64 <= MAX_ORDER_TABLE => {
                let mut rows = Vec::with_capacity(p as usize * m);
                let mut order: Vec<u16> = (0..a_count as u16).collect();
                let mut digits = vec![0u32; m];
                for value in 0..p {
                    // Mixed-radix digits of `value`, most significant first.
                    let mut rest = value;
                    for s in (0..m).rev() {
                        digits[s] = (rest % swap_ranges[s] as u64) as u32;
                        rest /= swap_ranges[s] as u64;
                    }
                    rows.extend_from_slice(partial_shuffle(&mut order, &digits));
                    undo_shuffle(&mut order, &digits);
                }
                Some((p, rows))
            }
            _ => None,
        };
        DocumentLaw {
            key: StreamKey::new(seed, stream::DOCUMENT),
            m,
            n_attributes: a_count,
            shuffled,
            swap_groups,
            order_table,
            swap_ranges,
            attribute_span,
            cells,
            max_template_len: grammar
                .templates
                .iter()
                .flatten()
                .map(|t| t.len())
                .max()
                .unwrap_or(0),
        }
    }

    /// Draws the records of the documents `first_doc + d * stride` for `d` in `0..ends.len()`:
    /// attribute and template ids (`m` per document) and each document's end offset relative to
    /// the chunk start. Writes every element of `attrs`, `temps` and `ends`; returns the chunk's
    /// total length in tokens.
    pub(super) fn records(
        &self,
        first_doc: u64,
        stride: u64,
        attrs: &mut [MaybeUninit<u16>],
        temps: &mut [MaybeUninit<u16>],
        ends: &mut [u64],
    ) -> u64 {
        let (m, a_count) = (self.m, self.n_attributes);
        assert!(attrs.len() == ends.len() * m && temps.len() == attrs.len());
        // `order` is the identity at the start of every document: the swaps are undone after
        // each document (O(m), not O(A)), never carried over (that would tie a document to its
        // chunk).
        let mut order: Vec<u16> = (0..a_count as u16).collect();
        let mut digits = vec![0u32; m];
        let mut row = vec![0u16; m];
        let mut end = 0u64;
        for (d, ((out_a, out_t), e)) in attrs
            .chunks_exact_mut(m)
            .zip(temps.chunks_exact_mut(m))
            .zip(ends.iter_mut())
            .enumerate()
        {
            let mut rng: CounterRng = self.key.counter(first_doc + d as u64 * stride);
            let row_a: &[u16] = if !self.shuffled {
                for (s, x) in row.iter_mut().enumerate() {
                    *x = s as u16;
                }
                &row
            } else if let Some((p, rows)) = &self.order_table {
                let i = rng.below(*p) as usize;
                &rows[i * m..(i + 1) * m]
            } else {
                for &(lo, hi, product) in &self.swap_groups {
                    rng.mixed_radix(&self.swap_ranges[lo..hi], product, &mut digits[lo..hi]);
                }
                row.copy_from_slice(partial_shuffle(&mut order, &digits));
                undo_shuffle(&mut order, &digits);
                &row
            };
            // One alias draw per sentence (as `AliasTable::sample`, on the flat copy).
            let mut len = 2u64;
            for ((&a, oa), ot) in row_a.iter().zip(out_a.iter_mut()).zip(out_t.iter_mut()) {
                let (first, count) = self.attribute_span[a as usize];
                let x = rng.next_u64();
                let col = (((x as u128) * (count as u128)) >> 64) as u32;
                let cell = self.cells[(first + col) as usize];
                let outcome = (alias_coin(x) >= cell.threshold) as usize;
                *oa = MaybeUninit::new(a);
                *ot = MaybeUninit::new(cell.template[outcome]);
                len += cell.len[outcome] as u64;
            }
            end += len;
            *e = end;
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sampler::draw_theta;

    fn small() -> Config {
        Config {
            seed: 3,
            ..Config::default()
        }
    }

    #[test]
    fn order_table_matches_the_swaps() {
        for (a, m) in [(6, 6), (6, 3), (4, 1)] {
            let c = Config {
                attrs_per_doc: Some(m),
                n_attributes: a,
                attribute_pool: vec![0; a],
                pool_sizes: vec![50],
                ..small()
            };
            let g = Grammar::new(&c).unwrap();
            let theta = draw_theta(&c);
            let fast = DocumentLaw::with_order_table(&g, &theta, 5, true);
            let slow = DocumentLaw::with_order_table(&g, &theta, 5, false);
            assert!(fast.order_table.is_some() && slow.order_table.is_none());
            let n = 3000;
            let run = |law: &DocumentLaw| {
                let mut attrs = vec![MaybeUninit::new(0u16); n * m];
                let mut temps = vec![MaybeUninit::new(0u16); n * m];
                let mut ends = vec![0u64; n];
                law.records(17, 1, &mut attrs, &mut temps, &mut ends);
                // SAFETY: initialised above (and overwritten by `records`).
                let read = |v: Vec<MaybeUninit<u16>>| -> Vec<u16> {
                    v.into_iter().map(|x| unsafe { x.assume_init() }).collect()
                };
                (read(attrs), read(temps), ends)
            };
            let out = [run(&fast), run(&slow)];
            assert_eq!(out[0], out[1], "A={a} m={m}");
        }
    }
}
