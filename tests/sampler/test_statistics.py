"""The Rust sampler against the law of docs/model.md#generative-process and the theory of
docs/codelength.md#theory.

Every test uses fixed seeds, so it is deterministic; the tolerances are stated with the test.
Goodness-of-fit tests use chi-square p-value thresholds of 1e-4 per test (a correct sampler
fails one of them with probability 1e-4 per new seed; the fixed seeds pass).
"""

import math

import numpy as np
import pytest
import synknow
from _sampler_stats import chi2_gof, k_n_pmf
from synknow import _core, stats

P_MIN = 1e-4

# (alpha, beta): alpha = 0 (Dirichlet process), beta < 0, beta = 0, and the default.
CRP_PARAMS = [(0.7, 10.0), (0.5, 0.0), (0.3, -0.25), (0.0, 5.0), (0.9, 1.0)]


def _cfg(**kw):
    return synknow.presets.bios(**kw)


def _k_n_over_seeds(alpha: float, beta: float, n: int, seeds: range) -> np.ndarray:
    cfg = _cfg(alpha=alpha, beta=beta)
    return np.array([synknow.sample(cfg, n, seed=s, threads=1).n_entities for s in seeds])


@pytest.mark.parametrize(("alpha", "beta"), CRP_PARAMS)
def test_mean_entities_matches_closed_form(alpha: float, beta: float) -> None:
    """Mean of K_n over 400 seeds vs the exact E[K_n]: |mean - E| < 4 standard errors (a
    two-sided z-test at p ~ 6e-5), with the standard error from the exact law of K_n."""
    n = 500
    k = _k_n_over_seeds(alpha, beta, n, range(400))
    pmf = k_n_pmf(n, alpha, beta)
    ks = np.arange(n + 1)
    mean = float((ks * pmf).sum())
    sd = math.sqrt(float(((ks - mean) ** 2 * pmf).sum()))
    assert mean == pytest.approx(_core.expected_entities(n, alpha, beta), rel=1e-9)
    z = (k.mean() - mean) / (sd / math.sqrt(len(k)))
    assert abs(z) < 4.0, f"mean K_n {k.mean():.3f} vs E[K_n] {mean:.3f} (z = {z:.2f})"


@pytest.mark.parametrize(("alpha", "beta"), CRP_PARAMS)
def test_distribution_of_entities_matches_exact_law(alpha: float, beta: float) -> None:
    """The whole law of K_n (1000 seeds, n = 60) against its exact pmf, computed from the
    transition P(new at step i | K) = (beta + K alpha)/(i + beta): chi-square p > 1e-4."""
    n = 60
    k = _k_n_over_seeds(alpha, beta, n, range(1000, 2000))
    observed = np.bincount(k, minlength=n + 1)
    stat, dof, p = chi2_gof(observed, k_n_pmf(n, alpha, beta))
    assert p > P_MIN, f"chi2 = {stat:.1f} on {dof} dof, p = {p:.2e}"


@pytest.mark.parametrize(("alpha", "beta"), CRP_PARAMS)
def test_probability_of_a_new_entity_at_each_step(alpha: float, beta: float) -> None:
    """P(document i is about a new entity | K_i) = (beta + K_i alpha)/(i + beta). Over 40
    corpora of 2000 documents, the number of new entities in each block of steps matches the sum
    of these probabilities along the observed paths: |z| < 4.5 per block (8 blocks)."""
    n = 2000
    cfg = _cfg(alpha=alpha, beta=beta)
    edges = np.unique(np.geomspace(1, n, 9).astype(int))
    observed = np.zeros(len(edges) - 1)
    expected = np.zeros(len(edges) - 1)
    variance = np.zeros(len(edges) - 1)
    steps = np.arange(n)
    for seed in range(40):
        z = synknow.sample(cfg, n, seed=seed).doc_entity.astype(np.int64)
        k_before = stats.heaps_curve(z)  # K after document i
        k_before = np.concatenate([[0], k_before[:-1]])  # K_i: before document i
        new = z == k_before  # entities are numbered in order of first appearance
        p = np.ones(n)
        p[1:] = (beta + k_before[1:] * alpha) / (steps[1:] + beta)
        for b in range(len(edges) - 1):
            sel = slice(edges[b], edges[b + 1])
            observed[b] += new[sel].sum()
            expected[b] += p[sel].sum()
            variance[b] += (p[sel] * (1 - p[sel])).sum()
    zscores = (observed - expected) / np.sqrt(variance)
    assert np.all(np.abs(zscores) < 4.5), f"z per block: {np.round(zscores, 2)}"


