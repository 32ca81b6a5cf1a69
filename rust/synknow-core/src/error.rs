//! Error types. Every error carries a message meant for the user; the Python layer maps
//! [`ConfigError`] to `ValueError` and [`CorpusError`] to `ValueError`/`OSError`.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ConfigError {
    /// A named configuration field is out of its valid range.
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

#[derive(Debug, Error)]
pub enum CorpusError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The corpus on disk (or the arrays handed in) is truncated, altered or inconsistent.
    #[error("corrupt corpus: {0}")]
    Corrupt(String),
    /// Arguments that do not fit together (lengths, ranges).
    #[error("{0}")]
    Argument(String),
}

impl CorpusError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        CorpusError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
