//! The exact per-token posterior predictive (docs/codelength.md#per-token), computed from the token
//! stream alone.
//!
//! Within a sentence the learner keeps the candidate parse states `(a, t)`: the templates of the
//! attributes still available whose expanded skeleton matches the sentence so far, i.e. one node
//! of the [`SkeletonTrie`](super::state::SkeletonTrie). A state's weight is
//! `P(a | earlier sentences) * P_DM(t | a, counts)` times the value factor once the value has been
//! seen; `P(a | ...)` is uniform over the available attributes, so it cancels from every ratio and
//! is left out. The probability of the next token is the mass of the child node it leads to over
//! the mass of the current node, times, for a name token, the name factor `W(q x) / W(q)` (common
//! to all states, docs/codelength.md#per-token) and, for the value token, each state's own factor
//! (`1[x == v]` when
//! the entity's value is revealed, `H_a(x)` otherwise).

use rayon::prelude::*;

use crate::alloc::try_zeroed;
use crate::error::CorpusError;
use crate::grammar::{BOS, EOS};
use crate::sampler::TokenWord;
use crate::threads::thread_pool;

use super::state::{
    parse_doc, DocError, Model, Sentence, State, CODE_NAME, CODE_VALUE, NAME_ROOT, NONE, ROOT,
};
use super::{
    cancelled_error, run_with_progress, Neumaier, Progress, Report, N_ROLES, ROLE_NAME,
    ROLE_SPECIAL, ROLE_SYNTAX, ROLE_VALUE,
};

/// The support of the next token within a skeleton child (see [`Cursor::within`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Within {
    /// One possible token.
    Single(u32),
    /// `size` equally likely tokens from `start`.
    Uniform(u32, u32),
    /// The weighted tokens written to the caller's list.
    Weighted,
    /// Every token from `start` on, one per entry of the caller's dense list of (positive)
    /// weights.
    Dense(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    ExpectBos,
    Sentence,
    ExpectEos,
    Done,
}

/// Reads one document token by token against a fixed [`State`], giving each token's predictive
/// probability, and records the document's parse for the commit.
pub(crate) struct Cursor<'m> {
    model: &'m Model,
    phase: Phase,
    sentence: usize,
    /// Current skeleton-trie node, the node whose entries represent its template set (see
    /// [`SkeletonTrie`](super::state::SkeletonTrie)), and its mass.
    node: u32,
    rep: u32,
    mass: f64,
    past_value: bool,
    used: Vec<bool>,
    /// Value factor of each attribute in the current node, once the value is seen.
    value_factor: Vec<f64>,
    value: u32,
    // Entity: undetermined until the first sentence's name is complete.
    name_done: bool,
    /// Entity id, `NONE` for a new entity (valid once `name_done`).
    entity: u32,
    name: Vec<u32>,
    name_code: u64,
    /// Name-trie node of the current prefix ([`NAME_ROOT`] before the first part).
    name_node: u32,
    /// No used name has the current prefix (so neither has any extension of it).
    name_absent: bool,
    name_weight: f64,
    new_mass: f64,
    sentences: Vec<Sentence>,
}

impl<'m> Cursor<'m> {
    pub(crate) fn new(model: &'m Model) -> Self {
        Cursor {
            model,
            phase: Phase::ExpectBos,
            sentence: 0,
            node: ROOT,
            rep: ROOT,
            mass: 0.0,
            past_value: false,
            used: vec![false; model.n_attributes],
            value_factor: vec![0.0; model.n_attributes],
            value: NONE,
            name_done: false,
            entity: NONE,
            name: vec![0; model.n_name_parts],
            name_code: 0,
            name_node: NAME_ROOT,
            name_absent: false,
            name_weight: 0.0,
            new_mass: 0.0,
            sentences: Vec::with_capacity(model.m),
        }
    }

    /// Starts a document scored against `state`.
    pub(crate) fn reset(&mut self, state: &State) {
        debug_assert!(
            state.entries_fresh(),
            "skeleton sums must be fresh before scoring"
        );
        for s in &self.sentences {
            self.used[s.attribute as usize] = false;
        }
        self.sentences.clear();
        self.phase = Phase::ExpectBos;
        self.sentence = 0;
        self.name_done = false;
        self.entity = NONE;
        self.name_code = 0;
        self.name_node = NAME_ROOT;
        self.name_absent = false;
        self.new_mass = state.new_name_mass(self.model);
        self.name_weight = state.root_name_weight(self.model, self.new_mass);
    }

