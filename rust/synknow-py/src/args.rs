//! Integer arguments, converted the same way by every binding: a clear `ValueError` naming the
//! argument and its valid range, where pyo3's own conversion would raise `OverflowError` for a
//! negative number or `TypeError` for a float, and would take `True` for 1.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBool;

use synknow_core::MAX_THREADS;

/// The object's `repr`, for messages.
fn shown(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A Python int (not a bool) in `lo..=hi`, or `None` when it is not one.
fn int_in(obj: &Bound<'_, PyAny>, lo: i128, hi: i128) -> Option<i128> {
    if obj.is_instance_of::<PyBool>() {
        return None;
    }
    obj.extract::<i128>().ok().filter(|v| (lo..=hi).contains(v))
}

/// `threads`: `None` (all cores) or an integer in `1..=MAX_THREADS`. Sampling, streaming, code
/// lengths and learning curves all take it through here (`#[pyo3(from_py_with = ...)]`), so they
/// accept the same values.
pub(crate) fn threads(obj: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    if obj.is_none() {
        return Ok(None);
    }
    match int_in(obj, 1, MAX_THREADS as i128) {
        Some(t) => Ok(Some(t as usize)),
        None => Err(PyValueError::new_err(format!(
            "threads must be an integer in 1..={MAX_THREADS} (or None for all cores), got {}",
            shown(obj)
        ))),
    }
}

/// A count (documents, shard size, checkpoint): an integer in `[0, 2^64)`.
fn count(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    int_in(obj, 0, u64::MAX as i128)
        .map(|v| v as u64)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "{name} must be an integer in [0, 2^64), got {}",
                shown(obj)
            ))
        })
}

/// A count used as an index into memory: an integer in `[0, usize::MAX]`.
fn index(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    let v = count(name, obj)?;
    usize::try_from(v)
        .map_err(|_| PyValueError::new_err(format!("{name} = {v} does not fit this machine")))
}

/// A list of counts (checkpoints).
fn counts(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
    let bad = || {
        PyValueError::new_err(format!(
            "{name} must be a list of integers in [0, 2^64), got {}",
            shown(obj)
        ))
    };
    if obj.is_instance_of::<pyo3::types::PyString>() {
        return Err(bad());
    }
    let mut out = Vec::new();
    for item in obj.try_iter().map_err(|_| bad())? {
        let item = item?;
        out.push(int_in(&item, 0, u64::MAX as i128).ok_or_else(bad)? as u64);
    }
    Ok(out)
}

/// One `from_py_with` converter per argument name, so the message names the argument.
macro_rules! named {
    ($($fn_name:ident: $ty:ty = $conv:ident($name:literal);)*) => {
        $(
            pub(crate) fn $fn_name(obj: &Bound<'_, PyAny>) -> PyResult<$ty> {
                $conv($name, obj)
            }
        )*
    };
}

named! {
    n_docs: u64 = count("n_docs");
    doc_prefix: usize = index("n_docs");
    shard_docs: u64 = count("shard_docs");
    n_train: usize = index("n_train");
    n_test: usize = index("n_test");
    checkpoints: Vec<u64> = counts("checkpoints");
    n: u64 = count("n");
    start: u64 = count("start");
    stride: u64 = count("stride");
    part: u64 = count("part");
    parts: u64 = count("parts");
    c: u64 = count("c");
}
