//! `synknow._core`: thin PyO3 bindings over `synknow-core`.
//!
//! This crate only converts arguments, validates them, releases the GIL around heavy work and
//! hands vectors to numpy without copying. The algorithms live in `synknow-core`.

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use synknow_core::{ConfigError, CorpusError};

mod args;
mod capacity;
mod codelength;
mod sampling;

/// Maps core errors to Python exceptions: I/O problems to `OSError`, everything else (bad
/// configuration, bad arguments, corrupt corpora) to `ValueError`.
pub(crate) fn to_py(e: CorpusError) -> PyErr {
    match e {
        CorpusError::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

pub(crate) fn config_err(e: ConfigError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", synknow_core::VERSION)?;
    sampling::register(m)?;
    codelength::register(m)?;
    capacity::register(m)?;
    Ok(())
}
