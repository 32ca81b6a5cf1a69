//! The Bayes learning curve (docs/codelength.md#learning-curve): the code length of every test
//! document given the first
//! `n` training documents, for several `n`, in one pass over the training stream.
//!
//! The training stream is parsed in parallel batches and learnt in order (no scoring: the state
//! after `n` documents does not depend on how they were coded). At each checkpoint every test
//! document is scored against the frozen state, in parallel: a document only reads the state
//! (see [`super::state`]), so neither copies nor undo logs are needed.

use rayon::prelude::*;

use crate::alloc::try_zeroed;
use crate::error::CorpusError;
use crate::sampler::TokenWord;
use crate::threads::thread_pool;

use super::predictive::{check_offsets, learn, score_frozen, Cursor};
use super::state::{token_role, Model, State};
use super::{run_with_progress, Progress, Report, N_ROLES};

/// Per checkpoint and test document: bits by role and the entity's training count `c_k(n)`.
#[derive(Clone, Debug, Default)]
pub struct CurveOutput {
    pub checkpoints: Vec<u64>,
    /// Index of the first test document in the corpus.
    pub test_start: usize,
    pub n_test: usize,
    /// `checkpoints x n_test x 4` bits (special, syntax, name, value), row-major.
    pub doc_bits: Vec<f64>,
    /// `checkpoints x n_test`: training count of the test document's entity (0 if unseen).
    pub entity_count: Vec<u64>,
    /// `n_test x 4` tokens by role of each test document.
    pub tokens_by_role: Vec<u64>,
}

/// Checks the split and the checkpoints; returns the first test document.
pub fn check_curve_arguments(
    n_docs: usize,
    n_train: usize,
    n_test: usize,
    checkpoints: &[u64],
) -> Result<usize, CorpusError> {
    let bad = |m: String| Err(CorpusError::Argument(m));
    if n_test == 0 {
        return bad("n_test must be >= 1 (the test split is the last n_test documents)".into());
    }
    if n_train.checked_add(n_test).is_none_or(|s| s > n_docs) {
        return bad(format!(
            "n_train + n_test = {n_train} + {n_test} exceeds the {n_docs} documents of the corpus"
        ));
    }
    if checkpoints.is_empty() {
        return bad("checkpoints must list at least one training prefix length".into());
    }
    for (i, &c) in checkpoints.iter().enumerate() {
        if c > n_train as u64 {
            return bad(format!(
                "checkpoint {c} is out of range [0, n_train = {n_train}]"
            ));
        }
        if i > 0 && c <= checkpoints[i - 1] {
            return bad(format!(
                "checkpoints must be strictly increasing, got {} then {c}",
                checkpoints[i - 1]
            ));
        }
    }
    Ok(n_docs - n_test)
}

/// docs/codelength.md#learning-curve. `n_train`: training documents available (the checkpoints are
/// prefix lengths
/// `<= n_train`); the test split is the last `n_test` documents.
#[allow(clippy::too_many_arguments)]
pub fn bayes_curve<T: TokenWord>(
    model: &Model,
    tokens: &[T],
    offsets: &[u64],
    n_train: usize,
    n_test: usize,
    checkpoints: &[u64],
    threads: Option<usize>,
    report: Report<'_>,
) -> Result<CurveOutput, CorpusError> {
    check_offsets(offsets, tokens.len())?;
    let n_docs = offsets.len() - 1;
    let test_start = check_curve_arguments(n_docs, n_train, n_test, checkpoints)?;
    let pool = thread_pool(threads)?;
    let n_checkpoints = checkpoints.len();
    // Checkpoints x test documents can exceed memory (or usize) when both are large.
    let too_many = || {
        CorpusError::Argument(format!(
            "{n_checkpoints} checkpoints x {n_test} test documents do not fit in memory"
        ))
    };
    let cells = n_checkpoints.checked_mul(n_test).ok_or_else(too_many)?;
    let role_cells = cells.checked_mul(N_ROLES).ok_or_else(too_many)?;
    let mut out = CurveOutput {
        checkpoints: checkpoints.to_vec(),
        test_start,
        n_test,
        doc_bits: try_zeroed(role_cells, "the learning curve's bits")?,
        entity_count: try_zeroed(cells, "the learning curve's entity counts")?,
        tokens_by_role: try_zeroed(n_test * N_ROLES, "the test documents' role counts")?,
    };
    let total = checkpoints.last().unwrap().saturating_add(cells as u64);
    let doc = |d: usize| &tokens[offsets[d] as usize..offsets[d + 1] as usize];

    let work = move |progress: &Progress| -> Result<CurveOutput, CorpusError> {
        pool.install(|| {
            out.tokens_by_role
                .par_chunks_mut(N_ROLES)
                .enumerate()
                .for_each(|(i, row)| {
                    for &t in doc(test_start + i) {
                        row[token_role(model, t.to_u32())] += 1;
                    }
                });
            let mut state = State::new(model, false);
            let mut done = 0usize;
            for (c, &n_c) in checkpoints.iter().enumerate() {
                learn(
                    model,
                    &mut state,
                    tokens,
                    offsets,
                    done..n_c as usize,
                    progress,
                )
                .map_err(|(_, e)| e)?;
                done = n_c as usize;
                state.refresh_entries(model);
                let state = &state;
                let bits = &mut out.doc_bits[c * n_test * N_ROLES..(c + 1) * n_test * N_ROLES];
                let counts = &mut out.entity_count[c * n_test..(c + 1) * n_test];
                let failed = bits
                    .par_chunks_mut(N_ROLES)
                    .zip(counts.par_iter_mut())
                    .enumerate()
                    .with_min_len(64)
                    .map_init(
                        || Cursor::new(model),
                        |cursor, (i, (row, count))| match score_frozen(
                            cursor,
                            state,
                            doc(test_start + i),
                        ) {
                            Ok((b, k)) => {
                                row.copy_from_slice(&b);
                                *count = k;
                                if i % 256 == 255 {
                                    progress.add(256);
                                }
                                false
                            }
                            Err(_) => true,
                        },
                    )
                    .reduce(|| false, |a, b| a || b);
                if failed {
                    let mut cursor = Cursor::new(model);
                    let first = (test_start..n_docs).find_map(|d| {
                        score_frozen(&mut cursor, state, doc(d))
                            .err()
                            .map(|e| (d, e))
                    });
                    if let Some((d, e)) = first {
                        return Err(e.into_corpus_error(d, offsets[d]));
                    }
                    unreachable!("a test document failed in parallel but not sequentially");
                }
                progress.add((n_test % 256) as u64);
                if progress.cancelled() {
                    return Err(super::cancelled_error());
                }
            }
            Ok(out)
        })
    };
    run_with_progress(total, report, work)
}
