//! Error types. Every error carries a one-line message meant for the user.
//!
//! The Python layer maps [`ConfigError`] to `ValueError`; [`CorpusError::Io`] to `OSError`,
//! [`CorpusError::Corrupt`] to `synknow.CorpusError` (a `ValueError` subclass),
//! [`CorpusError::Interrupted`] to `KeyboardInterrupt`, and the rest to `ValueError`.
//! Both enums are `#[non_exhaustive]`: match them with a wildcard arm, new conditions may get
//! their own variant.

use thiserror::Error;

/// A configuration that cannot be used.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A named configuration field is out of its valid range (the message states the range).
    #[error("invalid config field '{field}': {message}")]
    Field { field: String, message: String },
    /// Anything else about the configuration (unparseable JSON, impossible grammar, ...).
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl ConfigError {
    pub fn field(field: &str, message: String) -> Self {
        ConfigError::Field {
            field: field.to_string(),
            message,
        }
    }
}

/// Anything that stops sampling, corpus I/O or a code-length computation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CorpusError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Reading or writing `path` failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The corpus on disk (or the arrays handed in) is truncated, altered or inconsistent.
    #[error("corrupt corpus: {0}")]
    Corrupt(String),
    /// Arguments that do not fit together (lengths, ranges, sizes that cannot be allocated).
    #[error("{0}")]
    Argument(String),
    /// The caller cancelled a long computation (its progress callback returned an error, e.g.
    /// on Ctrl-C); the message is the callback's.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

impl CorpusError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        CorpusError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
