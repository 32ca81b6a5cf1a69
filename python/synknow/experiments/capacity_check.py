"""What E2 (model scaling) needs from its set-up before its exponent means anything, measured.

* **Capacity binds.** A model stores at most about 2 bits of knowledge per parameter
  (Allen-Zhu & Li 2024, "Physics of Language Models 3.3", measured after about 1000 exposures
  per fact; about 1 bit at 100). If the corpus holds less knowledge than the largest model can
  store, every model stores all of it and loss differences between sizes measure optimisation,
  not capacity. The knowledge a model can learn is that of entities it saw often enough:
  ``count x epochs >= min_exposures``. Each such entity costs its name and its revealed values,
  as in the two-part code (docs/codelength.md, "Two-part code"): ``log2 U + sum_a -log2
  H_a(v_ka)`` bits. Requirement: at least twice the largest model's capacity at 2
  bits/parameter.
* **Trained to saturation.** One size trained twice as long changes its result (stored
  knowledge bits and test loss) by less than a stated tolerance.
* **Sizes.** At least 5 sizes, log-spaced (consecutive parameter ratios between 1.4 and 8), and
  deeper as well as wider (at least two depths, the deepest at least twice the shallowest).
* **Learning rate.** At least 3 learning rates tried per size at the smallest budget, the best
  used (a fixed rate favours the sizes it happens to suit).
* **Seeds.** At least 3 repeats (corpus and initialisation both vary).

:func:`reference_comparison` is where the capacity-limited Bayes reference ``L(n, C)`` enters:
it takes the reference's losses at the models' measured capacities as an argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from synknow.experiments.verdict import Precondition

__all__ = [
    "BITS_PER_PARAM",
    "BIND_FACTOR",
    "MIN_SIZES",
    "MIN_SEEDS",
    "MIN_LRS",
    "SATURATION_TOLERANCE",
    "entity_knowledge_bits",
    "knowledge_available",
    "capacity_binds",
    "size_preconditions",
    "lr_precondition",
    "seeds_precondition",
    "saturation_precondition",
    "reference_comparison",
]

BITS_PER_PARAM = 2.0
BIND_FACTOR = 2.0
MIN_SIZES = 5
MIN_SEEDS = 3
MIN_LRS = 3
# Doubling the training may change stored knowledge bits and test loss by at most this fraction.
SATURATION_TOLERANCE = 0.05


def entity_knowledge_bits(corpus: Any, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Per entity: the bits of knowledge stated about it in the first ``n_train`` documents
    (``log2 U`` for its name plus ``-log2 H_a(v)`` for each revealed value; 0 for entities not
    seen) and its document count there."""
    from synknow.experiments.probes import ValueLayout, revealed_pairs

    g = corpus.grammar
    log2_u = float(np.sum(np.log2(np.asarray(g["name_size"], dtype=np.float64))))
    counts = np.asarray(corpus.entity_counts_at(n_train), dtype=np.int64)
    ent, attr = revealed_pairs(corpus, n_train)
    layout = ValueLayout.of(corpus)
    values = np.asarray(corpus.entity_values, dtype=np.int64)[ent, attr]
    value_bits = np.array(
        [
            -layout.log_h[a][v - layout.start[a]] / math.log(2)
            for a, v in zip(attr.tolist(), values.tolist(), strict=True)
        ],
        dtype=np.float64,
    )
    bits = np.bincount(ent, weights=value_bits, minlength=counts.size)[: counts.size]
    bits = bits + np.where(counts > 0, log2_u, 0.0)
    return bits, counts


def knowledge_available(
    corpus: Any, n_train: int, epochs: float, min_exposures: float
) -> dict[str, Any]:
    """Knowledge in the training prefix, in total and of the entities seen at least
    ``min_exposures`` times over ``epochs`` passes."""
    bits, counts = entity_knowledge_bits(corpus, n_train)
    learnable = counts * epochs >= min_exposures
    return {
        "bits_total": float(bits.sum()),
        "entities": int((counts > 0).sum()),
        "bits_learnable": float(bits[learnable].sum()),
        "entities_learnable": int(learnable.sum()),
        "min_exposures": float(min_exposures),
        "epochs": float(epochs),
        "min_count": int(math.ceil(min_exposures / epochs)) if epochs > 0 else None,
    }


def capacity_binds(
    available_bits: float,
    largest_params: int,
    *,
    bits_per_param: float = BITS_PER_PARAM,
    factor: float = BIND_FACTOR,
) -> Precondition:
    """Knowledge learnable at sufficient exposure >= ``factor`` x the largest model's capacity
    (``bits_per_param`` x its parameters)."""
    capacity = bits_per_param * largest_params
    ratio = available_bits / capacity if capacity > 0 else float("nan")
    return Precondition(
        "capacity binds (learnable knowledge / largest model's capacity)",
        f"{available_bits:.3g} bits / ({bits_per_param:g} x {largest_params:,} params) = "
        f"{ratio:.3g}",
        f">= {factor:g}",
        bool(ratio >= factor),
    )


