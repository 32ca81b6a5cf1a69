//! Closed-form theory of the PYCRP (SPEC 4.5).

use libm::lgamma;

/// `E[K_n]`, the expected number of distinct entities among `n` documents (SPEC 4.5), exact.
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
    // L = ln[(beta+alpha+1)_{n-1} / (beta+1)_{n-1}] = sum_{i=1}^{n-1} log1p(alpha / (beta + i)).
    // The sum is exact to rounding; lgamma differences lose ~1e-12 absolute, too much when alpha
    // is tiny, so they are used only past a million terms.
    let l = if n <= 1e6 {
        (1..n as u64).map(|i| (alpha / (beta + i as f64)).ln_1p()).sum::<f64>()
    } else {
        lgamma(beta + alpha + n) - lgamma(beta + alpha + 1.0) - lgamma(beta + n) + lgamma(beta + 1.0)
    };
    (beta * l.exp_m1() + alpha * l.exp()) / alpha
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct recursion: E[K_{i+1}] = E[K_i] + (beta + alpha E[K_i]) / (i + beta).
    fn by_recursion(n: u64, alpha: f64, beta: f64) -> f64 {
        let mut k = 0.0;
        for i in 0..n {
            k += if i == 0 { 1.0 } else { (beta + alpha * k) / (i as f64 + beta) };
        }
        k
    }

    #[test]
    fn matches_recursion() {
        for &(alpha, beta) in &[(0.7, 10.0), (0.3, 1.0), (0.5, 0.0), (0.5, -0.4), (0.0, 5.0), (1e-6, 2.0)] {
            for &n in &[1u64, 2, 10, 1000, 100_000] {
                let exact = expected_entities(n as f64, alpha, beta);
                let rec = by_recursion(n, alpha, beta);
                assert!((exact - rec).abs() <= 1e-9 * rec.max(1.0), "{alpha} {beta} {n}: {exact} vs {rec}");
            }
        }
    }
}
