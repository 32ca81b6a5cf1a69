//! What the Bayes learner knows: the fixed model ([`Model`]: grammar plus the skeleton trie that
//! drives the parse) and what it has learnt from the documents read so far ([`State`]: CRP counts,
//! the trie over used names, revealed values, template counts).
//!
//! Documents change the state only through [`State::commit`], once the whole document has been
//! read: within a document every sentence has a different attribute, so nothing a document
//! teaches (its template counts, its revealed values, its entity's count) can change the
//! prediction of its own later tokens. Scoring a document therefore needs only `&State`, which
//! is what lets the learning curve score every test document against one frozen prefix state, in
//! parallel, without copies.

use std::collections::BTreeMap;

use crate::config::{AttributeOrder, Config};
use crate::error::{ConfigError, CorpusError};
use crate::grammar::{Grammar, Slot, BOS, EOS};
use crate::sampler::TokenWord;

use crate::hash::IntMap;

use super::{ROLE_NAME, ROLE_SPECIAL, ROLE_SYNTAX, ROLE_VALUE};

/// "No such node / entity / value".
pub(crate) const NONE: u32 = u32::MAX;
/// The root of the name trie (the empty prefix) where a name-trie node is expected.
pub(crate) const NAME_ROOT: u32 = u32::MAX - 1;
const SYNTAX_START: u32 = 3;

/// Codes of the expanded skeleton slots. A syntax word's code is its token id (ids stay below
/// 2^31); name part `j` is `CODE_NAME + j`; the value slot is `CODE_VALUE`.
pub(crate) const CODE_NAME: u32 = 0x8000_0000;
pub(crate) const CODE_VALUE: u32 = 0xFFFF_FFF0;
pub(crate) const CODE_SPECIAL: u32 = 0xFFFF_FFF1;
pub(crate) const CODE_INVALID: u32 = 0xFFFF_FFF2;

/// One parsed sentence: attribute, template (index within the attribute) and value token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sentence {
    pub attribute: u32,
    pub template: u32,
    pub value: u32,
}

/// A prefix tree over the expanded skeletons of all templates of all attributes (the `J` name
/// tokens of `[NAME]` are `J` slots). A node is a set of candidate parse states: the templates
/// whose skeleton starts with the slots on the path to it. Per node and attribute, an *entry*
/// holds the number of such templates; the learner's template counts summed over them live in
/// [`State`], so the Dirichlet-multinomial mass of a node is one pass over its entries. A node
/// with a single child passes its template set on unchanged, so sums are kept only at the root
/// and at children of branching nodes; any other node is represented by its nearest such
/// ancestor.
#[derive(Clone, Debug)]
pub struct SkeletonTrie {
    child_start: Vec<u32>,
    child_code: Vec<u32>,
    child_node: Vec<u32>,
    entry_start: Vec<u32>,
    pub(crate) entry_attr: Vec<u32>,
    /// `gamma` times the number of templates of the entry's attribute below the node.
    pub(crate) entry_gamma: Vec<f64>,
    /// Global template index of a node reached by the final `END`, else `NONE`.
    terminal: Vec<u32>,
    /// Per global template: the entries of the representative nodes on its path (the root and
    /// every child of a branching node).
    path_start: Vec<u32>,
    path_entries: Vec<u32>,
}

pub(crate) const ROOT: u32 = 0;