def size_preconditions(layers: Sequence[int], params: Sequence[int]) -> list[Precondition]:
    """At least :data:`MIN_SIZES` sizes, log-spaced, deeper as well as wider."""
    p = np.sort(np.asarray(params, dtype=np.float64))
    ratios = p[1:] / p[:-1] if p.size > 1 else np.array([])
    log_spaced = bool(ratios.size) and bool(np.all((ratios >= 1.4) & (ratios <= 8.0)))
    depths = sorted(set(int(x) for x in layers))
    deep = len(depths) >= 2 and depths[-1] >= 2 * depths[0]
    return [
        Precondition.at_least("model sizes", len(params), MIN_SIZES),
        Precondition(
            "sizes log-spaced (consecutive parameter ratios)",
            ", ".join(f"{r:.2g}" for r in ratios) or "-",
            "each in [1.4, 8]",
            log_spaced,
        ),
        Precondition(
            "deeper, not only wider (layers)",
            ", ".join(str(x) for x in layers),
            ">= 2 depths, deepest >= 2x shallowest",
            deep,
        ),
    ]


def lr_precondition(tried: Sequence[int]) -> Precondition:
    """The fewest learning rates tried for any size."""
    fewest = min(tried) if len(tried) else 0
    return Precondition.at_least("learning rates tried per size (fewest)", fewest, MIN_LRS)


def lr_bracketed_precondition(
    chosen: Sequence[float | None], tried: Sequence[Sequence[float]]
) -> Precondition:
    """Every size's chosen learning rate lies strictly inside the grid it was chosen from: a
    choice at either end says only that the best rate may lie beyond the grid."""
    inside = []
    for lr, grid in zip(chosen, tried, strict=True):
        values = sorted(float(g) for g in grid)
        inside.append(lr is not None and len(values) >= 3 and values[0] < float(lr) < values[-1])
    pairs = zip(chosen, inside, strict=True)
    edges = sorted({f"{float(lr):g}" for lr, ok in pairs if not ok and lr})
    measured = f"{sum(inside)} / {len(inside)} sizes" + (
        f" (chosen at the edge: {', '.join(edges)})" if edges else ""
    )
    return Precondition(
        "learning rate inside the swept grid (best rate bracketed)",
        measured,
        "all sizes",
        bool(inside) and all(inside),
    )


def seeds_precondition(seeds: int) -> Precondition:
    return Precondition.at_least("seeds per size (corpus and init)", seeds, MIN_SEEDS)


def saturation_precondition(
    name: str,
    base: dict[str, float] | None,
    doubled: dict[str, float] | None,
    tolerance: float = SATURATION_TOLERANCE,
) -> Precondition:
    """``base`` and ``doubled``: ``{"bits_per_token", "knowledge_bits"}`` of one size trained
    for the preset's budget and for twice it; met when both change by less than ``tolerance``
    (relative)."""
    required = f"< {tolerance:.0%} change in loss and knowledge bits"
    label = f"trained to saturation ({name} trained 2x as long)"
    if base is None or doubled is None:
        return Precondition(label, "not run", required, False)
    changes = {}
    for key in ("bits_per_token", "knowledge_bits"):
        b, d = float(base[key]), float(doubled[key])
        changes[key] = abs(d - b) / max(abs(b), 1e-12)
    measured = (
        f"loss {base['bits_per_token']:.4g} -> {doubled['bits_per_token']:.4g} "
        f"({changes['bits_per_token']:.1%}); knowledge {base['knowledge_bits']:.4g} -> "
        f"{doubled['knowledge_bits']:.4g} bits ({changes['knowledge_bits']:.1%})"
    )
    return Precondition(label, measured, required, all(c < tolerance for c in changes.values()))


def reference_comparison(
    capacities: Sequence[float],
    model_bits: Sequence[float],
    reference_bits: Sequence[float],
    limit_bits: float,
) -> dict[str, Any]:
    """The transformers against the capacity-limited Bayes reference ``L(n, C)``.

    ``capacities``: each model's measured stored knowledge in bits (its capacity ``C``);
    ``model_bits``: its test loss; ``reference_bits``: ``L(n, C)`` at those capacities on the
    same test split (one call of the reference); ``limit_bits``: the full Bayes loss ``L(n)``
    (unlimited capacity). Returns the gap of each model to its reference and the exponent of
    the reference's excess ``L(n, C) - L(n)`` over ``C`` (least squares on log-log axes), to be
    compared with ``(1 - alpha) / alpha``.
    """
    c = np.asarray(capacities, dtype=np.float64)
    m = np.asarray(model_bits, dtype=np.float64)
    r = np.asarray(reference_bits, dtype=np.float64)
    if not (c.size == m.size == r.size):
        raise ValueError(
            f"capacities, model_bits and reference_bits differ in length ({c.size}, {m.size}, "
            f"{r.size})"
        )
    excess = r - limit_bits
    usable = (c > 0) & (excess > 0)
    gamma = float("nan")
    if usable.sum() >= 2:
        slope, _ = np.polyfit(np.log(c[usable]), np.log(excess[usable]), 1)
        gamma = -float(slope)
    return {
        "capacity_bits": c.tolist(),
        "model_bits": m.tolist(),
        "reference_bits": r.tolist(),
        "gap_bits": (m - r).tolist(),
        "reference_excess": excess.tolist(),
        "reference_exponent": gamma,
        "limit_bits": float(limit_bits),
    }
