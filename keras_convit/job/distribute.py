"""`keras-convit train --distribute`: the job on every device, through its backend's own engine:
`tf.distribute.MirroredStrategy` on TensorFlow, over this machine's devices;
`keras.distribution`'s `DataParallel` on JAX, over this machine's devices or those of every
process (host) launched with `keras.distribution`'s variables, or its `ModelParallel`
(model:N); on PyTorch, `DistributedDataParallel` over the processes torchrun launched
(`launched_processes`). `--batch-size` stays the global batch; the learning rate follows it."""

import contextlib
import dataclasses

import keras

from keras_convit._keras_compat import forward_through
from keras_convit.distribution import convit_layout_map
from keras_convit.job.config import ConfigError
from keras_convit.job.processes import Processes

DISTRIBUTE_MODES = ("none", "data", "model:N")
DATA_AXIS, MODEL_AXIS = "data", "model"


def parse_distribute(text):
    """`--distribute`'s value as (kind, model axis size): ("none", None), ("data", None) or
    ("model", N); raises `ConfigError` for anything else.

    Example:
    >>> keras_convit.job.parse_distribute("model:2")
    ('model', 2)
    """
    kind, _, size = str(text).partition(":")
    if kind in ("none", "data") and not size:
        return kind, None
    if kind == "model" and size.isdigit() and int(size) >= 2:
        return kind, int(size)
    raise ConfigError(
        f"--distribute must be one of {', '.join(DISTRIBUTE_MODES)} (N >= 2 devices per "
        f"model replica), got {text!r}."
    )


@contextlib.contextmanager
def distribution_scope(mode, batch_size, processes=None, shallow_model=None):
    """Inside the block, models built and trained are data parallel (`mode` "data"), model
    parallel ("model:N", JAX) or neither ("none"); yields the number of data replicas: this
    machine's devices (TensorFlow), the devices of every one of `processes` (JAX), the
    `processes` torchrun launched (PyTorch, each training its model through
    `data_parallel_trainee`), or the devices over N (model:N).

    Raises `ConfigError` (before anything is built) for an unknown mode, a global batch that
    does not divide over the replicas, PyTorch outside torchrun, or a model-parallel plan that
    cannot be (see `model_parallel_scope`).

    Example:
    >>> with keras_convit.job.distribution_scope("none", batch_size=32) as replicas:
    ...     replicas
    1
    """
    processes = processes or Processes()
    kind, size = parse_distribute(mode)
    if kind == "none":
        yield 1
        return
    if kind == "model":
        with model_parallel_scope(size, batch_size, processes, shallow_model) as replicas:
            yield replicas
        return
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        replicas = strategy.num_replicas_in_sync
        _check_batch(batch_size, replicas, "replicas of tf.distribute.MirroredStrategy")
        _announce(batch_size, replicas)
        with strategy.scope():
            yield replicas
    elif backend == "jax":
        devices = keras.distribution.list_devices()  # of every process
        _check_batch(batch_size, len(devices), "devices of keras.distribution.DataParallel")
        # Each process reads its share of every global batch itself (`load_dataset(shard=)`).
        distribution = keras.distribution.DataParallel(
            devices=devices, auto_shard_dataset=not processes.several
        )
        _announce(batch_size, len(devices))
        with distribution.scope():
            yield len(devices)
    elif processes.several:
        _check_batch(batch_size, processes.count, "processes torchrun launched")
        _announce(batch_size, processes.count)
        yield processes.count
    else:
        raise ConfigError(
            "--distribute data on PyTorch runs one process per device under torchrun, e.g. "
            "torchrun --standalone --nproc-per-node 8 -m keras_convit train --distribute data "
            "... (Keras has no PyTorch engine for one process over several devices)."
        )


@contextlib.contextmanager
def model_parallel_scope(size, batch_size, processes, shallow_model=None):
    """JAX's `keras.distribution.ModelParallel` on a ("data", "model") mesh of this machine's
    devices, `size` along "model", with `keras_convit.distribution.convit_layout_map`: each
    block's attention and MLP split over `size` devices, each global batch over the data
    replicas (yielded).

    Raises `ConfigError` on another backend, in a job of several processes, where `size` does
    not divide the devices or the global batch does not divide over the data replicas, and
    where a width or the heads of `shallow_model()` (a model of the run's widths, see
    `keras_convit.job.model.shallow_model`) do not divide by `size`.
    """
    if keras.backend.backend() != "jax":
        raise ConfigError(
            f"--distribute model:{size} is JAX's (keras.distribution.ModelParallel); Keras has "
            f"no model parallelism on {keras.backend.backend()}: set KERAS_BACKEND=jax, or "
            "use --distribute data."
        )
    if processes.several:
        raise ConfigError(
            f"--distribute model:{size} runs as one process (host) for now; for several use "
            "examples/distributed/jax_model_parallel.py."
        )
    if shallow_model is not None:
        # The plan depends on the widths only: checked on names of devices before any is used.
        names = [f"cpu:{index}" for index in range(size)]
        plan = keras.distribution.DeviceMesh((1, size), (DATA_AXIS, MODEL_AXIS), names)
        shallow = shallow_model()
        try:
            convit_layout_map(plan, model=shallow)
        except ValueError as error:
            raise ConfigError(f"--distribute model:{size}: {error}") from error
        heads = shallow.get_layer("blocks_0").num_heads
        if heads % size:  # a head split over devices: its attention would need their exchange
            raise ConfigError(
                f"--distribute model:{size} does not divide the model's {heads} heads: pick a "
                "divisor of them, so that each device holds whole heads."
            )
    devices = keras.distribution.list_devices()
    if len(devices) % size:
        raise ConfigError(
            f"--distribute model:{size} does not divide the {len(devices)} devices of this "
            "machine into model replicas."
        )
    replicas = len(devices) // size
    _check_batch(batch_size, replicas, f"data replicas of {size} devices each")
    mesh = keras.distribution.DeviceMesh((replicas, size), (DATA_AXIS, MODEL_AXIS), devices)
    layout_map = convit_layout_map(mesh, model_axis=MODEL_AXIS)
    _announce(batch_size, replicas, f"model parallel over {size} devices each")
    with keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name=DATA_AXIS).scope():
        yield replicas


def data_parallel_trainee(trainee, processes):
    """`trainee` (a compiled Keras model), trained by `fit` through PyTorch's
    `DistributedDataParallel` when `processes` are several: DDP broadcasts process 0's
    weights now and averages the gradients in every step's `backward()`."""
    if processes.engine != "torch":
        return trainee  # JAX's DataParallel spans the processes' devices itself
    import torch

    device = [processes.local_index] if torch.cuda.is_available() else None
    module = torch.nn.parallel.DistributedDataParallel(trainee, device_ids=device)
    forward_through(trainee, module)
    return trainee


def _announce(batch_size, replicas, replica="one device each"):
    share = batch_size // replicas
    print(f"Data parallel on {replicas} replicas ({replica}), {share} images each.", flush=True)


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
    replicas: int = 1

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
            return cls(batches, size, size, replicas)

        def pad(images, labels):
            count = tf.shape(images)[0]
            extra = -count % replicas
            weights = tf.concat([tf.ones([count]), tf.zeros([extra])], axis=0)
            return _pad_rows(images, extra), _pad_rows(labels, extra), weights

        return cls(batches.map(pad), size, size + padding, replicas)

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
