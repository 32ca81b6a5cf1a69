"""Corpus figures: Heaps' law, Zipf's law and counts of counts, each with its theory lines.

Each function takes a :class:`~synknow.Corpus` and a path, draws one figure, writes it as PNG
(atomically) and returns the path. The laws are stated in docs/model.md, "4. What the theory
predicts"; the fits are :mod:`synknow.stats`'s log-log lines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from synknow import stats, theory
from synknow.plots._figure import EMPIRICAL, FIT, THEORY, new_figure, save_figure
from synknow.tokens import log_grid

if TYPE_CHECKING:
    from synknow.corpus import Corpus

__all__ = ["heaps_plot", "zipf_plot", "counts_of_counts_plot"]


def heaps_plot(
    corpus: Corpus,
    path: str | os.PathLike[str],
    *,
    points: int = 60,
) -> Path:
    """Heaps' law: ``K_n`` against ``n`` (log-log), with the exact ``E[K_n]`` of the PYCRP, the
    asymptote ``Gamma(beta+1)/(alpha Gamma(beta+alpha)) n^alpha`` (``alpha > 0``) and the fitted
    power law."""
    cfg = corpus.config
    alpha, beta = cfg.alpha, cfg.beta
    k = stats.heaps_curve(corpus.doc_entity)
    n_all = len(k)
    grid = log_grid(1, n_all, points, integer=True)
    fit = stats.fit_heaps(corpus.doc_entity)
    expected = theory.expected_entities(grid, alpha, beta)
    fig, ax = new_figure()
    ax.loglog(grid, k[grid - 1], "o", ms=3.5, color=EMPIRICAL, label="corpus $K_n$")
    ax.loglog(grid, expected, "-", color=THEORY, lw=1.6, label=r"exact $E[K_n]$")
    if alpha > 0:
        ax.loglog(
            grid, theory.expected_entities_asymptotic(grid, alpha, beta), ":", color=THEORY, lw=1.4,
            label=rf"asymptote $\propto n^{{{alpha:g}}}$",
        )  # fmt: skip
    xs = log_grid(fit.x_min, fit.x_max, 50)
    ax.loglog(
        xs, fit.predict(xs), "--", color=FIT, lw=1.4,
        label=f"fit: exponent {fit.exponent:.3f}",
    )  # fmt: skip
    ax.set_xlabel("documents $n$")
    ax.set_ylabel("distinct entities $K_n$")
    ax.set_title(rf"Heaps' law ($\alpha$={alpha:g}, $\beta$={beta:g})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)


def zipf_plot(
    corpus: Corpus,
    path: str | os.PathLike[str],
    *,
    window: tuple[int, int] = (10, 100),
) -> Path:
    """Zipf's law: entity count against frequency rank (log-log), with the fitted slope over the
    count ``window``, the theoretical rank-frequency curve at finite counts
    (``rank ∝ Gamma(c - alpha)/Gamma(c)``) and the asymptotic slope ``-1/alpha``, both anchored
    at the window's lower count. Needs ``alpha > 0``."""
    alpha = corpus.config.alpha
    if alpha <= 0:
        raise ValueError(
            "Zipf's law needs alpha > 0 (with alpha = 0 the counts decay exponentially)"
        )
    ranks, counts = stats.rank_frequency(corpus.entity_counts)
    fig, ax = new_figure()
    ax.loglog(ranks, counts, ".", ms=2.5, color=EMPIRICAL, label="corpus (entities by count)")
    try:
        fit = stats.fit_zipf(corpus.entity_counts, min_count=window[0], max_count=window[1])
    except ValueError:
        fit = None
    if fit is not None:
        xs = log_grid(fit.x_min, fit.x_max, 50)
        ax.loglog(
            xs, fit.predict(xs), "--", color=FIT, lw=2.2, zorder=4,
            label=f"fit on counts {window[0]}-{window[1]}: exponent {fit.exponent:.3f}",
        )  # fmt: skip
        # Theory anchored where the fit window starts (the rank of the lowest fitted count).
        anchor_rank, anchor_count = fit.x_max, float(fit.predict(fit.x_max))
        cs = log_grid(1, counts.max(), 200)
        log_s = stats.log_fraction_at_least(cs, alpha)
        log_s0 = stats.log_fraction_at_least(np.array([anchor_count]), alpha)[0]
        ax.loglog(
            anchor_rank * np.exp(log_s - log_s0), cs, "-", color=THEORY, lw=1.4,
            label=r"theory: rank $\propto \Gamma(c-\alpha)/\Gamma(c)$",
        )  # fmt: skip
        rs = log_grid(1, ranks.max(), 50)
        ax.loglog(
            rs, anchor_count * (rs / anchor_rank) ** (-1 / alpha), ":", color=THEORY, lw=1.4,
            label=rf"asymptote slope $-1/\alpha$ = {-1 / alpha:.3f}",
        )  # fmt: skip
    ax.set_ylim(0.7, counts.max() * 1.5)
    ax.set_xlabel("rank $r$")
    ax.set_ylabel("documents about the entity $c_{(r)}$")
    ax.set_title(rf"Zipf's law ($\alpha$={alpha:g}, $\beta$={corpus.config.beta:g})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path)


def counts_of_counts_plot(
    corpus: Corpus,
    path: str | os.PathLike[str],
    *,
    max_count: int = 1000,
) -> Path:
    """Entities seen exactly ``c`` times against ``c`` (log-log), with the large-n law
    ``K alpha Gamma(c - alpha) / (Gamma(1 - alpha) Gamma(c + 1)) ~ c^(-1-alpha)``."""
    alpha = corpus.config.alpha
    if alpha <= 0:
        raise ValueError("the counts-of-counts power law needs alpha > 0")
    c, n_c = stats.counts_of_counts(corpus.entity_counts)
    sel = c <= max_count
    fig, ax = new_figure()
    ax.loglog(c[sel], n_c[sel], "o", ms=3, color=EMPIRICAL, label="corpus")
    cs = np.arange(1, int(c[sel].max()) + 1)
    ax.loglog(
        cs, corpus.n_entities * stats.counts_of_counts_theory(cs, alpha), "-", color=THEORY,
        label=rf"theory, $\sim c^{{-1-\alpha}}$ = $c^{{{-1 - alpha:.2f}}}$",
    )  # fmt: skip
    ax.set_xlabel("count $c$")
    ax.set_ylabel("entities seen exactly $c$ times")
    ax.set_title(rf"Counts of counts ($\alpha$={alpha:g})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)
