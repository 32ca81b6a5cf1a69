//! The Syntax-Knowledge sampler (SPEC 3).
//!
//! Three stages per batch of documents:
//! 1. **latent, sequential**: the PYCRP draw of each document's entity (one CRP stream), and the
//!    creation of new entities (name uniform over unused names, values from `H_a`, each from the
//!    entity's own stream);
//! 2. **records, parallel**: each document's attribute order and templates from its own stream,
//!    and its length. This does not depend on the entities, so it runs *while* stage 1 runs:
//!    the CRP draws on one thread until the records are done, and whatever is left of it is
//!    drawn in pieces beside the render of the documents already drawn, so with two or more
//!    threads the sequential pass is hidden;
//! 3. **render, parallel**: tokens and roles copied from precomputed template renderings in
//!    fixed-width blocks (no per-token loop or branch), with the name and value slots patched in,
//!    into uninitialised output (every element is written exactly once, checked per chunk).
//!
//! Stages 2 and 3 depend only on `(seed, document index, entity table)`, and the CRP's draws do
//! not depend on where it pauses, so the output is bit-identical for any thread count and batch
//! split, and prefixes are nested.
//!
//! Random numbers per document (a counter-based [`CounterRng`] stream): the attribute order is one
//! exact draw of the whole ordered m-subset ([`Words::mixed_radix`], or one index into a table of
//! all of them when there are few); each template is one alias draw.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::alloc;
use crate::config::{AttributeOrder, Config};
use crate::error::{ConfigError, CorpusError};
use crate::grammar::{Grammar, BOS, EOS};
use crate::rng::{alias_coin, stream, AliasTable, CounterRng, Rng, StreamKey, Words};
use crate::theory;

/// Documents per parallel work item: large enough to amortise scheduling, small enough to
/// balance two to sixteen threads.
const CHUNK_DOCS: usize = 2048;

/// Widths in tokens of the fixed-size template copies of the render fast path. A sentence is
/// copied as a whole block (a few vector moves) and the tokens past its end are overwritten by
/// whatever follows; the narrowest width that holds the longest template is used, and templates
/// longer than the widest take an exact (slower) path.
const NARROW: usize = 16;
const WIDE: usize = 32;

/// Largest product of ranges drawn from one 64-bit word (attribute orders): keeps the mixed-radix
/// rejection probability below 2^-24.
const MAX_RADIX_PRODUCT: u64 = 1 << 40;

/// Largest attribute-order table (`P * m` ids) kept to replace the swaps: 128 KB.
const MAX_ORDER_TABLE: u64 = 1 << 16;

/// A token word: `u16` when the vocabulary fits, else `u32` (SPEC 1).
pub trait TokenWord: Copy + Default + Send + Sync + 'static {
    const DTYPE: &'static str;
    fn from_u32(x: u32) -> Self;
    fn to_u32(self) -> u32;
}
impl TokenWord for u16 {
    const DTYPE: &'static str = "<u2";
    #[inline(always)]
    fn from_u32(x: u32) -> Self {
        x as u16
    }
    #[inline(always)]
    fn to_u32(self) -> u32 {
        self as u32
    }
}
impl TokenWord for u32 {
    const DTYPE: &'static str = "<u4";
    #[inline(always)]
    fn from_u32(x: u32) -> Self {
        x
    }
    #[inline(always)]
    fn to_u32(self) -> u32 {
        self
    }
}

/// Token storage of either width.
#[derive(Clone, Debug, PartialEq)]
pub enum Tokens {
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Tokens {
    pub fn len(&self) -> usize {
        match self {
            Tokens::U16(v) => v.len(),
            Tokens::U32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Tokens::U16(v) => v[i] as u32,
            Tokens::U32(v) => v[i],
        }
    }
    pub fn to_u32_vec(&self) -> Vec<u32> {
        match self {
            Tokens::U16(v) => v.iter().map(|&x| x as u32).collect(),
            Tokens::U32(v) => v.clone(),
        }
    }
}

/// The entity table (SPEC 3.5), `K` rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entities {
    /// `K x J` name token ids, row-major.
    pub names: Vec<u32>,
    /// `K x A` value token ids, row-major.
    pub values: Vec<u32>,
    /// Index of the document that created the entity.
    pub first_doc: Vec<u64>,
    /// Number of documents about the entity so far.
    pub counts: Vec<u64>,
}

