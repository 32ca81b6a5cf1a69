//! Vocabulary layout, templates and value priors (docs/model.md#vocabulary and
//! docs/model.md#syntax): everything that is fixed by
//! the configuration (including its seed) before any document is drawn.
//!
//! The code-length engine rebuilds the same [`Grammar`] from a corpus's stored configuration, so
//! the Bayes learner and the sampler agree on every template and token by construction.

use std::collections::HashMap;

use crate::config::{check_vocabulary, Config, Preset, ValuePrior, BIOS_ATTRIBUTE_NAMES};
use crate::error::ConfigError;
use crate::rng::{stream, AliasTable, Rng};

pub const PAD: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
/// The sentence terminator "."; the first syntax word.
pub const END: u32 = 3;
const SYNTAX_START: u32 = 3;

/// Token roles (docs/model.md#corpus-contents), stored as one byte per token.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Special = 0,
    Syntax = 1,
    Name = 2,
    Value = 3,
}

/// One position of a template skeleton.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    Word(u32),
    Name,
    Value,
}

/// A template with its rendering precomputed: `tokens`/`roles` are the sentence with the
/// `J` name tokens and the value token left as `PAD`, to be patched at `name_at` / `value_at`.
#[derive(Clone, Debug)]
pub struct Template {
    pub slots: Vec<Slot>,
    pub tokens: Vec<u32>,
    pub roles: Vec<u8>,
    pub name_at: usize,
    pub value_at: usize,
}

impl Template {
    pub(crate) fn new(slots: Vec<Slot>, n_name_parts: usize) -> Self {
        let mut tokens = Vec::new();
        let mut roles = Vec::new();
        let (mut name_at, mut value_at) = (0, 0);
        for s in &slots {
            match *s {
                Slot::Word(w) => {
                    tokens.push(w);
                    roles.push(Role::Syntax as u8);
                }
                Slot::Name => {
                    name_at = tokens.len();
                    for _ in 0..n_name_parts {
                        tokens.push(PAD);
                        roles.push(Role::Name as u8);
                    }
                }
                Slot::Value => {
                    value_at = tokens.len();
                    tokens.push(PAD);
                    roles.push(Role::Value as u8);
                }
            }
        }
        Template {
            slots,
            tokens,
            roles,
            name_at,
            value_at,
        }
    }

    /// Rendered length in tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The contiguous token blocks (docs/model.md#vocabulary): a token's class is a range test.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Number of syntax words, `END` included; they occupy `[3, 3 + n_syntax)`.
    pub n_syntax: u32,
    pub name_start: Vec<u32>,
    pub name_size: Vec<u32>,
    pub pool_start: Vec<u32>,
    pub pool_size: Vec<u32>,
    pub vocab_size: u32,
}

impl Layout {
    pub fn syntax_range(&self) -> std::ops::Range<u32> {
        SYNTAX_START..SYNTAX_START + self.n_syntax
    }

    pub fn role(&self, token: u32) -> Role {
        if token < SYNTAX_START {
            Role::Special
        } else if token < SYNTAX_START + self.n_syntax {
            Role::Syntax
        } else if token < self.pool_start[0] {
            Role::Name
        } else {
            Role::Value
        }
    }

    /// Name position of a name token, if it is one.
    pub fn name_position(&self, token: u32) -> Option<usize> {
        (0..self.name_start.len()).find(|&j| {
            token >= self.name_start[j] && token < self.name_start[j] + self.name_size[j]
        })
    }
}

/// Everything fixed by the configuration: vocabulary, templates, value priors.
#[derive(Clone, Debug)]
pub struct Grammar {
    pub config: Config,
    pub layout: Layout,
    pub templates: Vec<Vec<Template>>,
    pub attribute_names: Vec<String>,
    /// `ln H_a(v)` for every pool-local value index `v` of attribute `a`'s pool.
    pub value_log_prob: Vec<Vec<f64>>,
    /// Alias tables for non-uniform `H_a` (None: uniform over the pool).
    pub value_alias: Vec<Option<AliasTable>>,
    syntax_words: Vec<String>,
}

const BIOS_PREFIXES: [&str; 4] = [
    "",
    "according to the records ,",
    "it is known that",
    "notably ,",
];

