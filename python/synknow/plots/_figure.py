"""The one figure factory and the one PNG writer of :mod:`synknow.plots`.

Figures are :class:`matplotlib.figure.Figure` objects attached to an Agg canvas directly. Nothing
here goes through ``pyplot`` or calls ``matplotlib.use``: pyplot keeps a global registry of open
figures and a process-wide backend, so a library that uses it changes the state of the program
that imports it (and leaks figures unless every caller closes them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from synknow.extras import MissingDependencyError
from synknow.fsutil import atomic_writer

__all__ = [
    "COLORS",
    "DPI",
    "EMPIRICAL",
    "FIT",
    "THEORY",
    "MatplotlibMissingError",
    "new_figure",
    "new_subplots",
    "save_figure",
]

EMPIRICAL = "#1f77b4"
THEORY = "#d62728"
FIT = "#2ca02c"
# Series colours, in order; the first three are EMPIRICAL, THEORY and FIT.
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
DPI = 110


class MatplotlibMissingError(MissingDependencyError):
    """Raised when a figure is requested and matplotlib is not installed."""


def _figure_class() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MatplotlibMissingError(
            "figures need matplotlib, which is not installed: pip install 'synknow[plot]'"
        ) from None

    def make(width: float, height: float) -> Any:
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        return fig

    return make


def new_figure(width: float = 6.0, height: float = 4.2) -> tuple[Any, Any]:
    """A figure with one axes on an Agg canvas (no pyplot, no global backend switch)."""
    fig = _figure_class()(width, height)
    return fig, fig.add_subplot(1, 1, 1)


def new_subplots(rows: int, columns: int, width: float, height: float) -> tuple[Any, Any]:
    """A figure with a ``rows x columns`` grid of axes (always a 2-D array) on an Agg canvas."""
    fig = _figure_class()(width, height)
    return fig, fig.subplots(rows, columns, squeeze=False)


def save_figure(fig: Any, path: str | os.PathLike[str], *, crop: bool = False) -> Path:
    """Writes ``fig`` as PNG to ``path`` atomically (:func:`synknow.fsutil.atomic_writer`).

    ``crop=False`` lays the axes out with ``tight_layout``; ``crop=True`` keeps the layout and
    crops the image to what is drawn (``bbox_inches="tight"``), which suits figures with a
    shared colour bar or a suptitle, where ``tight_layout`` warns or overlaps.
    """
    path = Path(path)
    if not crop:
        fig.tight_layout()
    extra = {"bbox_inches": "tight"} if crop else {}
    with atomic_writer(path, binary=True) as f:
        fig.savefig(f, format="png", dpi=DPI, **extra)
    return path
