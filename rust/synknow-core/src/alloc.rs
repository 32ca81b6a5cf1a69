//! Fallible allocation of large buffers: a size that cannot be allocated is an error naming the
//! buffer, never an allocator abort of the whole process (which, from Python, kills the
//! interpreter without a traceback).

use crate::error::CorpusError;

/// The error for a buffer of `bytes` bytes that cannot be allocated; `hint` (possibly empty)
/// says what to do instead.
pub(crate) fn too_large(bytes: usize, what: &str, hint: &str) -> CorpusError {
    CorpusError::Argument(format!(
        "cannot allocate {:.1} GB for {what}{hint}",
        bytes as f64 / 1e9
    ))
}

/// An empty vector with room for `n` elements.
pub(crate) fn try_with_capacity<T>(
    n: usize,
    what: &str,
    hint: &str,
) -> Result<Vec<T>, CorpusError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| too_large(n.saturating_mul(std::mem::size_of::<T>()), what, hint))?;
    Ok(v)
}

/// `n` default values (zeros for numbers).
pub(crate) fn try_zeroed<T: Clone + Default>(n: usize, what: &str) -> Result<Vec<T>, CorpusError> {
    let mut v = try_with_capacity(n, what, "")?;
    v.resize(n, T::default());
    Ok(v)
}