const BIOS_CORES: [[&str; 6]; 6] = [
    [
        "[NAME] was born in [VALUE] .",
        "[NAME] came into the world in [VALUE] .",
        "the birthplace of [NAME] is [VALUE] .",
        "[NAME] 's hometown is [VALUE] .",
        "[NAME] was raised from birth in [VALUE] .",
        "[NAME] first saw daylight in [VALUE] .",
    ],
    [
        "[NAME] works in [VALUE] .",
        "[NAME] is employed in the city of [VALUE] .",
        "the workplace of [NAME] is located in [VALUE] .",
        "[NAME] commutes every day to [VALUE] .",
        "[NAME] has an office in [VALUE] .",
        "[NAME] earns a living in [VALUE] .",
    ],
    [
        "[NAME] was born in the year [VALUE] .",
        "[NAME] arrived in the year [VALUE] .",
        "the birth year of [NAME] is [VALUE] .",
        "[NAME] celebrates a birthday that dates to [VALUE] .",
        "[NAME] entered life in [VALUE] .",
        "[NAME] has been alive since [VALUE] .",
    ],
    [
        "[NAME] studied at [VALUE] .",
        "[NAME] graduated from [VALUE] .",
        "[NAME] earned a degree at [VALUE] .",
        "the alma mater of [NAME] is [VALUE] .",
        "[NAME] attended [VALUE] .",
        "[NAME] spent the student years at [VALUE] .",
    ],
    [
        "[NAME] majored in [VALUE] .",
        "[NAME] focused the studies on [VALUE] .",
        "the field of study of [NAME] was [VALUE] .",
        "[NAME] holds a degree in [VALUE] .",
        "[NAME] specialised in [VALUE] .",
        "[NAME] learned the craft of [VALUE] .",
    ],
    [
        "[NAME] works for [VALUE] .",
        "[NAME] is employed by [VALUE] .",
        "the employer of [NAME] is [VALUE] .",
        "[NAME] has a job at [VALUE] .",
        "[NAME] draws a salary from [VALUE] .",
        "[NAME] is on the staff of [VALUE] .",
    ],
];

/// Number of hand-written templates per attribute in the bios preset.
pub const BIOS_TEMPLATES_PER_ATTRIBUTE: usize = BIOS_PREFIXES.len() * 6;

fn bios_template_text(attribute: usize, t: usize) -> String {
    let core = BIOS_CORES[attribute][t % 6];
    let prefix = BIOS_PREFIXES[t / 6];
    if prefix.is_empty() {
        core.to_string()
    } else {
        format!("{prefix} {core}")
    }
}

const MAJORS: [&str; 48] = [
    "physics",
    "chemistry",
    "biology",
    "mathematics",
    "history",
    "philosophy",
    "economics",
    "linguistics",
    "geology",
    "astronomy",
    "architecture",
    "music",
    "law",
    "medicine",
    "nursing",
    "statistics",
    "sociology",
    "psychology",
    "anthropology",
    "literature",
    "journalism",
    "agronomy",
    "forestry",
    "oceanography",
    "botany",
    "zoology",
    "ecology",
    "geography",
    "theology",
    "archaeology",
    "accounting",
    "finance",
    "marketing",
    "design",
    "sculpture",
    "painting",
    "theatre",
    "dance",
    "pharmacy",
    "dentistry",
    "veterinary science",
    "civil engineering",
    "chemical engineering",
    "computer science",
    "electrical engineering",
    "mechanical engineering",
    "political science",
    "classics",
];

/// Pronounceable strings: bijective base-n numeration over a syllable inventory, so distinct
/// indices give distinct strings for any list size.
fn syllable_word(mut index: u64, consonants: &str, vowels: &str, min_syllables: u32) -> String {
    let syllables: Vec<String> = consonants
        .chars()
        .flat_map(|c| vowels.chars().map(move |v| format!("{c}{v}")))
        .collect();
    let n = syllables.len() as u64;
    // Skip all words shorter than `min_syllables`.
    let mut skip = 0u64;
    let mut power = 1u64;
    for _ in 1..min_syllables {
        power = power.saturating_mul(n);
        skip = skip.saturating_add(power);
    }
    index += skip;
    let mut parts = Vec::new();
    loop {
        parts.push(syllables[(index % n) as usize].clone());
        if index < n {
            break;
        }
        index = index / n - 1;
    }
    parts.reverse();
    parts.concat()
}

