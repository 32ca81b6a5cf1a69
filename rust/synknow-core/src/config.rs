//! The Syntax-Knowledge configuration (SPEC 2) and its validation.
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

/// Order of the `m` sentences of a document (SPEC 2, `attribute_order`).
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

/// The full, user-settable configuration (SPEC 2). Field names are the JSON/TOML keys.
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

impl Config {
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = serde_json::from_str(text)
            .map_err(|e| ConfigError::Invalid(format!("configuration JSON: {e}")))?;
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
        if self.template_prior.is_nan()
            || self.template_prior <= 0.0
            || !self.template_prior.is_finite()
        {
            return Err(f(
                "template_prior",
                format!("must be > 0, got {}", self.template_prior),
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
    fn unknown_field_is_rejected() {
        let err = Config::from_json(r#"{"alpah": 0.5}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("alpah"), "{err}");
    }
}
