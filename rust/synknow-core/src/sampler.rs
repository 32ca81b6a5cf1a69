//! The Syntax-Knowledge sampler (SPEC 3).
//!
//! Three stages per batch of documents:
//! 1. **latent, sequential**: the PYCRP draw of each document's entity (one CRP stream), and the
//!    creation of new entities (name uniform over unused names, values from `H_a`, each from the
//!    entity's own stream);
//! 2. **records, parallel**: each document's attribute order and templates from its own stream,
//!    and its length;
//! 3. **render, parallel**: tokens and roles copied from precomputed template renderings, with
//!    the name and value slots patched in.
//!
//! Stages 2 and 3 depend only on `(seed, document index, entity table)`, so the output is
//! bit-identical for any thread count and batch split, and prefixes are nested.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use crate::config::{AttributeOrder, Config};
use crate::error::{ConfigError, CorpusError};
use crate::grammar::{Grammar, BOS, EOS};
use crate::rng::{stream, AliasTable, Rng};
use crate::theory;

/// Documents per parallel work item: large enough to amortise scheduling, small enough to
/// balance two to sixteen threads.
const CHUNK_DOCS: usize = 2048;

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

/// The sampler's state: grammar, syntax parameters, and the knowledge drawn so far.
pub struct Sampler {
    pub grammar: Grammar,
    pub theta: Vec<Vec<f64>>,
    theta_alias: Vec<AliasTable>,
    seed: u64,
    crp_rng: Rng,
    /// Entity of every document drawn so far (the CRP's "pick an earlier document" needs it).
    z: Vec<u32>,
    pub entities: Entities,
    used_names: NameSet,
    name_space: u64,
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
        let expected = theory::expected_entities(planned_docs as f64, config.alpha, config.beta);
        if u < 100.0 * expected {
            return Err(ConfigError::field(
                "name_parts",
                format!(
                    "too few names: U = prod(name_parts) = {u} but {planned_docs} documents need U >= 100 * E[K_N] = {:.0} (SPEC 2); enlarge name_parts or draw fewer documents",
                    100.0 * expected
                ),
            ));
        }
        let theta = draw_theta(config);
        let theta_alias = theta.iter().map(|t| AliasTable::new(t)).collect();
        Ok(Sampler {
            grammar,
            theta,
            theta_alias,
            seed: config.seed,
            crp_rng: Rng::keyed(config.seed, stream::CRP, 0),
            z: Vec::with_capacity(planned_docs.min(1 << 26) as usize),
            entities: Entities::default(),
            used_names: NameSet::default(),
            name_space: u as u64,
        })
    }

    /// Number of documents drawn so far.
    pub fn n_docs(&self) -> u64 {
        self.z.len() as u64
    }

    fn new_entity(&mut self, doc: u64) -> Result<u32, CorpusError> {
        let k = self.entities.len() as u64;
        if k >= self.name_space {
            return Err(CorpusError::Argument(format!(
                "names ran out after {k} entities (U = {}); enlarge name_parts",
                self.name_space
            )));
        }
        let mut rng = Rng::keyed(self.seed, stream::ENTITY, k);
        // Uniform over unused names: rejection keeps the draw exactly uniform on the remainder.
        let mut index = loop {
            let idx = rng.below(self.name_space);
            if self.used_names.insert(idx) {
                break idx;
            }
        };
        let layout = &self.grammar.layout;
        let j_count = layout.name_start.len();
        let start = self.entities.names.len();
        self.entities.names.resize(start + j_count, 0);
        for j in (0..j_count).rev() {
            let l = layout.name_size[j] as u64;
            self.entities.names[start + j] = layout.name_start[j] + (index % l) as u32;
            index /= l;
        }
        for a in 0..self.grammar.n_attributes() {
            let v = self.grammar.draw_value(a, &mut rng);
            self.entities.values.push(v);
        }
        self.entities.first_doc.push(doc);
        self.entities.counts.push(0);
        Ok(k as u32)
    }

    /// The PYCRP draw of the next document's entity (SPEC 3.2, O(1) expected per draw, 3.4).
    fn draw_entity(&mut self) -> Result<u32, CorpusError> {
        let i = self.z.len() as u64;
        let alpha = self.grammar.config.alpha;
        let beta = self.grammar.config.beta;
        let k_now = self.entities.len() as f64;
        let is_new = i == 0 || self.crp_rng.uniform() * (i as f64 + beta) < beta + k_now * alpha;
        let k = if is_new {
            self.new_entity(i)?
        } else {
            // Existing entity with probability ∝ c_k - alpha: pick an earlier document
            // uniformly (∝ c_k), accept with 1 - alpha/c_k, and retry only the pick.
            loop {
                let k = self.z[self.crp_rng.below(i) as usize];
                if alpha == 0.0 {
                    break k;
                }
                let c = self.entities.counts[k as usize] as f64;
                if self.crp_rng.uniform() * c >= alpha {
                    break k;
                }
            }
        };
        self.entities.counts[k as usize] += 1;
        self.z.push(k);
        Ok(k)
    }

    /// Draws and renders the next `n` documents with `threads` threads (None: rayon's default).
    pub fn next_batch<T: TokenWord>(
        &mut self,
        n: usize,
        threads: Option<usize>,
    ) -> Result<Batch<T>, CorpusError> {
        let first = self.z.len();
        for _ in 0..n {
            self.draw_entity()?;
        }
        let doc_entity = self.z[first..].to_vec();
        let pool = thread_pool(threads)?;
        let batch = pool.install(|| self.render(first as u64, &doc_entity));
        Ok(batch)
    }

    fn render<T: TokenWord>(&self, first_doc: u64, doc_entity: &[u32]) -> Batch<T> {
        let n = doc_entity.len();
        let g = &self.grammar;
        let m = g.config.m();
        let a_count = g.n_attributes();
        let shuffled = g.config.attribute_order == AttributeOrder::Shuffled;
        let mut sentence_attribute = vec![0u16; n * m];
        let mut sentence_template = vec![0u16; n * m];
        let mut lengths = vec![0u64; n];

        // Stage 2: records and lengths.
        sentence_attribute
            .par_chunks_mut(CHUNK_DOCS * m)
            .zip(sentence_template.par_chunks_mut(CHUNK_DOCS * m))
            .zip(lengths.par_chunks_mut(CHUNK_DOCS))
            .enumerate()
            .for_each(|(c, ((attrs, temps), lens))| {
                let mut order: Vec<u16> = (0..a_count as u16).collect();
                for (d, len) in lens.iter_mut().enumerate() {
                    let doc = first_doc + (c * CHUNK_DOCS + d) as u64;
                    let mut rng = Rng::keyed(self.seed, stream::DOCUMENT, doc);
                    let row_a = &mut attrs[d * m..(d + 1) * m];
                    let row_t = &mut temps[d * m..(d + 1) * m];
                    if shuffled {
                        // Partial Fisher–Yates from the identity (never from the previous
                        // document's order, which would tie documents to their chunk).
                        for (i, x) in order.iter_mut().enumerate() {
                            *x = i as u16;
                        }
                        for s in 0..m {
                            let j = s + rng.below((a_count - s) as u64) as usize;
                            order.swap(s, j);
                        }
                        row_a.copy_from_slice(&order[..m]);
                    } else {
                        for (s, x) in row_a.iter_mut().enumerate() {
                            *x = s as u16;
                        }
                    }
                    let mut total = 2u64;
                    for s in 0..m {
                        let a = row_a[s] as usize;
                        let t = self.theta_alias[a].sample(&mut rng);
                        row_t[s] = t as u16;
                        total += g.templates[a][t].len() as u64;
                    }
                    *len = total;
                }
            });

        let mut doc_offsets = Vec::with_capacity(n + 1);
        let mut acc = 0u64;
        doc_offsets.push(0);
        for &l in &lengths {
            acc += l;
            doc_offsets.push(acc);
        }
        let total = acc as usize;
        let mut tokens = vec![T::default(); total];
        let mut roles = vec![0u8; total];

        // Stage 3: render, each chunk into its own disjoint slice of the output.
        let mut work = Vec::with_capacity(n.div_ceil(CHUNK_DOCS));
        let (mut tok_rest, mut role_rest) = (&mut tokens[..], &mut roles[..]);
        for c in 0..n.div_ceil(CHUNK_DOCS) {
            let lo = c * CHUNK_DOCS;
            let hi = (lo + CHUNK_DOCS).min(n);
            let span = (doc_offsets[hi] - doc_offsets[lo]) as usize;
            let (t_here, t_next) = std::mem::take(&mut tok_rest).split_at_mut(span);
            let (r_here, r_next) = std::mem::take(&mut role_rest).split_at_mut(span);
            tok_rest = t_next;
            role_rest = r_next;
            work.push((lo, hi, t_here, r_here));
        }
        let j_count = g.n_name_parts();
        let names = &self.entities.names;
        let values = &self.entities.values;
        let (sa, st) = (&sentence_attribute, &sentence_template);
        work.into_par_iter().for_each(|(lo, hi, toks, rols)| {
            let mut pos = 0usize;
            let mut name_buf = [T::default(); 16];
            for d in lo..hi {
                let k = doc_entity[d] as usize;
                let name = &names[k * j_count..(k + 1) * j_count];
                for (j, &t) in name.iter().enumerate().take(16) {
                    name_buf[j] = T::from_u32(t);
                }
                toks[pos] = T::from_u32(BOS);
                rols[pos] = 0;
                pos += 1;
                for s in 0..m {
                    let a = sa[d * m + s] as usize;
                    let tpl = &g.templates[a][st[d * m + s] as usize];
                    let len = tpl.len();
                    let out = &mut toks[pos..pos + len];
                    for (o, &x) in out.iter_mut().zip(&tpl.tokens) {
                        *o = T::from_u32(x);
                    }
                    rols[pos..pos + len].copy_from_slice(&tpl.roles);
                    if j_count <= 16 {
                        out[tpl.name_at..tpl.name_at + j_count].copy_from_slice(&name_buf[..j_count]);
                    } else {
                        for (j, &t) in name.iter().enumerate() {
                            out[tpl.name_at + j] = T::from_u32(t);
                        }
                    }
                    out[tpl.value_at] = T::from_u32(values[k * a_count + a]);
                    pos += len;
                }
                toks[pos] = T::from_u32(EOS);
                rols[pos] = 0;
                pos += 1;
            }
        });

        Batch {
            first_doc,
            tokens,
            roles,
            doc_offsets,
            doc_entity: doc_entity.to_vec(),
            sentence_attribute,
            sentence_template,
        }
    }
}

