//! A corpus generated in parts, on as many machines, and merged (docs/corpus-format.md#parts).
//!
//! Part `i` of `parts` (1-based) holds documents `[floor((i-1) N / parts), floor(i N / parts))`
//! of the corpus of `N` documents. A part fast-forwards the CRP to its first document (entity
//! draws only, no rendering: [`Sampler::skip`]), then streams its documents like
//! [`generate_to_dir`](super::generate_to_dir), with the entities its documents create. The merge
//! concatenates the parts' arrays, shifts the document offsets, counts the documents of every
//! entity and writes `theta`, the vocabulary and the manifest exactly as the single-machine
//! generation does, so the merged directory is byte-identical to it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use xxhash_rust::xxh3::Xxh3;

use super::{
    as_bytes, flatten_theta, gigabytes, manifest, npy_header, total_memory_bytes,
    write_document_arrays, write_json, write_whole_array, ArrayData, NpyWriter, Staging,
    StreamNeeds, StreamSummary, FORMAT_VERSION, MAX_MANIFEST_BYTES, NPY_HEADER_LEN,
};
use crate::config::Config;
use crate::error::CorpusError;
use crate::grammar::Grammar;
use crate::sampler::{draw_theta, needs_u32, Sampler, TokenWord};

/// `format` of a part's manifest.
pub const PART_FORMAT: &str = "synknow-corpus-part";

/// Documents skipped per CRP call while a part fast-forwards, between two checks for Ctrl-C.
const SKIP_STEP: u64 = 1 << 22;

/// The documents `[lo, hi)` of part `part` (1-based) of `parts` of a corpus of `n_docs`.
pub fn part_range(n_docs: u64, part: u64, parts: u64) -> Result<(u64, u64), CorpusError> {
    if parts == 0 || part == 0 || part > parts {
        return Err(CorpusError::Argument(format!(
            "part must be I/N with 1 <= I <= N, got {part}/{parts}"
        )));
    }
    if parts > n_docs {
        return Err(CorpusError::Argument(format!(
            "cannot split {n_docs} documents into {parts} parts: every part needs a document"
        )));
    }
    let at = |i: u64| (i as u128 * n_docs as u128 / parts as u128) as u64;
    Ok((at(part - 1), at(part)))
}

/// What a part holds.
#[derive(Clone, Debug, PartialEq)]
pub struct PartSummary {
    pub first_doc: u64,
    pub n_docs: u64,
    pub n_tokens: u64,
    /// Index of the first entity the part's documents create.
    pub first_entity: u64,
    /// Entities the part's documents create.
    pub n_entities: u64,
}

/// Writes part `part` of `parts` of the corpus of `n_docs` documents of `config` to `dir`,
/// atomically, `shard_docs` documents in memory at a time. `progress(done, total)` counts the
/// part's documents (reported with `done = 0` while it fast-forwards); an `Err` from it aborts.
#[allow(clippy::too_many_arguments)]
pub fn generate_part_to_dir(
    config: &Config,
    n_docs: u64,
    part: u64,
    parts: u64,
    shard_docs: u64,
    threads: Option<usize>,
    dir: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
) -> Result<PartSummary, CorpusError> {
    if shard_docs == 0 {
        return Err(CorpusError::Argument("shard_docs must be >= 1".into()));
    }
    let range = part_range(n_docs, part, parts)?;
    // Planned for the whole corpus: the name supply rule is the single-machine one.
    let mut sampler = Sampler::new(config, n_docs)?;
    let job = PartJob {
        n_docs,
        part,
        parts,
        range,
        shard_docs,
        threads,
        dir,
        overwrite,
    };
    if needs_u32(&sampler.grammar) {
        job.run::<u32>(&mut sampler, progress)
    } else {
        job.run::<u16>(&mut sampler, progress)
    }
}

struct PartJob<'a> {
    n_docs: u64,
    part: u64,
    parts: u64,
    range: (u64, u64),
    shard_docs: u64,
    threads: Option<usize>,
    dir: &'a Path,
    overwrite: bool,
}

fn interrupted(msg: String) -> CorpusError {
    CorpusError::Interrupted(msg)
}

