//! synknow-core: the Syntax-Knowledge model of Pan, Wang & Li (NeurIPS 2025) in pure Rust.
//!
//! Everything a user needs is re-exported here; the modules themselves are private, so their
//! internals (random streams, hashers, allocation and special-function helpers, the sampler's
//! stages) can change without breaking anyone.
//!
//! - **Configuration** ([`Config`], validated with named-field errors) and the **grammar** it
//!   implies ([`Grammar`]: vocabulary layout, templates, value priors) - `docs/model.md` §1-2;
//! - **sampling** ([`sample`], or [`Sampler`] for batches): the PYCRP sampler with parallel
//!   rendering, bit-identical for every thread count - `docs/model.md` §3;
//! - **corpus files** ([`save_corpus`], [`generate_to_dir`], [`write_arrays`]): the on-disk
//!   format, written atomically - `docs/corpus-format.md`;
//! - **code lengths** ([`code_lengths`], [`closed_form_total`], [`bayes_curve`],
//!   [`structure_function`]): the exact Bayesian code length and what is built on it -
//!   `docs/codelength.md`;
//! - [`theory`]: closed-form PYCRP quantities.
//!
//! Errors are [`ConfigError`] (a configuration field out of range) and [`CorpusError`] (bad
//! arguments, corrupt corpora, I/O, interruption).

mod alloc;
mod codelength;
mod config;
mod corpus_io;
mod error;
mod grammar;
mod hash;
mod rng;
mod sampler;
mod special;
pub mod theory;

/// The capacity-limited Bayes reference `L(n, C)`: the Bayes learner that may store only `C`
/// bits of knowledge (docs/capacity.md).
pub mod capacity {
    pub use crate::codelength::capacity::{
        capacity_limited_loss, CapacityOutput, N_PARTS, PART_NAME, PART_SYNTAX, PART_VALUE,
    };
}
/// Lossless compression of a corpus's token stream at the exact Bayes code length
/// (docs/compression.md).
pub mod compress {
    pub use crate::codelength::coder::{
        compress, compressed_config, decode, decompress, encode, Decompressed,
        COMPRESS_FORMAT_VERSION,
    };
}
mod threads;

pub use codelength::closed_form::ClosedFormParts;
pub use codelength::{
    bayes_curve, closed_form_per_doc, closed_form_total, code_lengths, code_lengths_chunked,
    no_report, predictive_distributions, structure_function, CodeLengths, CurveOutput, Latents,
    Model, Report, StructureFunction, N_ROLES, ROLE_NAME, ROLE_SPECIAL, ROLE_SYNTAX, ROLE_VALUE,
};
pub use config::{
    AttributeOrder, Config, PerAttribute, Preset, ValuePrior, BIOS_ATTRIBUTE_NAMES,
    BIOS_ATTRIBUTE_POOL, BIOS_POOL_SIZES, MAX_ATTRIBUTES, MAX_BETA, MAX_TEMPLATES,
    MAX_TEMPLATE_TOKENS, MAX_TOTAL_TEMPLATES, MAX_VALUE_TABLE, MAX_VOCAB, TEMPLATE_PRIOR_RANGE,
};
pub use corpus_io::{
    flatten_theta, generate_part_to_dir, generate_to_dir, hash_bytes, merge_parts, part_range,
    save_corpus, write_arrays, ArrayData, PartSummary, StreamSummary, FORMAT, FORMAT_VERSION,
    PART_FORMAT,
};
pub use error::{ConfigError, CorpusError};
pub use grammar::{
    Grammar, Layout, Role, Slot, Template, BIOS_TEMPLATES_PER_ATTRIBUTE, BOS, END, EOS, PAD,
};
pub use sampler::{
    draw_theta, needs_u32, sample, Batch, Corpus, Entities, Sampler, StageTimes, TokenWord, Tokens,
};
pub use threads::{check_threads, thread_pool, MAX_THREADS};

/// Version written into every corpus manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