/// A rayon pool with the requested number of threads (None or 0: all cores).
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, CorpusError> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads.filter(|&t| t > 0) {
        b = b.num_threads(t);
    }
    b.build().map_err(|e| CorpusError::Argument(format!("cannot start {threads:?} threads: {e}")))
}

/// Whether a configuration's vocabulary needs 32-bit tokens.
pub fn needs_u32(grammar: &Grammar) -> bool {
    grammar.layout.vocab_size > 65_536
}

/// Samples a whole corpus in memory (SPEC 3).
pub fn sample(config: &Config, n_docs: u64, threads: Option<usize>) -> Result<Corpus, CorpusError> {
    let mut sampler = Sampler::new(config, n_docs)?;
    let n = usize::try_from(n_docs).map_err(|_| CorpusError::Argument("n_docs too large".into()))?;
    let (tokens, b) = if needs_u32(&sampler.grammar) {
        let b = sampler.next_batch::<u32>(n, threads)?;
        (Tokens::U32(b.tokens), (b.roles, b.doc_offsets, b.doc_entity, b.sentence_attribute, b.sentence_template))
    } else {
        let b = sampler.next_batch::<u16>(n, threads)?;
        (Tokens::U16(b.tokens), (b.roles, b.doc_offsets, b.doc_entity, b.sentence_attribute, b.sentence_template))
    };
    let (roles, doc_offsets, doc_entity, sentence_attribute, sentence_template) = b;
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
        Config { seed: 3, ..Config::default() }
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
    fn too_few_names_is_an_error() {
        let c = Config { name_parts: vec![10, 10], ..small() };
        let e = Sampler::new(&c, 100_000).err().unwrap().to_string();
        assert!(e.contains("name_parts") && e.contains("too few names"), "{e}");
    }
}
