"""Callbacks that watch a run: a guard against a non-finite loss, and the epoch's seconds and
learning rate added to the logs (for `RunCheckpoint`'s history, in `callbacks.py`)."""

import math
import time

import keras


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops `fit` at the first batch whose running loss is NaN or infinite, by raising
    `NonFiniteLossError`, before any epoch-end callback can save the broken weights.

    Example:
    >>> guard = keras_convit.training.NonFiniteLossGuard()
    >>> guard.on_train_batch_end(0, {"loss": 0.5})  # finite: nothing happens
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            kept = (
                f"The last good checkpoint (end of epoch {self.epoch}) is kept."
                if self.epoch
                else "No epoch had completed, so there is no checkpoint."
            )
            raise NonFiniteLossError(
                f"The training loss became {float(loss)} at epoch {self.epoch + 1}, batch "
                f"{batch + 1}; training stopped. {kept} Lower the learning rate or clip "
                "gradients, then resume."
            )


class EpochTimer(keras.callbacks.Callback):
    """Adds the epoch's wall-clock seconds to the logs as "epoch_seconds"."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs as "learning_rate"."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.model.optimizer is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )
