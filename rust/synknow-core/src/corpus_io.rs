//! The on-disk corpus format (docs/model.md#corpus-contents), atomic writes, and streaming
//! generation.
//!
//! A corpus is a directory: `manifest.json`, `vocab.json`, and one `.npy` file per array (see
//! `docs/corpus-format.md`). Everything is written into a hidden sibling directory and renamed into
//! place at the end, so a crash or an interrupt never leaves a half-written corpus under the final
//! name. Streaming generation appends shard after shard to the array files, patches the `.npy`
//! headers at the end and keeps in memory only the entity table, the per-document entity ids the
//! CRP needs, and one shard.

use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::config::Config;
use crate::error::CorpusError;
use crate::grammar::Grammar;
use crate::sampler::{needs_u32, Batch, Corpus, Entities, Sampler, TokenWord, Tokens};
use crate::theory::expected_entities_fast;

mod parts;

pub use parts::{generate_part_to_dir, merge_parts, part_range, PartSummary, PART_FORMAT};

pub const FORMAT: &str = "synknow-corpus";
pub const FORMAT_VERSION: u64 = 1;
/// Fixed `.npy` header size, so a streamed file's header can be rewritten in place.
const NPY_HEADER_LEN: usize = 128;

/// A borrowed array to be written: little-endian bytes plus numpy dtype and shape.
pub struct ArrayData<'a> {
    pub name: &'a str,
    pub dtype: &'a str,
    pub shape: Vec<u64>,
    pub bytes: &'a [u8],
}

