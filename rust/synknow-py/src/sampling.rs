//! Sampling, grammar introspection and corpus files.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use synknow_core::{theory, ArrayData, Config, Grammar, Slot, Tokens};

use crate::progress::detach_with_progress;
use crate::{args, config_err, to_py};

fn parse_config(config_json: &str) -> PyResult<Config> {
    Config::from_json(config_json).map_err(config_err)
}

/// Validates a configuration; returns its canonical JSON (every field present).
#[pyfunction]
fn validate_config(config_json: &str) -> PyResult<String> {
    let c = parse_config(config_json)?;
    Grammar::new(&c).map_err(config_err)?;
    Ok(c.to_json())
}

/// Vocabulary layout, templates and value priors of a configuration.
#[pyfunction]
fn grammar_info<'py>(py: Python<'py>, config_json: &str) -> PyResult<Bound<'py, PyDict>> {
    let c = parse_config(config_json)?;
    let g = py.detach(|| Grammar::new(&c)).map_err(config_err)?;
    let d = PyDict::new(py);
    let l = &g.layout;
    d.set_item("vocab_size", l.vocab_size)?;
    d.set_item("syntax_start", 3)?;
    d.set_item("n_syntax", l.n_syntax)?;
    d.set_item("name_start", l.name_start.clone())?;
    d.set_item("name_size", l.name_size.clone())?;
    d.set_item("pool_start", l.pool_start.clone())?;
    d.set_item("pool_size", l.pool_size.clone())?;
    d.set_item("attribute_names", g.attribute_names.clone())?;
    let texts: Vec<Vec<String>> = (0..g.n_attributes())
        .map(|a| {
            (0..g.templates[a].len())
                .map(|t| g.template_text(a, t))
                .collect()
        })
        .collect();
    d.set_item("templates", texts)?;
    // Skeletons as token ids, with -1 for [NAME] and -2 for [VALUE].
    let skeletons: Vec<Vec<Vec<i64>>> = g
        .templates
        .iter()
        .map(|list| {
            list.iter()
                .map(|t| {
                    t.slots
                        .iter()
                        .map(|s| match *s {
                            Slot::Word(w) => w as i64,
                            Slot::Name => -1,
                            Slot::Value => -2,
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    d.set_item("skeletons", skeletons)?;
    let logp: Vec<Bound<'py, numpy::PyArray1<f64>>> = g
        .value_log_prob
        .iter()
        .map(|v| v.clone().into_pyarray(py))
        .collect();
    d.set_item("value_log_prob", logp)?;
    Ok(d)
}

/// Display strings of every token id.
#[pyfunction]
fn vocab(py: Python<'_>, config_json: &str) -> PyResult<Vec<String>> {
    let c = parse_config(config_json)?;
    py.detach(|| Grammar::new(&c).map(|g| g.vocab_strings()))
        .map_err(config_err)
}

/// The syntax parameters `theta` a configuration implies (explicit, or drawn from its seed).
#[pyfunction]
fn theta(config_json: &str) -> PyResult<Vec<Vec<f64>>> {
    Ok(synknow_core::draw_theta(&parse_config(config_json)?))
}

/// Samples a corpus in memory; returns its arrays (numpy, owned by Python, no copy).
#[pyfunction]
#[pyo3(signature = (config_json, n_docs, threads=None))]
fn sample<'py>(
    py: Python<'py>,
    config_json: &str,
    #[pyo3(from_py_with = args::n_docs)] n_docs: u64,
    #[pyo3(from_py_with = args::threads)] threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let c = parse_config(config_json)?;
    let corpus = py
        .detach(|| synknow_core::sample(&c, n_docs, threads))
        .map_err(to_py)?;
    let (n, m) = (corpus.n_docs(), c.m());
    let (j, a) = (c.name_parts.len(), c.n_attributes);
    let k = corpus.entities.len();
    let d = PyDict::new(py);
    match corpus.tokens {
        Tokens::U16(v) => d.set_item("tokens", v.into_pyarray(py))?,
        Tokens::U32(v) => d.set_item("tokens", v.into_pyarray(py))?,
    }
    d.set_item("roles", corpus.roles.into_pyarray(py))?;
    d.set_item("doc_offsets", corpus.doc_offsets.into_pyarray(py))?;
    d.set_item("doc_entity", corpus.doc_entity.into_pyarray(py))?;
    d.set_item(
        "sentence_attribute",
        corpus.sentence_attribute.into_pyarray(py).reshape([n, m])?,
    )?;
    d.set_item(
        "sentence_template",
        corpus.sentence_template.into_pyarray(py).reshape([n, m])?,
    )?;
    let e = corpus.entities;
    d.set_item("entity_names", e.names.into_pyarray(py).reshape([k, j])?)?;
    d.set_item("entity_values", e.values.into_pyarray(py).reshape([k, a])?)?;
    d.set_item("entity_first_doc", e.first_doc.into_pyarray(py))?;
    d.set_item("entity_counts", e.counts.into_pyarray(py))?;
    let (theta, offsets) = synknow_core::flatten_theta(&corpus.theta);
    d.set_item("theta", theta.into_pyarray(py))?;
    d.set_item("theta_offsets", offsets.into_pyarray(py))?;
    Ok(d)
}

/// Writes arrays as a corpus directory, atomically. `arrays` maps a name to
/// `(dtype, shape, bytes as a flat uint8 array)`.
#[pyfunction]
#[pyo3(signature = (path, config_json, arrays, overwrite=false))]
fn save_arrays(
    py: Python<'_>,
    path: PathBuf,
    config_json: &str,
    arrays: Vec<(String, String, Vec<u64>, PyReadonlyArray1<'_, u8>)>,
    overwrite: bool,
) -> PyResult<()> {
    let c = parse_config(config_json)?;
    let mut data = Vec::with_capacity(arrays.len());
    for (name, dtype, shape, bytes) in &arrays {
        let slice = bytes.as_slice().map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!("array '{name}' must be contiguous"))
        })?;
        data.push(ArrayData {
            name,
            dtype,
            shape: shape.clone(),
            bytes: slice,
        });
    }
    py.detach(|| synknow_core::write_arrays(&path, &c, &data, overwrite))
        .map_err(to_py)
}

/// Generates a corpus straight to disk in shards. `progress(done, total)` is called after each
/// shard; Ctrl-C aborts (KeyboardInterrupt) and removes the partial output. Returns (n_docs, n_tokens, n_entities).
#[pyfunction]
#[pyo3(signature = (config_json, n_docs, path, shard_docs=1_000_000, threads=None, overwrite=false, progress=None))]
#[allow(clippy::too_many_arguments)]
fn generate_to_dir(
    py: Python<'_>,
    config_json: &str,
    #[pyo3(from_py_with = args::n_docs)] n_docs: u64,
    path: PathBuf,
    #[pyo3(from_py_with = args::shard_docs)] shard_docs: u64,
    #[pyo3(from_py_with = args::threads)] threads: Option<usize>,
    overwrite: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<(u64, u64, u64)> {
    let c = parse_config(config_json)?;
    let s = detach_with_progress(py, progress, |report| {
        synknow_core::generate_to_dir(&c, n_docs, shard_docs, threads, &path, overwrite, report)
    })?;
    Ok((s.n_docs, s.n_tokens, s.n_entities))
}

/// xxh3-64 of a byte array, as 16 hex digits (the manifest's content hash).
#[pyfunction]
fn xxh3_64(py: Python<'_>, data: PyReadonlyArray1<'_, u8>) -> PyResult<String> {
    let slice = data
        .as_slice()
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("array must be contiguous"))?;
    Ok(py.detach(|| format!("{:016x}", xxhash_rust_digest(slice))))
}

fn xxhash_rust_digest(bytes: &[u8]) -> u64 {
    synknow_core::hash_bytes(bytes)
}

/// `E[K_n]`, the expected number of entities among `n` documents
/// (docs/model.md#expected-number-of-entities).
#[pyfunction]
fn expected_entities(n: f64, alpha: f64, beta: f64) -> f64 {
    theory::expected_entities(n, alpha, beta)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(validate_config, m)?)?;
    m.add_function(wrap_pyfunction!(grammar_info, m)?)?;
    m.add_function(wrap_pyfunction!(vocab, m)?)?;
    m.add_function(wrap_pyfunction!(theta, m)?)?;
    m.add_function(wrap_pyfunction!(sample, m)?)?;
    m.add_function(wrap_pyfunction!(save_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(generate_to_dir, m)?)?;
    m.add_function(wrap_pyfunction!(xxh3_64, m)?)?;
    m.add_function(wrap_pyfunction!(expected_entities, m)?)?;
    Ok(())
}
