//! The Syntax-Knowledge sampler (docs/model.md#generative-process).
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

mod crp;
mod records;
mod render;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::alloc::{self, advise_huge_pages};
use crate::config::Config;
use crate::error::{ConfigError, CorpusError};
use crate::grammar::Grammar;
use crate::hash::IntSet;
use crate::rng::{stream, Rng, StreamKey};
use crate::theory::expected_entities_fast;
use crate::threads::PoolCache;

use crp::Crp;
use records::DocumentLaw;
use render::{RenderSource, RenderWork, Renderer, NARROW, WIDE};

/// Documents per parallel work item: large enough to amortise scheduling, small enough to
/// balance two to sixteen threads.
const CHUNK_DOCS: usize = 2048;

/// A token word: `u16` when the vocabulary fits, else `u32` (docs/model.md#vocabulary).
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

/// The entity table (docs/model.md#corpus-contents), `K` rows.
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
///
/// Document `j` of the batch is document `first_doc + j * stride` of the corpus (`stride` is 1
/// except for [`Sampler::next_batch_strided`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch<T> {
    /// Index of the first document of the batch in the corpus.
    pub first_doc: u64,
    /// Corpus index step between consecutive documents of the batch.
    pub stride: u64,
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

/// An in-memory corpus: everything of docs/model.md#corpus-contents.
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

/// Upper bound on `prod_j L_j` so that a name index fits in a u64 draw.
const MAX_NAME_SPACE: f64 = 9.0e18;

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
    used_names: IntSet,
    name_space: u64,
    /// Thread pool of the last explicit thread count, kept across batches.
    pool: PoolCache,
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

/// What to do when a batch does not fit in memory.
const TOO_LARGE_HINT: &str = "; sample fewer documents at once, or stream them to disk with \
     generate() (bounded memory)";

fn try_with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>, CorpusError> {
    alloc::try_with_capacity(n, what, TOO_LARGE_HINT)
}

