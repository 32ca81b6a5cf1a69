//! Stage 3 of the sampler: tokens and roles copied from precomputed template renderings in
//! fixed-width blocks, with the name and value slots patched in, into uninitialised output.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::grammar::{Grammar, BOS, EOS};

use super::records::DocumentLaw;
use super::TokenWord;

/// Widths in tokens of the fixed-size template copies of the render fast path. A sentence is
/// copied as a whole block (a few vector moves) and the tokens past its end are overwritten by
/// whatever follows; the narrowest width that holds the longest template is used, and templates
/// longer than the widest take an exact (slower) path.
pub(super) const NARROW: usize = 16;
pub(super) const WIDE: usize = 32;

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
pub(super) struct Renderer<'a, T, const W: usize> {
    grammar: &'a Grammar,
    /// Flat over `(attribute, template)`, as `DocumentLaw::cells`.
    bank: Vec<BankEntry<T, W>>,
    attribute_span: &'a [(u32, u32)],
    m: usize,
}

/// The inputs of one render call: the records of the documents and the entity table.
#[derive(Clone, Copy)]
pub(super) struct RenderSource<'a> {
    pub(super) attrs: &'a [u16],
    pub(super) temps: &'a [u16],
    pub(super) doc_entity: &'a [u32],
    pub(super) names: &'a [u32],
    pub(super) values: &'a [u32],
}

impl<'a, T: TokenWord, const W: usize> Renderer<'a, T, W> {
    pub(super) fn new(grammar: &'a Grammar, law: &'a DocumentLaw) -> Self {
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
    pub(super) fn render_chunks(&self, work: Vec<RenderWork<'_, T>>, src: RenderSource<'_>) {
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
pub(super) struct RenderWork<'o, T> {
    pub(super) docs: std::ops::Range<usize>,
    /// Token offset of the chunk in the batch; added to its chunk-relative `offsets`.
    pub(super) base: u64,
    pub(super) tokens: &'o mut [MaybeUninit<T>],
    pub(super) roles: &'o mut [MaybeUninit<u8>],
    pub(super) offsets: &'o mut [u64],
}
