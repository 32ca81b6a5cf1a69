//! Progress callbacks and Ctrl-C for long Rust calls, for every binding that takes `progress`
//! (streaming generation, code lengths, learning curves).

use pyo3::prelude::*;

use synknow_core::{CorpusError, Report};

use crate::to_py;

/// Runs `work` with the GIL released, handing it a report function that calls
/// `progress(done, total)` (when given) and checks for signals, on the calling thread.
///
/// When the callback raises (KeyboardInterrupt from Ctrl-C included), `work` is cancelled and
/// that exception is re-raised as it was; a cancellation without one surfaces as
/// `KeyboardInterrupt` (see [`to_py`]).
pub(crate) fn detach_with_progress<R: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    work: impl FnOnce(Report<'_>) -> Result<R, CorpusError> + Send,
) -> PyResult<R> {
    let mut raised: Option<PyErr> = None;
    let result = py.detach(|| {
        let mut report = |done: u64, total: u64| -> Result<(), String> {
            Python::attach(|py| {
                let outcome = py.check_signals().and_then(|_| match &progress {
                    Some(cb) => cb.call1(py, (done, total)).map(|_| ()),
                    None => Ok(()),
                });
                outcome.map_err(|e| {
                    let msg = e.to_string();
                    raised = Some(e);
                    msg
                })
            })
        };
        work(&mut report)
    });
    if let Some(e) = raised {
        return Err(e);
    }
    result.map_err(to_py)
}
