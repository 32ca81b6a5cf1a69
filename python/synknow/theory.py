"""PYCRP theory the experiments compare against (docs/codelength.md#theory).

Exact expectations (rising factorials evaluated in log space) and their asymptotic forms:

>>> from synknow import theory
>>> round(theory.expected_entities(1000, 0.5, 1.0), 4)
69.3917
>>> k = theory.expected_entities(1e8, 0.5, 1.0)
>>> abs(k / theory.expected_entities_asymptotic(1e8, 0.5, 1.0) - 1) < 1e-3
True
>>> theory.data_scaling_exponent(0.7), round(theory.model_scaling_exponent(0.7), 4)
(0.30000000000000004, 0.4286)

Every function taking ``n`` accepts a scalar (returns a float) or an array (returns an array).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from synknow import _core

__all__ = [
    "counts_of_counts_exponent",
    "data_scaling_exponent",
    "digamma",
    "expected_counts_of_counts",
    "expected_entities",
    "expected_entities_asymptotic",
    "expected_entity_entropy",
    "expected_new_probability",
    "expected_new_probability_asymptotic",
    "heaps_exponent",
    "knowledge_excess_bits",
    "model_scaling_exponent",
    "syntax_excess_bits",
    "zipf_exponent",
]


def _check_alpha_beta(alpha: float, beta: float) -> None:
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must satisfy 0 <= alpha < 1, got {alpha}")
    if not (math.isfinite(beta) and beta > -alpha):
        raise ValueError(f"beta must satisfy beta > -alpha = {-alpha}, got {beta}")
    if alpha == 0.0 and beta <= 0.0:
        raise ValueError(f"beta must be > 0 when alpha == 0, got {beta}")


def _map_n(fn: Callable[[float], float], n: Any) -> Any:
    arr = np.asarray(n, dtype=np.float64)
    if arr.ndim == 0:
        return float(fn(float(arr)))
    return np.array([fn(float(x)) for x in arr.reshape(-1)]).reshape(arr.shape)


def expected_entities(n: Any, alpha: float, beta: float) -> Any:
    """``E[K_n]``: expected number of distinct entities among ``n`` documents (exact)."""
    _check_alpha_beta(alpha, beta)
    return _map_n(lambda x: _core.expected_entities(x, alpha, beta), n)


def expected_entities_asymptotic(n: Any, alpha: float, beta: float) -> Any:
    """Heaps' law: ``Gamma(beta+1) / (alpha Gamma(beta+alpha)) n^alpha`` (``alpha > 0``);
    ``beta (ln n - psi(beta))`` for ``alpha = 0``."""
    _check_alpha_beta(alpha, beta)
    return _map_n(lambda x: _core.expected_entities_asymptotic(x, alpha, beta), n)


def expected_new_probability(n: Any, alpha: float, beta: float) -> Any:
    """``E[P_new(n)] = (beta+alpha)_n / (beta+1)_n``: the probability that the document after
    ``n`` documents is about a new entity."""
    _check_alpha_beta(alpha, beta)
    return _map_n(lambda x: _core.expected_new_probability(x, alpha, beta), n)


def expected_new_probability_asymptotic(n: Any, alpha: float, beta: float) -> Any:
    """``Gamma(beta+1)/Gamma(beta+alpha) n^(alpha-1)``."""
    _check_alpha_beta(alpha, beta)
    return _map_n(lambda x: _core.expected_new_probability_asymptotic(x, alpha, beta), n)


def expected_counts_of_counts(n: int, c: Any, alpha: float, beta: float) -> Any:
    """Expected number of entities seen exactly ``c`` times among ``n`` documents:
    ``C(n,c) (1-alpha)_{c-1} (beta+alpha)_{n-c} / (beta+1)_{n-1}``; ``~ c^(-1-alpha)``."""
    _check_alpha_beta(alpha, beta)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cs = np.asarray(c)
    if cs.ndim == 0:
        return _core.expected_counts_of_counts(int(n), int(cs), alpha, beta)
    out = [_core.expected_counts_of_counts(int(n), int(x), alpha, beta) for x in cs.reshape(-1)]
    return np.array(out).reshape(cs.shape)


def digamma(x: Any) -> Any:
    """The digamma function ``psi(x)`` (NaN at ``0, -1, -2, ...``)."""
    return _map_n(_core.digamma, x)


def expected_entity_entropy(alpha: float, beta: float, *, unit: str = "nats") -> float:
    """Expected entropy of the PYCRP's entity weights: ``psi(beta+1) - psi(1-alpha)`` nats
    (``unit="bits"`` divides by ``ln 2``)."""
    _check_alpha_beta(alpha, beta)
    h = _core.expected_entity_entropy(alpha, beta)
    if unit == "nats":
        return h
    if unit == "bits":
        return h / math.log(2)
    raise ValueError(f"unit must be 'nats' or 'bits', got {unit!r}")


def heaps_exponent(alpha: float) -> float:
    """``K_n ~ n^alpha``."""
    return float(alpha)


def zipf_exponent(alpha: float) -> float:
    """Rank-frequency of entities: the ``r``-th most frequent has count ``~ r^(-1/alpha)``."""
    if alpha <= 0:
        raise ValueError("the Zipf exponent 1/alpha needs alpha > 0")
    return 1.0 / alpha


def counts_of_counts_exponent(alpha: float) -> float:
    """Entities seen exactly ``c`` times: ``~ c^(-1-alpha)``."""
    return 1.0 + alpha


def data_scaling_exponent(alpha: float) -> float:
    """Excess loss vs training documents decays as ``n^-(1-alpha)``
    (docs/codelength.md#data-scaling-law)."""
    return 1.0 - alpha


def model_scaling_exponent(alpha: float) -> float:
    """Excess loss vs capacity decays as ``C^-((1-alpha)/alpha)``
    (docs/codelength.md#model-scaling-law)."""
    if alpha <= 0:
        raise ValueError("the model scaling exponent (1-alpha)/alpha needs alpha > 0")
    return (1.0 - alpha) / alpha


def syntax_excess_bits(n: Any, d_syn: int) -> Any:
    """Syntax excess per document ``~ d_syn / (2 n ln 2)`` bits (leading order)."""
    return _map_n(lambda x: d_syn / (2.0 * x * math.log(2)), n)


def knowledge_excess_bits(
    n: Any, alpha: float, beta: float, name_space: float, value_entropy_bits: float
) -> Any:
    """Leading-order knowledge excess per document (docs/codelength.md#data-scaling-law):
    ``E[P_new(n)] (log2 U + sum_a H(H_a) - alpha log2 n)`` bits, without the ``O(1)`` term."""
    _check_alpha_beta(alpha, beta)

    def f(x: float) -> float:
        p = _core.expected_new_probability(x, alpha, beta)
        return p * (math.log2(name_space) + value_entropy_bits - alpha * math.log2(x))

    return _map_n(f, n)
