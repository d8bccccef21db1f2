"""The analysis figures: from an `AnalysisLogger` log or a model, nonlocality per layer across
epochs (paper Figs. 4-5), gating per layer across epochs (Fig. 6), attention maps of a query patch
over an image (Fig. 7). A training run's figures (learning curves, confusion matrix) are in
`run_plots.py` and importable from here too. matplotlib is imported only when a figure is made
(`_figure.py`)."""

import json
import os

import numpy as np

from keras_convit.analysis._figure import colors, integer_epochs, new_figure, save
from keras_convit.analysis.attention import attention_maps_by_layer
from keras_convit.analysis.callback import LOG_FILENAME
from keras_convit.analysis.forward import patch_grid
from keras_convit.analysis.run_plots import plot_confusion_matrix, plot_learning_curves

__all__ = [
    "plot_attention_grid",
    "plot_confusion_matrix",
    "plot_gating",
    "plot_learning_curves",
    "plot_nonlocality",
    "read_log",
]


def read_log(log):
    """The records of an `AnalysisLogger` log, sorted by epoch.

    Args:
        log: the `.jsonl` file, the run directory holding `analysis.jsonl`, or a list of records
            (returned sorted).
    """
    if isinstance(log, (str, os.PathLike)):
        path = os.fspath(log)
        if os.path.isdir(path):
            path = os.path.join(path, LOG_FILENAME)
        with open(path) as file:
            log = [json.loads(line) for line in file if line.strip()]
    records = sorted(log, key=lambda record: record["epoch"])
    if not records:
        raise ValueError("The analysis log holds no records.")
    return records


def plot_nonlocality(log, path=None, per_head=False):
    """Nonlocality (Eq. 8) of each layer across epochs: one line per layer (the mean over its
    heads), or with `per_head=True` one panel per layer and one line per head.

    Args:
        log: as `read_log`.
        path: where to save the figure (PNG, or any format matplotlib knows); None: don't.
        per_head: bool.

    Returns:
        the `matplotlib.figure.Figure`.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> record = {"epoch": 0, **analysis.analysis_record(model, np.zeros((1, 32, 32, 3)))}
    >>> figure = analysis.plot_nonlocality([record])
    >>> len(figure.axes)
    1
    """
    records = read_log(log)
    epochs = [record["epoch"] for record in records]
    values = _stack(records, "nonlocality")  # (epochs, layers, heads)
    names = records[-1]["layers"]
    ylabel = "nonlocality (patches)"
    if per_head:
        figure = _panels(epochs, values, names, ylabel)
    else:
        figure, axis = new_figure(1, 1, (6, 4))
        axis = axis[0, 0]
        palette = colors(len(names))
        for index, name in enumerate(names):
            axis.plot(
                epochs,
                np.nanmean(values[:, index], axis=-1),
                marker="o",
                markersize=3,
                color=palette[index],
                label=name,
            )
        axis.set(xlabel="epoch", ylabel=ylabel, title="Nonlocality per layer (mean over heads)")
        integer_epochs(axis)
        axis.legend(fontsize="small", ncol=2)
    return save(figure, path)


def plot_gating(log, path=None):
    """sigma(lambda) of each GPSA head across epochs, one panel per GPSA layer (paper Fig. 6):
    1 is attention on position, 0 on content.

    `log` and `path` as `plot_nonlocality`'s; returns the `matplotlib.figure.Figure`.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=3, local_up_to_layer=2,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> record = {"epoch": 0, **analysis.analysis_record(model, np.zeros((1, 32, 32, 3)))}
    >>> figure = analysis.plot_gating([record])
    >>> [axis.get_title() for axis in figure.axes]
    ['blocks_0', 'blocks_1']
    """
    records = read_log(log)
    names = records[-1]["gpsa_layers"]
    if not names:
        raise ValueError("The log has no GPSA layer, so no gating to plot.")
    epochs = [record["epoch"] for record in records]
    figure = _panels(epochs, _stack(records, "gating"), names, "sigma(lambda)", ylim=(0, 1))
    return save(figure, path)