fn as_bytes<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: plain-old-data integer/float slices, viewed as bytes (little-endian targets only).
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn npy_header(dtype: &str, shape: &[u64]) -> Vec<u8> {
    let shape_text = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let mut h = Vec::with_capacity(NPY_HEADER_LEN);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    let body_len = NPY_HEADER_LEN - 10;
    h.extend_from_slice(&(body_len as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    assert!(h.len() < NPY_HEADER_LEN, "npy header too long");
    h.resize(NPY_HEADER_LEN - 1, b' ');
    h.push(b'\n');
    h
}

/// An `.npy` file written in pieces; the header is patched with the final shape on `finish`.
struct NpyWriter {
    path: PathBuf,
    out: BufWriter<File>,
    hash: Xxh3,
    dtype: String,
    row_shape: Vec<u64>,
    elements: u64,
    item_size: u64,
}

impl NpyWriter {
    fn create(
        path: PathBuf,
        dtype: &str,
        row_shape: Vec<u64>,
        item_size: u64,
    ) -> Result<Self, CorpusError> {
        let file = File::create(&path).map_err(|e| CorpusError::io(&path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&npy_header(dtype, &[0]))
            .map_err(|e| CorpusError::io(&path, e))?;
        Ok(NpyWriter {
            path,
            out,
            hash: Xxh3::new(),
            dtype: dtype.to_string(),
            row_shape,
            elements: 0,
            item_size,
        })
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), CorpusError> {
        self.hash.update(bytes);
        self.elements += bytes.len() as u64 / self.item_size;
        self.out
            .write_all(bytes)
            .map_err(|e| CorpusError::io(&self.path, e))
    }

    /// Flushes, fixes the header, fsyncs; returns the manifest entry.
    fn finish(self) -> Result<(String, Value), CorpusError> {
        let NpyWriter {
            path,
            out,
            hash,
            dtype,
            row_shape,
            elements,
            ..
        } = self;
        let mut file = out
            .into_inner()
            .map_err(|e| CorpusError::io(&path, e.into_error()))?;
        let row: u64 = row_shape.iter().product();
        let mut shape = vec![elements.checked_div(row).unwrap_or(0)];
        shape.extend(&row_shape);
        file.seek(SeekFrom::Start(0))
            .map_err(|e| CorpusError::io(&path, e))?;
        file.write_all(&npy_header(&dtype, &shape))
            .map_err(|e| CorpusError::io(&path, e))?;
        file.sync_all().map_err(|e| CorpusError::io(&path, e))?;
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let entry = json!({
            "file": path.file_name().unwrap().to_string_lossy(),
            "dtype": dtype,
            "shape": shape,
            "xxh3_64": format!("{:016x}", hash.digest()),
        });
        Ok((name, entry))
    }
}

/// The staging directory beside `dir`; moved onto `dir` only when everything is written.
///
/// Its name, `.NAME.tmp-PID-HEX`, is the one `synknow.fsutil` gives every temporary, so a staging
/// directory left by a killed process is recognisable and removed by the next write to the same
/// parent (`synknow.fsutil.remove_stale_temporaries`).
struct Staging {
    tmp: PathBuf,
    dir: PathBuf,
    overwrite: bool,
    done: bool,
}

/// The sibling temporary name for `name`: `.NAME.tmp-PID-HEX`, unique within this process.
fn temporary_path(parent: &Path, name: &std::ffi::OsStr) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag = xxhash_rust::xxh3::xxh3_64(&[nanos.to_le_bytes(), count.to_le_bytes()].concat());
    parent.join(format!(
        ".{}.tmp-{}-{:08x}",
        name.to_string_lossy(),
        std::process::id(),
        tag as u32
    ))
}

fn already_exists(dir: &Path) -> CorpusError {
    CorpusError::Argument(format!(
        "{} already exists; choose another path or pass overwrite=True",
        dir.display()
    ))
}

impl Staging {
    /// Checks the target (absent, or replaceable with `overwrite`), creates its parent, checks
    /// that about `needed_bytes` fit on that file system, and creates the staging directory.
    fn new(dir: &Path, overwrite: bool, needed_bytes: f64) -> Result<Self, CorpusError> {
        let name = dir
            .file_name()
            .filter(|n| *n != "." && *n != "..")
            .ok_or_else(|| {
                CorpusError::Argument(format!("not a directory path: {}", dir.display()))
            })?;
        if fs::symlink_metadata(dir).is_ok() {
            if !overwrite {
                return Err(already_exists(dir));
            }
            check_replaceable(dir)?;
        }
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(|e| CorpusError::io(parent, e))?;
        check_free_space(parent, needed_bytes)?;
        let tmp = loop {
            let tmp = temporary_path(parent, name);
            match fs::create_dir(&tmp) {
                Ok(()) => break tmp,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(CorpusError::io(&tmp, e)),
            }
        };
        Ok(Staging {
            tmp,
            dir: dir.to_path_buf(),
            overwrite,
            done: false,
        })
    }

    /// Moves the staging directory onto the target. Without `overwrite` an existing target is
    /// never replaced (exclusive rename), even one that appeared while this corpus was written.
    /// With `overwrite` a synknow corpus is swapped out in one atomic exchange, then deleted.
    fn commit(mut self) -> Result<(), CorpusError> {
        sync_dir(&self.tmp);
        match rename_noreplace(&self.tmp, &self.dir) {
            Ok(()) => {}
            Err(e) if is_exists_error(&e) => {
                if !self.overwrite {
                    return Err(already_exists(&self.dir));
                }
                check_replaceable(&self.dir)?;
                let old = self.replace_target()?;
                self.done = true;
                // The new corpus is in place; the old one only takes space now. Should this
                // fail half-way, the leftover carries a staging name and is cleaned later.
                let _ = remove_corpus_dir(&old);
            }
            Err(e) => return Err(CorpusError::io(&self.dir, e)),
        }
        self.done = true;
        if let Some(parent) = self.dir.parent() {
            sync_dir(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            });
        }
        Ok(())
    }

    /// Puts the staging directory at the target's name; returns where the old corpus now is.
    fn replace_target(&self) -> Result<PathBuf, CorpusError> {
        match rename_exchange(&self.tmp, &self.dir) {
            // After the exchange the old corpus sits under the staging name.
            Ok(()) => Ok(self.tmp.clone()),
            Err(e) if exchange_unsupported(&e) => {
                // No atomic exchange on this file system: two renames. The old corpus is moved
                // to a staging-style name, so if the process dies between the renames it is
                // reported (and later removed) by the stale-temporary cleanup.
                let parent = self.tmp.parent().unwrap_or(Path::new("."));
                let name = self.dir.file_name().expect("checked in new");
                let old = temporary_path(parent, name);
                fs::rename(&self.dir, &old).map_err(|e| CorpusError::io(&self.dir, e))?;
                if let Err(e) = fs::rename(&self.tmp, &self.dir) {
                    // Put the old corpus back rather than leave the target missing.
                    let _ = fs::rename(&old, &self.dir);
                    return Err(CorpusError::io(&self.dir, e));
                }
                Ok(old)
            }
            Err(e) => Err(CorpusError::io(&self.dir, e)),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

fn sync_dir(dir: &Path) {
    // Makes renames durable; some file systems refuse fsync on a directory, which is harmless.
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

fn is_exists_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::AlreadyExists
        || e.kind() == std::io::ErrorKind::DirectoryNotEmpty
}

fn exchange_unsupported(e: &std::io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL))
    }
    #[cfg(not(target_os = "linux"))]
    {
        e.kind() == std::io::ErrorKind::Unsupported
    }
}

#[cfg(target_os = "linux")]
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths; the raw syscall avoids depending on the C
    // library's renameat2 wrapper (glibc >= 2.28 only).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `rename(from, to)` that fails with `AlreadyExists` when `to` exists.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    match renameat2(from, to, libc::RENAME_NOREPLACE) {
        Err(e) if exchange_unsupported(&e) => {}
        other => return other,
    }
    rename_noreplace_fallback(from, to)
}

