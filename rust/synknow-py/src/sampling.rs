//! Sampling, grammar introspection and corpus files.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use synknow_core::{theory, ArrayData, Batch, Config, Grammar, Sampler, Slot, TokenWord, Tokens};

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

/// Writes part `part` of `parts` (1-based) of the corpus of `n_docs` documents to `path`
/// (docs/corpus-format.md#parts). Returns (first_doc, n_docs, n_tokens, first_entity,
/// n_entities) of the part.
#[pyfunction]
#[pyo3(signature = (config_json, n_docs, part, parts, path, shard_docs=1_000_000, threads=None, overwrite=false, progress=None))]
#[allow(clippy::too_many_arguments)]
fn generate_part_to_dir(
    py: Python<'_>,
    config_json: &str,
    #[pyo3(from_py_with = args::n_docs)] n_docs: u64,
    #[pyo3(from_py_with = args::part)] part: u64,
    #[pyo3(from_py_with = args::parts)] parts: u64,
    path: PathBuf,
    #[pyo3(from_py_with = args::shard_docs)] shard_docs: u64,
    #[pyo3(from_py_with = args::threads)] threads: Option<usize>,
    overwrite: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<(u64, u64, u64, u64, u64)> {
    let c = parse_config(config_json)?;
    let s = detach_with_progress(py, progress, |report| {
        synknow_core::generate_part_to_dir(
            &c, n_docs, part, parts, shard_docs, threads, &path, overwrite, report,
        )
    })?;
    Ok((
        s.first_doc,
        s.n_docs,
        s.n_tokens,
        s.first_entity,
        s.n_entities,
    ))
}

/// Joins corpus parts (any order) into the corpus directory `path`, byte-identical to the
/// single-machine corpus; checks that they are all the parts of one corpus, once each.
/// `progress(done, total)` counts bytes. Returns (n_docs, n_tokens, n_entities).
#[pyfunction]
#[pyo3(signature = (part_dirs, path, overwrite=false, progress=None))]
fn merge_parts(
    py: Python<'_>,
    part_dirs: Vec<PathBuf>,
    path: PathBuf,
    overwrite: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<(u64, u64, u64)> {
    let s = detach_with_progress(py, progress, |report| {
        synknow_core::merge_parts(&part_dirs, &path, overwrite, report)
    })?;
    Ok((s.n_docs, s.n_tokens, s.n_entities))
}

/// Documents skipped per GIL-free call while a stream fast-forwards, between checks for Ctrl-C.
const SKIP_STEP: u64 = 1 << 22;

/// A streaming sampler: the documents of `sample(config, n)` batch after batch, for any `n`,
/// starting at any document index.
#[pyclass(module = "synknow._core", name = "Sampler")]
struct PySampler {
    /// None once a call failed: the CRP state may then be partly advanced.
    inner: Option<Sampler>,
    threads: Option<usize>,
    /// Corpus size the name supply rule was last checked for.
    checked: u64,
}

impl PySampler {
    fn get(&mut self) -> PyResult<&mut Sampler> {
        self.inner.as_mut().ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(
                "this Sampler failed earlier and its state is undefined; create a new one",
            )
        })
    }

    /// Runs `f` on the sampler without the GIL; a failure discards the sampler.
    fn with<R: Send>(
        &mut self,
        py: Python<'_>,
        f: impl FnOnce(&mut Sampler) -> Result<R, synknow_core::CorpusError> + Send,
    ) -> PyResult<R> {
        let sampler = self.get()?;
        match py.detach(|| f(sampler)) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.inner = None;
                Err(to_py(e))
            }
        }
    }

    /// Refuses to draw past `n_docs` documents when `sample(config, n_docs)` would refuse.
    fn check_planned(&mut self, n_docs: u64) -> PyResult<()> {
        if n_docs > self.checked {
            self.get()?.check_planned(n_docs).map_err(config_err)?;
            self.checked = n_docs;
        }
        Ok(())
    }

    fn skip_checked(&mut self, py: Python<'_>, n_docs: u64) -> PyResult<()> {
        let end = self
            .get()?
            .n_docs()
            .checked_add(n_docs)
            .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("n_docs too large"))?;
        self.check_planned(end)?;
        let mut left = n_docs;
        while left > 0 {
            let step = left.min(SKIP_STEP);
            self.with(py, |s| s.skip(step))?;
            left -= step;
            py.check_signals()?;
        }
        Ok(())
    }
}