impl PartJob<'_> {
    fn run<T: TokenWord>(
        &self,
        sampler: &mut Sampler,
        progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
    ) -> Result<PartSummary, CorpusError> {
        let (lo, hi) = self.range;
        let total = hi - lo;
        let staging = Staging::new(
            self.dir,
            self.overwrite,
            StreamNeeds::estimate(sampler, total).disk_bytes,
        )?;
        // The CRP keeps every document up to the part's last, as on one machine.
        let memory = StreamNeeds::estimate(sampler, hi).memory_bytes;
        if let Some(have) = total_memory_bytes() {
            if memory > have {
                return Err(CorpusError::Argument(format!(
                    "cannot generate documents up to {hi}: the sampler keeps 4 bytes per \
                     document and the entity table in memory, about {}, but this machine has {} \
                     of memory and swap",
                    gigabytes(memory),
                    gigabytes(have)
                )));
            }
        }
        let mut skipped = 0;
        while skipped < lo {
            let n = (lo - skipped).min(SKIP_STEP);
            sampler.skip(n)?;
            skipped += n;
            progress(0, total).map_err(interrupted)?;
        }
        let first_entity = sampler.entities.len() as u64;
        let t = &staging.tmp;
        let (mut entries, base) = write_document_arrays::<T>(
            sampler,
            t,
            total,
            self.shard_docs,
            self.threads,
            &mut |done| progress(done, total).map_err(interrupted),
        )?;
        let g = &sampler.grammar;
        let (j, a) = (g.n_name_parts(), g.n_attributes());
        let e = &sampler.entities;
        let k0 = first_entity as usize;
        let n_new = (e.len() - k0) as u64;
        let new = [
            ArrayData {
                name: "entity_names",
                dtype: "<u4",
                shape: vec![n_new, j as u64],
                bytes: as_bytes(&e.names[k0 * j..]),
            },
            ArrayData {
                name: "entity_values",
                dtype: "<u4",
                shape: vec![n_new, a as u64],
                bytes: as_bytes(&e.values[k0 * a..]),
            },
            ArrayData {
                name: "entity_first_doc",
                dtype: "<u8",
                shape: vec![n_new],
                bytes: as_bytes(&e.first_doc[k0..]),
            },
        ];
        for array in &new {
            let (name, entry) = write_whole_array(t, array)?;
            entries.insert(name, entry);
        }
        let summary = PartSummary {
            first_doc: lo,
            n_docs: total,
            n_tokens: base,
            first_entity,
            n_entities: n_new,
        };
        let m = part_manifest(g, self.n_docs, self.part, self.parts, &summary, entries);
        write_json(&t.join("manifest.json"), &m)?;
        staging.commit()?;
        Ok(summary)
    }
}

fn part_manifest(
    grammar: &Grammar,
    corpus_docs: u64,
    part: u64,
    parts: u64,
    s: &PartSummary,
    arrays: serde_json::Map<String, Value>,
) -> Value {
    let mut m = manifest(
        grammar,
        s.n_docs,
        s.n_tokens,
        s.n_entities,
        Value::Object(arrays),
    );
    let fields = m.as_object_mut().expect("an object");
    fields.insert("format".into(), json!(PART_FORMAT));
    fields.insert("part".into(), json!(part));
    fields.insert("parts".into(), json!(parts));
    fields.insert("corpus_n_docs".into(), json!(corpus_docs));
    fields.insert("first_doc".into(), json!(s.first_doc));
    fields.insert("first_entity".into(), json!(s.first_entity));
    m
}

/// One part as its manifest describes it.
struct Part {
    dir: PathBuf,
    config: Config,
    config_hash: String,
    part: u64,
    parts: u64,
    corpus_docs: u64,
    summary: PartSummary,
    arrays: serde_json::Map<String, Value>,
}

fn not_a_part(dir: &Path, why: &str) -> CorpusError {
    CorpusError::Argument(format!(
        "{} is not a corpus part written by synknow generate --part: {why}",
        dir.display()
    ))
}

fn corrupt(dir: &Path, why: String) -> CorpusError {
    CorpusError::Corrupt(format!("part {}: {why}", dir.display()))
}