impl SkeletonTrie {
    fn new(grammar: &Grammar, gamma: f64) -> Self {
        let j_count = grammar.n_name_parts() as u32;
        let mut children: Vec<Vec<(u32, u32)>> = vec![Vec::new()];
        let mut per_attr: Vec<BTreeMap<u32, u32>> = vec![BTreeMap::new()];
        let mut terminal = vec![NONE];
        let mut expanded_all: Vec<(u32, Vec<u32>)> = Vec::new();
        for (a, list) in grammar.templates.iter().enumerate() {
            for tpl in list {
                let mut codes = Vec::with_capacity(tpl.len());
                for slot in &tpl.slots {
                    match *slot {
                        Slot::Word(w) => codes.push(w),
                        Slot::Name => codes.extend((0..j_count).map(|j| CODE_NAME + j)),
                        Slot::Value => codes.push(CODE_VALUE),
                    }
                }
                expanded_all.push((a as u32, codes));
            }
        }
        for (g, (a, codes)) in expanded_all.iter().enumerate() {
            let mut node = 0usize;
            *per_attr[0].entry(*a).or_default() += 1;
            for &code in codes {
                let next = match children[node].iter().find(|c| c.0 == code) {
                    Some(&(_, c)) => c as usize,
                    None => {
                        let c = children.len();
                        children.push(Vec::new());
                        per_attr.push(BTreeMap::new());
                        terminal.push(NONE);
                        children[node].push((code, c as u32));
                        c
                    }
                };
                node = next;
                *per_attr[node].entry(*a).or_default() += 1;
            }
            // Skeletons are pairwise distinct (checked by Grammar::new) and END only ends them,
            // so each template owns its final node.
            debug_assert_eq!(terminal[node], NONE);
            terminal[node] = g as u32;
        }
        let mut trie = SkeletonTrie {
            child_start: vec![0],
            child_code: Vec::new(),
            child_node: Vec::new(),
            entry_start: vec![0],
            entry_attr: Vec::new(),
            entry_gamma: Vec::new(),
            terminal,
            path_start: vec![0],
            path_entries: Vec::new(),
        };
        for (kids, attrs) in children.iter_mut().zip(&per_attr) {
            kids.sort_unstable();
            trie.child_code.extend(kids.iter().map(|c| c.0));
            trie.child_node.extend(kids.iter().map(|c| c.1));
            trie.child_start.push(trie.child_code.len() as u32);
            for (&a, &n) in attrs {
                trie.entry_attr.push(a);
                trie.entry_gamma.push(n as f64 * gamma);
            }
            trie.entry_start.push(trie.entry_attr.len() as u32);
        }
        for (a, codes) in &expanded_all {
            let mut node = ROOT;
            trie.path_entries.push(trie.entry_of(node, *a));
            for &code in codes {
                let parent = node;
                node = trie.child(node, code);
                // A node reached through a one-child edge has its parent's template set, hence
                // its parent's sums: the scorer reads the parent's entries instead, so only the
                // root and children of branching nodes (the "representatives") keep sums.
                if trie.n_children(parent) > 1 {
                    trie.path_entries.push(trie.entry_of(node, *a));
                }
            }
            trie.path_start.push(trie.path_entries.len() as u32);
        }
        trie
    }

    fn entry_of(&self, node: u32, attribute: u32) -> u32 {
        let r = self.entries(node);
        let i = self.entry_attr[r.clone()]
            .binary_search(&attribute)
            .expect("attribute below node");
        r.start as u32 + i as u32
    }

    #[inline(always)]
    pub(crate) fn entries(&self, node: u32) -> std::ops::Range<usize> {
        self.entry_start[node as usize] as usize..self.entry_start[node as usize + 1] as usize
    }

    #[inline(always)]
    pub(crate) fn children(&self, node: u32) -> std::ops::Range<usize> {
        self.child_start[node as usize] as usize..self.child_start[node as usize + 1] as usize
    }

    #[inline(always)]
    pub(crate) fn n_children(&self, node: u32) -> usize {
        (self.child_start[node as usize + 1] - self.child_start[node as usize]) as usize
    }

    #[inline(always)]
    pub(crate) fn child_at(&self, i: usize) -> (u32, u32) {
        (self.child_code[i], self.child_node[i])
    }

    /// The child of `node` along slot `code`, or `NONE`.
    #[inline(always)]
    pub(crate) fn child(&self, node: u32, code: u32) -> u32 {
        let r = self.children(node);
        let codes = &self.child_code[r.clone()];
        if codes.len() <= 8 {
            for (i, &c) in codes.iter().enumerate() {
                if c == code {
                    return self.child_node[r.start + i];
                }
            }
            NONE
        } else {
            match codes.binary_search(&code) {
                Ok(i) => self.child_node[r.start + i],
                Err(_) => NONE,
            }
        }
    }

    #[inline(always)]
    pub(crate) fn terminal(&self, node: u32) -> u32 {
        self.terminal[node as usize]
    }

