"""`keras-convit train --distribute`: the job on every device, through its backend's own engine:
`tf.distribute.MirroredStrategy` on TensorFlow and `keras.distribution`'s `DataParallel` on JAX
over this machine's devices; on PyTorch, `DistributedDataParallel` over the processes torchrun
launched (`launched_processes`). `--batch-size` stays the global batch, and the learning rate
follows it."""

import contextlib
import dataclasses

import keras

from keras_convit._keras_compat import forward_through
from keras_convit.job.config import ConfigError
from keras_convit.job.processes import Processes

DISTRIBUTE_MODES = ("none", "data")


@contextlib.contextmanager
def distribution_scope(mode, batch_size, processes=None):
    """Inside the block, models built and trained are data parallel (`mode` "data") or not
    ("none"); yields the number of data replicas: this machine's devices (TensorFlow, JAX) or
    the `processes` torchrun launched (PyTorch, each process training its model through
    `data_parallel_trainee`).

    Raises `ConfigError` (before anything is built) for an unknown mode, a global batch that
    does not divide over the replicas, or PyTorch outside torchrun.

    Example:
    >>> with keras_convit.job.distribution_scope("none", batch_size=32) as replicas:
    ...     replicas
    1
    """
    processes = processes or Processes()
    if mode not in DISTRIBUTE_MODES:
        raise ConfigError(f"distribute must be one of {', '.join(DISTRIBUTE_MODES)}, got {mode!r}.")
    if mode == "none":
        yield 1
        return
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        replicas = strategy.num_replicas_in_sync
        _check_batch(batch_size, replicas, "replicas of tf.distribute.MirroredStrategy")
        with strategy.scope():
            yield replicas
    elif backend == "jax":
        devices = keras.distribution.list_devices()
        _check_batch(batch_size, len(devices), "devices of keras.distribution.DataParallel")
        with keras.distribution.DataParallel(devices=devices).scope():
            yield len(devices)
    elif processes.several:
        _check_batch(batch_size, processes.count, "processes torchrun launched")
        yield processes.count
    else:
        raise ConfigError(
            "--distribute data on PyTorch runs one process per device under torchrun, e.g. "
            "torchrun --standalone --nproc-per-node 8 -m keras_convit train --distribute data "
            "... (Keras has no PyTorch engine for one process over several devices)."
        )


def data_parallel_trainee(trainee, processes):
    """`trainee` (a compiled Keras model), trained by `fit` through PyTorch's
    `DistributedDataParallel` when `processes` are several: DDP broadcasts process 0's
    weights now and averages the gradients in every step's `backward()`."""
    if not processes.several:
        return trainee
    import torch

    device = [processes.local_index] if torch.cuda.is_available() else None
    module = torch.nn.parallel.DistributedDataParallel(trainee, device_ids=device)
    forward_through(trainee, module)
    return trainee


def _check_batch(batch_size, replicas, what):
    if batch_size % replicas:
        raise ConfigError(
            f"The global batch size {batch_size} does not divide over the {replicas} {what}: "
            "pass --batch-size as a multiple of it."
        )


@dataclasses.dataclass(frozen=True)
class EvenBatches:
    """Held-out batches that split evenly over `replicas`, as (images, labels, weights): each
    batch (in practice the last, partial one) padded with zero-weight copies of its first image.

    `keras.distribution.DataParallel` splits every batch over the devices and cannot split a
    batch of another size (keras#21167, Keras 3.15.1 checked); dropping the partial batch would
    change the accuracy. Metrics compiled through `compile_arguments` count the `size` images
    only; Keras' mean loss counts the padding, which `loss_scale` (`padded / size`) undoes.

    Example:
    >>> import tensorflow as tf
    >>> batches = tf.data.Dataset.from_tensor_slices(([[1.0], [2.0], [3.0]], [0, 1, 0])).batch(2)
    >>> even = EvenBatches.of(batches, size=3, batch_size=2, replicas=2)
    >>> even.padded == (4 if keras.backend.backend() == "jax" else 3)  # the JAX engine's
    True
    """

    batches: object
    size: int
    padded: int

    @property
    def loss_scale(self):
        return self.padded / self.size if self.size else 1.0

    @classmethod
    def of(cls, batches, size, batch_size, replicas):
        """`batches` (a tf.data set of (images, labels) batches of `batch_size` but the last),
        `size` images in all."""
        import tensorflow as tf

        full, last = divmod(size, batch_size)
        padding = full * (-batch_size % replicas) + (-last % replicas)
        if keras.backend.backend() != "jax":
            padding = 0  # tf.distribute splits an uneven batch itself
        if batches is None or padding == 0:
            return cls(batches, size, size)

        def pad(images, labels):
            count = tf.shape(images)[0]
            extra = -count % replicas
            weights = tf.concat([tf.ones([count]), tf.zeros([extra])], axis=0)
            return _pad_rows(images, extra), _pad_rows(labels, extra), weights

        return cls(batches.map(pad), size, size + padding)

    def compile_arguments(self, arguments):
        """`compile` arguments whose metrics count the images only: weighted (Keras weighs
        `weighted_metrics` by the sample weights, `metrics` not)."""
        if self.padded == self.size or "metrics" not in arguments:
            return arguments
        arguments = dict(arguments)
        arguments["weighted_metrics"] = arguments.pop("metrics")
        return arguments

    def evaluate(self, model):
        """`model.evaluate` on these batches: {metric name: value}, losses over the images."""
        results = model.evaluate(self.batches, verbose=0, return_dict=True)
        return {key: self._unpadded(key, value) for key, value in results.items()}

    def validation_callback(self):
        """A callback that puts the validation losses in an epoch's logs over the images (it
        goes before the callbacks that read them)."""
        return _UnpaddedValidationLoss(self)

    def _unpadded(self, key, value):
        return value * self.loss_scale if key.endswith("loss") else value


class _UnpaddedValidationLoss(keras.callbacks.Callback):
    def __init__(self, even):
        super().__init__()
        self.even = even

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            if key.startswith("val_"):
                logs[key] = self.even._unpadded(key, value)


def _pad_rows(tensor, count):
    import tensorflow as tf

    return tf.concat([tensor, tf.repeat(tensor[:1], count, axis=0)], axis=0)
