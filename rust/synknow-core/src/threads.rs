//! Thread counts and rayon pools, one rule for every entry point that takes `threads`
//! (sampling, streaming, code lengths, learning curves).

use crate::error::CorpusError;

/// Most threads a pool may have: a typo like `threads=100000` must not try to start that many
/// OS threads (which ends in a failed spawn or an out-of-memory kill, not an error message).
pub const MAX_THREADS: usize = 1024;

/// Checks a thread count: `None` means all cores, `Some(t)` needs `1 <= t <= MAX_THREADS`.
pub fn check_threads(threads: Option<usize>) -> Result<Option<usize>, CorpusError> {
    match threads {
        Some(t) if t == 0 || t > MAX_THREADS => Err(CorpusError::Argument(format!(
            "threads must be in 1..={MAX_THREADS} (or None for all cores), got {t}"
        ))),
        _ => Ok(threads),
    }
}

/// A rayon pool with the requested number of threads (None: all cores).
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool, CorpusError> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = check_threads(threads)? {
        b = b.num_threads(t);
    }
    b.build()
        .map_err(|e| CorpusError::Argument(format!("cannot start {threads:?} threads: {e}")))
}

/// The pool of the last explicit thread count, kept across calls (a streaming sampler runs one
/// batch per shard and should not start its threads again for each).
#[derive(Default)]
pub(crate) struct PoolCache(Option<(usize, rayon::ThreadPool)>);

impl PoolCache {
    /// Runs `f` on a pool of `threads` threads (None: rayon's global pool, all cores).
    pub(crate) fn install<R: Send>(
        &mut self,
        threads: Option<usize>,
        f: impl FnOnce() -> R + Send,
    ) -> Result<R, CorpusError> {
        let Some(t) = threads else {
            return Ok(f());
        };
        let pool = match &mut self.0 {
            Some((n, pool)) if *n == t => pool,
            slot => &slot.insert((t, thread_pool(Some(t))?)).1,
        };
        Ok(pool.install(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_thread_counts() {
        assert_eq!(check_threads(None).unwrap(), None);
        assert_eq!(check_threads(Some(1)).unwrap(), Some(1));
        assert_eq!(check_threads(Some(MAX_THREADS)).unwrap(), Some(MAX_THREADS));
        for bad in [0, MAX_THREADS + 1, 100_000] {
            let err = check_threads(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("threads must be in 1..=1024"), "{err}");
            assert!(thread_pool(Some(bad)).is_err());
        }
        let mut cache = PoolCache::default();
        assert_eq!(
            cache.install(Some(2), rayon::current_num_threads).unwrap(),
            2
        );
        assert!(cache.install(Some(0), || ()).is_err());
    }
}
