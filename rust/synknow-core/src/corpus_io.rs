//! The on-disk corpus format (SPEC 3.5), atomic writes, and streaming generation.
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

/// The staging directory beside `dir`; renamed onto `dir` only when everything is written.
struct Staging {
    tmp: PathBuf,
    dir: PathBuf,
    done: bool,
}

impl Staging {
    fn new(dir: &Path, overwrite: bool) -> Result<Self, CorpusError> {
        if dir.exists() && !overwrite {
            return Err(CorpusError::Argument(format!(
                "{} already exists; choose another path or pass overwrite=True",
                dir.display()
            )));
        }
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(|e| CorpusError::io(parent, e))?;
        let name = dir.file_name().ok_or_else(|| {
            CorpusError::Argument(format!("not a directory path: {}", dir.display()))
        })?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = parent.join(format!(
            ".{}.tmp-{}-{stamp}",
            name.to_string_lossy(),
            std::process::id()
        ));
        fs::create_dir(&tmp).map_err(|e| CorpusError::io(&tmp, e))?;
        Ok(Staging {
            tmp,
            dir: dir.to_path_buf(),
            done: false,
        })
    }

    fn commit(mut self) -> Result<(), CorpusError> {
        if self.dir.exists() {
            let trash = self.tmp.with_extension("old");
            fs::rename(&self.dir, &trash).map_err(|e| CorpusError::io(&self.dir, e))?;
            fs::rename(&self.tmp, &self.dir).map_err(|e| CorpusError::io(&self.dir, e))?;
            let _ = fs::remove_dir_all(&trash);
        } else {
            fs::rename(&self.tmp, &self.dir).map_err(|e| CorpusError::io(&self.dir, e))?;
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
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
    let staging = Staging::new(dir, overwrite)?;
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
    let staging = Staging::new(dir, overwrite)?;
    let m = sampler.grammar.config.m() as u64;
    let t = &staging.tmp;
    let mut w_tokens = NpyWriter::create(
        t.join("tokens.npy"),
        T::DTYPE,
        vec![],
        std::mem::size_of::<T>() as u64,
    )?;
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
        base += *b.doc_offsets.last().unwrap();
        done += n as u64;
        progress(done, n_docs).map_err(CorpusError::Argument)?;
    }
    let mut entries = serde_json::Map::new();
    for w in [w_tokens, w_roles, w_offsets, w_entity, w_attr, w_tmpl] {
        let (name, entry) = w.finish()?;
        entries.insert(name, entry);
    }
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
}