impl Entities {
    pub fn len(&self) -> usize {
        self.counts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// One batch of rendered documents (a whole in-memory corpus, or one shard of a stream).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch<T> {
    /// Index of the first document of the batch in the corpus.
    pub first_doc: u64,
    pub tokens: Vec<T>,
    pub roles: Vec<u8>,
    /// `n + 1` offsets into `tokens`, starting at 0 (relative to the batch).
    pub doc_offsets: Vec<u64>,
    pub doc_entity: Vec<u32>,
    /// `n x m` attribute ids, row-major.
    pub sentence_attribute: Vec<u16>,
    /// `n x m` template ids, row-major.
    pub sentence_template: Vec<u16>,
}

/// An in-memory corpus: everything of SPEC 3.5.
#[derive(Clone, Debug, PartialEq)]
pub struct Corpus {
    pub config: Config,
    pub tokens: Tokens,
    pub roles: Vec<u8>,
    pub doc_offsets: Vec<u64>,
    pub doc_entity: Vec<u32>,
    pub sentence_attribute: Vec<u16>,
    pub sentence_template: Vec<u16>,
    pub entities: Entities,
    pub theta: Vec<Vec<f64>>,
}

impl Corpus {
    pub fn n_docs(&self) -> usize {
        self.doc_entity.len()
    }
}

/// Wall-clock time of the stages of the last batch, for profiling. The CRP pass and the records
/// run concurrently, so `crp + records + render` may exceed `total`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimes {
    /// Stage 1: PYCRP draws and entity creation (sequential).
    pub crp: Duration,
    /// Stage 2: attribute orders, templates and document lengths (parallel).
    pub records: Duration,
    /// Stage 3: the token and role arrays (parallel), allocation included.
    pub render: Duration,
    /// The whole `next_batch` call.
    pub total: Duration,
}

/// Mixes a u64 key (already random-looking name indices need little work): one multiply-xorshift.
#[derive(Default)]
struct MixHasher(u64);
impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01B3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        let z = (x ^ (x >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        self.0 = z ^ (z >> 32);
    }
}
type NameSet = HashSet<u64, BuildHasherDefault<MixHasher>>;

/// Upper bound on `prod_j L_j` so that a name index fits in a u64 draw.
const MAX_NAME_SPACE: f64 = 9.0e18;

/// What the records stage needs: the per-document law of attribute orders and templates.
struct DocumentLaw {
    key: StreamKey,
    m: usize,
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
    attribute_span: Vec<(u32, u32)>,
    /// The alias tables of `theta`, flat over `(attribute, template)`, with the rendered
    /// lengths of both outcomes of each column folded in.
    cells: Vec<TemplateCell>,
    /// Longest rendered template, in tokens.
    max_template_len: usize,
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
    fn new(grammar: &Grammar, theta: &[Vec<f64>], seed: u64) -> Self {
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

    /// Draws the records of the documents `first_doc..first_doc + ends.len()`: attribute and
    /// template ids (`m` per document) and each document's end offset relative to the chunk
    /// start. Writes every element of `attrs`, `temps` and `ends`; returns the chunk's total
    /// length in tokens.
    fn records(
        &self,
        first_doc: u64,
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
            let mut rng: CounterRng = self.key.counter(first_doc + d as u64);
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

/// A template rendering as a fixed-width block of the output token type (render fast path),
/// with its shape.
struct BankEntry<T, const W: usize> {
    tokens: [MaybeUninit<T>; W],
    roles: [MaybeUninit<u8>; W],
    len: u32,
    name_at: u32,
    value_at: u32,
    /// Whether the template fits in the block.
    short: bool,
}

/// Everything the render stage reads.
struct Renderer<'a, T, const W: usize> {
    grammar: &'a Grammar,
    /// Flat over `(attribute, template)`, as `DocumentLaw::cells`.
    bank: Vec<BankEntry<T, W>>,
    attribute_span: &'a [(u32, u32)],
    m: usize,
}

/// The inputs of one render call: the records of the documents and the entity table.
#[derive(Clone, Copy)]
struct RenderSource<'a> {
    attrs: &'a [u16],
    temps: &'a [u16],
    doc_entity: &'a [u32],
    names: &'a [u32],
    values: &'a [u32],
}

impl<'a, T: TokenWord, const W: usize> Renderer<'a, T, W> {
    fn new(grammar: &'a Grammar, law: &'a DocumentLaw) -> Self {
        let bank = grammar
            .templates
            .iter()
            .flatten()
            .map(|tpl| {
                let mut e = BankEntry {
                    tokens: [MaybeUninit::new(T::default()); W],
                    roles: [MaybeUninit::new(0u8); W],
                    len: tpl.len() as u32,
                    name_at: tpl.name_at as u32,
                    value_at: tpl.value_at as u32,
                    short: tpl.len() <= W,
                };
                if e.short {
                    for (o, &x) in e.tokens.iter_mut().zip(&tpl.tokens) {
                        *o = MaybeUninit::new(T::from_u32(x));
                    }
                    for (o, &x) in e.roles.iter_mut().zip(&tpl.roles) {
                        *o = MaybeUninit::new(x);
                    }
                }
                e
            })
            .collect();
        Renderer {
            grammar,
            bank,
            attribute_span: &law.attribute_span,
            m: law.m,
        }
    }

