//! synknow-core: the Syntax-Knowledge model of Pan, Wang & Li (NeurIPS 2025) in pure Rust.
//!
//! - [`config`]: the configuration record and its validation (SPEC 2);
//! - [`grammar`]: vocabulary layout, templates and value priors (SPEC 1, 3.1);
//! - [`sampler`]: the PYCRP sampler and parallel rendering (SPEC 3);
//! - [`corpus_io`]: the on-disk corpus format, atomic writes and streaming generation (SPEC 3.5);
//! - [`theory`]: closed-form PYCRP quantities (SPEC 4.5).

mod alloc;
pub mod codelength;
pub mod config;
pub mod corpus_io;
pub mod error;
pub mod grammar;
pub mod rng;
pub mod sampler;
mod special;
pub mod theory;

pub use config::Config;
pub use error::{ConfigError, CorpusError};
pub use grammar::Grammar;
pub use sampler::{sample, Corpus, Sampler};

/// Version written into every corpus manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
