"""Figures of the code-length engine: the Bayes learning curve with its fitted scaling law and
the theory's slope (docs/codelength.md, "Bayes learning curve" and "Data scaling law")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synknow.plots._figure import EMPIRICAL, FIT, THEORY, new_subplots, save_figure
from synknow.tokens import log_grid

if TYPE_CHECKING:
    from synknow.codelength import BayesCurve

__all__ = ["bayes_curve_plot", "fit_knowledge_curve"]

ROLE_COLORS = {"syntax": "#9467bd", "name": "#ff7f0e", "value": "#8c564b"}


def fit_knowledge_curve(curve: BayesCurve, column: str = "knowledge_bits_per_doc") -> Any | None:
    """``E + A n^-gamma`` fitted to ``column`` over the checkpoints with ``n >= 1``
    (:func:`synknow.fit.fit_scaling_law`, the method of docs/experiments.md, "Fits"); ``None``
    with fewer than 4 usable points."""
    from synknow.fit import fit_scaling_law

    n = np.asarray(curve["n_train"], dtype=np.float64)
    y = np.asarray(curve[column], dtype=np.float64)
    ok = (n >= 1) & (y > 0)
    if ok.sum() < 4:
        return None
    return fit_scaling_law(n[ok], y[ok], n_boot=200)


def bayes_curve_plot(
    curve: BayesCurve,
    path: str | os.PathLike[str],
    *,
    fit: Any | None = None,
    title: str | None = None,
) -> Path:
    """Two panels: bits per token of the test documents by role against the training prefix
    length; and the knowledge (name + value) bits per document above the fitted limit ``E``
    on log-log axes, with the fitted power law and a line of the theory's slope
    ``-(1 - alpha)`` (docs/codelength.md, "Data scaling law") through the fit at the middle
    checkpoint."""
    fig, axes = new_subplots(1, 2, 11.0, 4.2)
    left, right = axes[0]
    n = np.asarray(curve["n_train"], dtype=np.float64)
    x = np.maximum(n, 0.5)
    left.plot(x, curve["bits_per_token"], "o-", color=EMPIRICAL, label="all tokens")
    for role, color in ROLE_COLORS.items():
        left.plot(x, curve[f"{role}_bits_per_token"], ".--", color=color, label=f"{role} tokens")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("training documents n")
    left.set_ylabel("Bayes bits per token (test split)")
    left.legend(fontsize=8)
    left.grid(True, which="both", alpha=0.3)

    y = np.asarray(curve["knowledge_bits_per_doc"], dtype=np.float64)
    alpha = curve.alpha
    if fit is not None:
        e = fit.params["E"]
        ok = (n >= 1) & (y - e > 0)
        right.plot(n[ok], y[ok] - e, "o", color=EMPIRICAL, label="Bayes knowledge bits - E")
        grid = log_grid(max(n[n >= 1].min(), 1.0), n.max(), 100)
        gamma = fit.params["gamma"]
        lo, hi = fit.ci.get("gamma", (np.nan, np.nan))
        ci = f" [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else ""
        right.plot(
            grid,
            fit.params["A"] * grid**-gamma,
            "-",
            color=FIT,
            label=f"fit A n^-gamma, gamma = {gamma:.3f}{ci}, E = {e:.2f}",
        )
        mid = float(np.sqrt(grid[0] * grid[-1]))
        anchor = fit.params["A"] * mid**-gamma
        right.plot(
            grid,
            anchor * (grid / mid) ** -(1 - alpha),
            ":",
            color=THEORY,
            label=f"theory slope -(1 - alpha) = {-(1 - alpha):.2f}",
        )
        right.set_ylabel("knowledge bits per document above E")
    else:
        right.plot(np.maximum(n, 0.5), y, "o-", color=EMPIRICAL, label="knowledge bits")
        right.set_ylabel("knowledge (name + value) bits per document")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("training documents n")
    right.legend(fontsize=8)
    right.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