    /// Renders documents into `toks`/`rols`, which must be exactly their total length (see
    /// [`Renderer::render_names`]).
    fn render(
        &self,
        src: RenderSource<'_>,
        toks: &mut [MaybeUninit<T>],
        rols: &mut [MaybeUninit<u8>],
    ) {
        // Name patches of a known length compile to a few fixed stores instead of a loop.
        match self.grammar.n_name_parts() {
            1 => self.render_names::<1>(src, toks, rols),
            2 => self.render_names::<2>(src, toks, rols),
            3 => self.render_names::<3>(src, toks, rols),
            4 => self.render_names::<4>(src, toks, rols),
            _ => self.render_names::<0>(src, toks, rols),
        }
    }

    /// [`Renderer::render`] for `J` name parts (`J = 0`: any number, known at run time). Writes
    /// every element: position `p` is last written by the sentence (or BOS/EOS) that owns it,
    /// because every write starts at or after the current position.
    #[inline(never)]
    fn render_names<const J: usize>(
        &self,
        src: RenderSource<'_>,
        toks: &mut [MaybeUninit<T>],
        rols: &mut [MaybeUninit<u8>],
    ) {
        let RenderSource {
            attrs,
            temps,
            doc_entity,
            names,
            values,
        } = src;
        let m = self.m;
        let a_count = self.attribute_span.len();
        let j_count = self.grammar.n_name_parts();
        debug_assert!(J == 0 || J == j_count);
        let cap = toks.len();
        assert_eq!(cap, rols.len());
        let mut pos = 0usize;
        let mut name_block = [MaybeUninit::new(T::default()); J];
        for ((&k, row_a), row_t) in doc_entity
            .iter()
            .zip(attrs.chunks_exact(m))
            .zip(temps.chunks_exact(m))
        {
            let k = k as usize;
            let name = &names[k * j_count..(k + 1) * j_count];
            let vals = &values[k * a_count..(k + 1) * a_count];
            for (o, &x) in name_block.iter_mut().zip(name) {
                *o = MaybeUninit::new(T::from_u32(x));
            }
            toks[pos] = MaybeUninit::new(T::from_u32(BOS));
            rols[pos] = MaybeUninit::new(0);
            pos += 1;
            for (&a, &t) in row_a.iter().zip(row_t) {
                let a = a as usize;
                let e = &self.bank[(self.attribute_span[a].0 + t as u32) as usize];
                let len = e.len as usize;
                if pos + W <= cap && e.short {
                    let dst: &mut [MaybeUninit<T>; W] =
                        (&mut toks[pos..pos + W]).try_into().expect("block");
                    *dst = e.tokens;
                    let dst: &mut [MaybeUninit<u8>; W] =
                        (&mut rols[pos..pos + W]).try_into().expect("block");
                    *dst = e.roles;
                } else {
                    let tpl = &self.grammar.templates[a][t as usize];
                    for (o, &x) in toks[pos..pos + len].iter_mut().zip(&tpl.tokens) {
                        *o = MaybeUninit::new(T::from_u32(x));
                    }
                    for (o, &x) in rols[pos..pos + len].iter_mut().zip(&tpl.roles) {
                        *o = MaybeUninit::new(x);
                    }
                }
                let out = &mut toks[pos..pos + len];
                let name_at = e.name_at as usize;
                if J > 0 {
                    let dst: &mut [MaybeUninit<T>; J] =
                        (&mut out[name_at..name_at + J]).try_into().expect("name");
                    *dst = name_block;
                } else {
                    for (o, &x) in out[name_at..name_at + j_count].iter_mut().zip(name) {
                        *o = MaybeUninit::new(T::from_u32(x));
                    }
                }
                out[e.value_at as usize] = MaybeUninit::new(T::from_u32(vals[a]));
                pos += len;
            }
            toks[pos] = MaybeUninit::new(T::from_u32(EOS));
            rols[pos] = MaybeUninit::new(0);
            pos += 1;
        }
        // The offsets handed in must match what was written: this is what makes every element of
        // the output initialised (checked in release builds too, it is once per chunk).
        assert_eq!(pos, cap, "render wrote {pos} tokens into a span of {cap}");
    }

