//! Counter-keyed random streams (docs/model.md#randomness).
//!
//! Every random decision is drawn from a stream named by `(seed, stream id, index)`: the theta
//! stream, the CRP stream, one stream per entity and one per document. So any document or entity
//! can be regenerated on its own: this is what makes the corpus bit-identical for every thread
//! count and chunking, and makes prefixes nested.
//!
//! Two generators, both keyed the same way:
//! - [`Rng`]: xoshiro256++ seeded through SplitMix64 from a strong mix of the key, for the long
//!   streams (CRP, theta, grammar, entities);
//! - [`CounterRng`]: SplitMix64 itself, i.e. a counter-based generator (word `j` of the stream is
//!   a fixed bijective mix of `start + j * golden`), for the short per-document streams: opening
//!   it costs one mix, and consecutive words do not depend on each other, so the few words a
//!   document needs are computed in parallel by the CPU.

/// Stream ids. Never renumber: corpora are defined by them.
pub mod stream {
    pub const THETA: u64 = 1;
    pub const CRP: u64 = 2;
    pub const ENTITY: u64 = 3;
    pub const DOCUMENT: u64 = 4;
    pub const GRAMMAR: u64 = 5;
    pub const VALUE_ORDER: u64 = 6;
}

#[inline(always)]
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++: small state, fast, passes BigCrush; seeded per key, never shared across keys.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

/// The fixed part of a stream key, `(seed, stream)`, mixed once: opening the stream of one index
/// then costs four SplitMix steps. `StreamKey::new(s, st).rng(i)` is exactly `Rng::keyed(s, st, i)`,
/// which matters for the per-document stream, opened once per document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamKey(u64);

impl StreamKey {
    pub fn new(seed: u64, stream: u64) -> Self {
        // Two rounds of SplitMix over the key parts: distinct keys give unrelated states.
        let mut k = seed;
        let a = splitmix64(&mut k);
        let mut k2 = a ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        StreamKey(splitmix64(&mut k2))
    }

    /// The stream of one index (a document, an entity, ...).
    #[inline(always)]
    pub fn rng(self, index: u64) -> Rng {
        let mut st = self.0 ^ index.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Rng { s }
    }

    /// The counter-based stream of one index (used per document).
    #[inline(always)]
    pub fn counter(self, index: u64) -> CounterRng {
        let mut st = self.0 ^ index.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
        CounterRng {
            state: splitmix64(&mut st),
        }
    }
}

/// A source of uniform 64-bit words, and the exact integer draws built on it.
pub trait Words {
    fn next_u64(&mut self) -> u64;

