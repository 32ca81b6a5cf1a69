//! Lossless compression of a corpus's token stream at the exact Bayes code length.
//!
//! The coder walks the corpus with the same [`Cursor`] and [`State`] as the code lengths. At each
//! position inside a sentence it codes, first, which child of the template skeleton the sentence
//! takes (weighted by the mass of the parse states behind each child) and then which token within
//! that child (a name part or a value, weighted by its predictive factor); the product is the
//! token's predictive probability. A choice with a single possibility costs nothing (most syntax
//! words, `BOS`, `EOS`, the name of a known entity); the others go through `constriction`'s range
//! coder with a leaky-quantised categorical model (no symbol ever gets probability zero), or a
//! uniform model for a name part under a prefix no earlier name shares. The decoder derives the
//! same choices from the same state, never from the token. Document boundaries are free: a
//! document ends when its parse does.
//!
//! What the decoder knows is the model, i.e. the configuration without its seed (and without an
//! explicit `theta`), plus the parts of the grammar the seed fixes (procedural templates, the
//! order of a Zipf value prior), stored as explicit tables. The entities and `theta` are what
//! the code pays for.
//!
//! File layout (little-endian): magic `SYNKZIP\0`, format version `u32`, `xxh3_64` of every byte
//! after this field, then the header (number of documents `u64`, number of tokens `u64`,
//! `xxh3_64` of the tokens as `u32` words, coded symbols `u64`, the configuration JSON and the
//! grammar JSON each as `u32` length + bytes, payload words `u64`) and the range coder's `u32`
//! words.

use std::num::NonZeroU32;

use constriction::stream::model::{DecoderModel, DefaultUniformModel, EncoderModel, EntropyModel};
use constriction::stream::queue::{DefaultRangeDecoder, DefaultRangeEncoder};
use constriction::stream::{Decode, Encode};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::config::{Config, Preset, ValuePrior};
use crate::error::CorpusError;
use crate::grammar::{Grammar, Slot, Template};
use crate::sampler::TokenWord;

use super::predictive::{check_offsets, Cursor, Within};
use super::state::{DocError, Model, State};
use super::{cancelled_error, run_with_progress, Report};

/// Version of the compressed format written by [`compress`].
pub const COMPRESS_FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"SYNKZIP\0";
/// Slot codes of the stored templates: a syntax word is its token id.
const SLOT_NAME: u32 = u32::MAX;
const SLOT_VALUE: u32 = u32::MAX - 1;

/// The seed-dependent parts of the grammar, made explicit so the decoder needs no seed.
#[derive(Serialize, Deserialize, Default)]
struct GrammarTables {
    /// Slots of every template of every attribute (procedural preset without explicit
    /// templates), `None` when the configuration fixes them.
    templates: Option<Vec<Vec<Vec<u32>>>>,
    /// Bits of `ln H_a(v)` for every attribute and pool-local value (Zipf prior), `None` for
    /// the uniform prior.
    value_log_prob: Option<Vec<Vec<u64>>>,
}

/// A decompressed corpus.
#[derive(Clone, Debug)]
pub struct Decompressed {
    /// The configuration the decoder used: the original one without seed (it reads 0) or theta.
    pub config: Config,
    pub tokens: Vec<u32>,
    pub doc_offsets: Vec<u64>,
    /// Number of range-coded choices (a token costs zero, one or two of them).
    pub coded_symbols: u64,
}

/// The configuration as stored: the seed and an explicit `theta` are dropped.
fn seedless(config: &Config) -> Config {
    let mut c = config.clone();
    c.seed = 0;
    c.theta = None;
    c
}