/// Without `renameat2`: a check, then a plain rename. A directory rename never replaces a
/// non-empty directory (ENOTEMPTY), so two writers of corpora still cannot replace each other;
/// only an empty directory created in between could be.
fn rename_noreplace_fallback(from: &Path, to: &Path) -> std::io::Result<()> {
    if fs::symlink_metadata(to).is_ok() {
        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
    }
    fs::rename(from, to)
}

/// Swaps two paths atomically; `Unsupported`-like errors where the file system cannot.
fn rename_exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        renameat2(a, b, libc::RENAME_EXCHANGE)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

/// Files a corpus directory may hold besides those its manifest names.
const CORPUS_EXTRAS: [&str; 2] = ["manifest.json", "vocab.json"];
/// A manifest larger than this is not one synknow wrote.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Whether `name` is a plain file name: no separator, not `.`/`..`, not empty.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

/// The files of the synknow corpus directory `dir`, or why `dir` is not recognisably one.
/// An empty directory counts as a corpus with no files.
fn corpus_files(dir: &Path) -> Result<Vec<String>, String> {
    let meta = fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if meta.file_type().is_symlink() {
        return Err("it is a symbolic link".into());
    }
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    let mut present = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().to_string();
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        if !kind.is_file() {
            return Err(format!("it holds '{name}', which is not a regular file"));
        }
        present.push(name);
    }
    if present.is_empty() {
        return Ok(present);
    }
    let manifest_path = dir.join("manifest.json");
    present.sort();
    let meta = fs::metadata(&manifest_path)
        .map_err(|_| format!("it has no manifest.json and holds '{}'", present[0]))?;
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err("its manifest.json is too large to be a synknow manifest".into());
    }
    let text = fs::read_to_string(&manifest_path)
        .map_err(|e| format!("its manifest.json cannot be read ({e})"))?;
    let manifest: Value = serde_json::from_str(&text)
        .map_err(|_| "its manifest.json is not valid JSON".to_string())?;
    if !matches!(
        manifest.get("format").and_then(Value::as_str),
        Some(FORMAT | parts::PART_FORMAT)
    ) {
        return Err("its manifest.json is not a synknow corpus manifest".into());
    }
    let arrays = manifest
        .get("arrays")
        .and_then(Value::as_object)
        .ok_or_else(|| "its manifest.json has no 'arrays' object".to_string())?;
    let mut named: Vec<&str> = CORPUS_EXTRAS.to_vec();
    for entry in arrays.values() {
        match entry.get("file").and_then(Value::as_str) {
            Some(f) if is_plain_file_name(f) => named.push(f),
            _ => return Err("its manifest.json names a file outside the directory".into()),
        }
    }
    if let Some(stray) = present.iter().find(|p| !named.contains(&p.as_str())) {
        return Err(format!(
            "it holds '{stray}', which its manifest does not name"
        ));
    }
    Ok(present)
}

/// Ok when `dir` may be replaced by `overwrite=True`: only recognisable corpus directories are.
fn check_replaceable(dir: &Path) -> Result<(), CorpusError> {
    corpus_files(dir).map(|_| ()).map_err(|why| {
        CorpusError::Argument(format!(
            "refusing to overwrite {}: {why}, so it is not a synknow corpus directory \
             (overwrite only ever replaces one); remove it yourself or choose another path",
            dir.display()
        ))
    })
}

/// Deletes a replaced corpus: its known files one by one, then the (then empty) directory, so
/// nothing the manifest does not name is ever deleted.
fn remove_corpus_dir(dir: &Path) -> std::io::Result<()> {
    let files = corpus_files(dir).map_err(std::io::Error::other)?;
    for f in files.iter().filter(|f| f.as_str() != "manifest.json") {
        fs::remove_file(dir.join(f))?;
    }
    if files.iter().any(|f| f == "manifest.json") {
        fs::remove_file(dir.join("manifest.json"))?;
    }
    fs::remove_dir(dir)
}

