//! Exact Bayesian code lengths, learning curves, the structure function and PYCRP theory.
//!
//! Arrays arrive as 1-D numpy arrays (possibly memory-mapped); tokens may be uint16 or uint32.
//! Heavy work runs with the GIL released; results go to numpy without copies.

use numpy::{Element, IntoPyArray, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use synknow_core::{theory, Config, CorpusError, Latents, Model, TokenWord, N_ROLES};

use crate::progress::detach_with_progress;
use crate::{args, config_err, to_py};

pub(crate) fn model(py: Python<'_>, config_json: &str) -> PyResult<Model> {
    let c = Config::from_json(config_json).map_err(config_err)?;
    py.detach(|| Model::new(&c)).map_err(config_err)
}

/// A 1-D contiguous array of element type `T`, or a ValueError naming the argument.
pub(crate) fn array<'py, T: Element>(
    name: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    let arr: PyReadonlyArray1<'py, T> = obj.extract().map_err(|_| {
        let got = obj
            .getattr("dtype")
            .map(|d| d.to_string())
            .unwrap_or_else(|_| obj.get_type().to_string());
        let ndim = obj
            .getattr("ndim")
            .map(|d| d.to_string())
            .unwrap_or_else(|_| "?".into());
        PyValueError::new_err(format!(
            "{name} must be a 1-D numpy array of dtype {}, got {got} with ndim {ndim}",
            std::any::type_name::<T>()
        ))
    })?;
    if !arr.is_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{name} must be a contiguous array"
        )));
    }
    Ok(arr)
}

/// Token arrays of either width.
pub(crate) enum TokenArray<'py> {
    U16(PyReadonlyArray1<'py, u16>),
    U32(PyReadonlyArray1<'py, u32>),
}

pub(crate) fn tokens<'py>(obj: &Bound<'py, PyAny>) -> PyResult<TokenArray<'py>> {
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, u16>>() {
        return Ok(TokenArray::U16(a));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, u32>>() {
        return Ok(TokenArray::U32(a));
    }
    let got = obj
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_else(|_| obj.get_type().to_string());
    Err(PyValueError::new_err(format!(
        "tokens must be a 1-D uint16 or uint32 numpy array, got {got}"
    )))
}

/// Calls `f` with the token slice at its width.
macro_rules! with_tokens {
    ($arr:expr, |$t:ident| $body:expr) => {
        match &$arr {
            TokenArray::U16(a) => {
                let $t: &[u16] = a
                    .as_slice()
                    .map_err(|_| PyValueError::new_err("tokens must be contiguous"))?;
                $body
            }
            TokenArray::U32(a) => {
                let $t: &[u32] = a
                    .as_slice()
                    .map_err(|_| PyValueError::new_err("tokens must be contiguous"))?;
                $body
            }
        }
    };
}
pub(crate) use with_tokens;

/// Exact per-token code lengths (docs/codelength.md#per-token). Returns per_token (if kept),
/// per_doc, bits_by_role,
/// tokens_by_role, total, n_entities.
#[pyfunction]
#[pyo3(signature = (config_json, tokens, doc_offsets, keep_per_token=true, threads=None, progress=None))]
fn code_lengths<'py>(
    py: Python<'py>,
    config_json: &str,
    tokens: &Bound<'py, PyAny>,
    doc_offsets: &Bound<'py, PyAny>,
    keep_per_token: bool,
    #[pyo3(from_py_with = args::threads)] threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let model = model(py, config_json)?;
    let toks = self::tokens(tokens)?;
    let offsets = array::<u64>("doc_offsets", doc_offsets)?;
    let offsets = offsets.as_slice()?;
    let out = with_tokens!(toks, |t| run_code_lengths(
        py,
        &model,
        t,
        offsets,
        keep_per_token,
        threads,
        progress
    )?);
    let d = PyDict::new(py);
    if let Some(p) = out.per_token {
        d.set_item("per_token", p.into_pyarray(py))?;
    }
    d.set_item("per_doc", out.per_doc.into_pyarray(py))?;
    d.set_item("bits_by_role", out.bits_by_role.to_vec().into_pyarray(py))?;
    d.set_item(
        "tokens_by_role",
        out.tokens_by_role.to_vec().into_pyarray(py),
    )?;
    d.set_item("total", out.total)?;
    d.set_item("n_entities", out.n_entities)?;
    Ok(d)
}

fn run_code_lengths<T: TokenWord>(
    py: Python<'_>,
    model: &Model,
    tokens: &[T],
    offsets: &[u64],
    keep: bool,
    threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<synknow_core::CodeLengths> {
    detach_with_progress(py, progress, |report| {
        synknow_core::code_lengths(model, tokens, offsets, keep, threads, report)
    })
}

/// The five latent-record arguments of the closed forms and the structure function, as
/// contiguous 1-D arrays of their dtypes (2-D records flattened row-major).
struct LatentArrays<'py> {
    doc_entity: PyReadonlyArray1<'py, u32>,
    sentence_attribute: PyReadonlyArray1<'py, u16>,
    sentence_template: PyReadonlyArray1<'py, u16>,
    entity_names: PyReadonlyArray1<'py, u32>,
    entity_values: PyReadonlyArray1<'py, u32>,
}

