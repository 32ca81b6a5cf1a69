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

/// Asks the kernel to back a large, not yet touched output buffer with 2 MB pages: filling it
/// then takes one page fault per 2 MB instead of one per 4 KB (the same advice numpy gives for its
/// large arrays). Only the 2 MB-aligned part of the buffer is advised; failure is harmless.
#[cfg(target_os = "linux")]
pub(crate) fn advise_huge_pages<T>(v: &Vec<T>) {
    use std::ffi::{c_int, c_void};
    extern "C" {
        fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
    }
    const MADV_HUGEPAGE: c_int = 14;
    const HUGE: usize = 2 << 20;
    let start = v.as_ptr() as usize;
    let end = start + v.capacity() * std::mem::size_of::<T>();
    let lo = start.div_ceil(HUGE) * HUGE;
    let hi = end / HUGE * HUGE;
    if hi >= lo + 2 * HUGE {
        // SAFETY: `lo..hi` lies inside the vector's own allocation, and MADV_HUGEPAGE only
        // changes how the kernel backs those pages (never their contents or validity). The
        // result is ignored: without the advice the buffer simply uses small pages.
        unsafe {
            madvise(lo as *mut c_void, hi - lo, MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn advise_huge_pages<T>(_v: &Vec<T>) {}