    /// Renders every chunk of `work` in parallel (on the current rayon pool). `src` covers the
    /// whole batch; each chunk takes its documents' part.
    fn render_chunks(&self, work: Vec<RenderWork<'_, T>>, src: RenderSource<'_>) {
        let m = self.m;
        work.into_par_iter().for_each(|w| {
            for o in w.offsets.iter_mut() {
                *o += w.base;
            }
            let (lo, hi) = (w.docs.start, w.docs.end);
            let part = RenderSource {
                attrs: &src.attrs[lo * m..hi * m],
                temps: &src.temps[lo * m..hi * m],
                doc_entity: &src.doc_entity[lo..hi],
                ..src
            };
            self.render(part, w.tokens, w.roles);
        })
    }
}

/// One chunk of the render stage: its documents, and its disjoint spans of the outputs.
struct RenderWork<'o, T> {
    docs: std::ops::Range<usize>,
    /// Token offset of the chunk in the batch; added to its chunk-relative `offsets`.
    base: u64,
    tokens: &'o mut [MaybeUninit<T>],
    roles: &'o mut [MaybeUninit<u8>],
    offsets: &'o mut [u64],
}

/// The sampler's state: grammar, syntax parameters, and the knowledge drawn so far.
pub struct Sampler {
    pub grammar: Grammar,
    pub theta: Vec<Vec<f64>>,
    law: DocumentLaw,
    entity_key: StreamKey,
    crp_rng: Rng,
    /// Entity of every document drawn so far (the CRP's "pick an earlier document" needs it).
    z: Vec<u32>,
    pub entities: Entities,
    used_names: NameSet,
    name_space: u64,
    /// Thread pool of the last explicit thread count, kept across batches.
    pool: Option<(usize, rayon::ThreadPool)>,
    times: StageTimes,
}

/// The syntax parameters of a configuration: explicit, or `Dirichlet(gamma)` from the theta stream.
pub fn draw_theta(config: &Config) -> Vec<Vec<f64>> {
    if let Some(t) = &config.theta {
        return t.clone();
    }
    let mut rng = Rng::keyed(config.seed, stream::THETA, 0);
    (0..config.n_attributes)
        .map(|a| rng.dirichlet_symmetric(config.n_templates(a) as usize, config.template_prior))
        .collect()
}

/// `E[K_n]` for the name-supply check of [`Sampler::new`], in O(1) instead of the O(n)
/// logarithms of [`theory::expected_entities`] (which it equals up to `EXACT_TERMS` documents).
///
/// Beyond, the sum `L = sum_{i=1}^{n-1} log1p(alpha / (beta + i))` of the closed form is exact up
/// to `EXACT_TERMS` and continues by the midpoint rule, `sum_{i=a}^{b-1} f(i) ~ F(b - 1/2) -
/// F(a - 1/2)` with the antiderivative `F(x) = (x + beta) log1p(alpha / (x + beta)) + alpha
/// ln(x + beta + alpha)`, written so that nothing cancels (error ~ alpha / (beta + a)^2, 1e-9
/// relative); for `alpha = 0` the harmonic sum continues the same way with `F = beta ln(x +
/// beta)`. Agreement with the exact sum: 1e-8 relative or better (tested), far more than the
/// check needs.
pub fn expected_entities_fast(n: f64, alpha: f64, beta: f64) -> f64 {
    const EXACT_TERMS: f64 = 10_000.0;
    if n <= EXACT_TERMS {
        return theory::expected_entities(n, alpha, beta);
    }
    let a = EXACT_TERMS - 0.5;
    let b = n - 0.5;
    if alpha == 0.0 {
        let head = theory::expected_entities(EXACT_TERMS, alpha, beta);
        return head + beta * ((beta + b) / (beta + a)).ln();
    }
    let head: f64 = (1..EXACT_TERMS as u64)
        .map(|i| (alpha / (beta + i as f64)).ln_1p())
        .sum();
    let f = |x: f64| (x + beta) * (alpha / (x + beta)).ln_1p();
    let tail = f(b) - f(a) + alpha * ((b + beta + alpha) / (a + beta + alpha)).ln();
    let l = head + tail;
    (beta * l.exp_m1() + alpha * l.exp()) / alpha
}