fn capitalised(s: String) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

fn name_string(position: usize, index: u64) -> String {
    let w = match position {
        0 => syllable_word(index, "bdfgklmnprstvz", "aeiou", 2),
        1 => syllable_word(index, "chjlmnrstw", "aeiouy", 2),
        _ => syllable_word(index, "bdgklmnprstvwz", "aeo", 2) + ["n", "r", "s", "k"][position % 4],
    };
    capitalised(w)
}

fn value_string(preset: Preset, pool: usize, index: u64) -> String {
    if preset == Preset::Bios {
        match pool {
            0 => {
                let suffix =
                    ["ton", "ville", "burg", "ford", "port", "haven"][(index % 6) as usize];
                return capitalised(syllable_word(index / 6, "bdfgklmnprstv", "aeiou", 1) + suffix);
            }
            1 => return format!("{}", 1900 + index),
            2 => {
                return format!(
                    "University of {}",
                    capitalised(syllable_word(index, "bcdfglmnrstv", "aeiou", 2))
                )
            }
            3 => {
                let base = MAJORS[(index % MAJORS.len() as u64) as usize];
                let round = index / MAJORS.len() as u64;
                return if round == 0 {
                    base.to_string()
                } else {
                    format!("{base} {}", round + 1)
                };
            }
            4 => {
                let suffix =
                    [" Labs", " Systems", " Works", " Group", " Industries"][(index % 5) as usize];
                return capitalised(syllable_word(index / 5, "bdgkmnprtvz", "aeiou", 2)) + suffix;
            }
            _ => {}
        }
    }
    let tag = (b'A' + (pool % 26) as u8) as char;
    format!(
        "{}-{tag}{}",
        capitalised(syllable_word(index, "bdfgklmnprstvz", "aeiou", 2)),
        pool / 26
    )
    .trim_end_matches('0')
    .to_string()
}

fn parse_template(
    text: &str,
    attribute: usize,
    index: usize,
    words: &mut HashMap<String, u32>,
    order: &mut Vec<String>,
) -> Result<Vec<Slot>, ConfigError> {
    let bad = |why: &str| {
        ConfigError::field(
            "templates",
            format!("attribute {attribute}, template {index} ({text:?}): {why}"),
        )
    };
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.last() != Some(&".") {
        return Err(bad("must end with the END word '.'"));
    }
    let mut slots = Vec::with_capacity(tokens.len());
    let (mut names, mut values) = (0, 0);
    for (i, &tok) in tokens.iter().enumerate() {
        let slot = match tok {
            "[NAME]" => {
                names += 1;
                Slot::Name
            }
            "[VALUE]" => {
                if names == 0 {
                    return Err(bad("[NAME] must come before [VALUE]"));
                }
                values += 1;
                Slot::Value
            }
            "." if i + 1 < tokens.len() => return Err(bad("'.' may only be the last word")),
            "." => Slot::Word(END),
            w => {
                let next = (SYNTAX_START + 1) + order.len() as u32;
                let id = *words.entry(w.to_string()).or_insert_with(|| {
                    order.push(w.to_string());
                    next
                });
                Slot::Word(id)
            }
        };
        slots.push(slot);
    }
    if names != 1 || values != 1 {
        return Err(bad("needs exactly one [NAME] and exactly one [VALUE]"));
    }
    Ok(slots)
}

impl Grammar {
    /// Builds (and validates) the grammar of a configuration.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let a_count = config.n_attributes;
        let j_count = config.name_parts.len();