fn too_large(bytes: usize, what: &str) -> CorpusError {
    alloc::too_large(bytes, what, TOO_LARGE_HINT)
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// What the CRP has not drawn while the records were made is drawn in pieces of about
/// `1/PIECES` of the batch, each beside the render of the documents already drawn.
const PIECES: usize = 8;

/// The name supply rule `U >= 100 E[K_N]` for `n_docs` documents
/// (docs/model.md#configuration); returns `E[K_N]`.
fn check_name_supply(config: &Config, n_docs: u64) -> Result<f64, ConfigError> {
    let u = config.name_space();
    if u > MAX_NAME_SPACE {
        return Err(ConfigError::field(
            "name_parts",
            format!("the product of the list sizes ({u:e}) must stay below {MAX_NAME_SPACE:e}"),
        ));
    }
    let expected = expected_entities_fast(n_docs as f64, config.alpha, config.beta);
    if u < 100.0 * expected {
        return Err(ConfigError::field(
            "name_parts",
            format!(
                "too few names: U = prod(name_parts) = {u} but {n_docs} documents need \
                 U >= 100 * E[K_N] = {:.0} (docs/model.md#configuration); enlarge name_parts \
                 or draw fewer documents",
                100.0 * expected
            ),
        ));
    }
    Ok(expected)
}

impl Sampler {
    /// A sampler that will draw up to `planned_docs` documents; the configuration is validated,
    /// including the name supply `U >= 100 E[K_N]` (docs/model.md#configuration).
    pub fn new(config: &Config, planned_docs: u64) -> Result<Self, ConfigError> {
        let grammar = Grammar::new(config)?;
        let expected = check_name_supply(config, planned_docs)?;
        let u = config.name_space();
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
            used_names: IntSet::with_capacity_and_hasher(
                (1.25 * expected).min(4e6) as usize,
                Default::default(),
            ),
            name_space: u as u64,
            pool: PoolCache::default(),
            times: StageTimes::default(),
        })
    }

    /// Number of documents drawn so far.
    pub fn n_docs(&self) -> u64 {
        self.z.len() as u64
    }

    /// Checks the name supply rule for a corpus of `n_docs` documents, the check
    /// [`Sampler::new`] made for its `planned_docs`: a stream that outgrows its plan calls this
    /// to refuse exactly what [`sample`] would refuse.
    pub fn check_planned(&self, n_docs: u64) -> Result<(), ConfigError> {
        check_name_supply(&self.grammar.config, n_docs).map(|_| ())
    }

    /// Draws the entities of the next `n` documents without rendering them, so that the next
    /// batch starts at document `n_docs() + n`. Only the sequential CRP stage runs (the records
    /// and tokens of a document depend on its index alone): tens of nanoseconds and 4 bytes of
    /// memory per document, some thirty times less time than rendering it.
    ///
    /// On error the sampler must be discarded, as after [`next_batch`](Self::next_batch).
    pub fn skip(&mut self, n: u64) -> Result<(), CorpusError> {
        let n = usize::try_from(n)
            .map_err(|_| CorpusError::Argument(format!("cannot skip {n} documents")))?;
        self.z
            .try_reserve(n)
            .map_err(|_| too_large(n.saturating_mul(4), "the CRP's document-entity table"))?;
        let Sampler {
            grammar,
            entity_key,
            crp_rng,
            z,
            entities,
            used_names,
            name_space,
            ..
        } = self;
        let mut crp = Crp {
            grammar,
            entity_key: *entity_key,
            rng: crp_rng,
            z,
            counts: &mut entities.counts,
            first_doc: &mut entities.first_doc,
            used_names,
            name_space: *name_space,
            new_names: Vec::new(),
            new_values: Vec::new(),
        };
        crp.draw(n)?;
        crp.flush(&mut entities.names, &mut entities.values);
        Ok(())
    }

    /// Stage timings of the last [`next_batch`](Self::next_batch) call.
    pub fn stage_times(&self) -> StageTimes {
        self.times
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
        self.next_batch_strided(n, 1, threads)
    }

    /// Renders `n` documents `stride` apart: documents `f, f + stride, ..., f + (n - 1) * stride`
    /// where `f = n_docs()`, leaving the sampler just after the last of them. The documents in
    /// between only take their CRP draw (as in [`skip`](Self::skip)), so one of `S` shards of a
    /// stream that interleaves documents by index renders only its own. Each document is the
    /// one [`next_batch`](Self::next_batch) would render at its index.
    pub fn next_batch_strided<T: TokenWord>(
        &mut self,
        n: usize,
        stride: usize,
        threads: Option<usize>,
    ) -> Result<Batch<T>, CorpusError> {
        if stride == 0 {
            return Err(CorpusError::Argument("stride must be >= 1".into()));
        }
        if self.law.max_template_len <= NARROW {
            self.batch_with::<T, NARROW>(n, stride, threads)
        } else {
            self.batch_with::<T, WIDE>(n, stride, threads)
        }
    }

    fn batch_with<T: TokenWord, const W: usize>(
        &mut self,
        n: usize,
        stride: usize,
        threads: Option<usize>,
    ) -> Result<Batch<T>, CorpusError> {
        let t0 = Instant::now();
        let first = self.z.len();
        let m = self.law.m;
        let cells = n
            .checked_mul(m)
            .ok_or_else(|| too_large(usize::MAX, "the sentence records"))?;
        // Documents drawn by the CRP: every one up to the last rendered.
        let span = match n {
            0 => 0,
            _ => (n - 1)
                .checked_mul(stride)
                .and_then(|s| s.checked_add(1))
                .ok_or_else(|| too_large(usize::MAX, "the CRP's document-entity table"))?,
        };
        self.z
            .try_reserve(span)
            .map_err(|_| too_large(span.saturating_mul(4), "the CRP's document-entity table"))?;
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

        let outcome = pool.install(threads, || -> Result<(Vec<T>, Vec<u8>), CorpusError> {
            // Stage 2 for the whole batch beside stage 1, which draws until the records are
            // done (all of it with one thread: the join runs the CRP first).
            let records_done = AtomicBool::new(false);
            let sa_out = &mut sentence_attribute.spare_capacity_mut()[..cells];
            let st_out = &mut sentence_template.spare_capacity_mut()[..cells];
            let ends = &mut doc_offsets[1..];
            let ((drawn, crp_time), (chunk_totals, records_time)) = rayon::join(
                || timed(|| crp.draw_until(span, &records_done)),
                || {
                    timed(|| -> Vec<u64> {
                        let totals = sa_out
                            .par_chunks_mut(CHUNK_DOCS * m)
                            .zip(st_out.par_chunks_mut(CHUNK_DOCS * m))
                            .zip(ends.par_chunks_mut(CHUNK_DOCS))
                            .enumerate()
                            .map(|(c, ((attrs, temps), e))| {
                                let doc = first + c * CHUNK_DOCS * stride;
                                law.records(doc as u64, stride as u64, attrs, temps, e)
                            })
                            .collect();
                        records_done.store(true, Ordering::Relaxed);
                        totals
                    })
                },
            );
            let mut drawn = drawn?;
            times.crp += crp_time;
            times.records = records_time;
            // SAFETY: `records` wrote every element of both spans (`cells` each).
            unsafe {
                sentence_attribute.set_len(cells);
                sentence_template.set_len(cells);
            }
            crp.flush(names, values);
            take_entities(crp.z, first, stride, n, &mut doc_entity);

            // Stage 3 into uninitialised output, chunk by chunk into disjoint spans.
            let t_alloc = Instant::now();
            let total = chunk_totals.iter().sum::<u64>();
            let total =
                usize::try_from(total).map_err(|_| too_large(usize::MAX, "the token stream"))?;
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
            let piece = (n.div_ceil(PIECES).div_ceil(CHUNK_DOCS).max(1) * CHUNK_DOCS)
                .saturating_mul(stride);
            let mut work = work.into_iter();
            let mut rendered = 0;
            while rendered < n_chunks {
                let ready = if doc_entity.len() == n {
                    n_chunks
                } else {
                    doc_entity.len() / CHUNK_DOCS
                };
                let piece_work: Vec<_> = work.by_ref().take(ready - rendered).collect();
                let next = piece.min(span - drawn);
                let src = RenderSource {
                    attrs: &sentence_attribute,
                    temps: &sentence_template,
                    doc_entity: &doc_entity,
                    names,
                    values,
                };
                let ((outcome, crp_time), ((), render_time)) = rayon::join(
                    || timed(|| crp.draw(next)),
                    || timed(|| renderer.render_chunks(piece_work, src)),
                );
                outcome?;
                times.crp += crp_time;
                times.render += render_time;
                crp.flush(names, values);
                drawn += next;
                take_entities(crp.z, first, stride, n, &mut doc_entity);
                rendered = ready;
            }
            debug_assert_eq!((drawn, doc_entity.len()), (span, n));
            // SAFETY: the spans handed to the render stage partition `0..total`, and each span
            // was checked (assert in `render`) to be written from its first to its last element.
            unsafe {
                tokens.set_len(total);
                roles.set_len(total);
            }
            Ok((tokens, roles))
        })?;
        let (tokens, roles) = outcome?;
        times.total = t0.elapsed();
        self.times = times;
        Ok(Batch {
            first_doc: first as u64,
            stride: stride as u64,
            tokens,
            roles,
            doc_offsets,
            doc_entity,
            sentence_attribute,
            sentence_template,
        })
    }
}