/// Bytes free to this user on the file system holding `dir`, where the platform tells.
fn free_bytes(dir: &Path) -> Option<f64> {
    #[cfg(unix)]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: a valid NUL-terminated path and a buffer of the right type; read only on 0.
        let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: statvfs returned 0, so it filled the buffer.
        let st = unsafe { st.assume_init() };
        #[allow(clippy::unnecessary_cast)]
        Some(st.f_bavail as f64 * st.f_frsize as f64)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Memory plus swap of this machine, where the platform tells.
fn total_memory_bytes() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        let mut info = std::mem::MaybeUninit::<libc::sysinfo>::uninit();
        // SAFETY: a buffer of the right type; read only when sysinfo returns 0.
        let rc = unsafe { libc::sysinfo(info.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: sysinfo returned 0, so it filled the buffer.
        let info = unsafe { info.assume_init() };
        #[allow(clippy::unnecessary_cast)]
        Some((info.totalram as f64 + info.totalswap as f64) * info.mem_unit.max(1) as f64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

fn gigabytes(bytes: f64) -> String {
    if bytes >= 1e12 {
        format!("{:.1} TB", bytes / 1e12)
    } else {
        format!("{:.1} GB", bytes / 1e9)
    }
}

/// An error when `needed_bytes` clearly do not fit on the file system holding `dir`.
fn check_free_space(dir: &Path, needed_bytes: f64) -> Result<(), CorpusError> {
    match free_bytes(dir) {
        Some(free) if needed_bytes > free => Err(CorpusError::Argument(format!(
            "not enough disk space: the corpus needs about {} but only {} are free in {}; \
             generate fewer documents or write elsewhere",
            gigabytes(needed_bytes),
            gigabytes(free),
            dir.display()
        ))),
        _ => Ok(()),
    }
}

fn write_json(path: &Path, value: &Value) -> Result<(), CorpusError> {
    let text = serde_json::to_string_pretty(value).expect("json");
    let mut f = File::create(path).map_err(|e| CorpusError::io(path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| CorpusError::io(path, e))?;
    f.sync_all().map_err(|e| CorpusError::io(path, e))
}

/// The manifest for a corpus of `config` (whose `seed` is the master seed used).
fn manifest(
    grammar: &Grammar,
    n_docs: u64,
    n_tokens: u64,
    n_entities: u64,
    arrays: Value,
) -> Value {
    let config = &grammar.config;
    let canonical = config.to_json();
    json!({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "synknow_version": crate::VERSION,
        "config": serde_json::from_str::<Value>(&canonical).expect("json"),
        "config_hash": format!("{:016x}", xxhash_rust::xxh3::xxh3_64(format!("{canonical}|{}", crate::VERSION).as_bytes())),
        "seed": config.seed,
        "n_docs": n_docs,
        "n_tokens": n_tokens,
        "n_entities": n_entities,
        "n_attributes": config.n_attributes,
        "attrs_per_doc": config.m(),
        "n_name_parts": config.name_parts.len(),
        "vocab_size": grammar.layout.vocab_size,
        "arrays": arrays,
    })
}

/// Writes a set of arrays plus manifest and vocabulary as a corpus directory, atomically.
pub fn write_arrays(
    dir: &Path,
    config: &Config,
    arrays: &[ArrayData],
    overwrite: bool,
) -> Result<(), CorpusError> {
    let grammar = Grammar::new(config)?;
    let needed: f64 = arrays
        .iter()
        .map(|a| (a.bytes.len() + NPY_HEADER_LEN) as f64)
        .sum::<f64>()
        + VOCAB_JSON_BYTES_PER_TOKEN * grammar.layout.vocab_size as f64;
    let staging = Staging::new(dir, overwrite, needed)?;
    let mut entries = serde_json::Map::new();
    let get_len = |name: &str| arrays.iter().find(|a| a.name == name).map(|a| a.shape[0]);
    let n_docs = get_len("doc_entity").unwrap_or(0);
    let n_tokens = get_len("tokens").unwrap_or(0);
    let n_entities = get_len("entity_counts").unwrap_or(0);
    for a in arrays {
        let (name, entry) = write_whole_array(&staging.tmp, a)?;
        entries.insert(name, entry);
    }
    write_json(
        &staging.tmp.join("vocab.json"),
        &json!(grammar.vocab_strings()),
    )?;
    let m = manifest(
        &grammar,
        n_docs,
        n_tokens,
        n_entities,
        Value::Object(entries),
    );
    write_json(&staging.tmp.join("manifest.json"), &m)?;
    staging.commit()
}

fn dtype_size(dtype: &str) -> Result<u64, CorpusError> {
    Ok(match dtype {
        "|u1" | "<u1" | "u1" => 1,
        "<u2" => 2,
        "<u4" | "<f4" => 4,
        "<u8" | "<f8" | "<i8" => 8,
        d => return Err(CorpusError::Argument(format!("unsupported dtype {d}"))),
    })
}

/// Writes one complete array as `<dir>/<name>.npy`; returns its manifest entry.
fn write_whole_array(dir: &Path, a: &ArrayData) -> Result<(String, Value), CorpusError> {
    let item = dtype_size(a.dtype)?;
    let expected: u64 = a.shape.iter().product::<u64>() * item;
    if expected != a.bytes.len() as u64 {
        return Err(CorpusError::Argument(format!(
            "array '{}': shape {:?} of {} needs {expected} bytes, got {}",
            a.name,
            a.shape,
            a.dtype,
            a.bytes.len()
        )));
    }
    let path = dir.join(format!("{}.npy", a.name));
    let mut w = NpyWriter::create(path, a.dtype, a.shape[1..].to_vec(), item)?;
    w.append(a.bytes)?;
    w.finish()
}

/// The syntax parameters (flattened, with offsets) and the entity table, as arrays to write.
fn latent_arrays<'a>(
    theta: &'a [f64],
    theta_offsets: &'a [u64],
    e: &'a Entities,
    j: u64,
    a: u64,
) -> Vec<ArrayData<'a>> {
    let mut arrays = vec![
        ArrayData {
            name: "theta",
            dtype: "<f8",
            shape: vec![theta.len() as u64],
            bytes: as_bytes(theta),
        },
        ArrayData {
            name: "theta_offsets",
            dtype: "<u8",
            shape: vec![theta_offsets.len() as u64],
            bytes: as_bytes(theta_offsets),
        },
    ];
    arrays.extend(entity_arrays(e, j, a));
    arrays
}

fn entity_arrays<'a>(e: &'a Entities, j: u64, a: u64) -> Vec<ArrayData<'a>> {
    let k = e.len() as u64;
    vec![
        ArrayData {
            name: "entity_names",
            dtype: "<u4",
            shape: vec![k, j],
            bytes: as_bytes(&e.names),
        },
        ArrayData {
            name: "entity_values",
            dtype: "<u4",
            shape: vec![k, a],
            bytes: as_bytes(&e.values),
        },
        ArrayData {
            name: "entity_first_doc",
            dtype: "<u8",
            shape: vec![k],
            bytes: as_bytes(&e.first_doc),
        },
        ArrayData {
            name: "entity_counts",
            dtype: "<u8",
            shape: vec![k],
            bytes: as_bytes(&e.counts),
        },
    ]
}

/// `theta` flattened, with `A + 1` offsets.
pub fn flatten_theta(theta: &[Vec<f64>]) -> (Vec<f64>, Vec<u64>) {
    let mut flat = Vec::new();
    let mut offsets = vec![0u64];
    for row in theta {
        flat.extend_from_slice(row);
        offsets.push(flat.len() as u64);
    }
    (flat, offsets)
}

/// Saves an in-memory corpus.
pub fn save_corpus(dir: &Path, corpus: &Corpus, overwrite: bool) -> Result<(), CorpusError> {
    let c = &corpus.config;
    let (n, m) = (corpus.n_docs() as u64, c.m() as u64);
    let (theta, theta_offsets) = flatten_theta(&corpus.theta);
    let tokens = match &corpus.tokens {
        Tokens::U16(v) => ArrayData {
            name: "tokens",
            dtype: "<u2",
            shape: vec![v.len() as u64],
            bytes: as_bytes(v),
        },
        Tokens::U32(v) => ArrayData {
            name: "tokens",
            dtype: "<u4",
            shape: vec![v.len() as u64],
            bytes: as_bytes(v),
        },
    };
    let mut arrays = vec![
        tokens,
        ArrayData {
            name: "roles",
            dtype: "|u1",
            shape: vec![corpus.roles.len() as u64],
            bytes: &corpus.roles,
        },
        ArrayData {
            name: "doc_offsets",
            dtype: "<u8",
            shape: vec![n + 1],
            bytes: as_bytes(&corpus.doc_offsets),
        },
        ArrayData {
            name: "doc_entity",
            dtype: "<u4",
            shape: vec![n],
            bytes: as_bytes(&corpus.doc_entity),
        },
        ArrayData {
            name: "sentence_attribute",
            dtype: "<u2",
            shape: vec![n, m],
            bytes: as_bytes(&corpus.sentence_attribute),
        },
        ArrayData {
            name: "sentence_template",
            dtype: "<u2",
            shape: vec![n, m],
            bytes: as_bytes(&corpus.sentence_template),
        },
    ];
    arrays.extend(latent_arrays(
        &theta,
        &theta_offsets,
        &corpus.entities,
        c.name_parts.len() as u64,
        c.n_attributes as u64,
    ));
    write_arrays(dir, c, &arrays, overwrite)
}

/// What a streaming generation produced.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamSummary {
    pub n_docs: u64,
    pub n_tokens: u64,
    pub n_entities: u64,
}