        // --- syntax words and skeletons -------------------------------------------------
        let mut skeletons: Vec<Vec<Vec<Slot>>> = Vec::with_capacity(a_count);
        let syntax_words: Vec<String>;
        let explicit: Option<Vec<Vec<String>>> = match (&config.templates, config.preset) {
            (Some(t), _) => Some(t.clone()),
            (None, Preset::Bios) => {
                if a_count > BIOS_CORES.len() {
                    return Err(ConfigError::field(
                        "n_attributes",
                        format!(
                            "the bios preset has {} attributes, got {a_count}; use preset='procedural' or give 'templates'",
                            BIOS_CORES.len()
                        ),
                    ));
                }
                let mut all = Vec::with_capacity(a_count);
                for a in 0..a_count {
                    let t = config.n_templates(a) as usize;
                    if t > BIOS_TEMPLATES_PER_ATTRIBUTE {
                        return Err(ConfigError::field(
                            "templates_per_attribute",
                            format!(
                                "the bios preset has {BIOS_TEMPLATES_PER_ATTRIBUTE} templates per attribute, got {t}; use preset='procedural' or give 'templates'"
                            ),
                        ));
                    }
                    all.push((0..t).map(|i| bios_template_text(a, i)).collect());
                }
                Some(all)
            }
            (None, Preset::Procedural) => None,
        };
        if let Some(texts) = explicit {
            let mut ids = HashMap::new();
            let mut order = Vec::new();
            for (a, list) in texts.iter().enumerate() {
                let mut parsed = Vec::with_capacity(list.len());
                for (t, text) in list.iter().enumerate() {
                    parsed.push(parse_template(text, a, t, &mut ids, &mut order)?);
                }
                skeletons.push(parsed);
            }
            syntax_words = std::iter::once(".".to_string()).chain(order).collect();
        } else {
            let s = config.syntax_vocab;
            syntax_words = std::iter::once(".".to_string())
                .chain((0..s as u64 - 1).map(|i| syllable_word(i, "bdfgklmnprstvz", "aeiou", 1)))
                .collect();
            let mut seen = std::collections::HashSet::new();
            let [lo, hi] = config.template_length;
            for a in 0..a_count {
                let mut rng = Rng::keyed(config.seed, stream::GRAMMAR, a as u64);
                let mut list = Vec::new();
                for _ in 0..config.n_templates(a) {
                    let mut tries = 0;
                    let skeleton = loop {
                        let n_words = lo + rng.below((hi - lo + 1) as u64) as u32;
                        let mut sk: Vec<Slot> = (0..n_words)
                            .map(|_| Slot::Word(SYNTAX_START + 1 + rng.below(s as u64 - 1) as u32))
                            .collect();
                        // Slot positions among the n_words + 2 positions before END.
                        let total = n_words as u64 + 2;
                        let p = rng.below(total) as usize;
                        let q = rng.below(total - 1) as usize;
                        let (first, second) = if q >= p { (p, q + 1) } else { (q, p) };
                        sk.insert(first, Slot::Name);
                        sk.insert(second, Slot::Value);
                        sk.push(Slot::Word(END));
                        if seen.insert(sk.clone()) {
                            break sk;
                        }
                        tries += 1;
                        if tries > 1000 {
                            return Err(ConfigError::field(
                                "syntax_vocab",
                                format!(
                                    "cannot draw {} distinct templates with syntax_vocab={s} and template_length=[{lo}, {hi}]; raise either",
                                    config.n_templates(a)
                                ),
                            ));
                        }
                    };
                    list.push(skeleton);
                }
                skeletons.push(list);
            }
        }
        // Unique parse (docs/model.md#syntax): identical skeletons are forbidden, across attributes
        // too.
        let mut owner: HashMap<&Vec<Slot>, (usize, usize)> = HashMap::new();
        for (a, list) in skeletons.iter().enumerate() {
            for (t, sk) in list.iter().enumerate() {
                if let Some((a0, t0)) = owner.insert(sk, (a, t)) {
                    return Err(ConfigError::field(
                        "templates",
                        format!(
                            "duplicate skeleton: attribute {a0} template {t0} and attribute {a} \
                             template {t} are identical (unique parse, docs/model.md#syntax)"
                        ),
                    ));
                }
            }
        }