fn grammar_tables(grammar: &Grammar) -> GrammarTables {
    let c = &grammar.config;
    let templates = (c.templates.is_none() && c.preset == Preset::Procedural).then(|| {
        grammar
            .templates
            .iter()
            .map(|list| {
                list.iter()
                    .map(|t| {
                        t.slots
                            .iter()
                            .map(|s| match *s {
                                Slot::Word(w) => w,
                                Slot::Name => SLOT_NAME,
                                Slot::Value => SLOT_VALUE,
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    });
    let value_log_prob = matches!(c.value_prior, ValuePrior::Zipf(_)).then(|| {
        grammar
            .value_log_prob
            .iter()
            .map(|v| v.iter().map(|x| x.to_bits()).collect())
            .collect()
    });
    GrammarTables {
        templates,
        value_log_prob,
    }
}

fn corrupt(message: impl std::fmt::Display) -> CorpusError {
    CorpusError::Corrupt(format!("compressed file: {message}"))
}

/// Rebuilds the decoder's model from the stored configuration and tables.
fn model_from_tables(config: &Config, tables: GrammarTables) -> Result<Model, CorpusError> {
    let mut grammar = Grammar::new(config).map_err(|e| corrupt(format!("configuration: {e}")))?;
    let j = grammar.n_name_parts();
    if let Some(templates) = tables.templates {
        let fits = templates.len() == grammar.templates.len()
            && templates
                .iter()
                .zip(&grammar.templates)
                .all(|(a, b)| a.len() == b.len());
        if !fits {
            return Err(corrupt("the stored templates do not fit the configuration"));
        }
        let n_words = grammar.layout.vocab_size;
        grammar.templates = templates
            .into_iter()
            .map(|list| {
                list.into_iter()
                    .map(|slots| {
                        let slots = slots
                            .into_iter()
                            .map(|s| match s {
                                SLOT_NAME => Ok(Slot::Name),
                                SLOT_VALUE => Ok(Slot::Value),
                                w if w < n_words => Ok(Slot::Word(w)),
                                w => Err(corrupt(format!("template word id {w} out of range"))),
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(Template::new(slots, j))
                    })
                    .collect::<Result<Vec<_>, CorpusError>>()
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(tables) = tables.value_log_prob {
        let fits = tables.len() == grammar.value_log_prob.len()
            && tables
                .iter()
                .zip(&grammar.value_log_prob)
                .all(|(a, b)| a.len() == b.len());
        if !fits {
            return Err(corrupt(
                "the stored value priors do not fit the configuration",
            ));
        }
        grammar.value_log_prob = tables
            .into_iter()
            .map(|v| v.into_iter().map(f64::from_bits).collect())
            .collect();
    }
    Model::from_grammar(grammar).map_err(|e| corrupt(format!("configuration: {e}")))
}

/// `xxh3_64` of a token stream as little-endian `u32` words (the same for either width).
fn tokens_hash<T: TokenWord>(tokens: &[T]) -> u64 {
    let mut h = Xxh3::new();
    let mut buf = [0u8; 4096];
    for chunk in tokens.chunks(1024) {
        for (i, t) in chunk.iter().enumerate() {
            buf[4 * i..4 * i + 4].copy_from_slice(&t.to_u32().to_le_bytes());
        }
        h.update(&buf[..4 * chunk.len()]);
    }
    h.digest()
}

/// Bits of the range coder's fixed-point probabilities.
const PRECISION: usize = 24;

/// A categorical model over `weights` (at least two, not all zero); `cumulative` is scratch.
fn categorical<'c>(
    weights: &[f64],
    cumulative: &'c mut Vec<f64>,
) -> Result<LeakyCategorical<'c>, String> {
    LeakyCategorical::new(weights, cumulative)
        .ok_or_else(|| format!("cannot quantise a predictive over {} tokens", weights.len()))
}

/// The leaky categorical model that `constriction`'s
/// `ContiguousCategoricalEntropyModel::from_floating_point_probabilities_fast` builds, with the
/// same cumulative distribution bit for bit, but cheaper to build: a name part's support has
/// hundreds of tokens and serves one symbol, and tabulating its fixed-point distribution cost
/// more than everything else the coder does. The `i`-th left cumulative is
/// `floor(s_i * (2^24 - n) / s_n) + i`, with `s_i` the sum of the first `i` weights accumulated
/// in order (as there, so the rounding is the same); the `+ i` gives every symbol a nonzero
/// probability. Here the partial sums are kept and the fixed-point values computed only where
/// the coder asks. A test checks it against `constriction`'s model.
#[derive(Clone, Copy)]
struct LeakyCategorical<'c> {
    /// `s_0 = 0, s_1, ..., s_n`.
    cumulative: &'c [f64],
    scale: f64,
}

impl<'c> LeakyCategorical<'c> {
    /// `None` where `constriction` refuses the weights: fewer than two, too many for the
    /// precision, or a total that is not a positive normal number.
    fn new(weights: &[f64], cumulative: &'c mut Vec<f64>) -> Option<Self> {
        let n = weights.len();
        if !(2..(1 << PRECISION) - 1).contains(&n) {
            return None;
        }
        cumulative.clear();
        cumulative.reserve(n + 1);
        let mut sum = 0.0;
        cumulative.push(sum);
        for &w in weights {
            sum += w;
            cumulative.push(sum);
        }
        if !sum.is_normal() || !sum.is_sign_positive() {
            return None;
        }
        let free = ((1u32 << PRECISION) - n as u32) as f64;
        Some(LeakyCategorical {
            cumulative,
            scale: free / sum,
        })
    }

    /// Left cumulative of symbol `i` (for `i = n`, the total `2^24`).
    #[inline(always)]
    fn left(&self, i: usize) -> u32 {
        if i + 1 == self.cumulative.len() {
            1 << PRECISION
        } else {
            ((self.cumulative[i] * self.scale) as u32).wrapping_add(i as u32)
        }
    }

    #[inline(always)]
    fn left_and_probability(&self, i: usize) -> (u32, NonZeroU32) {
        let left = self.left(i);
        // The cumulatives increase strictly: the `+ i` keeps neighbours apart.
        let probability = NonZeroU32::new(self.left(i + 1).wrapping_sub(left))
            .expect("a leaky model has no empty symbol");
        (left, probability)
    }
}

impl EntropyModel<PRECISION> for LeakyCategorical<'_> {
    type Symbol = usize;
    type Probability = u32;
}

impl EncoderModel<PRECISION> for LeakyCategorical<'_> {
    #[inline]
    fn left_cumulative_and_probability(
        &self,
        symbol: impl std::borrow::Borrow<usize>,
    ) -> Option<(u32, NonZeroU32)> {
        let i = *symbol.borrow();
        (i + 1 < self.cumulative.len()).then(|| self.left_and_probability(i))
    }
}

impl DecoderModel<PRECISION> for LeakyCategorical<'_> {
    #[inline]
    fn quantile_function(&self, quantile: u32) -> (usize, u32, NonZeroU32) {
        // The symbol is one below the first left cumulative above the quantile.
        let n = self.cumulative.len() - 1;
        let (mut lo, mut hi) = (1, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.left(mid) > quantile {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let (left, probability) = self.left_and_probability(lo - 1);
        (lo - 1, left, probability)
    }
}

/// Buffers of the per-position coding decisions, shared by the encoder and the decoder.
struct Scratch {
    acc: Vec<f64>,
    order: Vec<u32>,
    codes: Vec<u32>,
    weights: Vec<f64>,
    support: Vec<(u32, f64)>,
    dense: Vec<f64>,
    cumulative: Vec<f64>,
}

const NOT_POSSIBLE: &str = "has probability 0 under the model given the preceding tokens";

impl Scratch {
    fn new(model: &Model) -> Self {
        Scratch {
            acc: vec![0.0; model.vocab_size() as usize],
            order: Vec::new(),
            codes: Vec::new(),
            weights: Vec::new(),
            support: Vec::new(),
            dense: Vec::new(),
            cumulative: Vec::new(),
        }
    }

    /// Codes token `x` at the cursor's position: first the skeleton child when there are
    /// several, then the token within the child when it has several. Returns the number of
    /// coded symbols.
    fn encode(
        &mut self,
        cursor: &Cursor<'_>,
        state: &State,
        x: u32,
        encoder: &mut DefaultRangeEncoder,
    ) -> Result<u64, String> {
        let model = cursor.model();
        let impossible = || format!("token {} {NOT_POSSIBLE}", model.describe(x));
        if cursor.forced().is_some() || cursor.finished() {
            // Structure tokens are free; `step` rejects a wrong one.
            return Ok(0);
        }
        let code = if x < model.vocab_size() {
            model.code_of(x)
        } else {
            return Err(impossible());
        };
        let mut coded = 0;
        cursor.branch(state, &mut self.codes, &mut self.weights);
        let i = self
            .codes
            .iter()
            .position(|&c| c == code)
            .ok_or_else(impossible)?;
        if self.codes.len() > 1 {
            encoder
                .encode_symbol(i, categorical(&self.weights, &mut self.cumulative)?)
                .map_err(|e| format!("range coder: {e}"))?;
            coded += 1;
        }
        match cursor.within(
            state,
            code,
            &mut self.acc,
            &mut self.order,
            &mut self.support,
            &mut self.dense,
        ) {
            Within::Single(t) if t == x => {}
            Within::Single(_) => return Err(impossible()),
            Within::Uniform(start, size) => {
                let local = x.wrapping_sub(start);
                if local >= size {
                    return Err(impossible());
                }
                encoder
                    .encode_symbol(local as usize, uniform(size)?)
                    .map_err(|e| format!("range coder: {e}"))?;
                coded += 1;
            }
            Within::Dense(start) => {
                let local = x.wrapping_sub(start) as usize;
                if local >= self.dense.len() {
                    return Err(impossible());
                }
                if self.dense.len() > 1 {
                    encoder
                        .encode_symbol(local, categorical(&self.dense, &mut self.cumulative)?)
                        .map_err(|e| format!("range coder: {e}"))?;
                    coded += 1;
                }
            }
            Within::Weighted => {
                let j = self
                    .support
                    .iter()
                    .position(|&(y, _)| y == x)
                    .ok_or_else(impossible)?;
                if self.support.len() > 1 {
                    self.weights.clear();
                    self.weights.extend(self.support.iter().map(|&(_, w)| w));
                    encoder
                        .encode_symbol(j, categorical(&self.weights, &mut self.cumulative)?)
                        .map_err(|e| format!("range coder: {e}"))?;
                    coded += 1;
                }
            }
        }
        Ok(coded)
    }

    /// Decodes the token at the cursor's position (the mirror of [`encode`](Self::encode));
    /// returns it and the number of decoded symbols.
    fn decode(
        &mut self,
        cursor: &Cursor<'_>,
        state: &State,
        decoder: &mut DefaultRangeDecoder,
    ) -> Result<(u32, u64), String> {
        if let Some(t) = cursor.forced() {
            return Ok((t, 0));
        }
        let mut coded = 0;
        cursor.branch(state, &mut self.codes, &mut self.weights);
        let code = match self.codes.len() {
            0 => return Err("no possible next token".to_string()),
            1 => self.codes[0],
            _ => {
                coded += 1;
                let i = decoder
                    .decode_symbol(categorical(&self.weights, &mut self.cumulative)?)
                    .map_err(|e| format!("range decoder: {e}"))?;
                self.codes[i]
            }
        };
        let x = match cursor.within(
            state,
            code,
            &mut self.acc,
            &mut self.order,
            &mut self.support,
            &mut self.dense,
        ) {
            Within::Single(t) => t,
            Within::Uniform(start, size) => {
                coded += 1;
                let local = decoder
                    .decode_symbol(uniform(size)?)
                    .map_err(|e| format!("range decoder: {e}"))?;
                start + local as u32
            }
            Within::Dense(start) => match self.dense.len() {
                0 => return Err("no possible next token".to_string()),
                1 => start,
                _ => {
                    coded += 1;
                    let local = decoder
                        .decode_symbol(categorical(&self.dense, &mut self.cumulative)?)
                        .map_err(|e| format!("range decoder: {e}"))?;
                    start + local as u32
                }
            },
            Within::Weighted => match self.support.len() {
                0 => return Err("no possible next token".to_string()),
                1 => self.support[0].0,
                _ => {
                    coded += 1;
                    self.weights.clear();
                    self.weights.extend(self.support.iter().map(|&(_, w)| w));
                    let j = decoder
                        .decode_symbol(categorical(&self.weights, &mut self.cumulative)?)
                        .map_err(|e| format!("range decoder: {e}"))?;
                    self.support[j].0
                }
            },
        };
        Ok((x, coded))
    }
}

/// The uniform model over `size` tokens (at most 2^24, the coder's precision).
fn uniform(size: u32) -> Result<DefaultUniformModel, String> {
    if size as u64 > 1 << 24 {
        return Err(format!(
            "a name part of {size} tokens exceeds the coder's 2^24 symbols"
        ));
    }
    Ok(DefaultUniformModel::new(size as usize))
}

/// Documents between two progress reports and cancellation checks.
const REPORT_EVERY: usize = 1024;

/// The range-coded payload of a corpus and the number of coded positions.
pub fn encode<T: TokenWord>(
    model: &Model,
    tokens: &[T],
    offsets: &[u64],
    report: Report<'_>,
) -> Result<(Vec<u32>, u64), CorpusError> {
    check_offsets(offsets, tokens.len())?;
    let n_docs = offsets.len() - 1;
    run_with_progress(n_docs as u64, report, |progress| {
        let mut state = State::new(model, true);
        let mut cursor = Cursor::new(model);
        let mut scratch = Scratch::new(model);
        let mut encoder = DefaultRangeEncoder::new();
        let mut coded = 0u64;
        for d in 0..n_docs {
            if d % REPORT_EVERY == 0 && d > 0 {
                if progress.cancelled() {
                    return Err(cancelled_error());
                }
                progress.add(REPORT_EVERY as u64);
            }
            let start = offsets[d];
            let doc = &tokens[start as usize..offsets[d + 1] as usize];
            let fail = |position: usize, message: String| {
                DocError { position, message }.into_corpus_error(d, start)
            };
            cursor.reset(&state);
            for (i, &t) in doc.iter().enumerate() {
                let x = t.to_u32();
                coded += scratch
                    .encode(&cursor, &state, x, &mut encoder)
                    .map_err(|m| fail(i, m))?;
                cursor.step(&state, x).map_err(|m| fail(i, m))?;
            }
            if !cursor.finished() {
                return Err(fail(doc.len(), "the document ends early".to_string()));
            }
            state
                .commit(model, cursor.name(), cursor.sentences())
                .map_err(|m| fail(doc.len().saturating_sub(1), m))?;
        }
        progress.add((n_docs % REPORT_EVERY.max(1)) as u64);
        let words = encoder
            .into_compressed()
            .map_err(|e| CorpusError::Argument(format!("range coder: {e}")))?;
        Ok((words, coded))
    })
}

/// Decodes `n_docs` documents (at most `max_tokens` tokens) from a payload made by [`encode`].
pub fn decode(
    model: &Model,
    words: Vec<u32>,
    n_docs: u64,
    max_tokens: u64,
    report: Report<'_>,
) -> Result<(Vec<u32>, Vec<u64>, u64), CorpusError> {
    run_with_progress(n_docs, report, |progress| {
        let mut decoder = DefaultRangeDecoder::from_compressed(words)
            .map_err(|_| corrupt("the payload cannot be read"))?;
        let mut state = State::new(model, true);
        let mut cursor = Cursor::new(model);
        let mut scratch = Scratch::new(model);
        let cap = usize::try_from(max_tokens).unwrap_or(usize::MAX);
        let mut tokens: Vec<u32> = Vec::new();
        tokens
            .try_reserve_exact(cap.min(1 << 30))
            .map_err(|_| CorpusError::Argument(format!("{max_tokens} tokens do not fit")))?;
        let mut offsets = Vec::with_capacity((n_docs as usize).min(1 << 26) + 1);
        offsets.push(0u64);
        let mut coded = 0u64;
        for d in 0..n_docs as usize {
            if d % REPORT_EVERY == 0 && d > 0 {
                if progress.cancelled() {
                    return Err(cancelled_error());
                }
                progress.add(REPORT_EVERY as u64);
            }
            cursor.reset(&state);
            while !cursor.finished() {
                let (x, n) = scratch
                    .decode(&cursor, &state, &mut decoder)
                    .map_err(|m| corrupt(format!("document {d}: {m}")))?;
                coded += n;
                if tokens.len() as u64 >= max_tokens {
                    return Err(corrupt(format!(
                        "more than the {max_tokens} tokens of the header"
                    )));
                }
                cursor
                    .step(&state, x)
                    .map_err(|m| corrupt(format!("document {d}: {m}")))?;
                tokens.push(x);
            }
            state
                .commit(model, cursor.name(), cursor.sentences())
                .map_err(|m| corrupt(format!("document {d}: {m}")))?;
            offsets.push(tokens.len() as u64);
        }
        progress.add(n_docs % REPORT_EVERY as u64);
        Ok((tokens, offsets, coded))
    })
}

/// Compresses a corpus generated under `config` into a self-contained file image.
pub fn compress<T: TokenWord>(
    config: &Config,
    tokens: &[T],
    offsets: &[u64],
    report: Report<'_>,
) -> Result<Vec<u8>, CorpusError> {
    let grammar = Grammar::new(config).map_err(|e| CorpusError::Argument(e.to_string()))?;
    let tables = grammar_tables(&grammar);
    let model = Model::from_grammar(grammar).map_err(|e| CorpusError::Argument(e.to_string()))?;
    let (words, coded) = encode(&model, tokens, offsets, report)?;
    let config_json = seedless(config).to_json();
    let tables_json = serde_json::to_string(&tables).expect("tables always serialise");
    let mut body = Vec::with_capacity(64 + config_json.len() + tables_json.len() + 4 * words.len());
    body.extend_from_slice(&((offsets.len() - 1) as u64).to_le_bytes());
    body.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
    body.extend_from_slice(&tokens_hash(tokens).to_le_bytes());
    body.extend_from_slice(&coded.to_le_bytes());
    for text in [&config_json, &tables_json] {
        body.extend_from_slice(&(text.len() as u32).to_le_bytes());
        body.extend_from_slice(text.as_bytes());
    }
    body.extend_from_slice(&(words.len() as u64).to_le_bytes());
    for w in &words {
        body.extend_from_slice(&w.to_le_bytes());
    }
    let mut out = Vec::with_capacity(20 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&COMPRESS_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads little-endian fields off a byte slice, failing on truncation.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CorpusError> {
        if self.bytes.len() < n {
            return Err(corrupt(format!("truncated in its {what}")));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u32(&mut self, what: &str) -> Result<u32, CorpusError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &str) -> Result<u64, CorpusError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    fn text(&mut self, what: &str) -> Result<&'a str, CorpusError> {
        let n = self.u32(what)? as usize;
        std::str::from_utf8(self.take(n, what)?)
            .map_err(|_| corrupt(format!("{what} is not UTF-8")))
    }
}

/// The configuration stored in a compressed file (after checking its checksum).
pub fn compressed_config(bytes: &[u8]) -> Result<Config, CorpusError> {
    let (mut r, _) = open(bytes)?;
    r.take(32, "header")?;
    Config::from_json(r.text("configuration")?).map_err(|e| corrupt(format!("configuration: {e}")))
}

/// Checks magic, version and checksum; returns a reader at the header.
fn open(bytes: &[u8]) -> Result<(Reader<'_>, u32), CorpusError> {
    let mut r = Reader { bytes };
    if r.take(8, "magic")? != MAGIC {
        return Err(corrupt("not a synknow compressed file (bad magic)"));
    }
    let version = r.u32("version")?;
    if version != COMPRESS_FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {version}, this build reads {COMPRESS_FORMAT_VERSION}"
        )));
    }
    let checksum = r.u64("checksum")?;
    if xxhash_rust::xxh3::xxh3_64(r.bytes) != checksum {
        return Err(corrupt(
            "checksum mismatch (the file is truncated or altered)",
        ));
    }
    Ok((r, version))
}

/// Decompresses a file image made by [`compress`].
pub fn decompress(bytes: &[u8], report: Report<'_>) -> Result<Decompressed, CorpusError> {
    let (mut r, _) = open(bytes)?;
    let n_docs = r.u64("number of documents")?;
    let n_tokens = r.u64("number of tokens")?;
    let hash = r.u64("token checksum")?;
    let coded_expected = r.u64("number of coded symbols")?;
    let config = Config::from_json(r.text("configuration")?)
        .map_err(|e| corrupt(format!("configuration: {e}")))?;
    let tables: GrammarTables = serde_json::from_str(r.text("grammar tables")?)
        .map_err(|e| corrupt(format!("grammar tables: {e}")))?;
    let n_words = r.u64("payload length")?;
    if n_words.checked_mul(4) != Some(r.bytes.len() as u64) {
        return Err(corrupt(format!(
            "payload of {} bytes, the header says {n_words} words",
            r.bytes.len()
        )));
    }
    let words: Vec<u32> = r
        .bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let model = model_from_tables(&config, tables)?;
    let (tokens, doc_offsets, coded) = decode(&model, words, n_docs, n_tokens, report)?;
    if tokens.len() as u64 != n_tokens || coded != coded_expected || tokens_hash(&tokens) != hash {
        return Err(corrupt(
            "the decoded tokens do not match the header's checksum",
        ));
    }
    Ok(Decompressed {
        config,
        tokens,
        doc_offsets,
        coded_symbols: coded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codelength::{code_lengths, no_report};
    use crate::config::{AttributeOrder, PerAttribute};
    use crate::sampler::{sample, Tokens};

    fn u32_tokens(t: &Tokens) -> Vec<u32> {
        match t {
            Tokens::U16(v) => v.iter().map(|&x| x as u32).collect(),
            Tokens::U32(v) => v.clone(),
        }
    }

    fn roundtrip(config: &Config, n_docs: usize) -> (usize, f64) {
        let corpus = sample(config, n_docs as u64, None).unwrap();
        let tokens = u32_tokens(&corpus.tokens);
        let offsets = &corpus.doc_offsets;
        let bytes = compress(config, &tokens, offsets, &mut no_report).unwrap();
        let out = decompress(&bytes, &mut no_report).unwrap();
        assert_eq!(out.tokens, tokens);
        assert_eq!(&out.doc_offsets, offsets);
        assert_eq!(out.config.seed, 0);
        let model = Model::new(config).unwrap();
        let bits = code_lengths(&model, &tokens, offsets, false, Some(1), &mut no_report)
            .unwrap()
            .total;
        (bytes.len(), bits)
    }

    #[test]
    fn roundtrip_procedural_zipf_shared_pool() {
        let config = Config {
            preset: Preset::Procedural,
            n_attributes: 3,
            pool_sizes: vec![40],
            attribute_pool: vec![0, 0, 0],
            value_prior: ValuePrior::Zipf(1.1),
            name_parts: vec![300, 200],
            templates_per_attribute: PerAttribute::All(4),
            attrs_per_doc: Some(2),
            attribute_order: AttributeOrder::Shuffled,
            seed: 7,
            ..Config::default()
        };
        let (size, bits) = roundtrip(&config, 300);
        assert!(size as f64 * 8.0 >= bits);
    }

    fn payload_hash(config: &Config, n_docs: u64) -> u64 {
        let corpus = sample(config, n_docs, None).unwrap();
        let tokens = u32_tokens(&corpus.tokens);
        let model = Model::new(config).unwrap();
        let (words, _) = encode(&model, &tokens, &corpus.doc_offsets, &mut no_report).unwrap();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }

    /// Speed work must not change a single coded bit: the payloads of a bios and a procedural
    /// shared-pool corpus are those of the first version of the coder (files written by it
    /// still decode).
    #[test]
    fn payload_is_unchanged_since_format_1() {
        let bios = Config {
            seed: 1,
            ..Config::default()
        };
        let procedural = Config {
            seed: 1,
            preset: Preset::Procedural,
            value_prior: ValuePrior::Zipf(1.1),
            pool_sizes: vec![100; 5],
            attribute_pool: vec![0, 0, 1, 2, 3, 4],
            ..Config::default()
        };
        assert_eq!(payload_hash(&bios, 3000), 7527201162153215718);
        assert_eq!(payload_hash(&procedural, 3000), 7980351846344340848);
    }

    /// The coder's lazily evaluated model is `constriction`'s fast leaky quantisation bit for
    /// bit (the compressed format depends on it), on supports of every shape the coder meets:
    /// a few children, hundreds of names with a few heavy ones, tiny and zero weights.
    #[test]
    fn leaky_categorical_is_constrictions_model() {
        use constriction::stream::model::DefaultContiguousCategoricalEntropyModel;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut cumulative = Vec::new();
        for n in [2usize, 3, 7, 40, 400, 1000, 5000] {
            for shape in 0..4 {
                let weights: Vec<f64> = (0..n)
                    .map(|i| match shape {
                        0 => next(),
                        1 => 1e-3 + if i % 97 == 5 { 50.0 * next() } else { 0.0 },
                        2 => next().powi(12) * 1e-200,
                        _ if i % 3 == 0 => 0.0,
                        _ => next(),
                    })
                    .collect();
                let reference =
                    DefaultContiguousCategoricalEntropyModel::from_floating_point_probabilities_fast(
                        &weights, None,
                    )
                    .unwrap();
                let lazy = categorical(&weights, &mut cumulative).unwrap();
                for i in 0..n {
                    assert_eq!(
                        lazy.left_cumulative_and_probability(i),
                        reference.left_cumulative_and_probability(i),
                        "n {n}, shape {shape}, symbol {i}"
                    );
                }
                assert!(lazy.left_cumulative_and_probability(n).is_none());
                let (mut quantiles, mut left) = (Vec::new(), 0u32);
                for i in 0..n {
                    let (l, p) = reference.left_cumulative_and_probability(i).unwrap();
                    assert_eq!(l, left);
                    left = l + p.get();
                    quantiles.extend([l, l + p.get() - 1]);
                }
                quantiles.extend((0..200).map(|_| (next() * (1 << PRECISION) as f64) as u32));
                for q in quantiles {
                    assert_eq!(lazy.quantile_function(q), reference.quantile_function(q));
                }
            }
        }
        assert!(categorical(&[1.0], &mut cumulative).is_err());
        assert!(categorical(&[0.0, 0.0], &mut cumulative).is_err());
        assert!(categorical(&[1.0, f64::NAN], &mut cumulative).is_err());
    }

    #[test]
    fn corrupted_file_is_an_error() {
        let config = Config::default();
        let corpus = sample(&config, 20, None).unwrap();
        let tokens = u32_tokens(&corpus.tokens);
        let bytes = compress(&config, &tokens, &corpus.doc_offsets, &mut no_report).unwrap();
        for cut in [0, 5, 12, 30, bytes.len() - 1] {
            assert!(decompress(&bytes[..cut], &mut no_report).is_err());
        }
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let e = decompress(&bad, &mut no_report).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
    }
}