    #[inline(always)]
    fn path(&self, global_template: usize) -> &[u32] {
        &self.path_entries[self.path_start[global_template] as usize
            ..self.path_start[global_template + 1] as usize]
    }

    pub(crate) fn n_entries(&self) -> usize {
        self.entry_attr.len()
    }
}

/// Everything the Bayes learner knows before reading any document (docs/codelength.md): the grammar
/// and the
/// hyperparameters, in the form the code-length engines use.
#[derive(Clone, Debug)]
pub struct Model {
    pub grammar: Grammar,
    pub(crate) alpha: f64,
    pub(crate) beta: f64,
    pub(crate) gamma: f64,
    pub(crate) n_attributes: usize,
    pub(crate) m: usize,
    pub(crate) shuffled: bool,
    pub(crate) n_name_parts: usize,
    pub(crate) name_start: Vec<u32>,
    pub(crate) name_size: Vec<u32>,
    /// `U = prod_j L_j`.
    pub(crate) name_space: u64,
    /// `names_below[d] = prod_{j >= d} L_j`: full names under a prefix of `d` parts.
    pub(crate) names_below: Vec<u64>,
    /// First global template index of each attribute (plus the total at the end).
    pub(crate) template_offset: Vec<u32>,
    pub(crate) n_templates: Vec<u32>,
    pub(crate) value_base: Vec<u32>,
    pub(crate) value_size: Vec<u32>,
    /// `H_a` as probabilities and as natural logs, over pool-local indices.
    pub(crate) value_prob: Vec<Vec<f64>>,
    pub(crate) value_log_prob: Vec<Vec<f64>>,
    syntax_end: u32,
    names_end: u32,
    pub(crate) vocab_size: u32,
    pub(crate) skeleton: SkeletonTrie,
}

