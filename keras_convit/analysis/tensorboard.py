"""The paper's diagnostics in TensorBoard: per-layer nonlocality and gating as scalars."""

import keras
import numpy as np


class AnalysisScalars(keras.callbacks.Callback):
    """Writes each record of an `AnalysisLogger` to TensorBoard event files in `log_dir`, as
    scalars per layer: "nonlocality/<block>" (Eq. 8, the mean over heads, every attention
    block) and "gating/<block>" (sigma(lambda), the mean over heads, every GPSA block).

    The step is the epoch's index from 0, as `keras.callbacks.TensorBoard` counts its
    "epoch_*" scalars, so both show on one axis. Written with tensorboard's own writer (no
    TensorFlow), flushed every epoch. Place it after `logger` in `fit`'s callbacks.

    Example:
    >>> import tempfile
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> images, labels = np.zeros((4, 32, 32, 3)), np.zeros(4, int)
    >>> logger = analysis.AnalysisLogger(tempfile.mkdtemp(), images[:2])
    >>> scalars = analysis.AnalysisScalars(tempfile.mkdtemp(), logger)
    >>> _ = model.fit(images, labels, epochs=1, callbacks=[logger, scalars], verbose=0)
    >>> sorted(scalars.written)
    ['gating/blocks_0', 'nonlocality/blocks_0', 'nonlocality/blocks_1']
    """

    def __init__(self, log_dir, logger):
        super().__init__()
        self.log_dir = str(log_dir)
        self.logger = logger
        self.written = set()  # the tags written so far
        self._writer = None

    def on_train_begin(self, logs=None):
        from tensorboard.summary import DirectoryOutput, Writer

        self._writer = Writer(DirectoryOutput(self.log_dir))

    def on_epoch_end(self, epoch, logs=None):
        record = self.logger.last_record
        if record is None or record["epoch"] != epoch + 1:
            return  # not an epoch the logger analysed
        per_layer = [
            ("nonlocality", record["layers"], record["nonlocality"]),
            ("gating", record["gpsa_layers"], record["gating"]),
        ]
        for name, layers, values in per_layer:
            for layer, heads in zip(layers, values, strict=True):
                finite = [value for value in heads if value is not None]
                if finite:
                    tag = f"{name}/{layer}"
                    self._writer.add_scalar(tag, float(np.mean(finite)), step=epoch)
                    self.written.add(tag)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