/// Size of `vocab.json` per vocabulary entry, generously: pretty-printed, one short quoted string
/// a line.
const VOCAB_JSON_BYTES_PER_TOKEN: f64 = 24.0;

/// What streaming `n_docs` documents will take, estimated before anything is written.
#[derive(Clone, Copy, Debug)]
pub struct StreamNeeds {
    /// Expected size of the corpus directory.
    pub disk_bytes: f64,
    /// Expected memory held for the whole run: the CRP's entity of every document, the entity
    /// table and the set of used names.
    pub memory_bytes: f64,
}

impl StreamNeeds {
    /// Exact expectations under the model: a document is BOS, `m` sentences of distinct uniformly
    /// chosen attributes with templates drawn from `theta`, and EOS; `E[K_N]` entities.
    pub fn estimate(sampler: &Sampler, n_docs: u64) -> Self {
        let g = &sampler.grammar;
        let c = &g.config;
        let (a, m, j) = (
            g.n_attributes() as f64,
            c.m() as f64,
            g.n_name_parts() as f64,
        );
        let sentence_tokens: f64 = g
            .templates
            .iter()
            .zip(&sampler.theta)
            .map(|(list, theta)| {
                list.iter()
                    .zip(theta)
                    .map(|(t, p)| p * t.len() as f64)
                    .sum::<f64>()
            })
            .sum::<f64>()
            / a;
        let tokens_per_doc = 2.0 + m * sentence_tokens;
        let token_bytes = if needs_u32(g) { 4.0 } else { 2.0 };
        let n = n_docs as f64;
        let k = expected_entities_fast(n, c.alpha, c.beta);
        // Per document: tokens and roles, an offset, an entity id, attribute and template per
        // sentence. Per entity: names, values, first document and count.
        let per_doc = tokens_per_doc * (token_bytes + 1.0) + 8.0 + 4.0 + 4.0 * m;
        let per_entity = 4.0 * (j + a) + 16.0;
        let theta_bytes = 8.0 * sampler.theta.iter().map(|t| t.len() + 1).sum::<usize>() as f64;
        StreamNeeds {
            disk_bytes: n * per_doc
                + k * per_entity
                + theta_bytes
                + 12.0 * NPY_HEADER_LEN as f64
                + VOCAB_JSON_BYTES_PER_TOKEN * g.layout.vocab_size as f64,
            // Used names sit in a hash set: about twice a u64 per entry with its load factor.
            memory_bytes: 4.0 * n + k * (per_entity + 16.0),
        }
    }
}

