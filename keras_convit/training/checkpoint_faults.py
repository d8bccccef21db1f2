"""What goes wrong with a run's checkpoint, each said in one line with what to do next: a
damaged file, a write that failed (a full disk), weights that are no longer finite."""

import errno
import os

import keras
import numpy as np

from keras_convit.training.monitors import NonFiniteLossError


class NonFiniteWeightsError(NonFiniteLossError):
    """A weight became NaN or infinite at the end of an epoch (the loss may still be finite)."""


class CheckpointWriteError(OSError):
    """The checkpoint of an epoch could not be written; the committed one is kept."""


class DamagedCheckpointError(ValueError):
    """A checkpoint file cannot be read; the message names it and says what to do."""


def short_error(error):
    """`error` as "TypeName: its first line"."""
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def check_finite_weights(model, epoch, kept):
    """Raises `NonFiniteWeightsError` if a weight is NaN or infinite: a finite loss does not
    prove finite weights (a bad update after the last batch's loss, say)."""
    bad = [v.path for v in model.weights if not np.isfinite(keras.ops.convert_to_numpy(v)).all()]
    if bad:
        raise NonFiniteWeightsError(
            f"{len(bad)} of {len(model.weights)} weight tensors became NaN or infinite in epoch "
            f"{epoch} (e.g. {bad[0]}); the epoch is not committed. {kept} Lower the learning "
            "rate or clip gradients, then resume."
        )


def _os_error(error):
    """The first `OSError` with an errno in the chain of `error`, or None."""
    while error is not None and not (isinstance(error, OSError) and error.errno):
        error = error.__cause__ or error.__context__
    return error


def write_failure(error):
    """`error` in a few words, e.g. "No space left on device (ENOSPC)"."""
    cause = _os_error(error)
    if cause is None:
        return f"{type(error).__name__}: {error}"
    return f"{os.strerror(cause.errno)} ({errno.errorcode.get(cause.errno, cause.errno)})"


def resume_advice(error):
    full = getattr(_os_error(error), "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return f"{'Free some space, then run' if full else 'Run'} the same command again to resume."
