"""The figures of a training run: learning curves per epoch and the test confusion matrix, each
with an optional title that says what was run and how well it did."""

import numpy as np

from keras_convit.analysis._figure import integer_epochs, new_figure, save, wrap

_PANELS = (
    ("loss", ("loss", "val_loss")),
    ("accuracy", ("accuracy", "val_accuracy")),
    ("learning rate", ("learning_rate",)),
)


def plot_learning_curves(history, path=None, *, title=None, augmented=False):
    """Loss, accuracy and learning rate per epoch, train and validation.

    Args:
        history: {log key: [value per epoch]}, e.g. `RunCheckpoint.history` or a Keras
            `History.history`; None entries are skipped.
        path: where to save the figure; None: don't.
        title: str, the figure's title (e.g. the model, the data set and its test accuracy);
            None: no title.
        augmented: whether the training batches were augmented: False, True, or a str saying
            how (e.g. "augmented, MixUp-mixed"). When set, the train curves are labelled
            "train (augmented)" and a note under the panels says why train accuracy can sit
            below validation accuracy.

    Returns:
        the `matplotlib.figure.Figure`.

    Example:
    >>> history = {"loss": [2.3, 1.1], "val_loss": [2.2, 1.3], "learning_rate": [1e-3, 1e-5]}
    >>> [axis.get_title() for axis in plot_learning_curves(history).axes]
    ['loss', 'accuracy', 'learning rate']
    >>> history = {"accuracy": [0.5, 0.7], "val_accuracy": [0.6, 0.8]}
    >>> figure = plot_learning_curves(history, title="convit_digits on digits", augmented=True)
    >>> figure.get_suptitle()
    'convit_digits on digits'
    >>> figure.axes[1].get_legend_handles_labels()[1]
    ['train (augmented)', 'validation (clean)']
    """
    width = 4.2 * len(_PANELS)
    figure, axes = new_figure(1, len(_PANELS), (width, 3.4))
    for axis, (panel, keys) in zip(axes[0], _PANELS, strict=True):
        for key in keys:
            points = [(i + 1, v) for i, v in enumerate(history.get(key) or []) if v is not None]
            if points:
                axis.plot(*zip(*points, strict=True), marker=".", label=_label(key, augmented))
        axis.set_title(panel)
        axis.set_xlabel("epoch")
        integer_epochs(axis)
        if len(axis.get_legend_handles_labels()[0]) > 1:
            axis.legend()
    if title:
        figure.suptitle(wrap(title, width, points=12), fontsize="large")
    if augmented and any(v is not None for v in history.get("accuracy") or []):
        figure.supxlabel(wrap(_augmentation_note(augmented), width), fontsize="medium")
    return save(figure, path)


def plot_confusion_matrix(matrix, class_names, path=None, *, title=None):
    """A confusion matrix as a heat map with its counts: rows true classes, columns predicted.

    Args:
        matrix: (classes, classes) counts.
        class_names: list of str, one per row (and column).
        path: where to save the figure; None: don't.
        title: str, the figure's title (e.g. the split and its accuracy); None: no title.

    Returns:
        the `matplotlib.figure.Figure`.

    Example:
    >>> figure = plot_confusion_matrix([[5, 1], [0, 4]], ["cat", "dog"], title="test: 0.900")
    >>> figure.axes[0].get_xlabel(), figure.axes[0].get_ylabel(), figure.axes[0].get_title()
    ('predicted', 'true', 'test: 0.900')
    """
    matrix = np.asarray(matrix)
    side = min(2.0 + 0.45 * len(class_names), 12.0)
    figure, axes = new_figure(1, 1, (side + 1.0, side))
    axis = axes[0, 0]
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, shrink=0.8)
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90 if len(class_names) > 6 else 0)
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if title:
        axis.set_title(wrap(title, side, points=12), fontsize="large")
    if len(class_names) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, column), count in np.ndenumerate(matrix):
            color = "white" if count > threshold else "black"
            axis.text(column, row, str(count), ha="center", va="center", color=color,
                      fontsize="small")  # fmt: skip
    return save(figure, path)


def _label(key, augmented):
    if key.startswith("val_"):
        return "validation (clean)" if augmented else "validation"
    return "train (augmented)" if augmented else "train"


def _augmentation_note(augmented):
    how = augmented if isinstance(augmented, str) else "augmented"
    return (
        f"Train curves are measured on {how} batches during each epoch, validation on clean "
        "images after it: so train accuracy can sit below validation accuracy."
    )
