"""A Keras callback logging the paper's diagnostics during training, one JSON record per line."""

import json
import math
import os

import keras
import numpy as np

from keras_convit.analysis.forward import attention_blocks, gpsa_blocks
from keras_convit.analysis.gating import attention_centers, gating
from keras_convit.analysis.nonlocality import nonlocality

LOG_FILENAME = "analysis.jsonl"


def analysis_record(model, images, batch_size=32):
    """The diagnostics of `model` now, as a JSON-ready dict (nested lists of floats; non-finite
    values, such as the span of a flat head, become null).

    Keys: "layers" (attention block names), "gpsa_layers" (GPSA block names), "nonlocality"
    (blocks x heads, Eq. 8 on `images`), "gating" (GPSA blocks x heads, sigma(lambda)),
    "centers" (GPSA blocks x heads x (dx, dy)), "spans" and "center_distances" (GPSA blocks x
    heads); see `nonlocality`, `gating` and `attention_centers`.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> record = analysis.analysis_record(model, np.zeros((2, 32, 32, 3)))
    >>> record["layers"], round(record["gating"][0][0], 4)
    (['blocks_0', 'blocks_1'], 0.7311)
    """
    centers = attention_centers(model)
    return {
        "layers": [block.name for block in attention_blocks(model)],
        "gpsa_layers": [block.name for block in gpsa_blocks(model)],
        "nonlocality": _jsonable(nonlocality(model, images, batch_size=batch_size)),
        "gating": _jsonable(gating(model)),
        "centers": _jsonable(centers.center),
        "spans": _jsonable(centers.span),
        "center_distances": _jsonable(centers.distance),
    }


class AnalysisLogger(keras.callbacks.Callback):
    """Appends `analysis_record` of the model to `<run_dir>/analysis.jsonl` every `every` epochs.

    Each line is one JSON object: the record, "epoch" (the number of epochs completed, so the
    first end of epoch is 1 and the initial state is 0) and "logs" (the epoch's Keras logs, such
    as loss and val_accuracy); the last one written is also kept as `last_record`.
    `keras_convit.analysis.plot_nonlocality` and `plot_gating` turn the file into the paper's
    figures.

    Args:
        run_dir: the directory of the run (created if missing).
        images: the fixed images, in the model's input range, on which nonlocality is
            measured: a (batch, height, width, channels) array, or an iterable of batches
            (such as a validation `tf.data.Dataset` of (images, labels)) whose first
            `num_images` images are taken once, here.
        every: int, log every `every` epochs.
        filename: name of the log file inside `run_dir`.
        append: bool, keep the records of an existing file (resumed runs); False starts it anew
            when training begins.
        log_initial: bool, also log the state before the first epoch (epoch 0 when training
            starts from scratch).
        batch_size: int, images per forward pass.
        num_images: int, how many images to take from an iterable `images`.

    Example:
    >>> import json, os, tempfile
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> images, labels = np.zeros((8, 32, 32, 3)), np.zeros(8, int)
    >>> run_dir = tempfile.mkdtemp()
    >>> logger = analysis.AnalysisLogger(run_dir, images[:2])
    >>> _ = model.fit(images, labels, epochs=2, batch_size=4, callbacks=[logger], verbose=0)
    >>> with open(os.path.join(run_dir, "analysis.jsonl")) as file:
    ...     [json.loads(line)["epoch"] for line in file]
    [1, 2]
    """

    def __init__(
        self,
        run_dir,
        images,
        every=1,
        filename=LOG_FILENAME,
        append=False,
        log_initial=False,
        batch_size=32,
        num_images=32,
    ):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"`every` must be a positive number of epochs, got {every!r}.")
        images = _take_images(images, num_images)
        if images.ndim != 4 or not len(images):
            raise ValueError(
                f"`images` must hold (batch, height, width, channels) images, got shape "
                f"{images.shape}."
            )
        self.run_dir = os.fspath(run_dir)
        self.images = images
        self.every = int(every)
        self.path = os.path.join(self.run_dir, filename)
        self.append = append
        self.log_initial = log_initial
        self.batch_size = batch_size
        self._pending_initial = False
        self.last_record = None

    def on_train_begin(self, logs=None):
        os.makedirs(self.run_dir, exist_ok=True)
        if not self.append:
            open(self.path, "w").close()
        self._pending_initial = self.log_initial

    def on_epoch_begin(self, epoch, logs=None):
        # Logged here, not in on_train_begin, to know the epoch of a resumed run.
        if self._pending_initial:
            self._pending_initial = False
            self._write(epoch, {})

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self._write(epoch + 1, logs or {})

    def _write(self, epoch, logs):
        # A `HardDistillation` trains a student: the ConViT to analyse.
        model = getattr(self.model, "student", self.model)
        record = {"epoch": epoch, **analysis_record(model, self.images, self.batch_size)}
        record["logs"] = {
            name: _jsonable(value)
            for name, value in logs.items()
            if np.ndim(value) == 0 and _is_number(value)
        }
        with open(self.path, "a") as file:
            file.write(json.dumps(record, allow_nan=False) + "\n")
        self.last_record = record


def _take_images(images, num_images):
    """An array of images from an array, or the first `num_images` of an iterable of batches
    (a batch being images or an (images, labels, ...) tuple)."""
    if hasattr(images, "shape") or isinstance(images, (list, np.ndarray)):
        return np.asarray(images)
    taken, count = [], 0
    for batch in images:
        batch = np.asarray(batch[0] if isinstance(batch, (tuple, list)) else batch)
        taken.append(batch[: num_images - count])
        count += len(taken[-1])
        if count >= num_images:
            break
    return np.concatenate(taken) if taken else np.zeros((0,))


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _jsonable(array):
    """Nested lists of floats rounded to 6 significant digits, None for non-finite values."""
    array = np.asarray(array, dtype="float64")
    if array.ndim == 0:
        value = float(array)
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return [_jsonable(item) for item in array]
