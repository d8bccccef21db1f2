"""The job's `fit`: its callbacks, and a run a signal stopped mid-epoch finishing that epoch."""

import keras

from keras_convit.training.callbacks import (
    EpochTimer,
    LearningRateLogger,
    NonFiniteLossGuard,
)


def training_callbacks(checkpoint, use_ema=False):
    """The job's callbacks, in order: epoch timer and learning rate (added to the logs), the EMA
    swap for validation, the non-finite loss guard, and the checkpoint (last, so it records
    what the others add).

    Example:
    >>> import tempfile
    >>> checkpoint = keras_convit.training.RunCheckpoint(tempfile.mkdtemp())
    >>> [type(c).__name__ for c in keras_convit.job.training_callbacks(checkpoint)]
    ['EpochTimer', 'LearningRateLogger', 'NonFiniteLossGuard', 'RunCheckpoint']
    """
    callbacks = [EpochTimer(), LearningRateLogger()]
    if use_ema:
        callbacks.append(keras.callbacks.SwapEMAWeights())
    callbacks += [NonFiniteLossGuard(), checkpoint]
    return callbacks


def fit_to_the_end(trainee, data, epochs, callbacks, interrupted, verbose):
    """`fit` up to `epochs`; a run a signal stopped mid-epoch first runs that epoch's remaining
    steps (the checkpoint restores its state and commits the whole epoch)."""

    def fit(**arguments):
        trainee.fit(
            data.train,
            validation_data=data.validation,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles
            **arguments,
        )

    if interrupted is not None:
        remaining = data.steps_per_epoch - interrupted["step"]
        fit(epochs=interrupted["epoch"], steps_per_epoch=max(remaining, 1))
    fit(epochs=epochs)