impl<'py> LatentArrays<'py> {
    fn new(arrays: [&Bound<'py, PyAny>; 5]) -> PyResult<Self> {
        let [doc_entity, sentence_attribute, sentence_template, entity_names, entity_values] =
            arrays;
        Ok(LatentArrays {
            doc_entity: array("doc_entity", doc_entity)?,
            sentence_attribute: array("sentence_attribute", sentence_attribute)?,
            sentence_template: array("sentence_template", sentence_template)?,
            entity_names: array("entity_names", entity_names)?,
            entity_values: array("entity_values", entity_values)?,
        })
    }

    fn latents(&self) -> PyResult<Latents<'_>> {
        Ok(Latents {
            doc_entity: self.doc_entity.as_slice()?,
            sentence_attribute: self.sentence_attribute.as_slice()?,
            sentence_template: self.sentence_template.as_slice()?,
            entity_names: self.entity_names.as_slice()?,
            entity_values: self.entity_values.as_slice()?,
        })
    }
}

/// Runs `f` on the model of `config_json` and the latent records of the first `n_docs`
/// documents, with the GIL released.
fn with_latents<R: Send>(
    py: Python<'_>,
    config_json: &str,
    arrays: [&Bound<'_, PyAny>; 5],
    n_docs: usize,
    f: impl FnOnce(&Model, &Latents<'_>, usize) -> Result<R, CorpusError> + Send,
) -> PyResult<R> {
    let model = model(py, config_json)?;
    let arrays = LatentArrays::new(arrays)?;
    let latents = arrays.latents()?;
    py.detach(|| f(&model, &latents, n_docs)).map_err(to_py)
}

/// docs/codelength.md#per-document: bits of each of the first `n_docs` documents, from the latent
/// records (2-D arrays
/// flattened row-major).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn closed_form_per_doc<'py>(
    py: Python<'py>,
    config_json: &str,
    doc_entity: &Bound<'py, PyAny>,
    sentence_attribute: &Bound<'py, PyAny>,
    sentence_template: &Bound<'py, PyAny>,
    entity_names: &Bound<'py, PyAny>,
    entity_values: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = args::doc_prefix)] n_docs: usize,
) -> PyResult<Bound<'py, numpy::PyArray1<f64>>> {
    let arrays = [
        doc_entity,
        sentence_attribute,
        sentence_template,
        entity_names,
        entity_values,
    ];
    let out = with_latents(
        py,
        config_json,
        arrays,
        n_docs,
        synknow_core::closed_form_per_doc,
    )?;
    Ok(out.into_pyarray(py))
}

/// docs/codelength.md#whole-corpus: total bits of the first `n_docs` documents from counts, with
/// every term.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn closed_form_total<'py>(
    py: Python<'py>,
    config_json: &str,
    doc_entity: &Bound<'py, PyAny>,
    sentence_attribute: &Bound<'py, PyAny>,
    sentence_template: &Bound<'py, PyAny>,
    entity_names: &Bound<'py, PyAny>,
    entity_values: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = args::doc_prefix)] n_docs: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let arrays = [
        doc_entity,
        sentence_attribute,
        sentence_template,
        entity_names,
        entity_values,
    ];
    let p = with_latents(
        py,
        config_json,
        arrays,
        n_docs,
        synknow_core::closed_form_total,
    )?;
    let d = PyDict::new(py);
    d.set_item("entities", p.entities)?;
    d.set_item("names", p.names)?;
    d.set_item("templates", p.templates)?;
    d.set_item("attribute_order", p.attribute_order)?;
    d.set_item("values", p.values)?;
    d.set_item("total", p.total)?;
    Ok(d)
}

/// docs/codelength.md#learning-curve: per checkpoint and test document, bits by role and the
/// entity's training count.
#[pyfunction]
#[pyo3(signature = (config_json, tokens, doc_offsets, n_train, n_test, checkpoints, threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn bayes_curve<'py>(
    py: Python<'py>,
    config_json: &str,
    tokens: &Bound<'py, PyAny>,
    doc_offsets: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = args::n_train)] n_train: usize,
    #[pyo3(from_py_with = args::n_test)] n_test: usize,
    #[pyo3(from_py_with = args::checkpoints)] checkpoints: Vec<u64>,
    #[pyo3(from_py_with = args::threads)] threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let model = model(py, config_json)?;
    let toks = self::tokens(tokens)?;
    let offsets = array::<u64>("doc_offsets", doc_offsets)?;
    let offsets = offsets.as_slice()?;
    let out = with_tokens!(toks, |t| detach_with_progress(py, progress, |report| {
        synknow_core::bayes_curve(
            &model,
            t,
            offsets,
            n_train,
            n_test,
            &checkpoints,
            threads,
            report,
        )
    })?);
    let c = out.checkpoints.len();
    let d = PyDict::new(py);
    d.set_item("test_start", out.test_start)?;
    d.set_item("checkpoints", out.checkpoints.into_pyarray(py))?;
    d.set_item(
        "doc_bits",
        out.doc_bits
            .into_pyarray(py)
            .reshape([c, n_test, N_ROLES])?,
    )?;
    d.set_item(
        "entity_count",
        out.entity_count.into_pyarray(py).reshape([c, n_test])?,
    )?;
    d.set_item(
        "tokens_by_role",
        out.tokens_by_role
            .into_pyarray(py)
            .reshape([n_test, N_ROLES])?,
    )?;
    Ok(d)
}

