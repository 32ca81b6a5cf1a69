//! Closed-form theory of the PYCRP (docs/codelength.md#theory): expected numbers of entities, the
//! probability of a
//! new entity, counts of counts, the expected entropy of the entity weights, and the asymptotic
//! forms they are compared with.

use libm::lgamma;

use crate::special::{ln_gamma_ratio, ln_rising};

/// `E[K_n]`, the expected number of distinct entities among `n` documents
/// (docs/model.md#expected-number-of-entities), exact.
///
/// For `alpha > 0`: `[(beta+alpha) (beta+alpha+1)_{n-1} / (beta+1)_{n-1} - beta] / alpha`,
/// evaluated as `[beta * expm1(L) + alpha * exp(L)] / alpha` with `L` the log of the ratio of rising
/// factorials, which stays accurate for small `alpha`. For `alpha = 0`: `sum_{i<n} beta/(beta+i)`.
pub fn expected_entities(n: f64, alpha: f64, beta: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    if alpha == 0.0 {
        if n <= 1e6 {
            return (0..n as u64).map(|i| beta / (beta + i as f64)).sum();
        }
        // beta * (psi(beta + n) - psi(beta)), via the harmonic sum's asymptotics past 1e6 terms.
        let head: f64 = (0..1_000_000u64).map(|i| beta / (beta + i as f64)).sum();
        return head + beta * ((beta + n - 0.5) / (beta + 1e6 - 0.5)).ln();
    }
    // L = ln[(beta+alpha+1)_{n-1} / (beta+1)_{n-1}] = sum_{i=1}^{n-1} log1p(alpha / (beta + i)),
    // summed exactly for the first EXACT_TERMS terms; the rest is a difference of
    // ln Gamma(x + alpha) - ln Gamma(x) from `ln_gamma_ratio`, which (unlike raw lgamma
    // differences of order 1e7) keeps the result accurate to ~1e-15 relative.
    let head_terms = n.min(EXACT_TERMS) as u64;
    let mut l = (1..head_terms)
        .map(|i| (alpha / (beta + i as f64)).ln_1p())
        .sum::<f64>();
    if n > EXACT_TERMS {
        l += ln_gamma_ratio(beta + n, alpha) - ln_gamma_ratio(beta + EXACT_TERMS, alpha);
    }
    (beta * l.exp_m1() + alpha * l.exp()) / alpha
}

/// Terms summed exactly before switching to [`ln_gamma_ratio`].
const EXACT_TERMS: f64 = 1e6;

/// `E[K_n]` in O(1), for the sampler's name-supply check, instead of the O(n) logarithms of
/// [`expected_entities`] (which it equals up to `EXACT_TERMS` documents).
///
/// Beyond, the sum `L = sum_{i=1}^{n-1} log1p(alpha / (beta + i))` of the closed form is exact up
/// to `EXACT_TERMS` and continues by the midpoint rule, `sum_{i=a}^{b-1} f(i) ~ F(b - 1/2) -
/// F(a - 1/2)` with the antiderivative `F(x) = (x + beta) log1p(alpha / (x + beta)) + alpha
/// ln(x + beta + alpha)`, written so that nothing cancels (error ~ alpha / (beta + a)^2, 1e-9
/// relative); for `alpha = 0` the harmonic sum continues the same way with `F = beta ln(x +
/// beta)`. Agreement with the exact sum: 1e-8 relative or better (tested), far more than the
/// check needs.
pub fn expected_entities_fast(n: f64, alpha: f64, beta: f64) -> f64 {
    const EXACT_TERMS: f64 = 10_000.0;
    if n <= EXACT_TERMS {
        return expected_entities(n, alpha, beta);
    }
    let a = EXACT_TERMS - 0.5;
    let b = n - 0.5;
    if alpha == 0.0 {
        let head = expected_entities(EXACT_TERMS, alpha, beta);
        return head + beta * ((beta + b) / (beta + a)).ln();
    }
    let head: f64 = (1..EXACT_TERMS as u64)
        .map(|i| (alpha / (beta + i as f64)).ln_1p())
        .sum();
    let f = |x: f64| (x + beta) * (alpha / (x + beta)).ln_1p();
    let tail = f(b) - f(a) + alpha * ((b + beta + alpha) / (a + beta + alpha)).ln();
    let l = head + tail;
    (beta * l.exp_m1() + alpha * l.exp()) / alpha
}