impl Model {
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let grammar = Grammar::new(config)?;
        Model::from_grammar(grammar)
    }

    pub fn from_grammar(grammar: Grammar) -> Result<Self, ConfigError> {
        let c = &grammar.config;
        let l = &grammar.layout;
        let j_count = grammar.n_name_parts();
        let mut names_below = vec![1u64; j_count + 1];
        for d in (0..j_count).rev() {
            names_below[d] = names_below[d + 1]
                .checked_mul(l.name_size[d] as u64)
                .ok_or_else(|| {
                    ConfigError::field(
                        "name_parts",
                        "the number of names prod(name_parts) must fit in 64 bits".to_string(),
                    )
                })?;
        }
        let a_count = grammar.n_attributes();
        let mut template_offset = vec![0u32];
        for list in &grammar.templates {
            template_offset.push(template_offset.last().unwrap() + list.len() as u32);
        }
        let value_base: Vec<u32> = (0..a_count).map(|a| grammar.value_base(a)).collect();
        let value_size: Vec<u32> = (0..a_count)
            .map(|a| l.pool_size[c.attribute_pool[a]])
            .collect();
        let value_prob = grammar
            .value_log_prob
            .iter()
            .map(|v| v.iter().map(|x| x.exp()).collect())
            .collect();
        let skeleton = SkeletonTrie::new(&grammar, c.template_prior);
        Ok(Model {
            alpha: c.alpha,
            beta: c.beta,
            gamma: c.template_prior,
            n_attributes: a_count,
            m: c.m(),
            shuffled: c.attribute_order == AttributeOrder::Shuffled,
            n_name_parts: j_count,
            name_start: l.name_start.clone(),
            name_size: l.name_size.clone(),
            name_space: names_below[0],
            names_below,
            n_templates: (0..a_count)
                .map(|a| grammar.templates[a].len() as u32)
                .collect(),
            template_offset,
            value_base,
            value_size,
            value_prob,
            value_log_prob: grammar.value_log_prob.clone(),
            syntax_end: SYNTAX_START + l.n_syntax,
            names_end: l.pool_start[0],
            vocab_size: l.vocab_size,
            skeleton,
            grammar,
        })
    }

    pub fn config(&self) -> &Config {
        &self.grammar.config
    }

    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// `d_syn = sum_a (T_a - 1)`, the number of free syntax parameters.
    pub fn syntax_dimension(&self) -> u64 {
        self.n_templates.iter().map(|&t| t as u64 - 1).sum()
    }

    #[inline(always)]
    pub(crate) fn name_part(&self, token: u32) -> usize {
        // Name blocks are contiguous and ascending: the last block starting at or before token.
        self.name_start.partition_point(|&s| s <= token) - 1
    }

    /// Slot code of a token (see [`CODE_NAME`]).
    #[inline(always)]
    pub(crate) fn code_of(&self, token: u32) -> u32 {
        if token < SYNTAX_START {
            CODE_SPECIAL
        } else if token < self.syntax_end {
            token
        } else if token < self.names_end {
            CODE_NAME + self.name_part(token) as u32
        } else if token < self.vocab_size {
            CODE_VALUE
        } else {
            CODE_INVALID
        }
    }

    #[inline(always)]
    pub(crate) fn role_of_code(code: u32) -> usize {
        if code == CODE_VALUE {
            ROLE_VALUE
        } else if code >= CODE_NAME {
            if code == CODE_SPECIAL || code == CODE_INVALID {
                ROLE_SPECIAL
            } else {
                ROLE_NAME
            }
        } else {
            ROLE_SYNTAX
        }
    }

    /// `H_a(x)` for a token `x` (0 outside attribute `a`'s pool).
    #[inline(always)]
    pub(crate) fn value_prior(&self, attribute: usize, token: u32) -> f64 {
        let local = token.wrapping_sub(self.value_base[attribute]);
        if local < self.value_size[attribute] {
            self.value_prob[attribute][local as usize]
        } else {
            0.0
        }
    }

    /// `ln H_a(x)`, `x` in the pool (callers check).
    #[inline(always)]
    pub(crate) fn value_log_prior(&self, attribute: usize, token: u32) -> f64 {
        self.value_log_prob[attribute][(token - self.value_base[attribute]) as usize]
    }

    #[inline(always)]
    pub(crate) fn in_pool(&self, attribute: usize, token: u32) -> bool {
        token.wrapping_sub(self.value_base[attribute]) < self.value_size[attribute]
    }

    /// Display of a token for error messages: `'word' (id 17)`.
    pub(crate) fn describe(&self, token: u32) -> String {
        if token < self.vocab_size {
            format!("{:?} (id {token})", self.grammar.token_string(token))
        } else {
            format!(
                "id {token} (outside the vocabulary of {} tokens)",
                self.vocab_size
            )
        }
    }

    /// Mixed-radix index of a full name (or of its first `d` parts).
    #[inline(always)]
    pub(crate) fn name_code(&self, name: &[u32]) -> u64 {
        let mut code = 0u64;
        for (j, &t) in name.iter().enumerate() {
            code = code * self.name_size[j] as u64 + (t - self.name_start[j]) as u64;
        }
        code
    }
}

/// What the learner has learnt from the documents read so far.
///
/// Entities get ids in order of first appearance, exactly as the sampler numbers them.
#[derive(Clone, Debug)]
pub struct State {
    /// Documents read (`i`, the index of the next document).
    pub n_docs: u64,
    /// `c_k`.
    pub counts: Vec<u64>,
    /// Name tokens, `K x J`.
    pub names: Vec<u32>,
    /// Revealed values, `K x A` token ids (`u32::MAX`: not revealed yet).
    pub values: Vec<u32>,
    /// Name-trie node of each prefix of each entity's name (depths 1..=J), `K x J`.
    entity_nodes: Vec<u32>,
    /// Per depth `d = 1..=J`: prefix code -> name-trie node.
    trie_index: Vec<IntMap<u32>>,
    /// Per name-trie node: documents about names below it and used names below it.
    node_docs: Vec<u64>,
    node_used: Vec<u64>,
    /// Entity of a depth-J node.
    node_entity: Vec<u32>,
    /// Children of each name-trie node as a linked list (first child, next sibling; `NONE`
    /// ends it) and the pool-local index of each node's last name part: the coder weighs the
    /// used extensions of a prefix without a lookup per possible part.
    root_first_child: u32,
    node_first_child: Vec<u32>,
    node_next_sibling: Vec<u32>,
    node_part: Vec<u32>,
    /// `c_{a,t}` by global template index, and `n_a`.
    pub template_counts: Vec<u64>,
    pub attribute_counts: Vec<u64>,
    /// `1 / (n_a + T_a gamma)`.
    pub(crate) inv_norm: Vec<f64>,
    /// Per skeleton-trie entry: the template counts summed over the entry's templates.
    pub(crate) entry_counts: Vec<u64>,
    entries_fresh: bool,
    track_entries: bool,
}

