//! The capacity-limited Bayes reference `L(n, C)` (docs/capacity.md).

use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use synknow_core::capacity::{capacity_limited_loss as core_loss, N_PARTS};

use crate::args;
use crate::codelength::{array, model, tokens, with_tokens, TokenArray};
use crate::progress::detach_with_progress;

/// Per checkpoint and capacity: `|S|`, `M(S)`, realised bits by part summed over the test split
/// (the last `n_test` documents, as in `bayes_curve`) and expected bits by part of one document.
#[pyfunction]
#[pyo3(signature = (config_json, tokens, doc_offsets, n_train, n_test, checkpoints, capacities_bits, keep_doc_bits=false, threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn capacity_limited_loss<'py>(
    py: Python<'py>,
    config_json: &str,
    tokens: &Bound<'py, PyAny>,
    doc_offsets: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = args::n_train)] n_train: usize,
    #[pyo3(from_py_with = args::n_test)] n_test: usize,
    #[pyo3(from_py_with = args::checkpoints)] checkpoints: Vec<u64>,
    capacities_bits: Vec<f64>,
    keep_doc_bits: bool,
    #[pyo3(from_py_with = args::threads)] threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let model = model(py, config_json)?;
    let toks = self::tokens(tokens)?;
    let offsets = array::<u64>("doc_offsets", doc_offsets)?;
    let offsets = offsets.as_slice()?;
    let out = with_tokens!(toks, |t| detach_with_progress(py, progress, |report| {
        core_loss(
            &model,
            t,
            offsets,
            n_train,
            n_test,
            &checkpoints,
            &capacities_bits,
            keep_doc_bits,
            threads,
            report,
        )
    })?);
    let (c, p) = (out.checkpoints.len(), out.capacities.len());
    let d = PyDict::new(py);
    d.set_item("test_start", out.test_start)?;
    d.set_item("n_tokens", out.n_tokens)?;
    d.set_item("checkpoints", out.checkpoints.into_pyarray(py))?;
    d.set_item("capacities_bits", out.capacities.into_pyarray(py))?;
    d.set_item("n_entities", out.n_entities.into_pyarray(py))?;
    d.set_item("full_model_bits", out.full_model_bits.into_pyarray(py))?;
    d.set_item("n_stored", out.n_stored.into_pyarray(py).reshape([c, p])?)?;
    d.set_item(
        "model_bits",
        out.model_bits.into_pyarray(py).reshape([c, p])?,
    )?;
    d.set_item(
        "stored_docs",
        out.stored_docs.into_pyarray(py).reshape([c, p])?,
    )?;
    d.set_item(
        "part_bits",
        out.part_bits.into_pyarray(py).reshape([c, p, N_PARTS])?,
    )?;
    d.set_item(
        "expected_part_bits",
        out.expected_part_bits
            .into_pyarray(py)
            .reshape([c, p, N_PARTS])?,
    )?;
    if let Some(bits) = out.doc_bits {
        d.set_item(
            "doc_bits",
            bits.into_pyarray(py).reshape([c, p, out.n_test])?,
        )?;
    }
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(capacity_limited_loss, m)?)?;
    Ok(())
}
