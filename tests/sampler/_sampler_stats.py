"""Small, exact statistical tools for the sampler tests (no scipy in the environment).

- ``chi2_sf``: survival function of the chi-square law through the regularised upper incomplete
  gamma function (series / continued fraction, Numerical Recipes 6.2), checked against tabulated
  critical values in ``test_stat_tools.py``;
- ``chi2_gof``: goodness of fit of observed counts to expected counts, merging sparse cells;
- ``chi2_two_sample``: homogeneity of two samples of a discrete variable;
- ``k_n_pmf``: the exact law of the number of entities ``K_n`` of the PYCRP, by dynamic
  programming over the one-step transition ``P(new at step i | K) = (beta + K alpha)/(i + beta)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _gamma_series(a: float, x: float) -> float:
    """Regularised lower incomplete gamma P(a, x) by its series (good for x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(10_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-16:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_continued_fraction(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) by Lentz's continued fraction (x >= a + 1)."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square with ``dof`` degrees of freedom."""
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    if statistic <= 0:
        return 1.0
    a, x = dof / 2.0, statistic / 2.0
    if x < a + 1.0:
        return 1.0 - _gamma_series(a, x)
    return _gamma_continued_fraction(a, x)


def _merge_sparse(observed: np.ndarray, expected: np.ndarray, min_expected: float):
    """Merges consecutive cells until each expected count reaches ``min_expected``."""
    obs, exp = [], []
    o_acc = e_acc = 0.0
    for o, e in zip(observed, expected, strict=True):
        o_acc += o
        e_acc += e
        if e_acc >= min_expected:
            obs.append(o_acc)
            exp.append(e_acc)
            o_acc = e_acc = 0.0
    if e_acc > 0 or o_acc > 0:
        if exp:
            obs[-1] += o_acc
            exp[-1] += e_acc
        else:
            obs.append(o_acc)
            exp.append(e_acc)
    return np.array(obs), np.array(exp)


def chi2_gof(
    observed: Sequence[float] | np.ndarray,
    probabilities: Sequence[float] | np.ndarray,
    *,
    min_expected: float = 5.0,
) -> tuple[float, int, float]:
    """Chi-square goodness of fit; returns (statistic, degrees of freedom, p-value). Cells with
    zero probability must have zero counts (else p = 0)."""
    observed = np.asarray(observed, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if observed.shape != p.shape:
        raise ValueError("observed and probabilities differ in shape")
    if np.any((p == 0) & (observed > 0)):
        return math.inf, 1, 0.0
    keep = p > 0
    observed, p = observed[keep], p[keep] / p[keep].sum()
    o, e = _merge_sparse(observed, observed.sum() * p, min_expected)
    if len(o) < 2:
        raise ValueError("too few cells for a chi-square test; draw more samples")
    stat = float(((o - e) ** 2 / e).sum())
    dof = len(o) - 1
    return stat, dof, chi2_sf(stat, dof)


def chi2_two_sample(
    a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray, *, min_expected: float = 5.0
) -> tuple[float, int, float]:
    """Chi-square test that two samples of a non-negative integer variable share one law."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    size = int(max(a.max(), b.max())) + 1
    ca = np.bincount(a, minlength=size).astype(np.float64)
    cb = np.bincount(b, minlength=size).astype(np.float64)
    # Merge cells (in value order) until the smaller expected count of each cell is large enough.
    fa, fb = len(a) / (len(a) + len(b)), len(b) / (len(a) + len(b))
    cells_a, cells_b = [], []
    acc_a = acc_b = 0.0
    for x, y in zip(ca, cb, strict=True):
        acc_a += x
        acc_b += y
        if min(fa, fb) * (acc_a + acc_b) >= min_expected:
            cells_a.append(acc_a)
            cells_b.append(acc_b)
            acc_a = acc_b = 0.0
    if acc_a + acc_b > 0:
        cells_a[-1] += acc_a
        cells_b[-1] += acc_b
    oa, ob = np.array(cells_a), np.array(cells_b)
    if len(oa) < 2:
        raise ValueError("too few cells for a two-sample chi-square test")
    tot = oa + ob
    ea, eb = tot * fa, tot * fb
    stat = float(((oa - ea) ** 2 / ea).sum() + ((ob - eb) ** 2 / eb).sum())
    dof = len(oa) - 1
    return stat, dof, chi2_sf(stat, dof)


def k_n_pmf(n: int, alpha: float, beta: float) -> np.ndarray:
    """Exact ``P(K_n = k)`` for ``k = 0..n`` (``K_1 = 1``; ``P(new at step i | K_i = k) =
    (beta + k alpha) / (i + beta)``)."""
    pmf = np.zeros(n + 1)
    if n == 0:
        pmf[0] = 1.0
        return pmf
    pmf[1] = 1.0
    ks = np.arange(n + 1, dtype=np.float64)
    for i in range(1, n):
        p_new = (beta + ks * alpha) / (i + beta)
        nxt = pmf * (1.0 - p_new)
        nxt[1:] += pmf[:-1] * p_new[:-1]
        pmf = nxt
    return pmf