/// Generates `n_docs` documents straight to `dir`, `shard_docs` at a time. `progress(done, total)`
/// is called after every shard; an `Err` from it (e.g. Ctrl-C seen by the caller) aborts the
/// generation and removes the partial output.
pub fn generate_to_dir(
    config: &Config,
    n_docs: u64,
    shard_docs: u64,
    threads: Option<usize>,
    dir: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
) -> Result<StreamSummary, CorpusError> {
    if shard_docs == 0 {
        return Err(CorpusError::Argument("shard_docs must be >= 1".into()));
    }
    let mut sampler = Sampler::new(config, n_docs)?;
    if needs_u32(&sampler.grammar) {
        stream_with::<u32>(
            &mut sampler,
            n_docs,
            shard_docs,
            threads,
            dir,
            overwrite,
            progress,
        )
    } else {
        stream_with::<u16>(
            &mut sampler,
            n_docs,
            shard_docs,
            threads,
            dir,
            overwrite,
            progress,
        )
    }
}

fn stream_with<T: TokenWord>(
    sampler: &mut Sampler,
    n_docs: u64,
    shard_docs: u64,
    threads: Option<usize>,
    dir: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
) -> Result<StreamSummary, CorpusError> {
    let needs = StreamNeeds::estimate(sampler, n_docs);
    // Disk first: it is the scarcer resource, and the message most users need.
    let staging = Staging::new(dir, overwrite, needs.disk_bytes)?;
    if let Some(total) = total_memory_bytes() {
        if needs.memory_bytes > total {
            return Err(CorpusError::Argument(format!(
                "cannot stream {n_docs} documents: the sampler keeps 4 bytes per document and \
                 the entity table in memory, about {}, but this machine has {} of memory and \
                 swap; generate fewer documents",
                gigabytes(needs.memory_bytes),
                gigabytes(total)
            )));
        }
    }
    let t = &staging.tmp;
    let (mut entries, base) =
        write_document_arrays::<T>(sampler, t, n_docs, shard_docs, threads, &mut |done| {
            progress(done, n_docs).map_err(CorpusError::Argument)
        })?;
    let g = &sampler.grammar;
    let (theta, theta_offsets) = flatten_theta(&sampler.theta);
    let rest = latent_arrays(
        &theta,
        &theta_offsets,
        &sampler.entities,
        g.n_name_parts() as u64,
        g.n_attributes() as u64,
    );
    for a in &rest {
        let (name, entry) = write_whole_array(t, a)?;
        entries.insert(name, entry);
    }
    write_json(&t.join("vocab.json"), &json!(g.vocab_strings()))?;
    let n_entities = sampler.entities.len() as u64;
    let m = manifest(g, n_docs, base, n_entities, Value::Object(entries));
    write_json(&t.join("manifest.json"), &m)?;
    staging.commit()?;
    Ok(StreamSummary {
        n_docs,
        n_tokens: base,
        n_entities,
    })
}