fn batch_dict<'py, T: TokenWord + numpy::Element>(
    py: Python<'py>,
    b: Batch<T>,
    m: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let n = b.doc_entity.len();
    let d = PyDict::new(py);
    d.set_item("first_doc", b.first_doc)?;
    d.set_item("stride", b.stride)?;
    d.set_item("tokens", b.tokens.into_pyarray(py))?;
    d.set_item("roles", b.roles.into_pyarray(py))?;
    d.set_item("doc_offsets", b.doc_offsets.into_pyarray(py))?;
    d.set_item("doc_entity", b.doc_entity.into_pyarray(py))?;
    d.set_item(
        "sentence_attribute",
        b.sentence_attribute.into_pyarray(py).reshape([n, m])?,
    )?;
    d.set_item(
        "sentence_template",
        b.sentence_template.into_pyarray(py).reshape([n, m])?,
    )?;
    Ok(d)
}

#[pymethods]
impl PySampler {
    #[new]
    #[pyo3(signature = (config_json, start=0, threads=None))]
    fn new(
        py: Python<'_>,
        config_json: &str,
        #[pyo3(from_py_with = args::start)] start: u64,
        #[pyo3(from_py_with = args::threads)] threads: Option<usize>,
    ) -> PyResult<Self> {
        let c = parse_config(config_json)?;
        let inner = py.detach(|| Sampler::new(&c, start)).map_err(config_err)?;
        let mut s = PySampler {
            inner: Some(inner),
            threads,
            checked: start,
        };
        s.skip_checked(py, start)?;
        Ok(s)
    }

    /// Index of the next document (documents drawn so far).
    #[getter]
    fn n_docs(&mut self) -> PyResult<u64> {
        Ok(self.get()?.n_docs())
    }

    /// Entities created so far.
    #[getter]
    fn n_entities(&mut self) -> PyResult<usize> {
        Ok(self.get()?.entities.len())
    }

    /// Skips `n_docs` documents: only their entities are drawn (no tokens), some thirty times
    /// faster than rendering them.
    #[pyo3(signature = (n_docs))]
    fn skip(
        &mut self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::n_docs)] n_docs: u64,
    ) -> PyResult<()> {
        self.skip_checked(py, n_docs)
    }

    /// Renders the next `n_docs` documents, `stride` apart (the ones between only take their
    /// entity draw). Returns a dict of numpy arrays owned by Python (no copy): `tokens`, `roles`,
    /// `doc_offsets` (relative to the batch, `n_docs + 1`), `doc_entity`,
    /// `sentence_attribute`, `sentence_template`, and the ints `first_doc` and `stride`.
    #[pyo3(signature = (n_docs, stride=1))]
    fn next_batch<'py>(
        &mut self,
        py: Python<'py>,
        #[pyo3(from_py_with = args::n_docs)] n_docs: u64,
        #[pyo3(from_py_with = args::stride)] stride: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        if stride == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "stride must be an integer >= 1, got 0",
            ));
        }
        let too_large = || pyo3::exceptions::PyValueError::new_err("n_docs * stride too large");
        let n = usize::try_from(n_docs).map_err(|_| too_large())?;
        let step = usize::try_from(stride).map_err(|_| too_large())?;
        let span = n_docs
            .saturating_sub(1)
            .checked_mul(stride)
            .and_then(|s| s.checked_add(u64::from(n_docs > 0)))
            .ok_or_else(too_large)?;
        let end = self.get()?.n_docs().saturating_add(span);
        self.check_planned(end)?;
        let threads = self.threads;
        let (wide, m) = {
            let s = self.get()?;
            (synknow_core::needs_u32(&s.grammar), s.grammar.config.m())
        };
        if wide {
            let b = self.with(py, |s| s.next_batch_strided::<u32>(n, step, threads))?;
            batch_dict(py, b, m)
        } else {
            let b = self.with(py, |s| s.next_batch_strided::<u16>(n, step, threads))?;
            batch_dict(py, b, m)
        }
    }

    /// The entity table so far (copies): `entity_names`, `entity_values`, `entity_first_doc`,
    /// `entity_counts`, as in a corpus of the documents drawn so far.
    fn entities<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.get()?;
        let (j, a) = (s.grammar.n_name_parts(), s.grammar.n_attributes());
        let e = &s.entities;
        let k = e.len();
        let d = PyDict::new(py);
        d.set_item(
            "entity_names",
            e.names.clone().into_pyarray(py).reshape([k, j])?,
        )?;
        d.set_item(
            "entity_values",
            e.values.clone().into_pyarray(py).reshape([k, a])?,
        )?;
        d.set_item("entity_first_doc", e.first_doc.clone().into_pyarray(py))?;
        d.set_item("entity_counts", e.counts.clone().into_pyarray(py))?;
        Ok(d)
    }
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
    m.add_function(wrap_pyfunction!(generate_part_to_dir, m)?)?;
    m.add_function(wrap_pyfunction!(merge_parts, m)?)?;
    m.add_class::<PySampler>()?;
    m.add_function(wrap_pyfunction!(xxh3_64, m)?)?;
    m.add_function(wrap_pyfunction!(expected_entities, m)?)?;
    Ok(())
}