/// docs/codelength.md#structure-function for the first `n_docs` documents: model and data bits of
/// storing the top-k
/// entities, k = 0..K.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn structure_function<'py>(
    py: Python<'py>,
    config_json: &str,
    doc_entity: &Bound<'py, PyAny>,
    sentence_attribute: &Bound<'py, PyAny>,
    sentence_template: &Bound<'py, PyAny>,
    entity_names: &Bound<'py, PyAny>,
    entity_values: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = args::doc_prefix)] n_docs: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let arrays = [
        doc_entity,
        sentence_attribute,
        sentence_template,
        entity_names,
        entity_values,
    ];
    let s = with_latents(
        py,
        config_json,
        arrays,
        n_docs,
        synknow_core::structure_function,
    )?;
    let d = PyDict::new(py);
    d.set_item("n_docs", s.n_docs)?;
    d.set_item("order", s.order.into_pyarray(py))?;
    d.set_item("counts", s.counts.into_pyarray(py))?;
    d.set_item("model_bits", s.model_bits.into_pyarray(py))?;
    d.set_item("data_bits", s.data_bits.into_pyarray(py))?;
    Ok(d)
}

/// The full predictive distribution at each position (rows) over the vocabulary (columns).
#[pyfunction]
fn predictive_distributions<'py>(
    py: Python<'py>,
    config_json: &str,
    tokens: &Bound<'py, PyAny>,
    doc_offsets: &Bound<'py, PyAny>,
    positions: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let model = model(py, config_json)?;
    let toks = self::tokens(tokens)?;
    let offsets = array::<u64>("doc_offsets", doc_offsets)?;
    let offsets = offsets.as_slice()?;
    let positions = array::<u64>("positions", positions)?;
    let positions = positions.as_slice()?;
    let out = with_tokens!(toks, |t| py
        .detach(|| synknow_core::predictive_distributions(&model, t, offsets, positions))
        .map_err(to_py)?);
    let v = model.vocab_size() as usize;
    Ok(out
        .into_pyarray(py)
        .reshape([positions.len(), v])?
        .into_any())
}

/// `E[K_n]` to leading order (Heaps' law).
#[pyfunction]
fn expected_entities_asymptotic(n: f64, alpha: f64, beta: f64) -> f64 {
    theory::expected_entities_asymptotic(n, alpha, beta)
}

/// `E[P_new(n)] = (beta+alpha)_n / (beta+1)_n`.
#[pyfunction]
fn expected_new_probability(n: f64, alpha: f64, beta: f64) -> f64 {
    theory::expected_new_probability(n, alpha, beta)
}

/// `E[P_new(n)]` to leading order.
#[pyfunction]
fn expected_new_probability_asymptotic(n: f64, alpha: f64, beta: f64) -> f64 {
    theory::expected_new_probability_asymptotic(n, alpha, beta)
}

/// Expected number of entities with exactly `c` documents among `n`.
#[pyfunction]
fn expected_counts_of_counts(
    #[pyo3(from_py_with = args::n)] n: u64,
    #[pyo3(from_py_with = args::c)] c: u64,
    alpha: f64,
    beta: f64,
) -> f64 {
    theory::expected_counts_of_counts(n, c, alpha, beta)
}

/// The digamma function.
#[pyfunction]
fn digamma(x: f64) -> f64 {
    theory::digamma(x)
}

/// `psi(beta+1) - psi(1-alpha)`, nats.
#[pyfunction]
fn expected_entity_entropy(alpha: f64, beta: f64) -> f64 {
    theory::expected_entity_entropy(alpha, beta)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(code_lengths, m)?)?;
    m.add_function(wrap_pyfunction!(closed_form_per_doc, m)?)?;
    m.add_function(wrap_pyfunction!(closed_form_total, m)?)?;
    m.add_function(wrap_pyfunction!(bayes_curve, m)?)?;
    m.add_function(wrap_pyfunction!(structure_function, m)?)?;
    m.add_function(wrap_pyfunction!(predictive_distributions, m)?)?;
    m.add_function(wrap_pyfunction!(expected_entities_asymptotic, m)?)?;
    m.add_function(wrap_pyfunction!(expected_new_probability, m)?)?;
    m.add_function(wrap_pyfunction!(expected_new_probability_asymptotic, m)?)?;
    m.add_function(wrap_pyfunction!(expected_counts_of_counts, m)?)?;
    m.add_function(wrap_pyfunction!(digamma, m)?)?;
    m.add_function(wrap_pyfunction!(expected_entity_entropy, m)?)?;
    Ok(())
}