/// Samples the next ``n_docs`` documents of ``sampler``, ``shard_docs`` at a time, and appends
/// them to the per-document arrays (tokens, roles, offsets, entities, sentence attributes and
/// templates) in directory ``t``. Returns their manifest entries and the number of tokens.
/// ``progress`` gets the number of documents written after every shard. Shared by whole-corpus
/// streaming and by parts, whose files must be the same byte for byte.
pub(crate) fn write_document_arrays<T: TokenWord>(
    sampler: &mut Sampler,
    t: &Path,
    n_docs: u64,
    shard_docs: u64,
    threads: Option<usize>,
    progress: &mut dyn FnMut(u64) -> Result<(), CorpusError>,
) -> Result<(serde_json::Map<String, Value>, u64), CorpusError> {
    let m = sampler.grammar.config.m() as u64;
    let item = std::mem::size_of::<T>() as u64;
    let mut w_tokens = NpyWriter::create(t.join("tokens.npy"), T::DTYPE, vec![], item)?;
    let mut w_roles = NpyWriter::create(t.join("roles.npy"), "|u1", vec![], 1)?;
    let mut w_offsets = NpyWriter::create(t.join("doc_offsets.npy"), "<u8", vec![], 8)?;
    let mut w_entity = NpyWriter::create(t.join("doc_entity.npy"), "<u4", vec![], 4)?;
    let mut w_attr = NpyWriter::create(t.join("sentence_attribute.npy"), "<u2", vec![m], 2)?;
    let mut w_tmpl = NpyWriter::create(t.join("sentence_template.npy"), "<u2", vec![m], 2)?;
    w_offsets.append(as_bytes(&[0u64]))?;
    let mut base = 0u64;
    let mut done = 0u64;
    while done < n_docs {
        let n = (n_docs - done).min(shard_docs) as usize;
        let b: Batch<T> = sampler.next_batch(n, threads)?;
        w_tokens.append(as_bytes(&b.tokens))?;
        w_roles.append(&b.roles)?;
        let shifted: Vec<u64> = b.doc_offsets[1..].iter().map(|&o| o + base).collect();
        w_offsets.append(as_bytes(&shifted))?;
        w_entity.append(as_bytes(&b.doc_entity))?;
        w_attr.append(as_bytes(&b.sentence_attribute))?;
        w_tmpl.append(as_bytes(&b.sentence_template))?;
        base += *b.doc_offsets.last().unwrap_or(&0);
        done += n as u64;
        progress(done)?;
    }
    let mut entries = serde_json::Map::new();
    for w in [w_tokens, w_roles, w_offsets, w_entity, w_attr, w_tmpl] {
        let (name, entry) = w.finish()?;
        entries.insert(name, entry);
    }
    Ok((entries, base))
}