/// What to do when a batch does not fit in memory.
const TOO_LARGE_HINT: &str = "; sample fewer documents at once, or stream them to disk with \
     generate() (bounded memory)";

fn try_with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>, CorpusError> {
    alloc::try_with_capacity(n, what, TOO_LARGE_HINT)
}

fn too_large(bytes: usize, what: &str) -> CorpusError {
    alloc::too_large(bytes, what, TOO_LARGE_HINT)
}

/// Asks the kernel to back a large, not yet touched output buffer with 2 MB pages: filling it
/// then takes one page fault per 2 MB instead of one per 4 KB (the same advice numpy gives for its
/// large arrays). Only the 2 MB-aligned part of the buffer is advised; failure is harmless.
#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(v: &Vec<T>) {
    use std::ffi::{c_int, c_void};
    extern "C" {
        fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
    }
    const MADV_HUGEPAGE: c_int = 14;
    const HUGE: usize = 2 << 20;
    let start = v.as_ptr() as usize;
    let end = start + v.capacity() * std::mem::size_of::<T>();
    let lo = start.div_ceil(HUGE) * HUGE;
    let hi = end / HUGE * HUGE;
    if hi >= lo + 2 * HUGE {
        // SAFETY: `lo..hi` lies inside the vector's own allocation, and MADV_HUGEPAGE only
        // changes how the kernel backs those pages (never their contents or validity). The
        // result is ignored: without the advice the buffer simply uses small pages.
        unsafe {
            madvise(lo as *mut c_void, hi - lo, MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_v: &Vec<T>) {}

fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// The CRP state, borrowed apart from the rest of the sampler so that stage 1 can run beside
/// stages 2 and 3. New entities' names and values go to side buffers, appended to the table by
/// [`Crp::flush`] between pieces, so the render stage can read the table meanwhile.
struct Crp<'a> {
    grammar: &'a Grammar,
    entity_key: StreamKey,
    rng: &'a mut Rng,
    z: &'a mut Vec<u32>,
    counts: &'a mut Vec<u64>,
    first_doc: &'a mut Vec<u64>,
    used_names: &'a mut NameSet,
    name_space: u64,
    new_names: Vec<u32>,
    new_values: Vec<u32>,
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

    /// The PYCRP draws of the next `n` documents' entities (SPEC 3.2; O(1) expected per draw,
    /// SPEC 3.4).
    fn draw(&mut self, n: usize) -> Result<(), CorpusError> {
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
    fn draw_until(&mut self, n: usize, stop: &AtomicBool) -> Result<usize, CorpusError> {
        let mut done = 0;
        while done < n && !stop.load(Ordering::Relaxed) {
            let step = (n - done).min(256);
            self.draw(step)?;
            done += step;
        }
        Ok(done)
    }

    /// Appends the entities created since the last flush to the table.
    fn flush(&mut self, names: &mut Vec<u32>, values: &mut Vec<u32>) {
        names.append(&mut self.new_names);
        values.append(&mut self.new_values);
    }
}

/// What the CRP has not drawn while the records were made is drawn in pieces of about
/// `1/PIECES` of the batch, each beside the render of the documents already drawn.
const PIECES: usize = 8;

impl Sampler {
    /// A sampler that will draw up to `planned_docs` documents; the configuration is validated,
    /// including the name supply `U >= 100 E[K_N]` (SPEC 2).
    pub fn new(config: &Config, planned_docs: u64) -> Result<Self, ConfigError> {
        let grammar = Grammar::new(config)?;
        let u = config.name_space();
        if u > MAX_NAME_SPACE {
            return Err(ConfigError::field(
                "name_parts",
                format!("the product of the list sizes ({u:e}) must stay below {MAX_NAME_SPACE:e}"),
            ));
        }
        let expected = expected_entities_fast(planned_docs as f64, config.alpha, config.beta);
        if u < 100.0 * expected {
            return Err(ConfigError::field(
                "name_parts",
                format!(
                    "too few names: U = prod(name_parts) = {u} but {planned_docs} documents need \
                     U >= 100 * E[K_N] = {:.0} (SPEC 2); enlarge name_parts or draw fewer documents",
                    100.0 * expected
                ),
            ));
        }
        let theta = draw_theta(config);
        let law = DocumentLaw::new(&grammar, &theta, config.seed);
        Ok(Sampler {
            grammar,
            theta,
            law,
            entity_key: StreamKey::new(config.seed, stream::ENTITY),
            crp_rng: Rng::keyed(config.seed, stream::CRP, 0),
            z: Vec::new(),
            entities: Entities::default(),
            // Room for the expected number of entities (capped), so the set rarely regrows.
            used_names: NameSet::with_capacity_and_hasher(
                (1.25 * expected).min(4e6) as usize,
                Default::default(),
            ),
            name_space: u as u64,
            pool: None,
            times: StageTimes::default(),
        })
    }

    /// Number of documents drawn so far.
    pub fn n_docs(&self) -> u64 {
        self.z.len() as u64
    }

    /// Stage timings of the last [`next_batch`](Self::next_batch) call.
    pub fn stage_times(&self) -> StageTimes {
        self.times
    }

    /// Runs `f` on a pool of `threads` threads (None: rayon's global pool, all cores).
    fn with_pool<R: Send>(
        pool: &mut Option<(usize, rayon::ThreadPool)>,
        threads: Option<usize>,
        f: impl FnOnce() -> R + Send,
    ) -> Result<R, CorpusError> {
        match threads {
            None => Ok(f()),
            Some(t) => {
                if pool.as_ref().map(|(n, _)| *n) != Some(t) {
                    *pool = Some((t, thread_pool(Some(t))?));
                }
                Ok(pool.as_ref().expect("pool").1.install(f))
            }
        }
    }

    /// Draws and renders the next `n` documents with `threads` threads (None: all cores).
    ///
    /// On error (names ran out, allocation failure) the sampler must be discarded: its CRP state
    /// may be partly advanced.
    pub fn next_batch<T: TokenWord>(
        &mut self,
        n: usize,
        threads: Option<usize>,
    ) -> Result<Batch<T>, CorpusError> {
        if self.law.max_template_len <= NARROW {
            self.batch_with::<T, NARROW>(n, threads)
        } else {
            self.batch_with::<T, WIDE>(n, threads)
        }
    }

    fn batch_with<T: TokenWord, const W: usize>(
        &mut self,
        n: usize,
        threads: Option<usize>,
    ) -> Result<Batch<T>, CorpusError> {
        let t0 = Instant::now();
        let first = self.z.len();
        let m = self.law.m;
        let cells = n
            .checked_mul(m)
            .ok_or_else(|| too_large(usize::MAX, "the sentence records"))?;
        self.z
            .try_reserve(n)
            .map_err(|_| too_large(n.saturating_mul(4), "the CRP's document-entity table"))?;
        let mut sentence_attribute: Vec<u16> = try_with_capacity(cells, "the sentence attributes")?;
        let mut sentence_template: Vec<u16> = try_with_capacity(cells, "the sentence templates")?;
        let mut doc_offsets: Vec<u64> = try_with_capacity(n + 1, "the document offsets")?;
        advise_huge_pages(&sentence_attribute);
        advise_huge_pages(&sentence_template);
        advise_huge_pages(&doc_offsets);
        doc_offsets.resize(n + 1, 0);
        let mut doc_entity: Vec<u32> = try_with_capacity(n, "the document entities")?;
        let n_chunks = n.div_ceil(CHUNK_DOCS);

        let Sampler {
            grammar,
            law,
            entity_key,
            crp_rng,
            z,
            entities,
            used_names,
            name_space,
            pool,
            ..
        } = self;
        let Entities {
            names,
            values,
            first_doc: entity_first_doc,
            counts,
        } = entities;
        let mut crp = Crp {
            grammar,
            entity_key: *entity_key,
            rng: crp_rng,
            z,
            counts,
            first_doc: entity_first_doc,
            used_names,
            name_space: *name_space,
            new_names: Vec::new(),
            new_values: Vec::new(),
        };
        let law: &DocumentLaw = law;
        let renderer = Renderer::<T, W>::new(grammar, law);
        let mut times = StageTimes::default();

        let outcome = Self::with_pool(
            pool,
            threads,
            || -> Result<(Vec<T>, Vec<u8>), CorpusError> {
                // Stage 2 for the whole batch beside stage 1, which draws until the records are
                // done (all of it with one thread: the join runs the CRP first).
                let records_done = AtomicBool::new(false);
                let sa_out = &mut sentence_attribute.spare_capacity_mut()[..cells];
                let st_out = &mut sentence_template.spare_capacity_mut()[..cells];
                let ends = &mut doc_offsets[1..];
                let ((drawn, crp_time), (chunk_totals, records_time)) = rayon::join(
                    || timed(|| crp.draw_until(n, &records_done)),
                    || {
                        timed(|| -> Vec<u64> {
                            let totals = sa_out
                                .par_chunks_mut(CHUNK_DOCS * m)
                                .zip(st_out.par_chunks_mut(CHUNK_DOCS * m))
                                .zip(ends.par_chunks_mut(CHUNK_DOCS))
                                .enumerate()
                                .map(|(c, ((attrs, temps), e))| {
                                    law.records((first + c * CHUNK_DOCS) as u64, attrs, temps, e)
                                })
                                .collect();
                            records_done.store(true, Ordering::Relaxed);
                            totals
                        })
                    },
                );
                let mut done = drawn?;
                times.crp += crp_time;
                times.records = records_time;
                // SAFETY: `records` wrote every element of both spans (`cells` each).
                unsafe {
                    sentence_attribute.set_len(cells);
                    sentence_template.set_len(cells);
                }
                crp.flush(names, values);
                doc_entity.extend_from_slice(&crp.z[first..first + done]);

                // Stage 3 into uninitialised output, chunk by chunk into disjoint spans.
                let t_alloc = Instant::now();
                let total = chunk_totals.iter().sum::<u64>();
                let total = usize::try_from(total)
                    .map_err(|_| too_large(usize::MAX, "the token stream"))?;
                let mut tokens: Vec<T> = try_with_capacity(total, "the token stream")?;
                let mut roles: Vec<u8> = try_with_capacity(total, "the token roles")?;
                advise_huge_pages(&tokens);
                advise_huge_pages(&roles);
                let mut work = Vec::with_capacity(n_chunks);
                {
                    let mut tok_rest = &mut tokens.spare_capacity_mut()[..total];
                    let mut role_rest = &mut roles.spare_capacity_mut()[..total];
                    let mut offsets_rest = &mut doc_offsets[1..];
                    let mut base = 0u64;
                    for (c, &span) in chunk_totals.iter().enumerate() {
                        let docs = c * CHUNK_DOCS..((c + 1) * CHUNK_DOCS).min(n);
                        let (t_here, t_next) =
                            std::mem::take(&mut tok_rest).split_at_mut(span as usize);
                        let (r_here, r_next) =
                            std::mem::take(&mut role_rest).split_at_mut(span as usize);
                        let (o_here, o_next) =
                            std::mem::take(&mut offsets_rest).split_at_mut(docs.len());
                        tok_rest = t_next;
                        role_rest = r_next;
                        offsets_rest = o_next;
                        work.push(RenderWork {
                            docs,
                            base,
                            tokens: t_here,
                            roles: r_here,
                            offsets: o_here,
                        });
                        base += span;
                    }
                }
                times.render += t_alloc.elapsed();

                // The chunks whose entities are drawn render while the CRP draws the next piece.
                let piece = n.div_ceil(PIECES).div_ceil(CHUNK_DOCS).max(1) * CHUNK_DOCS;
                let mut work = work.into_iter();
                let mut rendered = 0;
                while rendered < n_chunks {
                    let ready = if done == n {
                        n_chunks
                    } else {
                        done / CHUNK_DOCS
                    };
                    let piece_work: Vec<_> = work.by_ref().take(ready - rendered).collect();
                    let next = piece.min(n - done);
                    let src = RenderSource {
                        attrs: &sentence_attribute,
                        temps: &sentence_template,
                        doc_entity: &doc_entity,
                        names,
                        values,
                    };
                    let ((drawn, crp_time), ((), render_time)) = rayon::join(
                        || timed(|| crp.draw(next)),
                        || timed(|| renderer.render_chunks(piece_work, src)),
                    );
                    drawn?;
                    times.crp += crp_time;
                    times.render += render_time;
                    crp.flush(names, values);
                    doc_entity.extend_from_slice(&crp.z[first + done..first + done + next]);
                    done += next;
                    rendered = ready;
                }
                debug_assert_eq!(done, n);
                // SAFETY: the spans handed to the render stage partition `0..total`, and each span
                // was checked (assert in `render`) to be written from its first to its last element.
                unsafe {
                    tokens.set_len(total);
                    roles.set_len(total);
                }
                Ok((tokens, roles))
            },
        )?;
        let (tokens, roles) = outcome?;
        times.total = t0.elapsed();
        self.times = times;
        Ok(Batch {
            first_doc: first as u64,
            tokens,
            roles,
            doc_offsets,
            doc_entity,
            sentence_attribute,
            sentence_template,
        })
    }
}

/// Most threads a sampler pool may have (a typo like `threads=100000` must not try to start
/// that many OS threads).
pub const MAX_THREADS: usize = 1024;

/// Checks a thread count: `None` means all cores, `Some(t)` needs `1 <= t <= MAX_THREADS`.
/// Every entry point that takes `threads` (sampling, streaming, code lengths, learning curves)
/// goes through this, so they accept and reject the same values.
pub fn check_threads(threads: Option<usize>) -> Result<Option<usize>, CorpusError> {
    match threads {
        Some(t) if t == 0 || t > MAX_THREADS => Err(CorpusError::Argument(format!(
            "threads must be in 1..={MAX_THREADS} (or None for all cores), got {t}"
        ))),
        _ => Ok(threads),
    }
}

/// A rayon pool with the requested number of threads (None: all cores).
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, CorpusError> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = check_threads(threads)? {
        b = b.num_threads(t);
    }
    b.build()
        .map_err(|e| CorpusError::Argument(format!("cannot start {threads:?} threads: {e}")))
}

/// Whether a configuration's vocabulary needs 32-bit tokens.
pub fn needs_u32(grammar: &Grammar) -> bool {
    grammar.layout.vocab_size > 65_536
}

/// Samples a whole corpus in memory (SPEC 3).
pub fn sample(config: &Config, n_docs: u64, threads: Option<usize>) -> Result<Corpus, CorpusError> {
    let mut sampler = Sampler::new(config, n_docs)?;
    let n =
        usize::try_from(n_docs).map_err(|_| CorpusError::Argument("n_docs too large".into()))?;
    let (tokens, roles, doc_offsets, doc_entity, sentence_attribute, sentence_template) =
        if needs_u32(&sampler.grammar) {
            let b = sampler.next_batch::<u32>(n, threads)?;
            (
                Tokens::U32(b.tokens),
                b.roles,
                b.doc_offsets,
                b.doc_entity,
                b.sentence_attribute,
                b.sentence_template,
            )
        } else {
            let b = sampler.next_batch::<u16>(n, threads)?;
            (
                Tokens::U16(b.tokens),
                b.roles,
                b.doc_offsets,
                b.doc_entity,
                b.sentence_attribute,
                b.sentence_template,
            )
        };
    Ok(Corpus {
        config: config.clone(),
        tokens,
        roles,
        doc_offsets,
        doc_entity,
        sentence_attribute,
        sentence_template,
        theta: sampler.theta,
        entities: sampler.entities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Config {
        Config {
            seed: 3,
            ..Config::default()
        }
    }

    #[test]
    fn threads_and_batches_do_not_change_output() {
        let c = small();
        let one = sample(&c, 5000, Some(1)).unwrap();
        let two = sample(&c, 5000, Some(2)).unwrap();
        assert_eq!(one, two);
        let mut s = Sampler::new(&c, 5000).unwrap();
        let mut toks = Vec::new();
        for n in [1, 999, 2048, 1952] {
            let b = s.next_batch::<u16>(n, Some(2)).unwrap();
            toks.extend(b.tokens);
        }
        assert_eq!(Tokens::U16(toks), one.tokens);
        assert_eq!(s.entities, one.entities);
    }

    #[test]
    fn prefixes_are_nested() {
        let c = small();
        let short = sample(&c, 700, None).unwrap();
        let long = sample(&c, 3000, None).unwrap();
        let end = short.doc_offsets[700] as usize;
        assert_eq!(short.tokens.to_u32_vec(), long.tokens.to_u32_vec()[..end]);
        assert_eq!(short.doc_entity, long.doc_entity[..700]);
    }

    #[test]
    fn names_are_unique_and_counts_match() {
        let c = small();
        let corpus = sample(&c, 20_000, None).unwrap();
        let e = &corpus.entities;
        let set: HashSet<&[u32]> = e.names.chunks(3).collect();
        assert_eq!(set.len(), e.len());
        let mut counts = vec![0u64; e.len()];
        for &k in &corpus.doc_entity {
            counts[k as usize] += 1;
        }
        assert_eq!(counts, e.counts);
        // Entities are indexed in order of first appearance.
        let mut next = 0;
        for (i, &k) in corpus.doc_entity.iter().enumerate() {
            if k == next {
                assert_eq!(e.first_doc[k as usize], i as u64);
                next += 1;
            }
            assert!(k < next);
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
                law.records(17, &mut attrs, &mut temps, &mut ends);
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

    #[test]
    fn too_few_names_is_an_error() {
        let c = Config {
            name_parts: vec![10, 10],
            ..small()
        };
        let e = Sampler::new(&c, 100_000).err().unwrap().to_string();
        assert!(
            e.contains("name_parts") && e.contains("too few names"),
            "{e}"
        );
    }
}
