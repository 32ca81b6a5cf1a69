"""Former home of the code-length figures, kept importable: see :mod:`synknow.plots.codelength`."""

from synknow.plots._figure import EMPIRICAL as EMPIRICAL
from synknow.plots._figure import FIT as FIT
from synknow.plots._figure import THEORY as THEORY
from synknow.plots._figure import new_figure as new_figure
from synknow.plots._figure import save_figure as save_figure
from synknow.plots.codelength import ROLE_COLORS as ROLE_COLORS
from synknow.plots.codelength import bayes_curve_plot, fit_knowledge_curve

__all__ = ["bayes_curve_plot", "fit_knowledge_curve"]