        // --- vocabulary layout -----------------------------------------------------------
        let n_syntax = syntax_words.len() as u64;
        let mut next = SYNTAX_START as u64 + n_syntax;
        let mut name_start = Vec::with_capacity(j_count);
        for &l in &config.name_parts {
            name_start.push(next);
            next += l as u64;
        }
        let mut pool_start = Vec::with_capacity(config.pool_sizes.len());
        for &p in &config.pool_sizes {
            pool_start.push(next);
            next += p as u64;
        }
        // Config::validate checked the procedural case; explicit templates bring their words.
        check_vocabulary(
            n_syntax,
            config.name_parts.iter().map(|&l| l as u64).sum(),
            config.pool_sizes.iter().map(|&p| p as u64).sum(),
            " words of the templates",
        )?;
        let layout = Layout {
            n_syntax: n_syntax as u32,
            name_start: name_start.iter().map(|&x| x as u32).collect(),
            name_size: config.name_parts.clone(),
            pool_start: pool_start.iter().map(|&x| x as u32).collect(),
            pool_size: config.pool_sizes.clone(),
            vocab_size: next as u32,
        };
        let templates = skeletons
            .into_iter()
            .map(|list| {
                list.into_iter()
                    .map(|sk| Template::new(sk, j_count))
                    .collect()
            })
            .collect();

        // --- value priors ----------------------------------------------------------------
        let mut value_log_prob = Vec::with_capacity(a_count);
        let mut value_alias = Vec::with_capacity(a_count);
        for a in 0..a_count {
            let size = config.pool_sizes[config.attribute_pool[a]] as usize;
            match config.value_prior {
                ValuePrior::Uniform => {
                    value_log_prob.push(vec![-(size as f64).ln(); size]);
                    value_alias.push(None);
                }
                ValuePrior::Zipf(s) => {
                    let mut order: Vec<usize> = (0..size).collect();
                    Rng::keyed(config.seed, stream::VALUE_ORDER, a as u64).shuffle(&mut order);
                    let mut w = vec![0.0; size];
                    for (rank, &v) in order.iter().enumerate() {
                        w[v] = -s * ((rank + 1) as f64).ln();
                    }
                    let log_z = log_sum_exp(&w);
                    let logp: Vec<f64> = w.iter().map(|x| x - log_z).collect();
                    let probs: Vec<f64> = logp.iter().map(|x| x.exp()).collect();
                    value_alias.push(Some(AliasTable::new(&probs)));
                    value_log_prob.push(logp);
                }
            }
        }

        let attribute_names = match (&config.attribute_names, config.preset, &config.templates) {
            (Some(n), _, _) => n.clone(),
            (None, Preset::Bios, None) => BIOS_ATTRIBUTE_NAMES[..a_count]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            _ => (0..a_count).map(|a| format!("attribute {a}")).collect(),
        };