impl Part {
    fn read(dir: &Path) -> Result<Self, CorpusError> {
        if !dir.is_dir() {
            return Err(not_a_part(dir, "no such directory"));
        }
        let path = dir.join("manifest.json");
        let size = fs::metadata(&path)
            .map_err(|_| not_a_part(dir, "it has no manifest.json"))?
            .len();
        if size > MAX_MANIFEST_BYTES {
            return Err(not_a_part(dir, "its manifest.json is too large"));
        }
        let text = fs::read_to_string(&path).map_err(|e| CorpusError::io(&path, e))?;
        let m: Value = serde_json::from_str(&text)
            .map_err(|_| not_a_part(dir, "its manifest.json is not valid JSON"))?;
        match m.get("format").and_then(Value::as_str) {
            Some(PART_FORMAT) => {}
            Some(super::FORMAT) => {
                return Err(not_a_part(dir, "it is a whole corpus, not a part"));
            }
            _ => return Err(not_a_part(dir, "its manifest.json has another format")),
        }
        if m.get("format_version").and_then(Value::as_u64) != Some(FORMAT_VERSION) {
            return Err(not_a_part(dir, "unknown format_version"));
        }
        let version = m.get("synknow_version").and_then(Value::as_str);
        if version != Some(crate::VERSION) {
            return Err(CorpusError::Argument(format!(
                "{} was written by synknow {}; merge it with that version (this is {}), the \
                 manifest of the merged corpus names it",
                dir.display(),
                version.unwrap_or("?"),
                crate::VERSION
            )));
        }
        let count = |key: &str| {
            m.get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| corrupt(dir, format!("manifest.json has no integer '{key}'")))
        };
        let config_value = m
            .get("config")
            .ok_or_else(|| corrupt(dir, "manifest.json has no 'config'".into()))?;
        let config = Config::from_json(&config_value.to_string())
            .map_err(|e| corrupt(dir, format!("manifest.json: {e}")))?;
        let config_hash = m
            .get("config_hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let expected = manifest(&Grammar::new(&config)?, 0, 0, 0, Value::Null);
        if expected["config_hash"].as_str() != Some(config_hash.as_str()) {
            return Err(corrupt(
                dir,
                "manifest.json: config_hash does not match config (edited?)".into(),
            ));
        }
        let arrays = m
            .get("arrays")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| corrupt(dir, "manifest.json has no 'arrays' object".into()))?;
        Ok(Part {
            dir: dir.to_path_buf(),
            config,
            config_hash,
            part: count("part")?,
            parts: count("parts")?,
            corpus_docs: count("corpus_n_docs")?,
            summary: PartSummary {
                first_doc: count("first_doc")?,
                n_docs: count("n_docs")?,
                n_tokens: count("n_tokens")?,
                first_entity: count("first_entity")?,
                n_entities: count("n_entities")?,
            },
            arrays,
        })
    }
}

/// Checks that `parts` are every part of one corpus, once each; returns them in order.
fn check_parts(mut parts: Vec<Part>) -> Result<Vec<Part>, CorpusError> {
    let Some(first) = parts.first() else {
        return Err(CorpusError::Argument(
            "merge needs at least one part".into(),
        ));
    };
    for p in &parts[1..] {
        if p.config_hash != first.config_hash {
            return Err(CorpusError::Argument(format!(
                "{} and {} are parts of different corpora (configurations or seeds differ: \
                 config_hash {} vs {})",
                first.dir.display(),
                p.dir.display(),
                first.config_hash,
                p.config_hash
            )));
        }
        if (p.parts, p.corpus_docs) != (first.parts, first.corpus_docs) {
            return Err(CorpusError::Argument(format!(
                "{} is part {}/{} of {} documents but {} is part {}/{} of {}: parts of different \
                 splits",
                first.dir.display(),
                first.part,
                first.parts,
                first.corpus_docs,
                p.dir.display(),
                p.part,
                p.parts,
                p.corpus_docs
            )));
        }
    }
    parts.sort_by_key(|p| p.part);
    for pair in parts.windows(2) {
        if pair[0].part == pair[1].part {
            return Err(CorpusError::Argument(format!(
                "overlapping parts: {} and {} are both part {}/{}",
                pair[0].dir.display(),
                pair[1].dir.display(),
                pair[0].part,
                pair[0].parts
            )));
        }
    }
    let total = parts[0].parts;
    let have: Vec<u64> = parts.iter().map(|p| p.part).collect();
    let missing: Vec<String> = (1..=total)
        .filter(|i| !have.contains(i))
        .map(|i| format!("{i}/{total}"))
        .collect();
    if !missing.is_empty() {
        return Err(CorpusError::Argument(format!(
            "missing part(s) {} of the corpus of {} documents; generate them with --part",
            missing.join(", "),
            parts[0].corpus_docs
        )));
    }
    let mut next_entity = 0;
    for p in &parts {
        let (lo, hi) = part_range(p.corpus_docs, p.part, p.parts)?;
        let s = &p.summary;
        if (s.first_doc, s.n_docs) != (lo, hi - lo) {
            return Err(corrupt(
                &p.dir,
                format!(
                    "manifest.json says documents [{}, {}), part {}/{} is [{lo}, {hi})",
                    s.first_doc,
                    s.first_doc + s.n_docs,
                    p.part,
                    p.parts
                ),
            ));
        }
        if s.n_entities > s.n_docs {
            return Err(corrupt(
                &p.dir,
                format!(
                    "manifest.json says {} documents create {} entities",
                    s.n_docs, s.n_entities
                ),
            ));
        }
        if s.first_entity != next_entity {
            return Err(corrupt(
                &p.dir,
                format!(
                    "its first entity is {} but the parts before it create {next_entity}",
                    s.first_entity
                ),
            ));
        }
        next_entity += s.n_entities;
    }
    Ok(parts)
}

