"""Former home of the experiments' figures, kept importable: see synknow.plots.experiments."""

from synknow.plots.experiments import _COLORS as _COLORS  # experiments colour series with it
from synknow.plots.experiments import (
    bucket_bars_plot,
    exponent_plot,
    heatmap_plot,
    lines_plot,
    reliability_plot,
    role_curves_plot,
    scaling_plot,
    structure_function_plot,
)

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
