"""`keras-convit train --distribute`: the job on every device of this machine, through its
backend's own engine: `tf.distribute.MirroredStrategy` on TensorFlow (JAX and PyTorch: the
scripts of examples/distributed/ for now). `--batch-size` stays the global batch, and the
learning rate follows it."""

import contextlib
import os

import keras

from keras_convit.job.config import ConfigError

DISTRIBUTE_MODES = ("none", "data")
# Where the backends without an engine here train on several devices.
SCRIPTS = {
    "jax": "examples/distributed/jax_data_parallel.py",
    "torch": "examples/distributed/torch_ddp.py under torchrun",
}
# What each launcher sets in every process it starts: a job of several processes.
MULTI_PROCESS_VARIABLES = {
    "WORLD_SIZE": "torchrun",
    "TF_CONFIG": "a TensorFlow multi-worker cluster",
    "KERAS_DISTRIBUTION_NUM_PROCESSES": "keras.distribution",
}


@contextlib.contextmanager
def distribution_scope(mode, batch_size):
    """Inside the block, models built and trained are data parallel over the local devices
    (`mode` "data") or not ("none"); yields the number of data replicas.

    Raises `ConfigError` (before anything is built) for an unknown mode, a global batch that
    does not divide over the replicas, a backend without an engine here, or a job launched as
    several processes, which the job does not coordinate yet.

    Example:
    >>> with keras_convit.job.distribution_scope("none", batch_size=32) as replicas:
    ...     replicas
    1
    """
    if mode not in DISTRIBUTE_MODES:
        raise ConfigError(f"distribute must be one of {', '.join(DISTRIBUTE_MODES)}, got {mode!r}.")
    _refuse_several_processes()
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
    else:
        # JAX: keras.distribution.DataParallel cannot evaluate the last, partial batch of the
        # validation and test images (keras#21167, Keras 3.15.1: one layout for every batch),
        # and dropping it would change the accuracy; PyTorch: Keras has no DDP engine.
        script = SCRIPTS.get(backend, "one device")
        raise ConfigError(
            f"--distribute data has no {backend} engine in keras-convit train yet: train with "
            f"KERAS_BACKEND=tensorflow, or use {script}."
        )


def _check_batch(batch_size, replicas, what):
    if batch_size % replicas:
        raise ConfigError(
            f"The global batch size {batch_size} does not divide over the {replicas} {what}: "
            "pass --batch-size as a multiple of it."
        )


def _refuse_several_processes():
    for variable, launcher in MULTI_PROCESS_VARIABLES.items():
        value = os.environ.get(variable, "")
        several = value not in ("", "0", "1")
        if several:
            raise ConfigError(
                f"This process is one of several ({variable}={value[:40]!r}: {launcher}); "
                "keras-convit train runs as one process per machine for now, with "
                "--distribute data over that machine's devices. For several machines use "
                "examples/distributed/."
            )
