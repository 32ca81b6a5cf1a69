"""Figures of the experiments E1-E6: scaling curves, role curves, heatmaps, reliability
diagrams, bucket bars, plain lines, the structure function and fitted exponents.

Each function takes plain arrays and a path, draws one figure, writes it as PNG (atomically) and
returns the path. They know nothing about runs or corpora, so they are easy to reuse and to test.
The experiments are described in docs/experiments.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synknow.plots._figure import COLORS, new_figure, new_subplots, save_figure
from synknow.tokens import log_grid

__all__ = [
    "scaling_plot",
    "role_curves_plot",
    "heatmap_plot",
    "reliability_plot",
    "bucket_bars_plot",
    "lines_plot",
    "structure_function_plot",
    "exponent_plot",
]

_COLORS = COLORS  # the name the experiments used before the plots became one package


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    # Cropped, not tight_layout: several of these figures have a colour bar or a suptitle.
    return save_figure(fig, path, crop=True)


def scaling_plot(
    path: str | os.PathLike[str],
    series: Sequence[Mapping[str, Any]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    excess: bool = False,
) -> Path:
    """Log-log scaling curves. Each series: ``x``, ``y``, ``label``, optional ``fit`` (a
    :class:`synknow.fit.FitResult` drawn as a dashed curve), ``style`` (matplotlib marker
    style, default ``"o-"``) and ``color``. With ``excess=True`` the fitted ``E`` is subtracted
    from points and curve (``y - E`` vs ``x``), so a power law is a straight line."""
    fig, ax = new_figure(6.4, 4.4)
    for i, s in enumerate(series):
        x = np.asarray(s["x"], dtype=float)
        y = np.asarray(s["y"], dtype=float)
        color = s.get("color", COLORS[i % len(COLORS)])
        fit = s.get("fit")
        shift = fit.params["E"] if (excess and fit is not None) else 0.0
        ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y - shift > 0)
        ax.plot(x[ok], y[ok] - shift, s.get("style", "o-"), color=color, label=s["label"], ms=4)
        if fit is not None and ok.any():
            xs = log_grid(x[ok].min(), x[ok].max(), 200)
            g = next(v for k, v in fit.params.items() if k not in ("E", "A"))
            ax.plot(
                xs,
                fit.predict(xs) - shift,
                "--",
                color=color,
                alpha=0.8,
                label=f"fit: exponent {g:.2f}",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def role_curves_plot(
    path: str | os.PathLike[str],
    panels: Sequence[Mapping[str, Any]],
    *,
    xlabel: str,
    title: str,
    logx: bool = True,
    logy: bool = True,
) -> Path:
    """One panel per entry (``title``, ``x``, ``curves``: label -> y, optional ``reference``:
    label -> (x, y) drawn dashed, e.g. the Bayes curve)."""
    k = len(panels)
    fig, axes = new_subplots(1, k, 4.2 * k, 3.8)
    for ax, panel in zip(axes[0], panels, strict=True):
        x = np.asarray(panel["x"], dtype=float)
        for i, (label, y) in enumerate(panel["curves"].items()):
            ax.plot(x, np.asarray(y, dtype=float), "o-", ms=3, label=label, color=COLORS[i])
        for i, (label, (rx, ry)) in enumerate(panel.get("reference", {}).items()):
            ax.plot(rx, ry, "--", label=label, color=COLORS[i], alpha=0.7)
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(panel["title"], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel(panels[0].get("ylabel", "bits per token"))
    fig.suptitle(title)
    return _save(fig, path)


def heatmap_plot(
    path: str | os.PathLike[str],
    panels: Sequence[Mapping[str, Any]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    cbar: str,
    vmin: float = 0.0,
    vmax: float = 1.0,
) -> Path:
    """Heatmaps side by side. Each panel: ``title``, ``matrix`` (rows x columns, NaN = no
    data), ``rows`` and ``columns`` (tick labels)."""
    k = len(panels)
    fig, axes = new_subplots(1, k, 3.8 * k + 1, 3.8)
    im = None
    for ax, panel in zip(axes[0], panels, strict=True):
        mat = np.asarray(panel["matrix"], dtype=float)
        im = ax.imshow(
            np.ma.masked_invalid(mat),
            aspect="auto",
            origin="lower",
            vmin=vmin,
            vmax=vmax,
            cmap="viridis",
        )
        cols = list(panel["columns"])
        step = max(1, len(cols) // 6)
        ax.set_xticks(range(0, len(cols), step))
        ax.set_xticklabels([str(c) for c in cols[::step]], fontsize=7, rotation=45)
        ax.set_yticks(range(len(panel["rows"])))
        ax.set_yticklabels([str(r) for r in panel["rows"]], fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_title(panel["title"], fontsize=9)
    axes[0][0].set_ylabel(ylabel)
    if im is not None:
        fig.colorbar(im, ax=list(axes[0]), label=cbar, shrink=0.85)
    fig.suptitle(title)
    return _save(fig, path)


def reliability_plot(
    path: str | os.PathLike[str],
    series: Sequence[Mapping[str, Any]],
    *,
    title: str,
) -> Path:
    """Reliability diagram: mean accuracy vs mean confidence per confidence bin. Each series:
    ``label``, ``confidence``, ``accuracy`` (per bin, NaN for empty bins), ``count``."""
    fig, ax = new_figure(5.2, 4.6)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="calibrated")
    for i, s in enumerate(series):
        conf = np.asarray(s["confidence"], dtype=float)
        acc = np.asarray(s["accuracy"], dtype=float)
        cnt = np.asarray(s["count"], dtype=float)
        ok = np.isfinite(conf) & np.isfinite(acc) & (cnt > 0)
        size = 10 + 80 * cnt[ok] / max(1.0, cnt.max())
        ax.plot(conf[ok], acc[ok], "-", color=COLORS[i], alpha=0.6)
        ax.scatter(conf[ok], acc[ok], s=size, color=COLORS[i], label=s["label"])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def bucket_bars_plot(
    path: str | os.PathLike[str],
    buckets: Sequence[str],
    panels: Sequence[Mapping[str, Any]],
    *,
    title: str,
    xlabel: str = "entity frequency in training (bucket)",
) -> Path:
    """Grouped bars per frequency bucket, one panel per metric. Each panel: ``title``,
    ``bars``: label -> values (one per bucket), optional ``ylim``."""
    k = len(panels)
    fig, axes = new_subplots(1, k, 4.0 * k, 3.6)
    x = np.arange(len(buckets))
    for ax, panel in zip(axes[0], panels, strict=True):
        bars = panel["bars"]
        width = 0.8 / max(1, len(bars))
        for i, (label, vals) in enumerate(bars.items()):
            v = np.asarray(vals, dtype=float)
            ax.bar(x + (i - (len(bars) - 1) / 2) * width, v, width, label=label, color=COLORS[i])
        ax.set_xticks(x)
        ax.set_xticklabels(list(buckets), fontsize=7, rotation=45)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_title(panel["title"], fontsize=9)
        if "ylim" in panel:
            ax.set_ylim(*panel["ylim"])
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(title)
    return _save(fig, path)


def lines_plot(
    path: str | os.PathLike[str],
    series: Sequence[Mapping[str, Any]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    logy: bool = False,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """Plain curves: each series ``x``, ``y``, ``label``, optional ``style`` and ``color``."""
    fig, ax = new_figure(6.4, 4.4)
    for i, s in enumerate(series):
        style = s.get("style", "o-")
        kw = {} if style[:1] in "bgrcmykw" and style[:1] else {"color": COLORS[i % len(COLORS)]}
        if "color" in s:
            kw["color"] = s["color"]
        ax.plot(
            np.asarray(s["x"], dtype=float),
            np.asarray(s["y"], dtype=float),
            style,
            ms=3,
            label=s["label"],
            **kw,
        )
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def structure_function_plot(
    path: str | os.PathLike[str],
    model_bits: np.ndarray,
    data_bits: np.ndarray,
    *,
    mdl: tuple[float, float] | None,
    points: Sequence[Mapping[str, Any]] = (),
    title: str,
) -> Path:
    """``h(C)``: data bits vs model bits (a staircase, flat beyond the largest model), the MDL
    point (minimum of model + data bits) and labelled points (``x``, ``y``, ``label``, optional
    ``marker`` and ``x_effective``, drawn hollow on the same row), e.g. trained models."""
    fig, ax = new_figure(6.8, 4.6)
    x = np.asarray(model_bits, dtype=float)
    y = np.asarray(data_bits, dtype=float)
    ax.step(x, y, where="post", color="black", lw=1.2, label="h(C) (two-part code)")
    right = max([float(x.max())] + [float(p["x"]) for p in points])
    if right > x.max():
        ax.plot([x.max(), right * 1.5], [y.min(), y.min()], "--", color="black", lw=0.8)
    if mdl is not None:
        ax.plot([mdl[0]], [mdl[1]], "*", ms=14, color="#d62728", label="MDL point")
    markers = "osD^v<>p"
    for i, p in enumerate(points):
        color = COLORS[(i + 2) % len(COLORS)]
        marker = p.get("marker", markers[i % len(markers)])
        ax.plot([p["x"]], [p["y"]], marker, ms=7, color=color, label=p["label"])
        xe = p.get("x_effective")
        if xe is not None:
            ax.plot([xe, p["x"]], [p["y"], p["y"]], ":", color=color, lw=0.8)
            ax.plot([xe], [p["y"]], marker, ms=7, mfc="none", color=color)
    ax.set_xscale("symlog", linthresh=max(1.0, float(np.nanmax(x)) * 1e-3))
    ax.set_xlabel("model bits C")
    ax.set_ylabel("data bits given the model")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def exponent_plot(
    path: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    tolerance: Mapping[float, float] | None = None,
) -> Path:
    """Fitted exponents vs alpha with error bars, and the theory ``1 - alpha``. Each row:
    ``alpha``, ``theory``, and per learner (``bayes``, ``model``) the value and ``<learner>_ci``
    (a ``(low, high)`` pair or ``None``)."""
    fig, ax = new_figure(5.6, 4.2)
    alphas = np.array([r["alpha"] for r in rows], dtype=float)
    grid = np.linspace(0, 1, 50)
    ax.plot(grid, 1 - grid, "k-", lw=1, label="theory 1 - alpha")
    if tolerance:
        keys = sorted(tolerance)
        tol = np.interp(grid, keys, [tolerance[k] for k in keys])
        ax.fill_between(
            grid,
            1 - grid - tol,
            1 - grid + tol,
            color="grey",
            alpha=0.15,
            label="one-seed tolerance",
        )
    for i, (learner, label) in enumerate((("bayes", "Bayes"), ("model", "transformer"))):
        xs, ys, lo, hi = [], [], [], []
        for a, r in zip(alphas, rows, strict=True):
            if r.get(learner) is None:
                continue
            v = float(r[learner])
            ci = r.get(f"{learner}_ci") or (v, v)
            xs.append(a + (i - 0.5) * 0.012)
            ys.append(v)
            lo.append(max(0.0, v - ci[0]))
            hi.append(max(0.0, ci[1] - v))
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, color=COLORS[i], label=label)
    ax.set_xlim(max(0.0, alphas.min() - 0.1), min(1.0, alphas.max() + 0.1))
    ax.set_xlabel("alpha (PYCRP discount)")
    ax.set_ylabel("fitted exponent gamma")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)