/// How the merge treats one array's values as it copies them.
enum Pass<'a> {
    Copy,
    /// Document offsets: the first (0) dropped, the rest shifted by the tokens before the part.
    Offsets {
        base: u64,
        n_tokens: u64,
    },
    /// Document entities: checked to be below the part's last entity, and counted.
    Entities {
        end: u64,
        counts: &'a mut [u64],
    },
}

/// Streams the data of one part array into `out`, checking header, size and hash.
fn copy_array(
    part: &Part,
    name: &str,
    dtype: &str,
    shape: &[u64],
    out: &mut NpyWriter,
    mut pass: Pass<'_>,
) -> Result<(), CorpusError> {
    let dir = &part.dir;
    let entry = part
        .arrays
        .get(name)
        .and_then(Value::as_object)
        .ok_or_else(|| corrupt(dir, format!("manifest.json has no entry for '{name}'")))?;
    let file = format!("{name}.npy");
    if entry.get("file").and_then(Value::as_str) != Some(file.as_str()) {
        return Err(corrupt(
            dir,
            format!("manifest entry '{name}' must name {file}"),
        ));
    }
    let want_shape: Vec<Value> = shape.iter().map(|&s| json!(s)).collect();
    if entry.get("dtype").and_then(Value::as_str) != Some(dtype)
        || entry.get("shape").and_then(Value::as_array) != Some(&want_shape)
    {
        return Err(corrupt(
            dir,
            format!("{file} should be {dtype} of shape {shape:?}, its manifest says otherwise"),
        ));
    }
    let path = dir.join(&file);
    let meta = fs::symlink_metadata(&path).map_err(|e| CorpusError::io(&path, e))?;
    if !meta.is_file() {
        return Err(corrupt(dir, format!("{file} is not a regular file")));
    }
    let item = super::dtype_size(dtype)?;
    let data_bytes = shape.iter().product::<u64>() * item;
    if meta.len() != NPY_HEADER_LEN as u64 + data_bytes {
        return Err(corrupt(
            dir,
            format!(
                "{file} has {} bytes, expected {} (truncated?)",
                meta.len(),
                NPY_HEADER_LEN as u64 + data_bytes
            ),
        ));
    }
    let mut f = File::open(&path).map_err(|e| CorpusError::io(&path, e))?;
    let mut header = vec![0u8; NPY_HEADER_LEN];
    f.read_exact(&mut header)
        .map_err(|e| CorpusError::io(&path, e))?;
    if header != npy_header(dtype, shape) {
        return Err(corrupt(dir, format!("{file}: unexpected .npy header")));
    }
    let mut hash = Xxh3::new();
    let mut left = data_bytes;
    let mut buf = vec![0u8; 1 << 20];
    let mut first_chunk = true;
    let mut last_offset = 0u64;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        let chunk = &mut buf[..n];
        f.read_exact(chunk).map_err(|e| CorpusError::io(&path, e))?;
        hash.update(chunk);
        match &mut pass {
            Pass::Copy => out.append(chunk)?,
            Pass::Offsets { base, .. } => {
                let mut shifted = Vec::with_capacity(n / 8);
                for (i, word) in chunk.chunks_exact(8).enumerate() {
                    let o = u64::from_le_bytes(word.try_into().expect("8 bytes"));
                    if first_chunk && i == 0 {
                        if o != 0 {
                            return Err(corrupt(dir, format!("{file} does not start at 0")));
                        }
                        continue;
                    }
                    last_offset = o;
                    shifted.push(o + *base);
                }
                out.append(as_bytes(&shifted))?;
            }
            Pass::Entities { end, counts } => {
                for word in chunk.chunks_exact(4) {
                    let k = u32::from_le_bytes(word.try_into().expect("4 bytes")) as u64;
                    if k >= *end {
                        return Err(corrupt(
                            dir,
                            format!("{file} names entity {k}, beyond the parts' {end}"),
                        ));
                    }
                    counts[k as usize] += 1;
                }
                out.append(chunk)?;
            }
        }
        first_chunk = false;
        left -= n as u64;
    }
    if let Pass::Offsets { n_tokens, .. } = pass {
        if last_offset != n_tokens && part.summary.n_docs > 0 {
            return Err(corrupt(
                dir,
                format!("{file} ends at {last_offset}, not at the part's {n_tokens} tokens"),
            ));
        }
    }
    let digest = format!("{:016x}", hash.digest());
    if entry.get("xxh3_64").and_then(Value::as_str) != Some(digest.as_str()) {
        return Err(corrupt(
            dir,
            format!("{file} does not match the hash in its manifest (altered?)"),
        ));
    }
    Ok(())
}

