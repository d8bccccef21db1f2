"""The drawing shared by the figure modules (`plots.py`, `run_plots.py`): a matplotlib figure on
an Agg canvas (no display needed, pyplot's global state untouched), saved where asked.
matplotlib is imported only inside these functions, when a figure is made."""

import os
import textwrap

import numpy as np

from keras_convit._files import atomic_path


def new_figure(rows, columns, size, sharex=False):
    """(figure, axes): a constrained-layout figure of `size` inches, axes always 2-D."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=sharex)
    return figure, axes


def save(figure, path):
    """Saves `figure` to `path` (creating its folder) unless `path` is None; returns it."""
    if path is not None:
        directory = os.path.dirname(os.fspath(path))
        if directory:
            os.makedirs(directory, exist_ok=True)
        with atomic_path(os.fspath(path)) as temporary:  # the suffix names the format
            figure.savefig(temporary, dpi=120)
    return figure


def integer_epochs(axis):
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def colors(count):
    from matplotlib import colormaps

    return colormaps["viridis"](np.linspace(0.0, 0.9, max(count, 1)))


def wrap(text, inches, points=10):
    """`text` in lines that fit `inches` at a font of `points` (about 0.55 em a character), of
    even lengths (no last line of one word)."""
    width = max(int(inches * 72 / (0.55 * points)), 20)
    lines = len(textwrap.wrap(text, width)) or 1
    even = -(-len(text) // lines) + 8
    return textwrap.fill(text, width=even if len(textwrap.wrap(text, even)) == lines else width)