/// Leading-order `E[K_n]` (Heaps' law): `Gamma(beta+1) / (alpha Gamma(beta+alpha)) n^alpha` for
/// `alpha > 0`; `beta (ln n - psi(beta))` for `alpha = 0` (the expansion of
/// `beta (psi(beta+n) - psi(beta))`).
pub fn expected_entities_asymptotic(n: f64, alpha: f64, beta: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    if alpha == 0.0 {
        return beta * (n.ln() - digamma(beta));
    }
    ln_gamma_ratio(beta + alpha, 1.0 - alpha).exp() / alpha * n.powf(alpha)
}

/// `E[P_new(n)] = (beta+alpha)_n / (beta+1)_n`: the probability that document `n` (0-based,
/// i.e. after `n` documents) is about a new entity.
pub fn expected_new_probability(n: f64, alpha: f64, beta: f64) -> f64 {
    if n <= 0.0 {
        return 1.0;
    }
    // prod_{i<n} (beta+alpha+i)/(beta+1+i) = prod_i (1 + (alpha-1)/(beta+1+i)).
    let head_terms = n.min(EXACT_TERMS) as u64;
    let mut log = (0..head_terms)
        .map(|i| ((alpha - 1.0) / (beta + 1.0 + i as f64)).ln_1p())
        .sum::<f64>();
    if n > EXACT_TERMS {
        log += ln_gamma_ratio(beta + 1.0 + n, alpha - 1.0)
            - ln_gamma_ratio(beta + 1.0 + EXACT_TERMS, alpha - 1.0);
    }
    log.exp()
}

/// Leading-order `E[P_new(n)] ~ Gamma(beta+1)/Gamma(beta+alpha) n^(alpha-1)`.
pub fn expected_new_probability_asymptotic(n: f64, alpha: f64, beta: f64) -> f64 {
    ln_gamma_ratio(beta + alpha, 1.0 - alpha).exp() * n.powf(alpha - 1.0)
}

/// Expected number of entities with exactly `c` documents among `n` (Pitman 2006, eq. 3.13):
/// `C(n, c) (1-alpha)_{c-1} (beta+alpha)_{n-c} / (beta+1)_{n-1}`, for `1 <= c <= n`.
/// For large `n` and fixed `c` it decays as `c^(-1-alpha)`.
pub fn expected_counts_of_counts(n: u64, c: u64, alpha: f64, beta: f64) -> f64 {
    if c == 0 || c > n {
        return 0.0;
    }
    let (nf, cf) = (n as f64, c as f64);
    // C(n, c) = (n - c + 1)_c / c!, without the cancelling lgamma(n + 1) - lgamma(n - c + 1).
    let log_binomial = ln_rising(nf - cf + 1.0, c) - lgamma(cf + 1.0);
    let log_value =
        log_binomial + ln_gamma_ratio(1.0 - alpha, cf - 1.0) + ln_rising(beta + alpha, n - c)
            - ln_rising(beta + 1.0, n - 1);
    log_value.exp()
}

/// The digamma function `psi(x) = d/dx ln Gamma(x)`, to ~1e-14 relative (NaN at the poles
/// `x = 0, -1, -2, ...`).
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || (x <= 0.0 && x == x.floor()) {
        return f64::NAN;
    }
    if x < 0.0 {
        // Reflection: psi(1 - x) - psi(x) = pi cot(pi x).
        return digamma(1.0 - x) - std::f64::consts::PI / (std::f64::consts::PI * x).tan();
    }
    let mut x = x;
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    // Asymptotic series: ln x - 1/(2x) - sum_k B_{2k} / (2k x^{2k}).
    let series = f
        * (1.0 / 12.0
            - f * (1.0 / 120.0
                - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f * (1.0 / 132.0 - f * 691.0 / 32760.0)))));
    acc + x.ln() - 0.5 / x - series
}