/// Joins the parts in `part_dirs` (any order) into the corpus directory `dir`, atomically; the
/// result is byte-identical to generating the whole corpus on one machine. Checks that the parts
/// are all the parts of one corpus (same configuration, seed, size and split), each once, and
/// every array's size and hash. `progress(done, total)` counts bytes copied.
pub fn merge_parts(
    part_dirs: &[PathBuf],
    dir: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64, u64) -> Result<(), String>,
) -> Result<StreamSummary, CorpusError> {
    let target = fs::canonicalize(dir).ok();
    let mut parts = Vec::with_capacity(part_dirs.len());
    for p in part_dirs {
        if target.is_some() && fs::canonicalize(p).ok() == target {
            return Err(CorpusError::Argument(format!(
                "the output {} is one of the parts; write the merged corpus elsewhere",
                dir.display()
            )));
        }
        parts.push(Part::read(p)?);
    }
    let parts = check_parts(parts)?;
    let config = parts[0].config.clone();
    let grammar = Grammar::new(&config)?;
    let (m, j, a) = (
        config.m() as u64,
        grammar.n_name_parts() as u64,
        grammar.n_attributes() as u64,
    );
    let token_dtype = if needs_u32(&grammar) { "<u4" } else { "<u2" };
    let n_docs: u64 = parts.iter().map(|p| p.summary.n_docs).sum();
    let n_tokens: u64 = parts.iter().map(|p| p.summary.n_tokens).sum();
    let n_entities: u64 = parts.iter().map(|p| p.summary.n_entities).sum();
    let k = usize::try_from(n_entities)
        .map_err(|_| CorpusError::Argument("too many entities for this machine".into()))?;
    // Per array: dtype, item size, row shape, and the per-part row count.
    type Rows = fn(&PartSummary) -> u64;
    let layout: [(&str, &str, u64, Vec<u64>, Rows); 9] = [
        ("tokens", token_dtype, 0, vec![], |s| s.n_tokens),
        ("roles", "|u1", 1, vec![], |s| s.n_tokens),
        ("doc_offsets", "<u8", 8, vec![], |s| s.n_docs + 1),
        ("doc_entity", "<u4", 4, vec![], |s| s.n_docs),
        ("sentence_attribute", "<u2", 2, vec![m], |s| s.n_docs),
        ("sentence_template", "<u2", 2, vec![m], |s| s.n_docs),
        ("entity_names", "<u4", 4, vec![j], |s| s.n_entities),
        ("entity_values", "<u4", 4, vec![a], |s| s.n_entities),
        ("entity_first_doc", "<u8", 8, vec![], |s| s.n_entities),
    ];
    let token_item = if needs_u32(&grammar) { 4 } else { 2 };
    let bytes_of = |item: u64, row: &[u64], rows: u64| rows * row.iter().product::<u64>() * item;
    let total_bytes: u64 = layout
        .iter()
        .map(|(name, _, item, row, rows)| {
            let item = if *name == "tokens" { token_item } else { *item };
            parts
                .iter()
                .map(|p| bytes_of(item, row, rows(&p.summary)))
                .sum::<u64>()
        })
        .sum();
    let needed = total_bytes as f64
        + 8.0 * n_entities as f64
        + super::VOCAB_JSON_BYTES_PER_TOKEN * grammar.layout.vocab_size as f64;
    let staging = Staging::new(dir, overwrite, needed)?;
    let mut counts = vec![0u64; k];
    let mut entries: BTreeMap<String, Value> = BTreeMap::new();
    let mut done = 0u64;
    let mut entity_end = 0u64;
    for (name, dtype, item, row, rows) in &layout {
        let item = if *name == "tokens" { token_item } else { *item };
        let mut out = NpyWriter::create(
            staging.tmp.join(format!("{name}.npy")),
            dtype,
            row.clone(),
            item,
        )?;
        if *name == "doc_offsets" {
            out.append(as_bytes(&[0u64]))?;
        }
        let mut base = 0u64;
        entity_end = 0;
        for p in &parts {
            let s = &p.summary;
            entity_end += s.n_entities;
            let mut shape = vec![rows(s)];
            shape.extend(row);
            let pass = match *name {
                "doc_offsets" => Pass::Offsets {
                    base,
                    n_tokens: s.n_tokens,
                },
                "doc_entity" => Pass::Entities {
                    end: entity_end,
                    counts: &mut counts,
                },
                _ => Pass::Copy,
            };
            copy_array(p, name, dtype, &shape, &mut out, pass)?;
            base += s.n_tokens;
            done += bytes_of(item, row, rows(s));
            progress(done, total_bytes).map_err(interrupted)?;
        }
        let (name, entry) = out.finish()?;
        entries.insert(name, entry);
    }
    debug_assert_eq!(entity_end, n_entities);
    let (theta, theta_offsets) = flatten_theta(&draw_theta(&config));
    for array in [
        ArrayData {
            name: "theta",
            dtype: "<f8",
            shape: vec![theta.len() as u64],
            bytes: as_bytes(&theta),
        },
        ArrayData {
            name: "theta_offsets",
            dtype: "<u8",
            shape: vec![theta_offsets.len() as u64],
            bytes: as_bytes(&theta_offsets),
        },
        ArrayData {
            name: "entity_counts",
            dtype: "<u8",
            shape: vec![n_entities],
            bytes: as_bytes(&counts),
        },
    ] {
        let (name, entry) = write_whole_array(&staging.tmp, &array)?;
        entries.insert(name, entry);
    }
    write_json(
        &staging.tmp.join("vocab.json"),
        &json!(grammar.vocab_strings()),
    )?;
    let arrays: serde_json::Map<String, Value> = entries.into_iter().collect();
    let m = manifest(
        &grammar,
        n_docs,
        n_tokens,
        n_entities,
        Value::Object(arrays),
    );
    write_json(&staging.tmp.join("manifest.json"), &m)?;
    staging.commit()?;
    Ok(StreamSummary {
        n_docs,
        n_tokens,
        n_entities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus_io::generate_to_dir;

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().to_string(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn ranges_cover_the_corpus_in_order() {
        for (n, parts) in [(10, 3), (7, 7), (1000, 6), (u64::MAX, 5)] {
            let mut next = 0;
            for i in 1..=parts {
                let (lo, hi) = part_range(n, i, parts).unwrap();
                assert_eq!(lo, next);
                assert!(hi > lo);
                next = hi;
            }
            assert_eq!(next, n);
        }
        assert!(part_range(10, 0, 3).is_err());
        assert!(part_range(10, 4, 3).is_err());
        assert!(part_range(2, 1, 3).is_err());
    }

    #[test]
    fn three_parts_merge_to_the_single_machine_corpus() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Config {
            seed: 4,
            ..Config::default()
        };
        let whole = tmp.path().join("whole");
        generate_to_dir(&c, 5000, 1000, Some(2), &whole, false, &mut |_, _| Ok(())).unwrap();
        let mut dirs = Vec::new();
        // Listed out of order: the merge sorts them by their manifests.
        for i in [2, 3, 1] {
            let d = tmp.path().join(format!("p{i}"));
            generate_part_to_dir(&c, 5000, i, 3, 700, Some(2), &d, false, &mut |_, _| Ok(()))
                .unwrap();
            dirs.push(d);
        }
        let merged = tmp.path().join("merged");
        let s = merge_parts(&dirs, &merged, false, &mut |_, _| Ok(())).unwrap();
        assert_eq!(s.n_docs, 5000);
        assert_eq!(files(&merged), files(&whole));
    }
}
