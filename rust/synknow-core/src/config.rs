//! The Syntax-Knowledge configuration (docs/model.md#configuration) and its validation.
//!
//! The configuration travels as JSON (the Python layer, the corpus manifest and the CLI all use the
//! same record), so every field has a serde default and every check names the field and its valid
//! range: the Python layer turns [`ConfigError`] into `ValueError` verbatim.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Which built-in grammar the configuration starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// English-looking biographies: hand-written templates and value words, a shared city pool.
    Bios,
    /// Everything drawn from the seed: syntax words, templates, names and values.
    Procedural,
}

/// Order of the `m` sentences of a document (docs/model.md#configuration, `attribute_order`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttributeOrder {
    Shuffled,
    Fixed,
}

/// Base measure `H_a` over a value pool.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValuePrior {
    Uniform,
    /// `H_a(rank r) ∝ (r + 1)^-s` over a seeded random order of the pool, one order per attribute.
    Zipf(f64),
}

impl ValuePrior {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let t = text.trim();
        if t == "uniform" {
            return Ok(ValuePrior::Uniform);
        }
        let inner = t
            .strip_prefix("zipf(")
            .and_then(|r| r.strip_suffix(')'))
            .or_else(|| t.strip_prefix("zipf:"));
        if let Some(s) = inner.and_then(|s| s.trim().parse::<f64>().ok()) {
            if s > 0.0 && s.is_finite() {
                return Ok(ValuePrior::Zipf(s));
            }
        }
        Err(ConfigError::field(
            "value_prior",
            format!("must be 'uniform' or 'zipf(s)' with s > 0, got {text:?}"),
        ))
    }

    pub fn to_text(self) -> String {
        match self {
            ValuePrior::Uniform => "uniform".to_string(),
            ValuePrior::Zipf(s) => format!("zipf({s})"),
        }
    }
}