    pub(crate) fn model(&self) -> &'m Model {
        self.model
    }

    pub(crate) fn finished(&self) -> bool {
        self.phase == Phase::Done
    }

    pub(crate) fn name(&self) -> &[u32] {
        &self.name
    }

    pub(crate) fn sentences(&self) -> &[Sentence] {
        &self.sentences
    }

    /// The document's entity once its name is read: `Some(id)` for a known entity, `None` for a
    /// new one.
    pub(crate) fn entity(&self) -> Option<u32> {
        debug_assert!(self.name_done);
        (self.entity != NONE).then_some(self.entity)
    }

    #[inline(always)]
    fn available(&self, attribute: usize) -> bool {
        if self.model.shuffled {
            !self.used[attribute]
        } else {
            attribute == self.sentence
        }
    }

    /// Mass of the parse states in `node`; `with_value` multiplies in each state's value factor.
    #[inline(always)]
    fn mass_of(&self, state: &State, node: u32, with_value: bool) -> f64 {
        let trie = &self.model.skeleton;
        let mut acc = 0.0;
        for e in trie.entries(node) {
            let a = trie.entry_attr[e] as usize;
            if !self.available(a) {
                continue;
            }
            let mut w = (state.entry_counts[e] as f64 + trie.entry_gamma[e]) * state.inv_norm[a];
            if with_value {
                w *= self.value_factor[a];
            }
            acc += w;
        }
        acc
    }

    /// `P(value token x | attribute a, entity)`.
    #[inline(always)]
    fn value_prob(&self, state: &State, attribute: usize, x: u32) -> f64 {
        let model = self.model;
        if !model.in_pool(attribute, x) {
            return 0.0;
        }
        if self.entity != NONE {
            let v = state.values[self.entity as usize * model.n_attributes + attribute];
            if v != NONE {
                return if x == v { 1.0 } else { 0.0 };
            }
        }
        model.value_prior(attribute, x)
    }

    fn begin_sentence(&mut self) {
        self.node = ROOT;
        self.rep = ROOT;
        self.past_value = false;
        // Each available attribute's templates carry Dirichlet-multinomial mass 1 in total.
        self.mass = if self.model.shuffled {
            (self.model.n_attributes - self.sentence) as f64
        } else {
            1.0
        };
    }

    /// `W(q x)` for the name part `j` of the next token `x` given the current prefix; returns
    /// the weight, the extended code and the trie node.
    #[inline(always)]
    fn extend_name(&self, state: &State, j: usize, x: u32) -> (f64, u64, u32) {
        let model = self.model;
        let code = self.name_code * model.name_size[j] as u64 + (x - model.name_start[j]) as u64;
        let node = if self.name_absent {
            NONE
        } else {
            state.trie_node(j + 1, code)
        };
        (
            state.name_weight(model, node, j + 1, self.new_mass),
            code,
            node,
        )
    }

    /// Consumes token `x`; returns its predictive probability and its role.
    #[inline(always)]
    pub(crate) fn step(&mut self, state: &State, x: u32) -> Result<(f64, usize), String> {
        match self.phase {
            Phase::Sentence => self.sentence_step(state, x),
            Phase::ExpectBos if x == BOS => {
                self.phase = Phase::Sentence;
                self.begin_sentence();
                Ok((1.0, ROLE_SPECIAL))
            }
            Phase::ExpectEos if x == EOS => {
                self.phase = Phase::Done;
                Ok((1.0, ROLE_SPECIAL))
            }
            Phase::ExpectBos => Err(format!(
                "a document must start with BOS, got {}",
                self.model.describe(x)
            )),
            Phase::ExpectEos => Err(format!(
                "expected EOS after {} sentences, got {}",
                self.model.m,
                self.model.describe(x)
            )),
            Phase::Done => Err(format!("token {} after EOS", self.model.describe(x))),
        }
    }

    #[inline(always)]
    fn sentence_step(&mut self, state: &State, x: u32) -> Result<(f64, usize), String> {
        let model = self.model;
        let trie = &model.skeleton;
        let code = model.code_of(x);
        let child = trie.child(self.node, code);
        if child == NONE {
            return Err(format!(
                "token {} cannot continue sentence {}",
                model.describe(x),
                self.sentence
            ));
        }
        // Through a one-child edge the template set, hence the mass, is unchanged.
        let branching = trie.n_children(self.node) > 1;
        let rep = if branching { child } else { self.rep };
        let (p, role) = if code < CODE_NAME {
            let p = if branching {
                let next = self.mass_of(state, rep, self.past_value);
                let p = next / self.mass;
                self.mass = next;
                p
            } else {
                1.0
            };
            (p, ROLE_SYNTAX)
        } else if code == CODE_VALUE {
            self.past_value = true;
            for e in trie.entries(rep) {
                let a = trie.entry_attr[e] as usize;
                if self.available(a) {
                    self.value_factor[a] = self.value_prob(state, a, x);
                }
            }
            let next = self.mass_of(state, rep, true);
            let p = next / self.mass;
            self.mass = next;
            self.value = x;
            (p, ROLE_VALUE)
        } else {
            let j = (code - CODE_NAME) as usize;
            let p_parse = if branching {
                let next = self.mass_of(state, rep, self.past_value);
                let p = next / self.mass;
                self.mass = next;
                p
            } else {
                1.0
            };
            let p_name = if self.name_done {
                if x == self.name[j] {
                    1.0
                } else {
                    0.0
                }
            } else {
                let (w, code, node) = self.extend_name(state, j, x);
                let p = w / self.name_weight;
                self.name[j] = x;
                self.name_code = code;
                self.name_node = node;
                self.name_absent = node == NONE;
                self.name_weight = w;
                if j + 1 == model.n_name_parts {
                    self.name_done = true;
                    self.entity = if node == NONE {
                        NONE
                    } else {
                        state.node_entity(node)
                    };
                }
                p
            };
            (p_parse * p_name, ROLE_NAME)
        };
        if p <= 0.0 || p.is_nan() {
            return Err(format!(
                "token {} has probability 0 under the model given the preceding tokens",
                model.describe(x)
            ));
        }
        self.node = child;
        self.rep = rep;
        let g = trie.terminal(child);
        if g != NONE {
            self.end_sentence(g);
        }
        Ok((p, role))
    }

    fn end_sentence(&mut self, g: u32) {
        let model = self.model;
        let a = model.template_offset.partition_point(|&o| o <= g) - 1;
        self.sentences.push(Sentence {
            attribute: a as u32,
            template: g - model.template_offset[a],
            value: self.value,
        });
        self.used[a] = true;
        self.sentence += 1;
        if self.sentence == model.m {
            self.phase = Phase::ExpectEos;
        } else {
            self.begin_sentence();
        }
    }

    /// The next token when it is forced by the document structure (`BOS`, `EOS`), `None`
    /// inside a sentence or after the end.
    pub(crate) fn forced(&self) -> Option<u32> {
        match self.phase {
            Phase::ExpectBos => Some(BOS),
            Phase::ExpectEos => Some(EOS),
            _ => None,
        }
    }

    /// Inside a sentence: the codes of the children of the current skeleton node into `codes`
    /// and, when there are two or more, each child's predictive mass (relative) into
    /// `weights`. What an entropy coder codes first; it depends on the state and the tokens
    /// read so far alone, never on the next token.
    pub(crate) fn branch(&self, state: &State, codes: &mut Vec<u32>, weights: &mut Vec<f64>) {
        let trie = &self.model.skeleton;
        codes.clear();
        weights.clear();
        let branching = trie.n_children(self.node) > 1;
        for i in trie.children(self.node) {
            let (code, child) = trie.child_at(i);
            codes.push(code);
            if branching {
                // Values and name parts come after the parse choice with total mass 1.
                weights.push(self.mass_of(state, child, self.past_value));
            }
        }
    }

    /// The tokens behind the child with code `code` of the current node (see [`branch`]),
    /// with their relative predictive masses given that child: the second thing an entropy
    /// coder codes. `acc` is a scratch of `vocab_size` zeros, left zeroed; `order` a scratch
    /// list; `out` receives the weighted support when the answer is [`Within::Weighted`] and
    /// `dense` the weights when it is [`Within::Dense`]. Either way the support is the tokens
    /// of positive weight in ascending order within one name part, in order of first
    /// appearance over the parse states for a value.
    ///
    /// [`branch`]: Self::branch
    pub(crate) fn within(
        &self,
        state: &State,
        code: u32,
        acc: &mut [f64],
        order: &mut Vec<u32>,
        out: &mut Vec<(u32, f64)>,
        dense: &mut Vec<f64>,
    ) -> Within {
        let model = self.model;
        let trie = &model.skeleton;
        if code < CODE_NAME {
            return Within::Single(code);
        }
        out.clear();
        if code == CODE_VALUE {
            let rep = if trie.n_children(self.node) > 1 {
                trie.child(self.node, code)
            } else {
                self.rep
            };
            let revealed_value = |a: usize| {
                if self.entity != NONE {
                    state.values[self.entity as usize * model.n_attributes + a]
                } else {
                    NONE
                }
            };
            // One parse state with the value unknown (the common case): the whole pool in
            // order, each value with its prior, which is what the general case below gives.
            let mut states = trie
                .entries(rep)
                .filter(|&e| self.available(trie.entry_attr[e] as usize));
            if let (Some(e), None) = (states.next(), states.next()) {
                let a = trie.entry_attr[e] as usize;
                if revealed_value(a) == NONE {
                    let w =
                        (state.entry_counts[e] as f64 + trie.entry_gamma[e]) * state.inv_norm[a];
                    dense.clear();
                    dense.extend(model.value_prob[a].iter().map(|&p| w * p));
                    if dense.iter().all(|&x| x > 0.0) {
                        return Within::Dense(model.value_base[a]);
                    }
                }
            }
            order.clear();
            // A value reached through two parse states (a shared pool) adds up.
            let mut add = |x: u32, w: f64| {
                if w > 0.0 {
                    if acc[x as usize] == 0.0 {
                        order.push(x);
                    }
                    acc[x as usize] += w;
                }
            };
            for e in trie.entries(rep) {
                let a = trie.entry_attr[e] as usize;
                if !self.available(a) {
                    continue;
                }
                let w = (state.entry_counts[e] as f64 + trie.entry_gamma[e]) * state.inv_norm[a];
                let revealed = revealed_value(a);
                if revealed != NONE {
                    add(revealed, w);
                } else {
                    let base = model.value_base[a];
                    for (local, &p) in model.value_prob[a].iter().enumerate() {
                        add(base + local as u32, w * p);
                    }
                }
            }
            for &x in order.iter() {
                out.push((x, std::mem::take(&mut acc[x as usize])));
            }
            return Within::Weighted;
        }
        let j = (code - CODE_NAME) as usize;
        if self.name_done {
            return Within::Single(self.name[j]);
        }
        let start = model.name_start[j];
        if self.name_absent {
            // No used name has this prefix: every extension has the same new-name weight.
            return Within::Uniform(start, model.name_size[j]);
        }
        // Every unused extension has the new-name weight; the used ones (few, next to the
        // part's size) are read off the name trie's child list. The weights are those of
        // `extend_name` for every token of the part.
        let new_weight = state.name_weight(model, NONE, j + 1, self.new_mass);
        dense.clear();
        dense.resize(model.name_size[j] as usize, new_weight);
        let mut all_positive = new_weight > 0.0;
        state.for_each_name_child(self.name_node, |part, node| {
            let w = state.name_weight(model, node, j + 1, self.new_mass);
            all_positive &= w > 0.0;
            dense[part as usize] = w;
        });
        if all_positive {
            return Within::Dense(start);
        }
        out.extend(
            dense
                .iter()
                .enumerate()
                .filter(|&(_, &w)| w > 0.0)
                .map(|(local, &w)| (start + local as u32, w)),
        );
        Within::Weighted
    }

    /// The full predictive distribution of the next token (over the whole vocabulary) into
    /// `out`. Used by the normalisation tests; the scorer never calls it.
    pub(crate) fn distribution(&self, state: &State, out: &mut [f64]) {
        let model = self.model;
        let trie = &model.skeleton;
        out.iter_mut().for_each(|p| *p = 0.0);
        match self.phase {
            Phase::ExpectBos => out[BOS as usize] = 1.0,
            Phase::ExpectEos => out[EOS as usize] = 1.0,
            Phase::Done => {}
            Phase::Sentence => {
                let branching = trie.n_children(self.node) > 1;
                for i in trie.children(self.node) {
                    let (code, child) = trie.child_at(i);
                    let rep = if branching { child } else { self.rep };
                    if code < CODE_NAME {
                        out[code as usize] += self.mass_of(state, rep, self.past_value) / self.mass;
                    } else if code == CODE_VALUE {
                        for e in trie.entries(rep) {
                            let a = trie.entry_attr[e] as usize;
                            if !self.available(a) {
                                continue;
                            }
                            let w = (state.entry_counts[e] as f64 + trie.entry_gamma[e])
                                * state.inv_norm[a]
                                / self.mass;
                            let base = model.value_base[a];
                            for local in 0..model.value_size[a] {
                                out[(base + local) as usize] +=
                                    w * self.value_prob(state, a, base + local);
                            }
                        }
                    } else {
                        let j = (code - CODE_NAME) as usize;
                        let p_parse = self.mass_of(state, rep, self.past_value) / self.mass;
                        if self.name_done {
                            out[self.name[j] as usize] += p_parse;
                        } else {
                            let start = model.name_start[j];
                            for local in 0..model.name_size[j] {
                                let (w, _, _) = self.extend_name(state, j, start + local);
                                out[(start + local) as usize] += p_parse * w / self.name_weight;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Per-token code lengths of a corpus and their sums.
#[derive(Clone, Debug, Default)]
pub struct CodeLengths {
    /// Bits of every token, aligned with the token stream (`None` when not requested).
    pub per_token: Option<Vec<f64>>,
    /// Bits of every document.
    pub per_doc: Vec<f64>,
    /// Total bits by role (special, syntax, name, value).
    pub bits_by_role: [f64; N_ROLES],
    pub tokens_by_role: [u64; N_ROLES],
    /// Total bits.
    pub total: f64,
    /// Entities seen.
    pub n_entities: u64,
}

/// Checks `doc_offsets` against the token stream.
pub fn check_offsets(offsets: &[u64], n_tokens: usize) -> Result<(), CorpusError> {
    let bad = |m: String| CorpusError::Argument(format!("doc_offsets: {m}"));
    if offsets.is_empty() {
        return Err(bad("needs at least one entry (N + 1 offsets)".into()));
    }
    if offsets[0] != 0 {
        return Err(bad(format!("must start at 0, got {}", offsets[0])));
    }
    if *offsets.last().unwrap() != n_tokens as u64 {
        return Err(bad(format!(
            "must end at the number of tokens ({n_tokens}), got {}",
            offsets.last().unwrap()
        )));
    }
    // Checked: an offset near 2^64 must be an error, not an overflow panic.
    if let Some(i) = offsets
        .windows(2)
        .position(|w| w[0].checked_add(2).is_none_or(|least| w[1] < least))
    {
        return Err(bad(format!(
            "document {i} spans [{}, {}): offsets must increase and every document holds at least BOS and EOS",
            offsets[i],
            offsets[i + 1]
        )));
    }
    Ok(())
}

#[inline]
fn doc_tokens<'a, T>(tokens: &'a [T], offsets: &[u64], d: usize) -> &'a [T] {
    &tokens[offsets[d] as usize..offsets[d + 1] as usize]
}

/// Sums of one run of documents.
#[derive(Default)]
struct Sums {
    bits_by_role: [Neumaier; N_ROLES],
    tokens_by_role: [u64; N_ROLES],
}

/// An error tied to the document where it happened (the lowest document wins when several
/// threads fail).
type DocFailure = (usize, CorpusError);

/// What a scored chunk leaves behind: its sums and the number of entities at its end.
type ChunkResult = Option<Result<(Sums, u64), DocFailure>>;

/// Scores documents `docs` sequentially, committing each to `state` after scoring it.
#[allow(clippy::too_many_arguments)]
fn score_and_learn<T: TokenWord>(
    model: &Model,
    state: &mut State,
    tokens: &[T],
    offsets: &[u64],
    docs: std::ops::Range<usize>,
    mut per_token: Option<&mut [f64]>,
    per_doc: &mut [f64],
    progress: &Progress,
) -> Result<Sums, DocFailure> {
    let mut cursor = Cursor::new(model);
    let mut sums = Sums::default();
    let token_base = offsets[docs.start];
    for d in docs.clone() {
        if (d - docs.start) % 1024 == 1023 {
            progress.add(1024);
            if progress.cancelled() {
                return Err((d, cancelled_error()));
            }
        }
        let start = offsets[d];
        let doc = doc_tokens(tokens, offsets, d);
        let out = per_token.as_deref_mut().map(|o| {
            &mut o[(start - token_base) as usize..(start - token_base) as usize + doc.len()]
        });
        cursor.reset(state);
        let mut role_bits = [0.0f64; N_ROLES];
        let mut role_tokens = [0u64; N_ROLES];
        let fail = |position: usize, message: String| {
            (
                d,
                DocError { position, message }.into_corpus_error(d, start),
            )
        };
        match out {
            Some(out) => {
                for (i, (&t, o)) in doc.iter().zip(out.iter_mut()).enumerate() {
                    let (p, role) = cursor.step(state, t.to_u32()).map_err(|m| fail(i, m))?;
                    let bits = if p == 1.0 { 0.0 } else { -p.log2() };
                    *o = bits;
                    role_bits[role] += bits;
                    role_tokens[role] += 1;
                }
            }
            None => {
                for (i, &t) in doc.iter().enumerate() {
                    let (p, role) = cursor.step(state, t.to_u32()).map_err(|m| fail(i, m))?;
                    if p != 1.0 {
                        role_bits[role] -= p.log2();
                    }
                    role_tokens[role] += 1;
                }
            }
        }
        if !cursor.finished() {
            return Err(fail(doc.len(), "the document ends early".to_string()));
        }
        per_doc[d - docs.start] = role_bits.iter().sum();
        for r in 0..N_ROLES {
            sums.bits_by_role[r].add(role_bits[r]);
            sums.tokens_by_role[r] += role_tokens[r];
        }
        state
            .commit(model, cursor.name(), cursor.sentences())
            .map_err(|m| fail(doc.len() - 1, m))?;
    }
    progress.add(((docs.end - docs.start) % 1024) as u64);
    Ok(sums)
}

/// Documents parsed per batch when learning without scoring.
const LEARN_BATCH: usize = 8192;

/// Learns documents `docs` into `state` without scoring them: batches are parsed in parallel
/// (parsing needs no state) and committed in order, the commit of one batch overlapping the
/// parse of the next.
pub(crate) fn learn<T: TokenWord>(
    model: &Model,
    state: &mut State,
    tokens: &[T],
    offsets: &[u64],
    docs: std::ops::Range<usize>,
    progress: &Progress,
) -> Result<(), DocFailure> {
    let (j, m) = (model.n_name_parts, model.m);
    let parse_batch = |lo: usize,
                       hi: usize,
                       names: &mut Vec<u32>,
                       sents: &mut Vec<Sentence>|
     -> Result<(), DocFailure> {
        names.resize((hi - lo) * j, 0);
        sents.resize((hi - lo) * m, Sentence::default());
        let failed = names
            .par_chunks_mut(j)
            .zip(sents.par_chunks_mut(m))
            .enumerate()
            .with_min_len(256)
            .map(|(i, (nm, st))| {
                parse_doc(model, doc_tokens(tokens, offsets, lo + i), nm, st).is_err()
            })
            .reduce(|| false, |a, b| a || b);
        if failed {
            // Report the first failing document, whatever thread found one.
            for d in lo..hi {
                let i = d - lo;
                if let Err(e) = parse_doc(
                    model,
                    doc_tokens(tokens, offsets, d),
                    &mut names[i * j..(i + 1) * j],
                    &mut sents[i * m..(i + 1) * m],
                ) {
                    return Err((d, e.into_corpus_error(d, offsets[d])));
                }
            }
        }
        Ok(())
    };
    let commit_batch = |state: &mut State,
                        lo: usize,
                        hi: usize,
                        names: &[u32],
                        sents: &[Sentence]|
     -> Result<(), DocFailure> {
        for d in lo..hi {
            let i = d - lo;
            state
                .commit(
                    model,
                    &names[i * j..(i + 1) * j],
                    &sents[i * m..(i + 1) * m],
                )
                .map_err(|msg| {
                    let end = offsets[d + 1] - offsets[d] - 1;
                    (
                        d,
                        DocError {
                            position: end as usize,
                            message: msg,
                        }
                        .into_corpus_error(d, offsets[d]),
                    )
                })?;
        }
        progress.add((hi - lo) as u64);
        Ok(())
    };
    let (mut names_a, mut sents_a) = (Vec::new(), Vec::new());
    let (mut names_b, mut sents_b) = (Vec::new(), Vec::new());
    let mut lo = docs.start;
    if lo >= docs.end {
        return Ok(());
    }
    let mut hi = (lo + LEARN_BATCH).min(docs.end);
    parse_batch(lo, hi, &mut names_a, &mut sents_a)?;
    loop {
        if progress.cancelled() {
            return Err((lo, cancelled_error()));
        }
        let next_lo = hi;
        let next_hi = (hi + LEARN_BATCH).min(docs.end);
        let (committed, parsed) = rayon::join(
            || commit_batch(state, lo, hi, &names_a, &sents_a),
            || {
                if next_lo < next_hi {
                    parse_batch(next_lo, next_hi, &mut names_b, &mut sents_b)
                } else {
                    Ok(())
                }
            },
        );
        committed?;
        parsed?;
        if next_lo >= next_hi {
            return Ok(());
        }
        std::mem::swap(&mut names_a, &mut names_b);
        std::mem::swap(&mut sents_a, &mut sents_b);
        lo = next_lo;
        hi = next_hi;
    }
}

/// Fewest documents per parallel chunk: below this the fast-forward is not worth a thread.
const MIN_CHUNK_DOCS: usize = 1024;

/// Exact per-token code lengths of a whole corpus (docs/codelength.md#per-token), in bits.
///
/// The predictive of a document depends on every earlier document, so the corpus is cut into
/// one chunk per thread: a fast sequential pass (parse and learn, no scoring) produces the state
/// at each chunk's start, and every chunk is then scored from its own state while the fast pass
/// runs ahead. Every state is derived from the tokens alone, so the result is bit-identical for
/// every thread count (a test checks this).
pub fn code_lengths<T: TokenWord>(
    model: &Model,
    tokens: &[T],
    offsets: &[u64],
    keep_per_token: bool,
    threads: Option<usize>,
    report: Report<'_>,
) -> Result<CodeLengths, CorpusError> {
    check_offsets(offsets, tokens.len())?;
    let n_docs = offsets.len() - 1;
    let pool = thread_pool(threads)?;
    let n_threads = pool.current_num_threads();
    let n_chunks = n_threads.min(n_docs / MIN_CHUNK_DOCS).max(1);
    code_lengths_chunked(
        model,
        tokens,
        offsets,
        keep_per_token,
        &pool,
        n_chunks,
        report,
    )
}

/// [`code_lengths`] with an explicit number of chunks (tests use it to force chunking).
pub fn code_lengths_chunked<T: TokenWord>(
    model: &Model,
    tokens: &[T],
    offsets: &[u64],
    keep_per_token: bool,
    pool: &rayon::ThreadPool,
    n_chunks: usize,
    report: Report<'_>,
) -> Result<CodeLengths, CorpusError> {
    check_offsets(offsets, tokens.len())?;
    let n_docs = offsets.len() - 1;
    let n_chunks = n_chunks.clamp(1, n_docs.max(1));
    let bounds: Vec<usize> = (0..=n_chunks).map(|c| c * n_docs / n_chunks).collect();
    let mut per_token = if keep_per_token {
        Some(try_zeroed::<f64>(
            tokens.len(),
            "the per-token code lengths",
        )?)
    } else {
        None
    };
    let mut per_doc = vec![0.0f64; n_docs];
    // Work: every document scored, plus the fast-forward over all but the last chunk.
    let total = (n_docs + bounds[n_chunks - 1]) as u64;
    let run = |progress: &Progress| -> Result<(Vec<Sums>, u64), CorpusError> {
        // Disjoint output slices, one per chunk.
        let mut token_parts: Vec<Option<&mut [f64]>> = Vec::with_capacity(n_chunks);
        let mut doc_parts: Vec<&mut [f64]> = Vec::with_capacity(n_chunks);
        let mut tok_rest = per_token.as_deref_mut();
        let mut doc_rest = &mut per_doc[..];
        for c in 0..n_chunks {
            let span = (offsets[bounds[c + 1]] - offsets[bounds[c]]) as usize;
            match tok_rest.take() {
                Some(rest) => {
                    let (here, next) = rest.split_at_mut(span);
                    token_parts.push(Some(here));
                    tok_rest = Some(next);
                }
                None => token_parts.push(None),
            }
            let (here, next) =
                std::mem::take(&mut doc_rest).split_at_mut(bounds[c + 1] - bounds[c]);
            doc_parts.push(here);
            doc_rest = next;
        }
        let results: Vec<std::sync::Mutex<ChunkResult>> =
            (0..n_chunks).map(|_| std::sync::Mutex::new(None)).collect();
        let mut ff_failure: Option<DocFailure> = None;
        pool.install(|| {
            rayon::scope(|s| {
                let mut ahead = State::new(model, false);
                let mut parts = token_parts.into_iter().zip(doc_parts);
                for c in 0..n_chunks {
                    let (tok_part, doc_part) = parts.next().unwrap();
                    let mut state = if c + 1 == n_chunks {
                        std::mem::replace(&mut ahead, State::new(model, false))
                    } else {
                        ahead.clone()
                    };
                    state.set_tracking(model, true);
                    let slot = &results[c];
                    let docs = bounds[c]..bounds[c + 1];
                    s.spawn(move |_| {
                        let r = score_and_learn(
                            model, &mut state, tokens, offsets, docs, tok_part, doc_part, progress,
                        )
                        .map(|sums| (sums, state.n_entities() as u64));
                        *slot.lock().unwrap() = Some(r);
                    });
                    if c + 1 < n_chunks {
                        if let Err(f) = learn(
                            model,
                            &mut ahead,
                            tokens,
                            offsets,
                            bounds[c]..bounds[c + 1],
                            progress,
                        ) {
                            ff_failure = Some(f);
                            break;
                        }
                    }
                }
            })
        });
        let mut first_failure = ff_failure;
        let mut sums = Vec::with_capacity(n_chunks);
        let mut n_entities = 0;
        for slot in results {
            match slot.into_inner().unwrap() {
                Some(Ok((s, k))) => {
                    sums.push(s);
                    n_entities = k;
                }
                Some(Err(f)) if first_failure.as_ref().is_none_or(|g| f.0 < g.0) => {
                    first_failure = Some(f);
                }
                _ => {}
            }
        }
        if let Some((_, e)) = first_failure {
            return Err(e);
        }
        Ok((sums, n_entities))
    };
    let (sums, n_entities) = run_with_progress(total, report, run)?;
    let mut out = CodeLengths {
        per_doc: Vec::new(),
        per_token: None,
        n_entities,
        ..Default::default()
    };
    let mut total_bits = Neumaier::default();
    for r in 0..N_ROLES {
        let mut acc = Neumaier::default();
        for s in &sums {
            acc.add(s.bits_by_role[r].value());
            out.tokens_by_role[r] += s.tokens_by_role[r];
        }
        out.bits_by_role[r] = acc.value();
        total_bits.add(acc.value());
    }
    out.total = total_bits.value();
    out.per_doc = per_doc;
    out.per_token = per_token;
    Ok(out)
}

/// The full predictive distribution (over the whole vocabulary) of the token at each of
/// `positions` (indices into the token stream), as a `positions.len() x V` row-major matrix.
/// A test and debugging entry point: it runs the sequential scorer up to the last position.
pub fn predictive_distributions<T: TokenWord>(
    model: &Model,
    tokens: &[T],
    offsets: &[u64],
    positions: &[u64],
) -> Result<Vec<f64>, CorpusError> {
    check_offsets(offsets, tokens.len())?;
    let v = model.vocab_size() as usize;
    if let Some(&p) = positions.iter().find(|&&p| p >= tokens.len() as u64) {
        return Err(CorpusError::Argument(format!(
            "position {p} out of range for {} tokens",
            tokens.len()
        )));
    }
    let cells = positions.len().checked_mul(v).ok_or_else(|| {
        CorpusError::Argument(format!(
            "{} positions x {v} vocabulary entries do not fit in memory",
            positions.len()
        ))
    })?;
    let mut out = try_zeroed::<f64>(cells, "the predictive distributions")?;
    let mut order: Vec<usize> = (0..positions.len()).collect();
    order.sort_by_key(|&i| positions[i]);
    let mut next = 0usize;
    let mut state = State::new(model, true);
    let mut cursor = Cursor::new(model);
    let mut scratch = vec![0.0f64; v];
    let n_docs = offsets.len() - 1;
    for d in 0..n_docs {
        if next == order.len() {
            break;
        }
        let start = offsets[d];
        let doc = doc_tokens(tokens, offsets, d);
        cursor.reset(&state);
        for (i, &t) in doc.iter().enumerate() {
            let pos = start + i as u64;
            if next < order.len() && positions[order[next]] == pos {
                cursor.distribution(&state, &mut scratch);
                while next < order.len() && positions[order[next]] == pos {
                    out[order[next] * v..(order[next] + 1) * v].copy_from_slice(&scratch);
                    next += 1;
                }
            }
            cursor.step(&state, t.to_u32()).map_err(|m| {
                DocError {
                    position: i,
                    message: m,
                }
                .into_corpus_error(d, start)
            })?;
        }
        state
            .commit(model, cursor.name(), cursor.sentences())
            .map_err(|m| {
                DocError {
                    position: doc.len() - 1,
                    message: m,
                }
                .into_corpus_error(d, start)
            })?;
    }
    Ok(out)
}

/// Per-role bits and the entity's training count of one document scored against a frozen state
/// (the state is not changed: docs/codelength.md#learning-curve scores each test document on its
/// own).
pub(crate) fn score_frozen<T: TokenWord>(
    cursor: &mut Cursor<'_>,
    state: &State,
    doc: &[T],
) -> Result<([f64; N_ROLES], u64), DocError> {
    cursor.reset(state);
    let mut bits = [0.0f64; N_ROLES];
    for (i, &t) in doc.iter().enumerate() {
        let (p, role) = cursor.step(state, t.to_u32()).map_err(|message| DocError {
            position: i,
            message,
        })?;
        if p != 1.0 {
            bits[role] -= p.log2();
        }
    }
    if !cursor.finished() {
        return Err(DocError {
            position: doc.len(),
            message: "the document ends early".to_string(),
        });
    }
    let count = cursor.entity().map_or(0, |k| state.counts[k as usize]);
    Ok((bits, count))
}