impl State {
    /// The state before any document. `track_entries`: keep the skeleton-trie sums up to date at
    /// every commit (needed when documents are scored between commits); otherwise they are
    /// rebuilt by [`State::refresh_entries`] before scoring.
    pub fn new(model: &Model, track_entries: bool) -> Self {
        let a = model.n_attributes;
        State {
            n_docs: 0,
            counts: Vec::new(),
            names: Vec::new(),
            values: Vec::new(),
            entity_nodes: Vec::new(),
            trie_index: (0..model.n_name_parts).map(|_| IntMap::default()).collect(),
            node_docs: Vec::new(),
            node_used: Vec::new(),
            node_entity: Vec::new(),
            root_first_child: NONE,
            node_first_child: Vec::new(),
            node_next_sibling: Vec::new(),
            node_part: Vec::new(),
            template_counts: vec![0; *model.template_offset.last().unwrap() as usize],
            attribute_counts: vec![0; a],
            inv_norm: (0..a)
                .map(|i| 1.0 / (model.n_templates[i] as f64 * model.gamma))
                .collect(),
            entry_counts: vec![0; model.skeleton.n_entries()],
            entries_fresh: true,
            track_entries,
        }
    }

    /// Number of entities seen, `K`.
    #[inline]
    pub fn n_entities(&self) -> usize {
        self.counts.len()
    }

    /// Switches per-commit maintenance of the skeleton-trie sums on or off (refreshing them when
    /// switching on).
    pub fn set_tracking(&mut self, model: &Model, track: bool) {
        if track {
            self.refresh_entries(model);
        }
        self.track_entries = track;
    }

    /// Rebuilds the skeleton-trie sums from the template counts.
    pub fn refresh_entries(&mut self, model: &Model) {
        if self.entries_fresh {
            return;
        }
        self.entry_counts.iter_mut().for_each(|c| *c = 0);
        for (g, &c) in self.template_counts.iter().enumerate() {
            if c > 0 {
                for &e in model.skeleton.path(g) {
                    self.entry_counts[e as usize] += c;
                }
            }
        }
        self.entries_fresh = true;
    }

    pub(crate) fn entries_fresh(&self) -> bool {
        self.entries_fresh
    }

    /// `nu / (U - K)`: the new-entity mass per unused name (`nu = 1` for the first document).
    #[inline]
    pub(crate) fn new_name_mass(&self, model: &Model) -> f64 {
        let k = self.n_entities() as u64;
        let free = model.name_space - k.min(model.name_space);
        if free == 0 {
            return 0.0;
        }
        let nu = if self.n_docs == 0 {
            1.0
        } else {
            model.beta + k as f64 * model.alpha
        };
        nu / free as f64
    }

    /// `W(q)` of docs/codelength.md#per-token for the root (no name part seen).
    #[inline]
    pub(crate) fn root_name_weight(&self, model: &Model, new_mass: f64) -> f64 {
        let k = self.n_entities() as u64;
        (self.n_docs as f64 - model.alpha * k as f64) + new_mass * (model.name_space - k) as f64
    }

    /// `W(q)` for a prefix of `depth >= 1` parts whose name-trie node is `node` (`NONE`: no used
    /// name has this prefix).
    #[inline]
    pub(crate) fn name_weight(&self, model: &Model, node: u32, depth: usize, new_mass: f64) -> f64 {
        let below = model.names_below[depth];
        if node == NONE {
            new_mass * below as f64
        } else {
            let n = node as usize;
            let used = self.node_used[n];
            (self.node_docs[n] as f64 - model.alpha * used as f64)
                + new_mass * (below - used) as f64
        }
    }

    /// Name-trie node of the prefix with code `code` and `depth >= 1` parts, or `NONE`.
    #[inline]
    pub(crate) fn trie_node(&self, depth: usize, code: u64) -> u32 {
        self.trie_index[depth - 1]
            .get(&code)
            .copied()
            .unwrap_or(NONE)
    }

