//! Log-gamma differences that stay accurate when both arguments are huge.
//!
//! The code lengths and the PYCRP theory need `ln Gamma(x + a) - ln Gamma(x)` (a log rising
//! factorial when `a` is an integer) for `x` anywhere from `1e-100` (a tiny template prior) to
//! `1.8e308` (a huge `beta`). Subtracting two `lgamma` values of order `x ln x` loses everything
//! once `x ln x` dwarfs the difference (`a ln x`): at `x = 1e20` the rounding error of one `lgamma`
//! is already 5e5 nats. [`ln_gamma_ratio`] never subtracts quantities of order `x`.

/// Below this, the argument is first shifted up by the recurrence `Gamma(x + 1) = x Gamma(x)`;
/// from here on Stirling's series with four correction terms is exact to 1e-14 absolute.
const STIRLING_FROM: f64 = 16.0;

/// Stirling's correction `ln Gamma(y) - [(y - 1/2) ln y - y + ln(2 pi)/2]` for `y >= 16`, to
/// `O(y^-9)` (below 2e-14).
fn stirling_correction(y: f64) -> f64 {
    let r = 1.0 / y;
    let r2 = r * r;
    r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0 - r2 / 1680.0)))
}

/// `ln Gamma(x + a) - ln Gamma(x)` for `x > 0` and `x + a > 0` (`a` need not be an integer), to
/// a few ulps of the larger of the result and `|a|`, for every finite `x`.
///
/// With `y = x + a >= 16`:
/// `(x - 1/2) log1p(a/x) + a ln y - a + [S(y) - S(x)]`, `S` the Stirling correction: the only
/// cancellation left is between `(x - 1/2) log1p(a/x)` and `a`, whose rounding errors are of the
/// order of `a` times the machine epsilon. Smaller arguments are first raised above 16 by the
/// recurrence, `ln Gamma(x + a) - ln Gamma(x) = R(x + k, a) - sum_{i<k} ln((x + a + i)/(x + i))`.
pub(crate) fn ln_gamma_ratio(x: f64, a: f64) -> f64 {
    debug_assert!(x > 0.0 && x + a > 0.0, "ln_gamma_ratio({x}, {a})");
    if a == 0.0 {
        return 0.0;
    }
    let low = x.min(x + a);
    if low < STIRLING_FROM {
        let k = (STIRLING_FROM - low).ceil();
        let mut shift = 0.0;
        for i in 0..k as u32 {
            let base = x + i as f64;
            let ratio = a / base;
            // log1p is exact near 0; for large ratios the two logarithms no longer cancel.
            shift += if ratio.abs() < 1.0 {
                ratio.ln_1p()
            } else {
                (base + a).ln() - base.ln()
            };
        }
        return ln_gamma_ratio(x + k, a) - shift;
    }
    let y = x + a;
    (x - 0.5) * (a / x).ln_1p() + a * y.ln() - a + (stirling_correction(y) - stirling_correction(x))
}

/// `ln (x)_n = ln Gamma(x + n) - ln Gamma(x)`, the log rising factorial, for `x > 0`.
pub(crate) fn ln_rising(x: f64, n: u64) -> f64 {
    ln_gamma_ratio(x, n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct sum of `ln(x + i)`, compensated: the reference for small `n`.
    fn by_sum(x: f64, n: u64) -> f64 {
        let mut s = crate::codelength::Neumaier::default();
        for i in 0..n {
            s.add((x + i as f64).ln());
        }
        s.value()
    }

    #[test]
    fn matches_the_direct_sum_everywhere() {
        for &x in &[
            1e-100, 1e-10, 0.3, 1.0, 7.5, 15.9, 16.0, 100.0, 1e6, 1e12, 1e20, 1e300,
        ] {
            for &n in &[1u64, 2, 17, 1000, 20_000] {
                let got = ln_rising(x, n);
                let want = by_sum(x, n);
                let scale = want.abs().max(n as f64);
                assert!(
                    (got - want).abs() <= 1e-13 * scale,
                    "x={x} n={n}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn matches_lgamma_where_lgamma_is_accurate() {
        for &(x, a) in &[(0.5, 0.25), (2.0, 3.5), (30.0, -0.7), (0.7, 1e9)] {
            let want = libm::lgamma(x + a) - libm::lgamma(x);
            let got = ln_gamma_ratio(x, a);
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                "x={x} a={a}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn stays_finite_at_the_ends_of_the_range() {
        let top = ln_rising(f64::MAX, 2000);
        assert!((top - 2000.0 * f64::MAX.ln()).abs() < 1e-9 * top);
        // x (x + 1) (x + 2) = 2e-300 to rounding.
        let tiny = ln_rising(1e-300, 3);
        let want = 2f64.ln() + 1e-300f64.ln();
        assert!((tiny - want).abs() < 1e-12 * want.abs(), "{tiny} vs {want}");
    }
}
