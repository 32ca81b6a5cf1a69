//! Lossless compression of a token stream at the exact Bayes code length.

use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use synknow_core::{Config, TokenWord};

use crate::codelength::{array, tokens, with_tokens, TokenArray};
use crate::config_err;
use crate::progress::detach_with_progress;
use pyo3::exceptions::PyValueError;

fn run_compress<T: TokenWord>(
    py: Python<'_>,
    config: &Config,
    tokens: &[T],
    offsets: &[u64],
    progress: Option<Py<PyAny>>,
) -> PyResult<Vec<u8>> {
    detach_with_progress(py, progress, |report| {
        synknow_core::compress::compress(config, tokens, offsets, report)
    })
}

/// Compresses a token stream generated under `config_json` into the bytes of a self-contained
/// file (docs/compression.md).
#[pyfunction]
#[pyo3(signature = (config_json, tokens, doc_offsets, progress=None))]
fn compress<'py>(
    py: Python<'py>,
    config_json: &str,
    tokens: &Bound<'py, PyAny>,
    doc_offsets: &Bound<'py, PyAny>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let config = Config::from_json(config_json).map_err(config_err)?;
    let toks = self::tokens(tokens)?;
    let offsets = array::<u64>("doc_offsets", doc_offsets)?;
    let offsets = offsets.as_slice()?;
    let out = with_tokens!(toks, |t| run_compress(py, &config, t, offsets, progress)?);
    Ok(PyBytes::new(py, &out))
}

/// Decompresses bytes made by `compress`: a dict with config_json (without seed), tokens
/// (uint32), doc_offsets (uint64) and coded_symbols.
#[pyfunction]
#[pyo3(signature = (data, progress=None))]
fn decompress<'py>(
    py: Python<'py>,
    data: &[u8],
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let out = detach_with_progress(py, progress, |report| {
        synknow_core::compress::decompress(data, report)
    })?;
    let d = PyDict::new(py);
    d.set_item("config_json", out.config.to_json())?;
    d.set_item("tokens", out.tokens.into_pyarray(py))?;
    d.set_item("doc_offsets", out.doc_offsets.into_pyarray(py))?;
    d.set_item("coded_symbols", out.coded_symbols)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(compress, m)?)?;
    m.add_function(wrap_pyfunction!(decompress, m)?)?;
    Ok(())
}