/// The content hash used in manifests (xxh3-64 of the array's data bytes).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::sample;

    #[test]
    fn streamed_and_in_memory_files_are_identical() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config {
            seed: 11,
            ..Config::default()
        };
        let corpus = sample(&c, 3000, None).unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        save_corpus(&a, &corpus, false).unwrap();
        let s = generate_to_dir(&c, 3000, 700, Some(2), &b, false, &mut |_, _| Ok(())).unwrap();
        assert_eq!(s.n_tokens as usize, corpus.tokens.len());
        for f in [
            "tokens",
            "roles",
            "doc_offsets",
            "doc_entity",
            "sentence_attribute",
            "sentence_template",
            "entity_names",
            "entity_values",
            "entity_first_doc",
            "entity_counts",
            "theta",
            "theta_offsets",
        ] {
            let x = fs::read(a.join(format!("{f}.npy"))).unwrap();
            let y = fs::read(b.join(format!("{f}.npy"))).unwrap();
            assert!(x == y, "{f} differs");
        }
        assert_eq!(
            fs::read(a.join("manifest.json")).unwrap(),
            fs::read(b.join("manifest.json")).unwrap()
        );
        // Refuses to overwrite by default, leaves nothing behind on abort.
        assert!(save_corpus(&a, &corpus, false).is_err());
        let c2 = dir.path().join("c");
        let err = generate_to_dir(&c, 3000, 700, None, &c2, false, &mut |d, _| {
            if d > 1000 {
                Err("stop".into())
            } else {
                Ok(())
            }
        });
        assert!(err.is_err());
        assert!(!c2.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    fn small(seed: u64) -> Config {
        Config {
            seed,
            ..Config::default()
        }
    }

    fn dir_bytes(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn size_estimate_matches_what_is_written() {
        // The estimate is an expectation; 4000 documents average out its variance to well
        // under 5 % (document lengths vary by a few tokens around a mean of tens).
        let tmp = tempfile::tempdir().unwrap();
        for c in [
            small(5),
            Config {
                name_parts: vec![70_000, 300],
                ..small(6)
            },
        ] {
            let sampler = Sampler::new(&c, 4000).unwrap();
            let needs = StreamNeeds::estimate(&sampler, 4000);
            let out = tmp.path().join(format!("c{}", c.seed));
            generate_to_dir(&c, 4000, 1000, Some(1), &out, false, &mut |_, _| Ok(())).unwrap();
            // vocab.json is estimated generously (an upper bound); the rest is an expectation.
            let vocab = fs::metadata(out.join("vocab.json")).unwrap().len() as f64;
            let vocab_bound = VOCAB_JSON_BYTES_PER_TOKEN * sampler.grammar.layout.vocab_size as f64;
            assert!(vocab <= vocab_bound, "vocab.json {vocab} > {vocab_bound}");
            let actual = dir_bytes(&out) as f64 - vocab;
            let estimated = needs.disk_bytes - vocab_bound;
            assert!(
                (estimated / actual - 1.0).abs() < 0.05,
                "estimated {estimated} bytes, wrote {actual}"
            );
        }
    }

    #[test]
    fn infeasible_streams_are_refused_before_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Config {
            name_parts: vec![10_000; 4],
            ..small(1)
        };
        let out = tmp.path().join("huge");
        let mut called = false;
        let err = generate_to_dir(
            &c,
            1_000_000_000_000,
            1000,
            None,
            &out,
            false,
            &mut |_, _| {
                called = true;
                Ok(())
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not enough disk space"), "{err}");
        assert!(!called);
        assert!(names_in(tmp.path()).is_empty());
        assert!(check_free_space(tmp.path(), 1.0).is_ok());
    }

    #[test]
    fn staging_names_follow_the_temporary_pattern() {
        let p = temporary_path(Path::new("/x"), std::ffi::OsStr::new("corpus"));
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let rest = name
            .strip_prefix(&format!(".corpus.tmp-{}-", std::process::id()))
            .unwrap();
        assert!(!rest.is_empty() && rest.chars().all(|ch| ch.is_ascii_hexdigit()));
    }

    #[test]
    fn a_target_created_meanwhile_is_never_replaced_without_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("c");
        let other = sample(&small(2), 50, None).unwrap();
        let err = generate_to_dir(&small(1), 300, 100, Some(1), &out, false, &mut |done, _| {
            if done == 100 {
                save_corpus(&out, &other, false).unwrap();
            }
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("already exists"), "{err}");
        let m: Value =
            serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(m["seed"], 2);
        assert_eq!(names_in(tmp.path()), vec!["c"]);
    }

    #[test]
    fn overwrite_replaces_a_corpus_and_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("c");
        save_corpus(&out, &sample(&small(1), 40, None).unwrap(), false).unwrap();
        save_corpus(&out, &sample(&small(2), 60, None).unwrap(), true).unwrap();
        let m: Value =
            serde_json::from_str(&fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(
            (m["seed"].as_u64(), m["n_docs"].as_u64()),
            (Some(2), Some(60))
        );
        assert_eq!(names_in(tmp.path()), vec!["c"]);
        // An empty directory may be replaced too.
        let empty = tmp.path().join("e");
        fs::create_dir(&empty).unwrap();
        save_corpus(&empty, &sample(&small(1), 5, None).unwrap(), true).unwrap();
        assert!(empty.join("manifest.json").is_file());
    }

    #[test]
    fn overwrite_refuses_what_is_not_a_corpus() {
        let tmp = tempfile::tempdir().unwrap();
        let corpus = sample(&small(1), 20, None).unwrap();
        let thesis = tmp.path().join("thesis");
        fs::create_dir(&thesis).unwrap();
        fs::write(thesis.join("thesis.txt"), "years of work").unwrap();
        let err = save_corpus(&thesis, &corpus, true).unwrap_err().to_string();
        assert!(err.contains("refusing to overwrite"), "{err}");
        // A corpus with a stray file is not replaced either.
        let c = tmp.path().join("c");
        save_corpus(&c, &corpus, false).unwrap();
        fs::write(c.join("notes.txt"), "mine").unwrap();
        let err = save_corpus(&c, &corpus, true).unwrap_err().to_string();
        assert!(err.contains("'notes.txt'"), "{err}");
        let file = tmp.path().join("f");
        fs::write(&file, "x").unwrap();
        assert!(save_corpus(&file, &corpus, true).is_err());
        assert_eq!(
            fs::read(thesis.join("thesis.txt")).unwrap(),
            b"years of work"
        );
        assert_eq!(fs::read(c.join("notes.txt")).unwrap(), b"mine");
        assert_eq!(names_in(tmp.path()), vec!["c", "f", "thesis"]);
        // A replaced corpus is deleted file by file: a stray file that slipped in stays.
        fs::remove_file(c.join("notes.txt")).unwrap();
        fs::write(c.join("notes.txt"), "late").unwrap();
        assert!(remove_corpus_dir(&c).is_err());
        assert!(c.join("notes.txt").is_file());
    }

    #[test]
    fn fallback_renames_never_replace_an_existing_target() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        fs::write(b.join("x"), "keep").unwrap();
        let e = rename_noreplace_fallback(&a, &b).unwrap_err();
        assert!(is_exists_error(&e));
        assert!(is_exists_error(&rename_noreplace(&a, &b).unwrap_err()));
        assert_eq!(fs::read(b.join("x")).unwrap(), b"keep");
        rename_noreplace_fallback(&a, &tmp.path().join("c")).unwrap();
    }
}