    /// Uniform in `[0, 1)` with 53 random bits.
    #[inline(always)]
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, n)`, exactly unbiased (Lemire's multiply-and-reject), `n > 0`.
    #[inline(always)]
    fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let mut m = (self.next_u64() as u128) * (n as u128);
        let mut low = m as u64;
        if low < n {
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = (self.next_u64() as u128) * (n as u128);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }

    /// Several independent uniform integers from one 64-bit draw, exactly unbiased: `digits[i]`
    /// is uniform in `[0, ranges[i])`, all independent. `product` must be the product of `ranges`
    /// and below 2^64 (callers keep it far below, so the rejection essentially never fires).
    ///
    /// This is Lemire's multiply-and-reject on the range `product`, read in mixed radix
    /// (Brackett-Rozinsky & Lemire, "Batched ranged random integer generation", 2024): each
    /// multiply-high peels one digit (most significant first) off `x * product / 2^64`, and the
    /// final low word is the remainder Lemire's rejection tests. Hence the digits are exactly
    /// those of `below(product)` written in mixed radix, for the same words.
    #[inline(always)]
    fn mixed_radix(&mut self, ranges: &[u32], product: u64, digits: &mut [u32]) {
        debug_assert_eq!(ranges.len(), digits.len());
        debug_assert!(product > 0);
        debug_assert_eq!(
            ranges.iter().map(|&n| n as u128).product::<u128>(),
            product as u128
        );
        loop {
            let mut r = self.next_u64();
            for (d, &n) in digits.iter_mut().zip(ranges) {
                let m = (r as u128) * (n as u128);
                *d = (m >> 64) as u32;
                r = m as u64;
            }
            // r >= product implies r >= 2^64 mod product: the modulo is almost never needed.
            if r >= product || r >= product.wrapping_neg() % product {
                return;
            }
        }
    }
}

/// SplitMix64 as a keyed, counter-based stream (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct CounterRng {
    state: u64,
}

impl Words for CounterRng {
    #[inline(always)]
    fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.state)
    }
}

impl Words for Rng {
    #[inline(always)]
    fn next_u64(&mut self) -> u64 {
        Rng::next_u64(self)
    }
}

impl Rng {
    /// The stream `(seed, stream, index)`.
    #[inline]
    pub fn keyed(seed: u64, stream: u64, index: u64) -> Self {
        StreamKey::new(seed, stream).rng(index)
    }

    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    #[inline(always)]
    pub fn uniform(&mut self) -> f64 {
        Words::uniform(self)
    }

    /// Uniform integer in `[0, n)`, exactly unbiased (Lemire's multiply-and-reject), `n > 0`.
    #[inline(always)]
    pub fn below(&mut self, n: u64) -> u64 {
        Words::below(self, n)
    }

    /// See [`Words::mixed_radix`].
    #[inline(always)]
    pub fn mixed_radix(&mut self, ranges: &[u32], product: u64, digits: &mut [u32]) {
        Words::mixed_radix(self, ranges, product, digits)
    }

    /// Standard normal (Marsaglia polar method).
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * s.ln() / s).sqrt();
            }
        }
    }

    /// Gamma(shape, 1) by Marsaglia–Tsang; shapes below 1 use the `U^(1/shape)` boost.
    pub fn gamma(&mut self, shape: f64) -> f64 {
        self.gamma_with_log(shape).0
    }

    /// A Gamma(shape, 1) variate and its natural logarithm, from the same draws. The value
    /// underflows to 0 for tiny shapes (the boost `U^(1/shape)` of shape 1e-10 is below 1e-300
    /// almost surely); the logarithm stays finite for every shape above `1/f64::MAX`, which is
    /// what lets [`Rng::dirichlet_symmetric`] normalise in log space.
    pub fn gamma_with_log(&mut self, shape: f64) -> (f64, f64) {
        if shape < 1.0 {
            let u = loop {
                let u = self.uniform();
                if u > 0.0 {
                    break u;
                }
            };
            let (base, log_base) = self.gamma_at_least_one(shape + 1.0);
            return (base * u.powf(1.0 / shape), log_base + u.ln() / shape);
        }
        self.gamma_at_least_one(shape)
    }

    /// Marsaglia–Tsang for `shape >= 1`: `(d v, ln d + ln v)`. For shapes so large that
    /// `9 d` overflows, `c` is 0, `v` is 1 and the first proposal is accepted: the variate is `d`,
    /// which is right to within its relative spread `1/sqrt(shape)`, far below an ulp there.
    fn gamma_at_least_one(&mut self, shape: f64) -> (f64, f64) {
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let cube_root = 1.0 + c * x;
            if cube_root <= 0.0 {
                continue;
            }
            let v = cube_root * cube_root * cube_root;
            let u = self.uniform();
            if u < 1.0 - 0.0331 * x * x * x * x || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
                return (d * v, d.ln() + 3.0 * cube_root.ln());
            }
        }
    }

    /// A draw from `Dirichlet(concentration * 1_k)`, for any finite `concentration > 0`.
    ///
    /// The gamma variates are normalised by their sum when that sum is a positive finite number
    /// (every concentration from 1e-2 to 1e300, almost surely); otherwise (all variates underflow
    /// to 0 for tiny concentrations, or the sum overflows for huge ones) by the log-sum-exp of
    /// their logarithms, from the same draws. Never redraws, so it cannot loop.
    pub fn dirichlet_symmetric(&mut self, k: usize, concentration: f64) -> Vec<f64> {
        let draws: Vec<(f64, f64)> = (0..k).map(|_| self.gamma_with_log(concentration)).collect();
        let s: f64 = draws.iter().map(|d| d.0).sum();
        if s > 0.0 && s.is_finite() {
            return draws.into_iter().map(|(x, _)| x / s).collect();
        }
        let top = draws.iter().map(|d| d.1).fold(f64::NEG_INFINITY, f64::max);
        if !top.is_finite() {
            // Only for concentrations outside the validated range (logs all -inf or NaN): the
            // draws carry no information, so every template is equally likely.
            return vec![1.0 / k as f64; k];
        }
        let weights: Vec<f64> = draws.iter().map(|d| (d.1 - top).exp()).collect();
        let total: f64 = weights.iter().sum();
        weights.into_iter().map(|w| w / total).collect()
    }

    /// In-place Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Walker/Vose alias table: O(1) draws from a fixed discrete distribution.
///
/// One 64-bit word per draw: its high bits pick the column (multiply-high), its low 53 bits are
/// the coin, compared as an integer with the column's threshold `ceil(p_col * 2^53)` (exactly the
/// float test `coin * 2^-53 < p_col`), and the column or its alias is selected without a branch:
/// the coin is random, so a branch would mispredict about half the time.
#[derive(Clone, Debug)]
pub struct AliasTable {
    threshold: Vec<u64>,
    alias: Vec<u32>,
}

const COIN_BITS: u32 = 53;
const COIN_MASK: u64 = (1u64 << COIN_BITS) - 1;

impl AliasTable {
    pub fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        assert!(n > 0 && n <= u32::MAX as usize);
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut prob = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
        for (i, &s) in scaled.iter().enumerate() {
            if s < 1.0 {
                small.push(i)
            } else {
                large.push(i)
            }
        }
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Leftovers are 1 up to rounding. Scaling by 2^53 is exact, so the ceiling makes the
        // integer test `coin < threshold` identical to `coin * 2^-53 < prob`.
        let threshold = prob
            .iter()
            .map(|&p| (p.clamp(0.0, 1.0) * (1u64 << COIN_BITS) as f64).ceil() as u64)
            .collect();
        AliasTable { threshold, alias }
    }

    #[inline(always)]
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let x = rng.next_u64();
        let col = (((x as u128) * (self.threshold.len() as u128)) >> 64) as usize;
        let keep = (x & COIN_MASK) < self.threshold[col];
        select(keep, col as u32, self.alias[col]) as usize
    }

    /// Column `col`'s coin threshold (out of 2^53) and alias, for callers that keep their own
    /// flattened copy of several tables.
    pub fn column(&self, col: usize) -> (u64, u32) {
        (self.threshold[col], self.alias[col])
    }

    pub fn len(&self) -> usize {
        self.threshold.len()
    }

    pub fn is_empty(&self) -> bool {
        self.threshold.is_empty()
    }
}

/// `if keep { a } else { b }` as mask arithmetic, so that it compiles to no branch.
#[inline(always)]
pub fn select(keep: bool, a: u32, b: u32) -> u32 {
    let mask = (keep as u32).wrapping_neg();
    (a & mask) | (b & !mask)
}

/// The coin of an alias draw: the low 53 bits of the word.
#[inline(always)]
pub fn alias_coin(x: u64) -> u64 {
    x & COIN_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::keyed(7, 1, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut seen = std::collections::HashSet::new();
        for s in 0..4 {
            for st in 0..4 {
                for i in 0..64 {
                    assert!(seen.insert(Rng::keyed(s, st, i).next_u64()));
                }
            }
        }
    }

    #[test]
    fn below_is_uniform() {
        let mut r = Rng::keyed(1, 2, 3);
        let n = 7u64;
        let draws = 700_000;
        let mut counts = [0u64; 7];
        for _ in 0..draws {
            counts[r.below(n) as usize] += 1;
        }
        let expected = draws as f64 / n as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 6 degrees of freedom: P(chi2 > 22.46) = 0.001.
        assert!(chi2 < 22.46, "chi2 = {chi2}");
    }

    #[test]
    fn stream_key_matches_keyed() {
        for (seed, st, i) in [(0, 0, 0), (7, 4, 12345), (u64::MAX, 3, u64::MAX)] {
            let mut a = Rng::keyed(seed, st, i);
            let mut b = StreamKey::new(seed, st).rng(i);
            for _ in 0..8 {
                assert_eq!(a.next_u64(), b.next_u64());
            }
        }
    }

    #[test]
    fn mixed_radix_gives_uniform_permutations() {
        // Digits in [0,4) x [0,3) x [0,2): 24 cells, each a permutation of 4 items.
        let mut r = Rng::keyed(3, 1, 4);
        let ranges = [4u32, 3, 2];
        let mut digits = [0u32; 3];
        let draws = 480_000;
        let mut counts = [0u64; 24];
        for _ in 0..draws {
            r.mixed_radix(&ranges, 24, &mut digits);
            counts[(digits[0] * 6 + digits[1] * 2 + digits[2]) as usize] += 1;
        }
        let expected = draws as f64 / 24.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 23 degrees of freedom: P(chi2 > 49.73) = 0.001.
        assert!(chi2 < 49.73, "chi2 = {chi2}");
        // A range product near 2^64 exercises the rejection branch; digits stay in range.
        let big = [u32::MAX, u32::MAX];
        let product = (u32::MAX as u64) * (u32::MAX as u64);
        for _ in 0..1000 {
            r.mixed_radix(&big, product, &mut digits[..2]);
            assert!(digits[..2].iter().all(|&d| d < u32::MAX));
        }
    }

    #[test]
    fn gamma_mean_and_variance() {
        let mut r = Rng::keyed(5, 0, 0);
        for &shape in &[0.3, 1.0, 4.5] {
            let n = 200_000;
            let xs: Vec<f64> = (0..n).map(|_| r.gamma(shape)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            // Standard error of the mean is sqrt(shape/n); allow 5 of them.
            assert!(
                (mean - shape).abs() < 5.0 * (shape / n as f64).sqrt(),
                "{shape}: {mean}"
            );
            assert!((var - shape).abs() < 0.05 * shape, "{shape}: {var}");
        }
    }

    #[test]
    fn dirichlet_is_a_distribution_at_every_concentration() {
        // 1e-10: every gamma variate underflows to 0; 1e308: the sum overflows. Both used to
        // redraw forever. f64::MIN_POSITIVE and f64::MAX are past any validated range.
        for &c in &[
            f64::MIN_POSITIVE,
            1e-300,
            1e-100,
            1e-10,
            0.01,
            1.0,
            1e100,
            1e300,
            1e308,
            f64::MAX,
        ] {
            for seed in 0..20 {
                let p = Rng::keyed(seed, 1, 0).dirichlet_symmetric(16, c);
                let s: f64 = p.iter().sum();
                assert!(
                    p.iter().all(|&x| (0.0..=1.0).contains(&x)) && (s - 1.0).abs() < 1e-12,
                    "{c}: {p:?}"
                );
            }
        }
        // Tiny concentrations put (almost) all mass on one template, huge ones spread it evenly.
        let tiny = Rng::keyed(3, 1, 0).dirichlet_symmetric(16, 1e-10);
        assert!(
            tiny.iter().cloned().fold(0.0, f64::max) > 0.999_999,
            "{tiny:?}"
        );
        let huge = Rng::keyed(3, 1, 0).dirichlet_symmetric(16, 1e300);
        assert!(
            huge.iter().all(|&x| (x - 1.0 / 16.0).abs() < 1e-12),
            "{huge:?}"
        );
    }

    #[test]
    fn gamma_log_matches_value() {
        let mut a = Rng::keyed(8, 0, 0);
        let mut b = Rng::keyed(8, 0, 0);
        for &shape in &[0.2, 0.9, 1.0, 3.5, 1e6] {
            for _ in 0..1000 {
                let (x, lx) = a.gamma_with_log(shape);
                assert_eq!(x, b.gamma(shape));
                assert!((x.ln() - lx).abs() < 1e-12 * lx.abs().max(1.0), "{shape}");
            }
        }
    }

    #[test]
    fn alias_matches_weights() {
        let w = [0.5, 0.1, 0.0, 0.25, 0.15];
        let t = AliasTable::new(&w);
        let mut r = Rng::keyed(9, 9, 9);
        let n = 500_000;
        let mut counts = [0f64; 5];
        for _ in 0..n {
            counts[t.sample(&mut r)] += 1.0;
        }
        assert_eq!(counts[2], 0.0);
        for i in 0..5 {
            let p = counts[i] / n as f64;
            assert!((p - w[i]).abs() < 0.004, "{i}: {p} vs {}", w[i]);
        }
    }
}
