//! Exact Bayesian code lengths of Syntax-Knowledge corpora (docs/codelength.md).
//!
//! The Bayes learner knows the configuration (hence the [`Grammar`](crate::Grammar): templates,
//! token blocks, `H_a`, `alpha`, `beta`, `gamma`, `m`, the ordering rule) but neither `theta` nor
//! the entities. Two independent routes compute its code length:
//!
//! - [`closed_form`]: per document (docs/codelength.md#per-document) and for a whole corpus
//!   (docs/codelength.md#whole-corpus), from the latent records the sampler wrote (entity of
//!   each document, attribute and template of each sentence, the entity table);
//! - [`predictive`]: the exact posterior predictive of every token
//!   (docs/codelength.md#per-token), computed from the token stream alone (parse states from
//!   tokens, a trie over used names, values learned from parsed sentences). Its per-token code
//!   lengths sum to the closed forms to rounding, which is the main correctness check of both.
//!
//! On top of the predictive: [`curve`], the Bayes learning curve
//! (docs/codelength.md#learning-curve), and [`structure`],
//! the two-part code and its structure function (docs/codelength.md#structure-function). [`state`]
//! holds what the learner has
//! learnt (shared by all of them).
//!
//! Internals are natural-log float64; bits appear only at the edge.

pub mod capacity;
pub mod closed_form;
pub mod coder;
pub mod curve;
pub mod predictive;
pub mod state;
pub mod structure;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::CorpusError;

pub use closed_form::{closed_form_per_doc, closed_form_total, Latents};
pub use curve::{bayes_curve, CurveOutput};
pub use predictive::{code_lengths, code_lengths_chunked, predictive_distributions, CodeLengths};
pub use state::Model;
pub use structure::{structure_function, StructureFunction};

/// Token roles as stored in `Corpus.roles` (docs/model.md#corpus-contents).
pub const ROLE_SPECIAL: usize = 0;
pub const ROLE_SYNTAX: usize = 1;
pub const ROLE_NAME: usize = 2;
pub const ROLE_VALUE: usize = 3;
pub const N_ROLES: usize = 4;

pub(crate) const LN_2: f64 = std::f64::consts::LN_2;

/// Neumaier's compensated sum: the error stays at a few ulps of the result for any number of
/// terms, which the 1e-9 identities of docs/codelength.md#per-token need on corpora of 10^8 tokens.
#[derive(Clone, Copy, Debug, Default)]
pub struct Neumaier {
    sum: f64,
    compensation: f64,
}

impl Neumaier {
    #[inline]
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    #[inline]
    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }

    pub fn of(values: impl IntoIterator<Item = f64>) -> f64 {
        let mut s = Neumaier::default();
        for v in values {
            s.add(v);
        }
        s.value()
    }
}

/// Shared progress counter and cancellation flag between the worker and the reporting thread.
#[derive(Default)]
pub struct Progress {
    done: AtomicU64,
    cancelled: AtomicBool,
}

impl Progress {
    #[inline]
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    #[inline]
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

/// Progress callback: `(done, total)`; an `Err` (e.g. Ctrl-C seen by the Python side) cancels.
pub type Report<'a> = &'a mut dyn FnMut(u64, u64) -> Result<(), String>;

/// A report that does nothing (Rust callers, tests, benches).
pub fn no_report(_: u64, _: u64) -> Result<(), String> {
    Ok(())
}

/// Runs `work` on a helper thread while the calling thread reports progress every 100 ms, so a
/// Python callback (and its Ctrl-C check) always runs on the thread that called us.
pub fn run_with_progress<R: Send>(
    total: u64,
    report: Report<'_>,
    work: impl FnOnce(&Progress) -> Result<R, CorpusError> + Send,
) -> Result<R, CorpusError> {
    let progress = Progress::default();
    let caller = std::thread::current();
    let mut refused: Option<String> = None;
    let result = std::thread::scope(|s| {
        let p = &progress;
        let handle = s.spawn(move || {
            let r = work(p);
            caller.unpark();
            r
        });
        while !handle.is_finished() {
            std::thread::park_timeout(Duration::from_millis(100));
            if refused.is_none() && !handle.is_finished() {
                if let Err(msg) = report(progress.done().min(total), total) {
                    progress.cancelled.store(true, Ordering::Relaxed);
                    refused = Some(msg);
                }
            }
        }
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    if let Some(msg) = refused {
        return Err(CorpusError::Interrupted(msg));
    }
    let r = result?;
    report(total, total).map_err(CorpusError::Interrupted)?;
    Ok(r)
}

/// The error a worker returns once it sees the cancellation flag ([`run_with_progress`] replaces
/// it with one carrying the callback's message).
pub(crate) fn cancelled_error() -> CorpusError {
    CorpusError::Interrupted("cancelled".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusing_report_is_an_interruption() {
        let mut refuse = |_: u64, _: u64| -> Result<(), String> { Err("Ctrl-C".into()) };
        let err = run_with_progress(10, &mut refuse, |_| Ok(())).unwrap_err();
        assert!(
            matches!(&err, CorpusError::Interrupted(m) if m == "Ctrl-C"),
            "{err:?}"
        );
    }

    #[test]
    fn neumaier_keeps_small_terms() {
        let mut s = Neumaier::default();
        s.add(1e16);
        for _ in 0..1000 {
            s.add(1.0);
        }
        s.add(-1e16);
        assert_eq!(s.value(), 1000.0);
    }
}