/// Expected entropy (nats) of the PYCRP's limiting entity weights: `psi(beta+1) - psi(1-alpha)`.
pub fn expected_entity_entropy(alpha: f64, beta: f64) -> f64 {
    digamma(beta + 1.0) - digamma(1.0 - alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct recursion: E[K_{i+1}] = E[K_i] + (beta + alpha E[K_i]) / (i + beta).
    fn by_recursion(n: u64, alpha: f64, beta: f64) -> f64 {
        let mut k = 0.0;
        for i in 0..n {
            k += if i == 0 {
                1.0
            } else {
                (beta + alpha * k) / (i as f64 + beta)
            };
        }
        k
    }

    #[test]
    fn stays_exact_past_a_million_documents() {
        // The recursion is exact to rounding (1e-13 relative over 3e6 steps).
        for &(alpha, beta) in &[(0.7, 10.0), (0.3, -0.2), (1e-6, 2.0)] {
            let n = 3_000_000u64;
            let exact = expected_entities(n as f64, alpha, beta);
            let rec = by_recursion(n, alpha, beta);
            assert!(
                (exact - rec).abs() <= 1e-11 * rec,
                "{alpha} {beta}: {exact} vs {rec}"
            );
        }
    }

    #[test]
    fn matches_recursion() {
        for &(alpha, beta) in &[
            (0.7, 10.0),
            (0.3, 1.0),
            (0.5, 0.0),
            (0.5, -0.4),
            (0.0, 5.0),
            (1e-6, 2.0),
        ] {
            for &n in &[1u64, 2, 10, 1000, 100_000] {
                let exact = expected_entities(n as f64, alpha, beta);
                let rec = by_recursion(n, alpha, beta);
                assert!(
                    (exact - rec).abs() <= 1e-9 * rec.max(1.0),
                    "{alpha} {beta} {n}: {exact} vs {rec}"
                );
            }
        }
    }

    #[test]
    fn digamma_known_values() {
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-14);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-14);
        // psi(x + 1) = psi(x) + 1/x, across the recurrence threshold and for negative x.
        for &x in &[0.01, 0.3, 2.5, 9.5, 10.0, 37.2, 1e6, -0.5, -2.3] {
            let lhs = digamma(x + 1.0);
            let rhs = digamma(x) + 1.0 / x;
            assert!(
                (lhs - rhs).abs() <= 1e-12 * rhs.abs().max(1.0),
                "{x}: {lhs} vs {rhs}"
            );
        }
        assert!(digamma(0.0).is_nan() && digamma(-3.0).is_nan());
    }

    #[test]
    fn new_probability_matches_expected_entities() {
        // E[P_new(n)] = (beta + alpha E[K_n]) / (n + beta).
        for &(alpha, beta) in &[(0.7, 10.0), (0.3, 1.0), (0.5, -0.4), (0.0, 5.0), (0.9, 0.5)] {
            for &n in &[1u64, 5, 100, 10_000] {
                let p = expected_new_probability(n as f64, alpha, beta);
                let via_k =
                    (beta + alpha * expected_entities(n as f64, alpha, beta)) / (n as f64 + beta);
                assert!(
                    (p - via_k).abs() <= 1e-12 * p,
                    "{alpha} {beta} {n}: {p} vs {via_k}"
                );
            }
        }
        assert_eq!(expected_new_probability(0.0, 0.5, 0.0), 1.0);
    }

    #[test]
    fn asymptotics_converge() {
        for &(alpha, beta) in &[(0.7, 10.0), (0.3, 1.0), (0.5, -0.4), (0.5, 0.0)] {
            let n = 1e9;
            // E[K_n] = [(beta+alpha)_n-ish ratio - beta] / alpha: the ratio is the power law up
            // to a relative O(1/n), and -beta/alpha is the constant next to it. At n = 1e9 the
            // exact value comes from lgamma differences of ~2e10, good to ~1e-6 relative.
            let exact = expected_entities(n, alpha, beta) + beta / alpha;
            let asym = expected_entities_asymptotic(n, alpha, beta);
            assert!(
                (exact / asym - 1.0).abs() < 1e-5,
                "K {alpha} {beta}: {exact} vs {asym}"
            );
            let p = expected_new_probability(n, alpha, beta);
            let pa = expected_new_probability_asymptotic(n, alpha, beta);
            assert!((p / pa - 1.0).abs() < 1e-3, "P {alpha} {beta}: {p} vs {pa}");
        }
        let (beta, n) = (3.0, 1e7);
        let exact = expected_entities(n, 0.0, beta);
        assert!((exact - expected_entities_asymptotic(n, 0.0, beta)).abs() < 1e-4 * exact);
    }

    #[test]
    fn counts_of_counts_sum_to_entities_and_documents() {
        for &(alpha, beta) in &[(0.7, 10.0), (0.3, 1.0), (0.5, -0.4), (0.0, 5.0)] {
            for &n in &[1u64, 7, 300, 5000] {
                let (mut k, mut docs) = (0.0, 0.0);
                for c in 1..=n {
                    let e = expected_counts_of_counts(n, c, alpha, beta);
                    k += e;
                    docs += c as f64 * e;
                }
                let ek = expected_entities(n as f64, alpha, beta);
                assert!(
                    (k - ek).abs() < 1e-9 * ek,
                    "{alpha} {beta} {n}: sum {k} vs E[K] {ek}"
                );
                assert!(
                    (docs - n as f64).abs() < 1e-9 * n as f64,
                    "{alpha} {beta} {n}: {docs}"
                );
            }
        }
    }
}