def test_template_frequencies_match_theta() -> None:
    """Templates of each attribute vs theta_a (20000 documents): chi-square p > 1e-4 for each
    attribute."""
    corpus = synknow.sample(_cfg(), 20_000, seed=11)
    attrs = corpus.sentence_attribute.ravel()
    temps = corpus.sentence_template.ravel()
    for a, theta in enumerate(corpus.theta):
        counts = np.bincount(temps[attrs == a], minlength=len(theta))
        stat, dof, p = chi2_gof(counts, theta)
        assert p > P_MIN, f"attribute {a}: chi2 = {stat:.1f} on {dof} dof, p = {p:.2e}"


def test_explicit_theta_is_used() -> None:
    theta = [[0.5, 0.25, 0.25, 0.0]] + [[0.25] * 4] * 5
    corpus = synknow.sample(_cfg(templates_per_attribute=4, theta=theta), 20_000, seed=2)
    attrs = corpus.sentence_attribute.ravel()
    temps = corpus.sentence_template.ravel()
    assert not np.any((attrs == 0) & (temps == 3)), "a template with theta = 0 was drawn"
    for a in range(6):
        stat, dof, p = chi2_gof(np.bincount(temps[attrs == a], minlength=4), theta[a])
        assert p > P_MIN, f"attribute {a}: p = {p:.2e}"


@pytest.mark.parametrize("prior", ["uniform", "zipf(1.1)"])
def test_value_frequencies_match_base_measure(prior: str) -> None:
    """Entity values of each attribute vs H_a (iid per entity; ~26000 entities): chi-square
    p > 1e-4 per attribute."""
    cfg = _cfg(alpha=0.9, beta=50.0, value_prior=prior, name_parts=(1000, 1000, 1000))
    corpus = synknow.sample(cfg, 60_000, seed=5)
    assert corpus.n_entities > 20_000
    g = corpus.grammar
    for a in range(cfg.n_attributes):
        base = g["pool_start"][cfg.attribute_pool[a]]
        h = np.exp(np.asarray(g["value_log_prob"][a]))
        local = corpus.entity_values[:, a].astype(np.int64) - base
        assert local.min() >= 0 and local.max() < len(h)
        stat, dof, p = chi2_gof(np.bincount(local, minlength=len(h)), h)
        assert p > P_MIN, f"attribute {a} ({prior}): chi2 = {stat:.1f} on {dof} dof, p = {p:.2e}"


def test_zipf_prior_orders_differ_between_attributes_sharing_a_pool() -> None:
    g = synknow.sample(_cfg(value_prior="zipf(1.5)"), 10, seed=1).grammar
    # Attributes 0 and 1 share the city pool but rank its values in different random orders.
    order0, order1 = (np.argsort(g["value_log_prob"][a]) for a in (0, 1))
    assert not np.array_equal(order0, order1)
    assert np.allclose(np.sort(g["value_log_prob"][0]), np.sort(g["value_log_prob"][1]))


@pytest.mark.parametrize("m", [6, 3, 1])
def test_attribute_order_is_a_uniform_ordered_subset(m: int) -> None:
    """Shuffled order: every ordered m-subset of the A = 6 attributes is equally likely (each
    position's attribute is uniform, and the full tuple is uniform over A!/(A-m)! cells): chi-square
    p > 1e-4. The attributes of a document are distinct."""
    n = 30_000 if m > 1 else 6000
    corpus = synknow.sample(_cfg(attrs_per_doc=m), n, seed=21)
    sa = corpus.sentence_attribute.astype(np.int64)
    assert sa.shape == (n, m)
    assert all(len(set(row)) == m for row in sa[:2000].tolist())
    for s in range(m):
        stat, dof, p = chi2_gof(np.bincount(sa[:, s], minlength=6), np.full(6, 1 / 6))
        assert p > P_MIN, f"position {s}: p = {p:.2e}"
    if m <= 3:
        code = np.zeros(n, dtype=np.int64)
        for s in range(m):
            code = code * 6 + sa[:, s]
        cells = np.bincount(code, minlength=6**m)
        valid = np.array([len(set(np.unravel_index(c, (6,) * m))) == m for c in range(6**m)])
        assert cells[~valid].sum() == 0
        stat, dof, p = chi2_gof(cells[valid], np.full(valid.sum(), 1 / valid.sum()))
        assert p > P_MIN, f"ordered subsets: p = {p:.2e}"