impl Serialize for ValuePrior {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for ValuePrior {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ValuePrior::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One number for every attribute, or a list with one entry per attribute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerAttribute {
    All(u32),
    Each(Vec<u32>),
}

/// The full, user-settable configuration (docs/model.md#configuration). Field names are the
/// JSON/TOML keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub preset: Preset,
    pub alpha: f64,
    pub beta: f64,
    pub n_attributes: usize,
    pub pool_sizes: Vec<u32>,
    pub attribute_pool: Vec<usize>,
    pub value_prior: ValuePrior,
    pub name_parts: Vec<u32>,
    pub templates_per_attribute: PerAttribute,
    pub template_length: [u32; 2],
    pub syntax_vocab: u32,
    pub template_prior: f64,
    /// `m`; `None` means `n_attributes`.
    pub attrs_per_doc: Option<usize>,
    pub attribute_order: AttributeOrder,
    pub seed: u64,
    /// Explicit syntax parameters `theta_a` (one probability vector per attribute); drawn from
    /// `Dirichlet(template_prior)` when absent.
    pub theta: Option<Vec<Vec<f64>>>,
    /// Explicit templates per attribute, as whitespace-separated words with `[NAME]` and
    /// `[VALUE]` slots and a final `.`; when absent the preset provides them.
    pub templates: Option<Vec<Vec<String>>>,
    /// Display names of the attributes (used by QA probes and reports).
    pub attribute_names: Option<Vec<String>>,
}

pub const BIOS_ATTRIBUTE_NAMES: [&str; 6] = [
    "birth city",
    "work city",
    "birth year",
    "university",
    "major",
    "employer",
];
/// Pools of the bios preset: cities, years, universities, majors, employers.
pub const BIOS_POOL_SIZES: [u32; 5] = [200, 80, 120, 48, 160];
pub const BIOS_ATTRIBUTE_POOL: [usize; 6] = [0, 0, 1, 2, 3, 4];

impl Default for Config {
    fn default() -> Self {
        Config {
            preset: Preset::Bios,
            alpha: 0.7,
            beta: 10.0,
            n_attributes: 6,
            pool_sizes: BIOS_POOL_SIZES.to_vec(),
            attribute_pool: BIOS_ATTRIBUTE_POOL.to_vec(),
            value_prior: ValuePrior::Uniform,
            name_parts: vec![400, 400, 1000],
            templates_per_attribute: PerAttribute::All(16),
            template_length: [4, 10],
            syntax_vocab: 256,
            template_prior: 1.0,
            attrs_per_doc: None,
            attribute_order: AttributeOrder::Shuffled,
            seed: 0,
            theta: None,
            templates: None,
            attribute_names: None,
        }
    }
}

/// Largest number of templates one attribute may have: template ids are stored as `u16`.
pub const MAX_TEMPLATES: u32 = 65_535;
/// Largest number of attributes: attribute ids are stored as `u16`.
pub const MAX_ATTRIBUTES: usize = 65_535;

/// Largest vocabulary (special, syntax, name and value tokens together): 2^24 ids. Ids stay exact
/// in float32 and every token fits `u32`; the display strings of the whole vocabulary (built for
/// `vocab.json` and `vocab()`, at most ~40 bytes each) stay below 1 GB. Checked before anything
/// is allocated, so `name_parts = [1000000000]` is an error, not an out-of-memory abort.
pub const MAX_VOCAB: u64 = 1 << 24;
/// Largest total of value-prior entries, `sum_a |pool of a|` (one `f64` each, plus an alias table
/// entry for `zipf`): 2^26, i.e. at most ~1 GB of tables.
pub const MAX_VALUE_TABLE: u64 = 1 << 26;
/// Largest number of templates over all attributes, `sum_a T_a`: 2^20.
pub const MAX_TOTAL_TEMPLATES: u64 = 1 << 20;
/// Largest number of rendered template tokens over all attributes (`sum_a T_a` times the longest
/// rendering, name slot expanded to `J` tokens): 2^26.
pub const MAX_TEMPLATE_TOKENS: u64 = 1 << 26;
/// Largest `beta`. At 1e300 every document is about a new entity with probability
/// `1 - 1e-297` already; the bound keeps the code-length engine's weights (`beta` plus counts,
/// spread over the unused names and summed) finite, which they stop being near `f64::MAX`.
pub const MAX_BETA: f64 = 1e300;
/// Valid range of `template_prior`: wide enough for any use (1e-10 makes every `theta_a` one-hot
/// in effect, 1e10 uniform), narrow enough that `T_a * gamma` and every predictive probability
/// of the code lengths stay normal floating-point numbers.
pub const TEMPLATE_PRIOR_RANGE: (f64, f64) = (1e-100, 1e100);

impl Config {
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = serde_json::from_str(text).map_err(|e| name_the_field(text, e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Canonical JSON: every field present, fixed key order (serde's declaration order).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Config always serialises")
    }

    /// `m`, the number of sentences per document.
    pub fn m(&self) -> usize {
        self.attrs_per_doc.unwrap_or(self.n_attributes)
    }

    pub fn n_templates(&self, attribute: usize) -> u32 {
        match &self.templates {
            Some(t) => t[attribute].len() as u32,
            None => match &self.templates_per_attribute {
                PerAttribute::All(n) => *n,
                PerAttribute::Each(v) => v[attribute],
            },
        }
    }

    /// Number of distinct names `U = prod_j L_j`, as f64 (it may exceed 2^64 in principle).
    pub fn name_space(&self) -> f64 {
        self.name_parts.iter().map(|&l| l as f64).product()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let f = ConfigError::field;
        if self.alpha.is_nan() || self.alpha < 0.0 || self.alpha >= 1.0 {
            return Err(f(
                "alpha",
                format!("must satisfy 0 <= alpha < 1, got {}", self.alpha),
            ));
        }
        if self.alpha == 0.0 && self.beta <= 0.0 {
            return Err(f(
                "beta",
                format!("must be > 0 when alpha == 0, got {}", self.beta),
            ));
        }
        if !self.beta.is_finite() || self.beta <= -self.alpha {
            return Err(f(
                "beta",
                format!(
                    "must satisfy beta > -alpha = {}, got {}",
                    -self.alpha, self.beta
                ),
            ));
        }
        if self.beta > MAX_BETA {
            return Err(f(
                "beta",
                format!("must be <= {MAX_BETA:e}, got {}", shown(self.beta)),
            ));
        }
        let a = self.n_attributes;
        if a == 0 || a > MAX_ATTRIBUTES {
            return Err(f(
                "n_attributes",
                format!("must be in 1..={MAX_ATTRIBUTES}, got {a}"),
            ));
        }
        if self.pool_sizes.is_empty() {
            return Err(f("pool_sizes", "must list at least one pool".to_string()));
        }
        for (p, &size) in self.pool_sizes.iter().enumerate() {
            if size < 2 {
                return Err(f(
                    "pool_sizes",
                    format!("each pool needs >= 2 values; pool {p} has {size}"),
                ));
            }
        }
        if self.attribute_pool.len() != a {
            return Err(f(
                "attribute_pool",
                format!(
                    "needs one pool index per attribute ({a}), got {}",
                    self.attribute_pool.len()
                ),
            ));
        }
        for (i, &p) in self.attribute_pool.iter().enumerate() {
            if p >= self.pool_sizes.len() {
                return Err(f(
                    "attribute_pool",
                    format!(
                        "attribute {i} uses pool {p}, valid pools are 0..{}",
                        self.pool_sizes.len()
                    ),
                ));
            }
        }
        if self.name_parts.is_empty() {
            return Err(f(
                "name_parts",
                "needs at least one name position".to_string(),
            ));
        }
        for (j, &l) in self.name_parts.iter().enumerate() {
            if l == 0 {
                return Err(f("name_parts", format!("position {j} has an empty list")));
            }
        }
        match &self.templates_per_attribute {
            PerAttribute::All(n) if *n == 0 || *n > MAX_TEMPLATES => {
                return Err(f(
                    "templates_per_attribute",
                    format!("must be in 1..={MAX_TEMPLATES}, got {n}"),
                ));
            }
            PerAttribute::Each(v) => {
                if v.len() != a {
                    return Err(f(
                        "templates_per_attribute",
                        format!("needs one entry per attribute ({a}), got {}", v.len()),
                    ));
                }
                if let Some(bad) = v.iter().find(|&&n| n == 0 || n > MAX_TEMPLATES) {
                    return Err(f(
                        "templates_per_attribute",
                        format!("each entry must be in 1..={MAX_TEMPLATES}, got {bad}"),
                    ));
                }
            }
            _ => {}
        }
        let [lo, hi] = self.template_length;
        if lo == 0 || lo > hi || hi > 1000 {
            return Err(f(
                "template_length",
                format!("must be [min, max] with 1 <= min <= max <= 1000, got [{lo}, {hi}]"),
            ));
        }
        if self.syntax_vocab < 2 {
            return Err(f(
                "syntax_vocab",
                format!(
                    "must be >= 2 (END plus one word), got {}",
                    self.syntax_vocab
                ),
            ));
        }
        let (lo_prior, hi_prior) = TEMPLATE_PRIOR_RANGE;
        if !(self.template_prior >= lo_prior && self.template_prior <= hi_prior) {
            return Err(f(
                "template_prior",
                format!(
                    "must be > 0, within [{lo_prior:e}, {hi_prior:e}], got {}",
                    shown(self.template_prior)
                ),
            ));
        }
        let m = self.m();
        if m == 0 || m > a {
            return Err(f(
                "attrs_per_doc",
                format!("must be in 1..={a} (n_attributes), got {m}"),
            ));
        }
        if let Some(templates) = &self.templates {
            if templates.len() != a {
                return Err(f(
                    "templates",
                    format!(
                        "needs one list per attribute ({a}), got {}",
                        templates.len()
                    ),
                ));
            }
            for (i, list) in templates.iter().enumerate() {
                if list.is_empty() || list.len() > MAX_TEMPLATES as usize {
                    return Err(f(
                        "templates",
                        format!(
                            "attribute {i} needs 1..={MAX_TEMPLATES} templates, got {}",
                            list.len()
                        ),
                    ));
                }
            }
        }
        if let Some(names) = &self.attribute_names {
            if names.len() != a {
                return Err(f(
                    "attribute_names",
                    format!("needs one name per attribute ({a}), got {}", names.len()),
                ));
            }
        }
        self.check_sizes()?;
        if let Some(theta) = &self.theta {
            if theta.len() != a {
                return Err(f(
                    "theta",
                    format!("needs one vector per attribute ({a}), got {}", theta.len()),
                ));
            }
            for (i, row) in theta.iter().enumerate() {
                let t = self.n_templates(i) as usize;
                if row.len() != t {
                    return Err(f(
                        "theta",
                        format!(
                            "attribute {i} has {t} templates but theta has {} entries",
                            row.len()
                        ),
                    ));
                }
                if row.iter().any(|&p| p.is_nan() || p < 0.0 || !p.is_finite()) {
                    return Err(f(
                        "theta",
                        format!("attribute {i}: entries must be finite and >= 0"),
                    ));
                }
                let s: f64 = row.iter().sum();
                if (s - 1.0).abs() > 1e-9 {
                    return Err(f(
                        "theta",
                        format!("attribute {i}: entries must sum to 1, got {s}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Config {
    /// The sizes of the vocabulary and of the tables the grammar builds, against the `MAX_*`
    /// limits, computed from the field values alone (nothing allocated yet). Explicit templates
    /// add syntax words that are only known once parsed: [`Grammar`](crate::Grammar) checks the
    /// exact vocabulary again.
    fn check_sizes(&self) -> Result<(), ConfigError> {
        let names: u64 = self.name_parts.iter().map(|&l| l as u64).sum();
        let pools: u64 = self.pool_sizes.iter().map(|&p| p as u64).sum();
        let procedural = self.templates.is_none() && self.preset == Preset::Procedural;
        let syntax = if procedural {
            self.syntax_vocab as u64
        } else {
            0
        };
        check_vocabulary(syntax, names, pools, "")?;
        let value_table: u64 = self
            .attribute_pool
            .iter()
            .map(|&p| self.pool_sizes[p] as u64)
            .sum();
        if value_table > MAX_VALUE_TABLE {
            return Err(ConfigError::field(
                "pool_sizes",
                format!(
                    "the value priors of the {} attributes would hold {value_table} entries (sum \
                     over attributes of the size of their pool), more than the limit of \
                     {MAX_VALUE_TABLE}",
                    self.n_attributes
                ),
            ));
        }
        let total_templates: u64 = (0..self.n_attributes)
            .map(|a| self.n_templates(a) as u64)
            .sum();
        let longest_words = match &self.templates {
            Some(t) => t
                .iter()
                .flatten()
                .map(|text| text.split_whitespace().count() as u64)
                .max()
                .unwrap_or(0),
            None => self.template_length[1] as u64 + 3,
        };
        let field = if self.templates.is_some() {
            "templates"
        } else {
            "templates_per_attribute"
        };
        if total_templates > MAX_TOTAL_TEMPLATES {
            return Err(ConfigError::field(
                field,
                format!(
                    "{total_templates} templates over all attributes exceed the limit of \
                     {MAX_TOTAL_TEMPLATES}"
                ),
            ));
        }
        // Each template renders its words, with the name slot expanded to J tokens.
        let rendered = total_templates * (longest_words + self.name_parts.len() as u64);
        if rendered > MAX_TEMPLATE_TOKENS {
            return Err(ConfigError::field(
                field,
                format!(
                    "{total_templates} templates of up to {longest_words} words and {} name \
                     parts would render {rendered} tokens, more than the limit of \
                     {MAX_TEMPLATE_TOKENS}",
                    self.name_parts.len()
                ),
            ));
        }
        Ok(())
    }
}

/// A number as a user would write it: plain for everyday magnitudes, in exponent form for the
/// extreme ones (1e308 printed in full is 309 digits).
fn shown(x: f64) -> String {
    if x == 0.0 || (1e-4..1e16).contains(&x.abs()) || !x.is_finite() {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// Checks that a vocabulary of `syntax` syntax words, `names` name tokens and `pools` value
/// tokens (plus the 3 special tokens) stays within [`MAX_VOCAB`]; the error names the field that
/// contributes most. `extra` is appended to the message (where the syntax words came from).
pub(crate) fn check_vocabulary(
    syntax: u64,
    names: u64,
    pools: u64,
    extra: &str,
) -> Result<(), ConfigError> {
    let total = 3 + syntax + names + pools;
    if total <= MAX_VOCAB {
        return Ok(());
    }
    let field = if syntax >= names && syntax >= pools {
        "syntax_vocab"
    } else if names >= pools {
        "name_parts"
    } else {
        "pool_sizes"
    };
    Err(ConfigError::field(
        field,
        format!(
            "vocabulary overflow: {total} tokens (3 special + {syntax} syntax{extra} + {names} \
             from name_parts + {pools} from pool_sizes) exceeds the limit of {MAX_VOCAB}"
        ),
    ))
}

/// Turns a serde error on configuration JSON into one that names the offending field.
///
/// serde's derived messages ("invalid length 1, expected an array of length 2") do not say
/// which field they are about. When the text is a JSON object, each field is deserialised on its
/// own (the others left at their defaults): the first one that fails is the culprit.
fn name_the_field(text: &str, error: serde_json::Error) -> ConfigError {
    let whole = || ConfigError::Invalid(format!("configuration JSON: {error}"));
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return whole();
    };
    for (key, value) in fields {
        let alone = serde_json::Value::Object([(key.clone(), value.clone())].into_iter().collect());
        if let Err(e) = serde_json::from_value::<Config>(alone) {
            return ConfigError::field(&key, format!("{e}, got {value}"));
        }
    }
    whole()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_round_trips() {
        let c = Config::default();
        c.validate().unwrap();
        let back = Config::from_json(&c.to_json()).unwrap();
        assert_eq!(c, back);
    }

    #[test]
    fn value_prior_parses() {
        assert_eq!(ValuePrior::parse("uniform").unwrap(), ValuePrior::Uniform);
        assert_eq!(
            ValuePrior::parse("zipf(1.5)").unwrap(),
            ValuePrior::Zipf(1.5)
        );
        assert!(ValuePrior::parse("zipf(-1)").is_err());
        assert!(ValuePrior::parse("normal").is_err());
    }

    #[test]
    fn invalid_fields_are_named() {
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("alpha", Box::new(|c| c.alpha = 1.0)),
            ("beta", Box::new(|c| c.beta = -0.8)),
            (
                "beta",
                Box::new(|c| {
                    c.alpha = 0.0;
                    c.beta = 0.0
                }),
            ),
            ("pool_sizes", Box::new(|c| c.pool_sizes[0] = 1)),
            ("attribute_pool", Box::new(|c| c.attribute_pool[0] = 9)),
            ("attrs_per_doc", Box::new(|c| c.attrs_per_doc = Some(7))),
            ("template_prior", Box::new(|c| c.template_prior = 0.0)),
            ("beta", Box::new(|c| c.beta = 1e308)),
            ("name_parts", Box::new(|c| c.name_parts = vec![])),
            (
                "templates_per_attribute",
                Box::new(|c| c.templates_per_attribute = PerAttribute::All(0)),
            ),
        ];
        for (field, mutate) in cases {
            let mut c = Config::default();
            mutate(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn alpha_zero_names_the_beta_rule() {
        let c = Config {
            alpha: 0.0,
            beta: -0.0,
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("must be > 0 when alpha == 0"), "{err}");
    }

    #[test]
    fn serde_errors_name_the_field() {
        for (text, field) in [
            (r#"{"template_length": [1]}"#, "template_length"),
            (r#"{"syntax_vocab": 4294967296}"#, "syntax_vocab"),
            (
                r#"{"attrs_per_doc": 18446744073709551616}"#,
                "attrs_per_doc",
            ),
            (r#"{"alpha": 0.5, "name_parts": "many"}"#, "name_parts"),
            (
                r#"{"templates_per_attribute": [1, -2]}"#,
                "templates_per_attribute",
            ),
        ] {
            let err = Config::from_json(text).unwrap_err().to_string();
            assert!(err.contains(&format!("'{field}'")), "{text}: {err}");
        }
        let err = Config::from_json("{not json").unwrap_err().to_string();
        assert!(err.contains("configuration JSON"), "{err}");
    }

    #[test]
    fn template_prior_outside_its_range_is_named() {
        for bad in [1e-101, 1e101, 1e308, f64::MIN_POSITIVE] {
            let c = Config {
                template_prior: bad,
                ..Config::default()
            };
            let err = c.validate().unwrap_err().to_string();
            assert!(
                err.contains("'template_prior'") && err.contains("1e-100"),
                "{err}"
            );
        }
        for good in [1e-100, 1e-10, 1e10, 1e100] {
            let c = Config {
                template_prior: good,
                ..Config::default()
            };
            c.validate().unwrap();
        }
    }

    #[test]
    fn oversized_vocabularies_and_tables_fail_before_allocating() {
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "name_parts",
                Box::new(|c| c.name_parts = vec![1_000_000_000]),
            ),
            ("pool_sizes", Box::new(|c| c.pool_sizes[0] = 1 << 25)),
            (
                "syntax_vocab",
                Box::new(|c| {
                    c.preset = Preset::Procedural;
                    c.syntax_vocab = u32::MAX
                }),
            ),
            (
                "pool_sizes",
                Box::new(|c| {
                    c.n_attributes = 60_000;
                    c.attribute_pool = vec![0; 60_000];
                    c.pool_sizes = vec![2000];
                    c.templates_per_attribute = PerAttribute::All(1);
                }),
            ),
            (
                "templates_per_attribute",
                Box::new(|c| {
                    c.preset = Preset::Procedural;
                    c.n_attributes = 1000;
                    c.attribute_pool = vec![0; 1000];
                    c.templates_per_attribute = PerAttribute::All(60_000);
                }),
            ),
            (
                "templates_per_attribute",
                Box::new(|c| {
                    c.preset = Preset::Procedural;
                    c.n_attributes = 100;
                    c.attribute_pool = vec![0; 100];
                    c.templates_per_attribute = PerAttribute::All(10_000);
                    c.template_length = [1000, 1000];
                }),
            ),
        ];
        for (field, mutate) in cases {
            let mut c = Config::default();
            mutate(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("'{field}'")), "{field}: {err}");
        }
        let c = Config {
            name_parts: vec![1_000_000_000],
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("vocabulary overflow"), "{err}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = Config::from_json(r#"{"alpah": 0.5}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("alpah"), "{err}");
    }
}
