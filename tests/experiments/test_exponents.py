"""The many-corpora exponent fit of the Bayes learning curves: per-corpus limits, the exponent of
the mean excess, and intervals from the spread across corpora."""

from __future__ import annotations

import numpy as np
import pytest
from synknow.experiments.exponents import difference_exponent, excess_exponents


def synthetic_curves(gamma: float, corpora: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Each corpus has its own limit E_i and amplitude (as real corpora do: their entity weights
    # differ) and small multiplicative noise on its points.
    rng = np.random.default_rng(seed)
    n = np.geomspace(10, 1e6, 25)
    limits = rng.uniform(0.4, 0.6, size=corpora)
    amps = rng.uniform(5, 10, size=corpora)
    noise = 1 + 0.01 * rng.normal(size=(corpora, n.size))
    return n, limits[:, None] + amps[:, None] * n[None, :] ** -gamma * noise


def test_recovers_the_exponent_with_per_corpus_limits() -> None:
    n, curves = synthetic_curves(0.5, 16, 0)
    r = excess_exponents(n, curves, n_boot=100, seed=1)
    # 1% noise per point over 4 decades: the exponent is recovered to well within 0.02.
    assert r["gamma_mean_excess"] == pytest.approx(0.5, abs=0.02)
    lo, hi = r["gamma_mean_excess_ci"]
    assert lo <= r["gamma_mean_excess"] <= hi and hi - lo < 0.1
    assert r["gamma_per_corpus"]["n"] == 16
    assert r["gamma_per_corpus"]["mean"] == pytest.approx(0.5, abs=0.02)
    assert len(r["per_corpus"]) == 16 and all(0.3 < c["E"] < 0.7 for c in r["per_corpus"])
    assert r["n_fit"][0] >= 100  # the fit starts at fit_min


def test_ignoring_the_limit_would_bias_the_exponent() -> None:
    # The reason E is fitted per corpus: a pure power law through the raw mean curve (E = 0)
    # gives a much smaller exponent on the same data.
    from synknow.fit import fit_power_law

    n, curves = synthetic_curves(0.5, 16, 2)
    keep = n >= 100
    naive = fit_power_law(n[keep], curves.mean(axis=0)[keep], fixed_E=0, n_boot=0)
    assert naive.params["gamma"] < 0.3
    assert excess_exponents(n, curves, n_boot=20)["gamma_mean_excess"] == pytest.approx(
        0.5, abs=0.02
    )


def test_difference_exponent_is_exact_on_a_power_law_with_any_limit() -> None:
    # Integer checkpoints (as log_steps makes them) are only roughly geometric; the estimator uses
    # the actual partner sizes, so a noise-free E + A n^-gamma gives gamma and A back to the
    # golden-section tolerance, and the limit E (which it never estimates) does not matter.
    n = np.unique(np.round(np.geomspace(10, 1e6, 25)))
    for gamma in (0.3, 0.5, 0.7, 1.2):
        for limit in (0.0, 0.47, 3.0):
            g, a = difference_exponent(n, limit + 7.5 * n**-gamma)
            assert g == pytest.approx(gamma, abs=1e-5)
            assert a == pytest.approx(7.5, rel=1e-4)


def test_difference_exponent_ignores_per_corpus_limits() -> None:
    n, curves = synthetic_curves(0.7, 16, 4)
    r = excess_exponents(n, curves, n_boot=100, seed=1)
    # 1% noise per point: the drop over a factor of 4 is recovered to well within 0.03.
    assert r["gamma_difference"] == pytest.approx(0.7, abs=0.03)
    lo, hi = r["gamma_difference_ci"]
    assert lo <= r["gamma_difference"] <= hi
    # Shifting every curve by a constant changes no drop, so the exponent is unchanged.
    shifted = excess_exponents(n, curves + 5.0, n_boot=5, seed=1)
    assert shifted["gamma_difference"] == pytest.approx(r["gamma_difference"], abs=1e-6)


def test_difference_exponent_bad_input() -> None:
    n = np.geomspace(10, 1e6, 25)
    assert np.isnan(difference_exponent(n[:3], n[:3] ** -0.5)[0])  # too few drops: nan
    assert np.isnan(difference_exponent(n, np.ones_like(n))[0])  # a flat curve has no drop
    with pytest.raises(ValueError, match="lag_factor"):
        difference_exponent(n, n**-0.5, lag_factor=1.0)
    with pytest.raises(ValueError, match="same length"):
        difference_exponent(n, n[:-1])


def test_bad_shapes_raise() -> None:
    n, curves = synthetic_curves(0.5, 4, 3)
    with pytest.raises(ValueError, match="curves must be"):
        excess_exponents(n[:-1], curves)
    with pytest.raises(ValueError, match="at least 2 corpora"):
        excess_exponents(n, curves[:1])
    with pytest.raises(ValueError, match="at least 4 points"):
        excess_exponents(n, curves, fit_min=1e7)


def test_transformer_summary_exponent_and_ratio() -> None:
    from synknow.experiments.data_scaling import transformer_summary

    rng = np.random.default_rng(4)
    ns = [250, 500, 1000, 2000, 4000]
    x = np.asarray(ns, dtype=float)
    limits = rng.uniform(0.5, 0.6, size=3)
    bayes = limits[:, None] + 5.0 * x[None, :] ** -0.5
    model = limits[:, None] + 3.0 * (5.0 * x[None, :] ** -0.5) * (
        1 + 0.01 * rng.normal(size=(3, 5))
    )
    r = transformer_summary(ns, model, bayes, limits, n_boot=200, seed=0)
    assert r["gamma"] == pytest.approx(0.5, abs=0.02)
    lo, hi = r["gamma_ci"]
    assert lo <= r["gamma"] <= hi
    assert np.allclose(r["ratio_mean"], 3.0, atol=0.1)  # the model's excess is 3x the Bayes one
    one = transformer_summary(ns, model[:1], bayes[:1], limits[:1], n_boot=10, seed=0)
    assert np.isnan(one["gamma_ci"][0])  # one seed: no interval


def test_e1_preconditions_at_the_small_presets() -> None:
    from synknow.experiments.data_scaling import model_sizes, preconditions
    from synknow.experiments.presets import PRESETS

    tiny = PRESETS["cpu-tiny"].data_scaling
    bayes, model = preconditions(tiny, {})
    assert all(p.met for p in bayes)  # 16 corpora, 10^6 documents: the Bayes leg is tested
    assert not all(p.met for p in model)  # one seed, one alpha: the transformer leg is not
    assert len(model_sizes(tiny)) == 5 and model_sizes(tiny)[-1] == tiny.n_train
    micro = PRESETS["micro"].data_scaling
    assert not any(p.met for p in preconditions(micro, {})[0])
    gpu = PRESETS["gpu-small"].data_scaling
    b, m = preconditions(gpu, {"alpha=0.5": {"transformer": {"converged_runs": 15, "runs": 15}}})
    assert all(p.met for p in b + m)


def test_early_stopping_needs_a_bracketed_minimum() -> None:
    from synknow.experiments.data_scaling import minimum_found

    # A minimum at the first evaluation may lie before it: not converged, whatever the gain.
    assert not minimum_found(0, 10, 0.0)
    assert minimum_found(4, 10, 0.5)  # an interior minimum
    assert minimum_found(9, 10, 0.01)  # at the end, with < 2% gain over the second half
    assert not minimum_found(9, 10, 0.05)  # at the end and still falling
    assert not minimum_found(0, 1, 0.0)  # one evaluation brackets nothing