def test_fixed_attribute_order() -> None:
    corpus = synknow.sample(_cfg(attrs_per_doc=4, attribute_order="fixed"), 500, seed=1)
    assert np.all(corpus.sentence_attribute == np.arange(4))


def test_heaps_exponent_matches_theory() -> None:
    """Heaps exponent fitted on n in [100, 2e5], mean of 4 seeds, vs the same fit on the exact
    E[K_n]: within 0.03 (the seed-to-seed sd is ~0.01-0.03). (At these n the theory's own local
    slope is still above alpha when beta > 0: 0.714, 0.508 and 0.353 here.)"""
    n = 200_000
    for alpha, beta in [(0.7, 10.0), (0.5, 1.0), (0.3, 5.0)]:
        fits = [
            stats.fit_heaps(synknow.sample(_cfg(alpha=alpha, beta=beta), n, seed=s).doc_entity)
            for s in range(4)
        ]
        grid = stats.heaps_grid(n)
        theory = stats.fit_loglog(grid, stats.expected_entities(grid, alpha, beta)).exponent
        mean = float(np.mean([f.exponent for f in fits]))
        assert abs(mean - theory) < 0.03, (alpha, beta, mean, theory)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("alpha", "to_inverse", "to_finite"),
    [(0.7, 0.07, 0.04), (0.5, 0.15, 0.10)],
)
def test_rank_frequency_slope_near_inverse_alpha(
    alpha: float, to_inverse: float, to_finite: float
) -> None:
    """Zipf exponent (rank-frequency fit over the entities seen 10-100 times) at n = 2e6, mean
    of 4 seeds: within `to_inverse` of 1/alpha (5% at alpha = 0.7, 7.5% at 0.5; the window's
    counts are not yet asymptotic, the theory at these counts is 1.387 and 1.949) and within
    `to_finite` of the theory's slope over the same counts. Seed-to-seed sd measured: 0.020
    (alpha 0.7) and 0.074 (alpha 0.5)."""
    cfg = _cfg(alpha=alpha, beta=10.0, name_parts=(1000, 1000, 1000))
    fits = [
        stats.fit_zipf(synknow.sample(cfg, 2_000_000, seed=s).entity_counts).exponent
        for s in range(4)
    ]
    mean = float(np.mean(fits))
    assert abs(mean - 1 / alpha) < to_inverse, (fits, 1 / alpha)
    assert abs(mean - stats.zipf_theory_exponent(alpha)) < to_finite, fits


def test_counts_of_counts_follow_the_theory() -> None:
    """Fraction of entities seen exactly c times, c = 1..5, vs alpha Gamma(c - alpha) /
    (Gamma(1 - alpha) Gamma(c + 1)) at n = 1e6 (K ~ 60000): chi-square p > 1e-4 on the cells
    c = 1..5 plus the rest (the large-n law, whose finite-n error is well below the noise)."""
    cfg = _cfg(alpha=0.7, beta=10.0, name_parts=(1000, 1000, 1000))
    counts = synknow.sample(cfg, 1_000_000, seed=3).entity_counts
    c, n_c = stats.counts_of_counts(counts)
    cells = np.array([n_c[c == v].sum() for v in range(1, 6)] + [n_c[c > 5].sum()])
    p_c = stats.counts_of_counts_theory(np.arange(1, 6), 0.7)
    probs = np.concatenate([p_c, [1 - p_c.sum()]])
    stat, dof, p = chi2_gof(cells, probs)
    assert p > P_MIN, f"chi2 = {stat:.1f} on {dof} dof, p = {p:.2e}; cells {cells}"