    /// Calls `f(local part, node)` for every used extension of the prefix whose name-trie node
    /// is `parent` ([`NAME_ROOT`] for the empty prefix), in no particular order.
    #[inline]
    pub(crate) fn for_each_name_child(&self, parent: u32, mut f: impl FnMut(u32, u32)) {
        let mut child = if parent == NAME_ROOT {
            self.root_first_child
        } else {
            self.node_first_child[parent as usize]
        };
        while child != NONE {
            f(self.node_part[child as usize], child);
            child = self.node_next_sibling[child as usize];
        }
    }

    #[inline]
    pub(crate) fn node_entity(&self, node: u32) -> u32 {
        self.node_entity[node as usize]
    }

    /// The entity with this full name, if one was learnt (used by the capacity-limited
    /// reference, which needs to know whether a test document's entity is stored).
    pub fn entity_of_name(&self, model: &Model, name: &[u32]) -> Option<u32> {
        let node = self.trie_node(model.n_name_parts, model.name_code(name));
        (node != NONE).then(|| self.node_entity[node as usize])
    }

    /// Learns one document: its entity (by name) and its sentences. Returns the entity id.
    /// Errors when the document contradicts what was learnt (a revealed value restated
    /// differently), which no corpus of this configuration can do.
    pub fn commit(
        &mut self,
        model: &Model,
        name: &[u32],
        sentences: &[Sentence],
    ) -> Result<u32, String> {
        let j_count = model.n_name_parts;
        let a_count = model.n_attributes;
        let full = model.name_code(name);
        let leaf = self.trie_node(j_count, full);
        let k = if leaf != NONE {
            self.node_entity[leaf as usize]
        } else {
            let k = self.counts.len() as u32;
            let mut code = 0u64;
            let mut parent = NAME_ROOT;
            for (d, &t) in name.iter().enumerate() {
                let part = t - model.name_start[d];
                code = code * model.name_size[d] as u64 + part as u64;
                let next = self.node_docs.len() as u32;
                let node = *self.trie_index[d].entry(code).or_insert(next);
                if node == next {
                    self.node_docs.push(0);
                    self.node_used.push(0);
                    self.node_entity.push(NONE);
                    let first = if parent == NAME_ROOT {
                        &mut self.root_first_child
                    } else {
                        &mut self.node_first_child[parent as usize]
                    };
                    self.node_next_sibling.push(std::mem::replace(first, node));
                    self.node_first_child.push(NONE);
                    self.node_part.push(part);
                }
                parent = node;
                self.node_used[node as usize] += 1;
                self.entity_nodes.push(node);
            }
            self.node_entity[*self.entity_nodes.last().unwrap() as usize] = k;
            self.counts.push(0);
            self.names.extend_from_slice(name);
            self.values.extend(std::iter::repeat_n(NONE, a_count));
            k
        };
        let ku = k as usize;
        self.counts[ku] += 1;
        for &node in &self.entity_nodes[ku * j_count..(ku + 1) * j_count] {
            self.node_docs[node as usize] += 1;
        }
        self.n_docs += 1;
        for s in sentences {
            let a = s.attribute as usize;
            let g = (model.template_offset[a] + s.template) as usize;
            self.template_counts[g] += 1;
            self.attribute_counts[a] += 1;
            self.inv_norm[a] =
                1.0 / (self.attribute_counts[a] as f64 + model.n_templates[a] as f64 * model.gamma);
            if self.track_entries {
                for &e in model.skeleton.path(g) {
                    self.entry_counts[e as usize] += 1;
                }
            } else {
                self.entries_fresh = false;
            }
            let slot = &mut self.values[ku * a_count + a];
            if *slot == NONE {
                *slot = s.value;
            } else if *slot != s.value {
                return Err(format!(
                    "it states {} as the {} of entity {k}, whose value {} was revealed earlier",
                    model.describe(s.value),
                    model.grammar.attribute_names[a],
                    model.describe(*slot)
                ));
            }
        }
        Ok(k)
    }
}

