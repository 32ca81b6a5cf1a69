"""Figures (matplotlib), one module per subject, one policy.

* :mod:`synknow.plots.corpus`: Heaps' law, Zipf's law, counts of counts of a corpus;
* :mod:`synknow.plots.codelength`: the Bayes learning curve with its fitted scaling law;
* :mod:`synknow.plots.experiments`: the figures of the experiments E1-E6.

The policy: figures are built on an Agg canvas directly (:func:`new_figure`), never through
``pyplot`` and never with ``matplotlib.use``, so importing or calling this package leaves the
program's matplotlib state alone; every PNG is written atomically by the one
:func:`save_figure`. matplotlib is needed only when a figure is drawn; without it a
:class:`MatplotlibMissingError` says to install ``synknow[plot]``.

>>> import synknow, tempfile, pathlib
>>> corpus = synknow.sample(synknow.presets.bios(), 20_000, seed=1)
>>> with tempfile.TemporaryDirectory() as d:
...     p = heaps_plot(corpus, pathlib.Path(d) / "heaps.png")
...     p.stat().st_size > 10_000
True
"""

from synknow.plots import codelength, corpus, experiments
from synknow.plots._figure import (
    EMPIRICAL,
    FIT,
    THEORY,
    MatplotlibMissingError,
    new_figure,
    new_subplots,
    save_figure,
)
from synknow.plots.corpus import counts_of_counts_plot, heaps_plot, zipf_plot

__all__ = [
    "codelength",
    "corpus",
    "experiments",
    "heaps_plot",
    "zipf_plot",
    "counts_of_counts_plot",
    "new_figure",
    "new_subplots",
    "save_figure",
    "MatplotlibMissingError",
    "EMPIRICAL",
    "THEORY",
    "FIT",
]