def plot_attention_grid(
    model, image, path=None, query=None, layers=None, part="attention", alpha=0.6, **masking
):
    """The attention of one query patch, for every block (rows) and head (columns), over the
    image (paper Fig. 7). The query patch is outlined; in blocks after the class token only the
    attention to the patches is shown.

    Args:
        model: a ConViT functional model.
        image: one (height, width, channels) image in the model's input range.
        path: where to save the figure; None: don't.
        query: the query patch: (row, column) or its row-major index; None: the central patch.
        layers: list of blocks (indices or names); None: all (for `part` "content" or
            "positional", the GPSA blocks).
        part: "attention" (combined), "content" or "positional" (GPSA only).
        alpha: float, opacity of the attention over the image.
        **masking: `gate_override`, `override_layers`, `mask_position_embedding`.

    Returns:
        the `matplotlib.figure.Figure`.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> image = np.random.default_rng(0).uniform(0, 255, (32, 32, 3))
    >>> figure = analysis.plot_attention_grid(model, image, query=(1, 2))
    >>> len(figure.axes)
    8
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"`image` must be one (height, width, channels) image, got shape {image.shape}."
        )
    grid_height, grid_width = patch_grid(model)
    row, col = _query_cell(query, grid_height, grid_width)
    maps = attention_maps_by_layer(model, image[None], layers=layers, **masking)
    maps = {name: value[part] for name, value in maps.items() if part in value}
    if not maps:
        raise ValueError(
            f"No block has a {part!r} attention (GPSA blocks only have 'content' and 'positional')."
        )
    num_heads = max(value.shape[1] for value in maps.values())
    figure, axes = new_figure(len(maps), num_heads, (1.6 * num_heads + 0.6, 1.6 * len(maps) + 0.4))
    height, width = image.shape[:2]
    extent = (0, width, height, 0)
    shown = _displayable(image)
    num_patches = grid_height * grid_width
    for block_index, (name, value) in enumerate(maps.items()):
        prefix = value.shape[-1] - num_patches
        query_index = prefix + row * grid_width + col
        for head, axis in enumerate(axes[block_index]):
            axis.set_xticks([])
            axis.set_yticks([])
            if head >= value.shape[1]:
                axis.set_visible(False)
                continue
            attention = value[0, head, query_index, prefix:].reshape(grid_height, grid_width)
            axis.imshow(shown, extent=extent, cmap="gray" if shown.ndim == 2 else None)
            axis.imshow(
                attention,
                extent=extent,
                cmap="inferno",
                alpha=alpha,
                interpolation="nearest",
                vmin=0.0,
            )
            _outline(axis, row, col, height / grid_height, width / grid_width)
            if head == 0:
                axis.set_ylabel(name, fontsize="small")
            if block_index == 0:
                axis.set_title(f"head {head}", fontsize="small")
    figure.suptitle(f"{part} of query patch ({row}, {col})", fontsize="medium")
    return save(figure, path)


def _query_cell(query, grid_height, grid_width):
    if query is None:
        return grid_height // 2, grid_width // 2
    if isinstance(query, (int, np.integer)):
        if not 0 <= query < grid_height * grid_width:
            raise ValueError(
                f"query={query} is not a patch index of the {grid_height}x{grid_width} grid."
            )
        return divmod(int(query), grid_width)
    row, col = query
    if not (0 <= row < grid_height and 0 <= col < grid_width):
        raise ValueError(f"query={tuple(query)} is outside the {grid_height}x{grid_width} grid.")
    return int(row), int(col)


def _displayable(image):
    image = image.astype("float64")
    if image.shape[-1] == 1:
        image = image[..., 0]
    if image.max() > 1.0:
        image = image / 255.0
    return np.clip(image, 0.0, 1.0)


def _outline(axis, row, col, patch_height, patch_width):
    from matplotlib.patches import Rectangle

    axis.add_patch(
        Rectangle(
            (col * patch_width, row * patch_height),
            patch_width,
            patch_height,
            fill=False,
            edgecolor="cyan",
            linewidth=1.2,
        )
    )


def _stack(records, key):
    """(epochs, layers, heads) float array of a per-layer-and-head entry, None as NaN."""
    return np.array(
        [
            [[np.nan if value is None else value for value in heads] for heads in record[key]]
            for record in records
        ],
        dtype="float64",
    )


def _panels(epochs, values, names, ylabel, ylim=None):
    columns = min(len(names), 4)
    rows = -(-len(names) // columns)
    figure, axes = new_figure(rows, columns, (3.2 * columns, 2.6 * rows), sharex=True)
    flat = axes.reshape(-1)
    palette = colors(values.shape[-1])
    for index, (axis, name) in enumerate(zip(flat, names, strict=False)):
        for head in range(values.shape[-1]):
            axis.plot(
                epochs,
                values[:, index, head],
                marker="o",
                markersize=2.5,
                color=palette[head],
                label=f"head {head}",
            )
        axis.set_title(name, fontsize="small")
        integer_epochs(axis)
        if ylim is not None:
            axis.set_ylim(*ylim)
        if index % columns == 0:
            axis.set_ylabel(ylabel, fontsize="small")
        if index >= len(names) - columns:
            axis.set_xlabel("epoch", fontsize="small")
    for axis in flat[len(names) :]:
        figure.delaxes(axis)
    flat[0].legend(fontsize="x-small")
    return figure