        Ok(Grammar {
            config: config.clone(),
            layout,
            templates,
            attribute_names,
            value_log_prob,
            value_alias,
            syntax_words,
        })
    }

    pub fn n_attributes(&self) -> usize {
        self.templates.len()
    }

    pub fn n_name_parts(&self) -> usize {
        self.layout.name_start.len()
    }

    /// First token id of the value pool of attribute `a`.
    pub fn value_base(&self, attribute: usize) -> u32 {
        self.layout.pool_start[self.config.attribute_pool[attribute]]
    }

    /// Draws a value token for attribute `a` from `H_a`.
    #[inline]
    pub fn draw_value(&self, attribute: usize, rng: &mut Rng) -> u32 {
        let pool = self.config.attribute_pool[attribute];
        let local = match &self.value_alias[attribute] {
            None => rng.below(self.layout.pool_size[pool] as u64) as u32,
            Some(t) => t.sample(rng) as u32,
        };
        self.layout.pool_start[pool] + local
    }

    /// Display string of one token.
    pub fn token_string(&self, token: u32) -> String {
        let l = &self.layout;
        match token {
            PAD => "<pad>".to_string(),
            BOS => "<bos>".to_string(),
            EOS => "<eos>".to_string(),
            t if t < SYNTAX_START + l.n_syntax => {
                self.syntax_words[(t - SYNTAX_START) as usize].clone()
            }
            t if t < l.pool_start[0] => {
                let j = l.name_position(t).expect("name block");
                name_string(j, (t - l.name_start[j]) as u64)
            }
            t if t < l.vocab_size => {
                let p = (0..l.pool_start.len())
                    .rev()
                    .find(|&p| t >= l.pool_start[p])
                    .expect("value block");
                value_string(self.config.preset, p, (t - l.pool_start[p]) as u64)
            }
            t => format!("<unk:{t}>"),
        }
    }

    /// All display strings, indexed by token id.
    pub fn vocab_strings(&self) -> Vec<String> {
        (0..self.layout.vocab_size)
            .map(|t| self.token_string(t))
            .collect()
    }

    /// Template skeletons as text (`[NAME]`, `[VALUE]` and the words), for inspection.
    pub fn template_text(&self, attribute: usize, template: usize) -> String {
        self.templates[attribute][template]
            .slots
            .iter()
            .map(|s| match *s {
                Slot::Word(w) => self.token_string(w),
                Slot::Name => "[NAME]".to_string(),
                Slot::Value => "[VALUE]".to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `ln sum exp(x)`, stable.
pub fn log_sum_exp(x: &[f64]) -> f64 {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PerAttribute;

    #[test]
    fn bios_grammar_builds_with_unique_strings() {
        let g = Grammar::new(&Config::default()).unwrap();
        assert_eq!(g.templates.len(), 6);
        assert!(g.templates.iter().all(|l| l.len() == 16));
        let strings = g.vocab_strings();
        // Within each block every display string is distinct.
        let l = &g.layout;
        for j in 0..l.name_start.len() {
            let block =
                &strings[l.name_start[j] as usize..(l.name_start[j] + l.name_size[j]) as usize];
            let set: std::collections::HashSet<_> = block.iter().collect();
            assert_eq!(set.len(), block.len());
        }
        for p in 0..l.pool_start.len() {
            let block =
                &strings[l.pool_start[p] as usize..(l.pool_start[p] + l.pool_size[p]) as usize];
            let set: std::collections::HashSet<_> = block.iter().collect();
            assert_eq!(set.len(), block.len(), "pool {p}");
        }
        assert_eq!(g.template_text(0, 0), "[NAME] was born in [VALUE] .");
    }

    #[test]
    fn roles_follow_blocks() {
        let g = Grammar::new(&Config::default()).unwrap();
        let l = &g.layout;
        assert_eq!(l.role(BOS), Role::Special);
        assert_eq!(l.role(END), Role::Syntax);
        assert_eq!(l.role(l.name_start[0]), Role::Name);
        assert_eq!(l.role(l.pool_start[0]), Role::Value);
        assert_eq!(l.role(l.vocab_size - 1), Role::Value);
    }

    #[test]
    fn procedural_grammar_is_deterministic() {
        let c = Config {
            preset: Preset::Procedural,
            templates_per_attribute: PerAttribute::All(30),
            ..Config::default()
        };
        let g1 = Grammar::new(&c).unwrap();
        let g2 = Grammar::new(&c).unwrap();
        for a in 0..6 {
            for t in 0..30 {
                assert_eq!(g1.templates[a][t].slots, g2.templates[a][t].slots);
            }
        }
    }

    #[test]
    fn duplicate_skeletons_are_rejected() {
        let c = Config {
            n_attributes: 2,
            pool_sizes: vec![5],
            attribute_pool: vec![0, 0],
            templates: Some(vec![
                vec!["[NAME] lives in [VALUE] .".into()],
                vec!["[NAME] lives in [VALUE] .".into()],
            ]),
            ..Config::default()
        };
        let e = Grammar::new(&c).unwrap_err().to_string();
        assert!(e.contains("duplicate skeleton"), "{e}");
    }

    #[test]
    fn bad_template_text_is_rejected() {
        for bad in [
            "[VALUE] [NAME] .",
            "[NAME] is [VALUE]",
            "[NAME] . is [VALUE] .",
            "[NAME] is .",
        ] {
            let c = Config {
                n_attributes: 1,
                pool_sizes: vec![5],
                attribute_pool: vec![0],
                templates: Some(vec![vec![bad.into()]]),
                ..Config::default()
            };
            assert!(
                Grammar::new(&c)
                    .unwrap_err()
                    .to_string()
                    .contains("templates"),
                "{bad}"
            );
        }
    }

    #[test]
    fn zipf_prior_is_normalised() {
        let c = Config {
            value_prior: ValuePrior::Zipf(1.2),
            ..Config::default()
        };
        let g = Grammar::new(&c).unwrap();
        for lp in &g.value_log_prob {
            let s: f64 = lp.iter().map(|x| x.exp()).sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
        // Attributes sharing a pool get different orders.
        assert_ne!(g.value_log_prob[0], g.value_log_prob[1]);
    }
}
