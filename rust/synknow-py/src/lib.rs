//! `synknow._core`: thin PyO3 bindings over `synknow-core`.
//!
//! This crate only converts arguments, validates them, releases the GIL around heavy work and
//! hands vectors to numpy without copying. The algorithms live in `synknow-core`.

use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyValueError};
use pyo3::prelude::*;

use synknow_core::ConfigError;

mod args;
mod capacity;
mod codelength;
mod compress;
mod progress;
mod sampling;

pyo3::create_exception!(
    synknow._core,
    CorpusError,
    PyValueError,
    "A corpus directory (or a set of arrays) that is truncated, altered or inconsistent. \
     Raised by the Rust core and by the Python loader alike; a ValueError subclass."
);

/// Maps core errors to Python exceptions: I/O problems to `OSError`, corrupt corpora to
/// `synknow._core.CorpusError` (a `ValueError`), a cancelled computation to `KeyboardInterrupt`,
/// everything else (bad configuration, bad arguments) to `ValueError`.
pub(crate) fn to_py(e: synknow_core::CorpusError) -> PyErr {
    match e {
        synknow_core::CorpusError::Io { .. } => PyOSError::new_err(e.to_string()),
        synknow_core::CorpusError::Corrupt(_) => CorpusError::new_err(e.to_string()),
        synknow_core::CorpusError::Interrupted(_) => PyKeyboardInterrupt::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

pub(crate) fn config_err(e: ConfigError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", synknow_core::VERSION)?;
    m.add("CorpusError", m.py().get_type::<CorpusError>())?;
    sampling::register(m)?;
    codelength::register(m)?;
    capacity::register(m)?;
    compress::register(m)?;
    Ok(())
}