/// Where and why a document does not fit the model.
#[derive(Clone, Debug, PartialEq)]
pub struct DocError {
    /// Token position within the document.
    pub position: usize,
    pub message: String,
}

impl DocError {
    pub(crate) fn into_corpus_error(self, doc: usize, doc_start: u64) -> CorpusError {
        CorpusError::Argument(format!(
            "document {doc}, token {} (position {} in the document): {}; the tokens do not fit this configuration",
            doc_start + self.position as u64,
            self.position,
            self.message
        ))
    }
}

/// Parses one document without computing probabilities: its entity name and its sentences
/// (the learning curve's training pass and the fast-forward of parallel chunks use this; the
/// scorer in [`super::predictive`] parses along the way and is checked against it).
pub(crate) fn parse_doc<T: TokenWord>(
    model: &Model,
    doc: &[T],
    name: &mut [u32],
    sentences: &mut [Sentence],
) -> Result<(), DocError> {
    let err = |position: usize, message: String| DocError { position, message };
    let j_count = model.n_name_parts;
    let trie = &model.skeleton;
    if doc.first().map(|t| t.to_u32()) != Some(BOS) {
        return Err(err(0, "a document must start with BOS".to_string()));
    }
    let mut pos = 1usize;
    let mut used_mask: u64 = 0;
    let mut used_big: Vec<bool> = Vec::new();
    if model.n_attributes > 64 {
        used_big = vec![false; model.n_attributes];
    }
    for (s, slot) in sentences.iter_mut().enumerate().take(model.m) {
        let mut node = ROOT;
        let mut value = NONE;
        loop {
            let Some(&tok) = doc.get(pos) else {
                return Err(err(pos, format!("the document ends inside sentence {s}")));
            };
            let x = tok.to_u32();
            let code = model.code_of(x);
            let child = trie.child(node, code);
            if child == NONE {
                return Err(err(
                    pos,
                    format!("token {} cannot continue sentence {s}", model.describe(x)),
                ));
            }
            if code == CODE_VALUE {
                value = x;
            } else if code >= CODE_NAME {
                let j = (code - CODE_NAME) as usize;
                if s == 0 {
                    name[j] = x;
                } else if name[j] != x {
                    return Err(err(
                        pos,
                        format!(
                            "name token {} differs from the document's entity name {}",
                            model.describe(x),
                            model.describe(name[j])
                        ),
                    ));
                }
            }
            node = child;
            pos += 1;
            let g = trie.terminal(node);
            if g != NONE {
                let a = model.template_offset.partition_point(|&o| o <= g) - 1;
                let t = g - model.template_offset[a];
                let available = if !model.shuffled {
                    a == s
                } else if model.n_attributes <= 64 {
                    used_mask & (1 << a) == 0
                } else {
                    !used_big[a]
                };
                if !available {
                    return Err(err(
                        pos - 1,
                        format!(
                            "sentence {s} is about attribute {a} ({}), which the attribute order does not allow here",
                            model.grammar.attribute_names[a]
                        ),
                    ));
                }
                if !model.in_pool(a, value) {
                    return Err(err(
                        pos - 1,
                        format!(
                            "value {} is not in the pool of attribute {a}",
                            model.describe(value)
                        ),
                    ));
                }
                if model.n_attributes <= 64 {
                    used_mask |= 1 << a;
                } else {
                    used_big[a] = true;
                }
                *slot = Sentence {
                    attribute: a as u32,
                    template: t,
                    value,
                };
                break;
            }
        }
    }
    match doc.get(pos).map(|t| t.to_u32()) {
        Some(EOS) if pos + 1 == doc.len() => Ok(()),
        Some(EOS) => Err(err(pos + 1, "tokens after EOS".to_string())),
        Some(x) => Err(err(
            pos,
            format!(
                "expected EOS after {} sentences, got {}",
                model.m,
                model.describe(x)
            ),
        )),
        None => Err(err(pos, "the document ends without EOS".to_string())),
    }
    .map(|_| debug_assert_eq!(name.len(), j_count))
}

/// Role of each token id (for callers that report by role without the corpus's role array).
pub fn token_role(model: &Model, token: u32) -> usize {
    Model::role_of_code(model.code_of(token))
}