/// Appends to `doc_entity` the entities of the batch's documents that the CRP has drawn since the
/// last call: document `j` of the batch is `first + j * stride`, `n` in all.
fn take_entities(z: &[u32], first: usize, stride: usize, n: usize, doc_entity: &mut Vec<u32>) {
    let have = doc_entity.len();
    let ready = (z.len() - first).div_ceil(stride).min(n);
    if stride == 1 {
        doc_entity.extend_from_slice(&z[first + have..first + ready]);
    } else {
        doc_entity.extend((have..ready).map(|j| z[first + j * stride]));
    }
}

/// Whether a configuration's vocabulary needs 32-bit tokens.
pub fn needs_u32(grammar: &Grammar) -> bool {
    grammar.layout.vocab_size > 65_536
}

/// Samples a whole corpus in memory (docs/model.md#generative-process).
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
    use std::collections::HashSet;

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
    fn skipped_and_strided_documents_are_the_corpus_documents() {
        let c = small();
        let full = sample(&c, 9000, Some(2)).unwrap();
        let span = |o: &[u64], j: usize| o[j] as usize..o[j + 1] as usize;
        let all = full.tokens.to_u32_vec();
        // Two chunks and several CRP pieces for the strided batch; a skip over a chunk border.
        for (start, stride, n) in [(0, 1, 9000), (5, 3, 2500), (4097, 7, 700), (8999, 5, 1)] {
            let mut s = Sampler::new(&c, 9000).unwrap();
            s.skip(start as u64).unwrap();
            let b = s.next_batch_strided::<u16>(n, stride, Some(2)).unwrap();
            assert_eq!(s.n_docs() as usize, start + (n - 1) * stride + 1);
            assert_eq!((b.first_doc, b.stride), (start as u64, stride as u64));
            let m = c.m();
            for j in 0..n {
                let i = start + j * stride;
                let mine: Vec<u32> = b.tokens[span(&b.doc_offsets, j)]
                    .iter()
                    .map(|&t| t as u32)
                    .collect();
                assert_eq!(mine, all[span(&full.doc_offsets, i)], "document {i}");
                assert_eq!(
                    b.roles[span(&b.doc_offsets, j)],
                    full.roles[span(&full.doc_offsets, i)]
                );
                assert_eq!(b.doc_entity[j], full.doc_entity[i]);
                assert_eq!(
                    b.sentence_template[j * m..(j + 1) * m],
                    full.sentence_template[i * m..(i + 1) * m]
                );
            }
        }
        let mut s = Sampler::new(&c, 9000).unwrap();
        s.skip(4000).unwrap();
        s.skip(5000).unwrap();
        assert_eq!(s.entities, full.entities);
        assert!(s.next_batch_strided::<u16>(1, 0, None).is_err());
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
