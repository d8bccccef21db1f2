"""Every use of Keras' private API in keras_convit, each with why and the versions checked.

Nothing else in the package may import `keras.src` or touch an underscored Keras attribute;
when Keras changes one of these, this is the one file to read. Checked against Keras 3.15.1
(the pinned version); each one is exercised on every backend by the tests of what needs it
(the functional models' graph run by `tests/test_keras_compat.py`).
"""

import contextlib

import keras

# Core Keras has no RandomResizedCrop. Its image augmentation layers share this base class, which
# makes a layer safe inside tf.data under every backend (it switches to TensorFlow ops there) and
# handles single images, batches and {"images", "labels"} dicts. It is not exported (3.15.1).
from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (  # noqa: E501
    BaseImagePreprocessingLayer,
)

__all__ = [
    "BaseImagePreprocessingLayer",
    "HistogramEqualization",
    "declare_metric_direction",
    "drawing_from",
    "forward_through",
    "guard_jax_trainer",
    "layer_seed_generator",
    "optimizer_variable_index",
    "read_weights_file_layers",
    "release_graph_intermediates",
    "restore_purged_variables",
    "set_initial_epoch",
    "sublayers",
    "with_fast_equalization",
]


def layer_seed_generator(layer):
    """The seed generator of a `BaseImagePreprocessingLayer` for the ops in use.

    Inside tf.data the layer runs TensorFlow ops under any backend, and needs a generator of
    that backend; Keras' own random layers ask `_get_seed_generator(self.backend._backend)`,
    which has no public form (3.15.1).
    """
    return layer._get_seed_generator(layer.backend._backend)


class _StatelessSeeds(keras.random.SeedGenerator):
    """Hands out `tf.random.experimental.stateless_fold_in(seed, k)` for k = 0, 1, ...: a new
    stateless seed per draw, derived from one (2,) seed tensor and Python's count of draws.

    Keras' random ops take a seed only as an int or a `SeedGenerator` (`draw_seed`, 3.15.1),
    and the generator's state is a variable: drawn from parallel tf.data maps, its values
    depend on thread timing. This subclass keeps no state but the draw count of one trace, so
    its `__init__` skips the variable.
    """

    def __init__(self, seed):  # noqa: D107 -- no super().__init__(): no state variable
        self.seed_tensor = seed
        self.draws = 0

    def next(self, ordered=True):
        import tensorflow as tf

        self.draws += 1
        return tf.random.experimental.stateless_fold_in(self.seed_tensor, self.draws)


@contextlib.contextmanager
def drawing_from(layer, seed):
    """Within the block, every random draw of `layer` and of its sublayers comes from the (2,)
    integer tensor `seed` (a new stateless seed per draw): a tf.data map gives each example its
    own seed, so the augmentation repeats exactly whatever the threads do.

    Keras' image layers draw from `self._get_seed_generator(backend)`, and RandAugment hands
    its own to its sublayers, ignoring a `seed=` argument (3.15.1): shadowing that private
    method on the instances is the one way to reach every draw.
    """
    seeds = _StatelessSeeds(seed)
    layers = [layer, *sublayers(layer)]
    for each in layers:
        object.__setattr__(each, "_get_seed_generator", lambda backend=None: seeds)
    try:
        yield
    finally:
        for each in layers:
            object.__delattr__(each, "_get_seed_generator")


def sublayers(layer):
    """Every layer nested in `layer` (not `layer` itself), at any depth, each once.

    Keras has no public recursive list of a layer's sublayers (3.15.1): `Model.quantize` walks
    the private `_flatten_layers()`, and the `keras.dtype_policies.DTypePolicyMap` docstring
    uses it to record quantized sublayers in `get_config`, as we do (layers/composite.py).
    """
    return layer._flatten_layers(include_self=False)


def set_initial_epoch(model, epoch):
    """Makes the running `fit` continue after `epoch` (0-based count of finished epochs).

    Called from a callback's `on_train_begin`: `fit` reads `model._initial_epoch` after it, as
    `keras.callbacks.BackupAndRestore` relies on; a callback has no public way to do this
    (3.15.1). A caller that knows the epoch before `fit` passes `initial_epoch=` instead.
    """
    model._initial_epoch = epoch


def declare_metric_direction(metric, direction):
    """Marks a metric as better "up" or "down", as Keras' own metrics are marked.

    `EarlyStopping` / `ModelCheckpoint(mode="auto")` read the private `_direction` of the
    compiled metrics and refuse a metric without one (3.15.1); there is no public setter.
    """
    if direction not in ("up", "down"):
        raise ValueError(f'`direction` must be "up" or "down", got {direction!r}.')
    metric._direction = direction
    return metric


class HistogramEqualization(keras.layers.Equalization):
    """Keras' Equalization, with its histogram chosen by the ops in use, not the backend.

    Keras 3.15.1 picks a 256-step Python loop (for JAX jit) whenever the global backend is JAX,
    even inside tf.data where TensorFlow ops run: that made RandAugment about 10x slower under
    JAX than under the other backends. TensorFlow ops have a bincount. Overrides the private
    `_custom_histogram_fixed_width` (3.15.1).
    """

    def _custom_histogram_fixed_width(self, values, value_range, nbins):
        if self.backend.name == "jax":
            return super()._custom_histogram_fixed_width(values, value_range, nbins)
        values = self.backend.cast(values, "float32")
        low, high = value_range
        indices = self.backend.cast((values - low) * (nbins - 1) / (high - low), "int32")
        indices = self.backend.numpy.clip(indices, 0, nbins - 1)
        return self.backend.numpy.bincount(
            self.backend.numpy.reshape(indices, [-1]), minlength=nbins
        )


def with_fast_equalization(rand_augment):
    """`rand_augment` (a `keras.layers.RandAugment`) with `HistogramEqualization` swapped in.

    RandAugment draws its operations by the attribute names in its private `_AUGMENT_LAYERS`
    list, "equalization" among them (3.15.1); replacing that attribute is the only way in.
    """
    rand_augment.equalization = HistogramEqualization(value_range=rand_augment.value_range)
    return rand_augment


def read_weights_file_layers(file):
    """[(layer path, [arrays in creation order])] of an open `.weights.h5` (an h5py.File).

    Keras reads such a file only into a built model; to find the architecture a file holds
    before building one, we read Keras' private HDF5 layout (`H5IOStore`, 3.15.1): each layer
    is a group whose `vars` child carries the layer name as an attribute and the layer's own
    variables as datasets "0", "1", ...; sublayers nest inside. Optimizer state is skipped.
    """
    import h5py
    import numpy as np

    layers = []

    def visit(group, prefix):
        for child in group.values():
            if not isinstance(child, h5py.Group) or "vars" not in child:
                continue
            name = str(child["vars"].attrs.get("name", ""))
            path = f"{prefix}/{name}" if prefix else name
            datasets = child["vars"]
            layers.append((path, [np.asarray(datasets[str(i)]) for i in range(len(datasets))]))
            visit(child, path)

    visit(file["layers"] if "layers" in file else file, "")
    return layers


def optimizer_variable_index(optimizer, variable):
    """The index of `variable` among the variables `optimizer` was built with.

    `update_step` receives the backend's variable (a `tf.Variable` on TensorFlow, not the Keras
    variable with its path), so a per-variable rule is found by the index Keras' own Adam reads
    its moments with, through the private `_get_variable_index` (3.15.1).
    """
    return optimizer._get_variable_index(variable)


# Keras' JAX trainer (keras/src/backend/jax/trainer.py, read at 3.15.1) moves the variables'
# values into its jitted step and sets each variable's private `_value` to None until the step
# returns ("purge", to hold one copy of the weights). `fit` puts them back in a `finally` from
# `self._jax_state`, which holds the last *finished* step: when the first step of a `fit` fails
# (a batch of the wrong size: the error is raised while tracing), that is None (the previous
# `fit` cleared it) and the values are never put back; `evaluate` and `predict` have no
# `finally` at all. Every later `predict`, `fit` or `get_weights` then raises "TypeError:
# 'NoneType' object is not callable" (the purged variable asks its spent initializer).
# TensorFlow and PyTorch keep the values in place. The guard below keeps a reference to every
# value before the call (JAX arrays are immutable: no copy) and, when the call raises, puts it
# back into each variable left empty; a variable that holds a value (a finished step's) keeps it.
_JAX_GUARDED = (
    "fit",
    "train_on_batch",
    "evaluate",
    "test_on_batch",
    "predict",
    "predict_on_batch",
)


def _trainer_variables(model):
    variables = [
        *model.trainable_variables,
        *model.non_trainable_variables,
        *model.metrics_variables,
    ]
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        variables.extend(optimizer.variables)
    return list({id(variable): variable for variable in variables}.values())


def _keep_variables_on_failure(method):
    import functools

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        saved = [(variable, variable._value) for variable in _trainer_variables(self)]
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            restore_purged_variables(self, saved)
            raise

    guarded._keras_convit_guard = True
    return guarded


def restore_purged_variables(model, saved):
    """Puts each of `saved` [(variable, value)] back into its variable when the JAX trainer left
    it empty (`_value` None) and the value still exists (a step that ran donated its inputs);
    returns the number restored. The trainer's pending state is dropped with it."""
    restored = 0
    for variable, value in saved:
        if variable._value is None and value is not None and not _is_deleted(value):
            variable._value = value
            restored += 1
    if restored:
        model._jax_state = None
        model._jax_state_synced = True
    return restored


def _is_deleted(value):
    is_deleted = getattr(value, "is_deleted", None)
    return bool(is_deleted()) if callable(is_deleted) else False


def guard_jax_trainer():
    """On the JAX backend, makes a failed `fit`/`train_on_batch`/`evaluate`/`predict` (and the
    `*_on_batch` forms) leave every Keras model usable (see the comment above); elsewhere, and
    when already done, nothing. Returns whether the guard is in place. Called on import."""
    if keras.backend.backend() != "jax":
        return False
    from keras.src.backend.jax.trainer import JAXTrainer

    for name in _JAX_GUARDED:
        method = getattr(JAXTrainer, name)
        if not getattr(method, "_keras_convit_guard", False):
            setattr(JAXTrainer, name, _keep_variables_on_failure(method))
    return True


guard_jax_trainer()


# Under PyTorch, `keras.optimizers.AdamW(...)` builds Keras' multi-tensor subclass (all variables
# in one `torch._foreach_*` call per step) only when the class is exactly AdamW: the swap is a
# lookup of `cls` in `TorchOptimizer.__new__` (keras/src/backend/torch/optimizers/
# torch_optimizer.py, read at 3.15.1). A subclass, as ConViTAdamW, falls back to one update per
# variable: 4.5% of a ConViT-Ti training step on 2 CPU cores (benchmarks/README.md, profile).
# That multi-tensor update (`Adam._parallel_update_step`, torch_adam.py, 3.15.1) still makes ten
# passes over the weights and five temporaries of their size: 56 ms per step for ConViT-Ti's 5.7M
# weights on 2 CPU cores, against 3.9 ms for PyTorch's fused Adam kernel, which `FusedAdamW` runs
# through its public functional form, `torch.optim.adam.adam(fused=True)`.
def adamw_base():
    """The AdamW class to subclass: under PyTorch Keras' multi-tensor one with PyTorch's fused
    Adam kernel as its update (`FusedAdamW`), else the public one."""
    if keras.backend.backend() == "torch":
        from keras.src.backend.torch.optimizers.torch_adamw import AdamW

        return _fused_update(AdamW)
    return keras.optimizers.AdamW


def _fused_update(keras_adamw):
    import math

    import torch
    from torch.optim.adam import adam

    class FusedAdamW(keras_adamw):
        """Keras' AdamW, its Adam update made by PyTorch's fused kernel (weight decay stays
        Keras' own, applied before it). Same formula: the kernel adds epsilon after the bias
        correction, Keras before it, so it is given epsilon / sqrt(1 - beta_2^t), which makes
        its update Keras' alpha_t m / (sqrt(v) + epsilon). The step t is read on the host: one
        synchronisation per step on a GPU."""

        def _parallel_update_step(self, grads, variables, learning_rate):
            if self.amsgrad:
                return super()._parallel_update_step(grads, variables, learning_rate)
            index = self._get_variable_index
            params = [variable.value for variable in variables]
            done = int(keras.ops.convert_to_numpy(self.iterations))  # t - 1
            # `adam` counts the step on each weight's own step tensor: one each, at t - 1.
            steps = torch.full((len(params),), float(done), device=params[0].device).unbind()
            adam(
                params,
                list(grads),
                [self._momentums[index(variable)].value for variable in variables],
                [self._velocities[index(variable)].value for variable in variables],
                [],
                list(steps),
                fused=True,
                amsgrad=False,
                beta1=float(self.beta_1),
                beta2=float(self.beta_2),
                lr=keras.ops.cast(learning_rate, "float32"),
                weight_decay=0.0,
                eps=self.epsilon / math.sqrt(1 - float(self.beta_2) ** (done + 1)),
                maximize=False,
            )

    return FusedAdamW


def per_variable_updates(optimizer_class):
    """`optimizer_class` whose `update_step` sees every variable on every backend: Keras'
    multi-tensor torch optimizers bypass it (their `_backend_update_step`, 3.15.1), so under
    PyTorch the subclass goes back to the base optimizer's loop. On TensorFlow, whose
    `_backend_update_step` serves `tf.distribute`, and on JAX, the class is returned as is."""
    if keras.backend.backend() != "torch":
        return optimizer_class
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    class PerVariableUpdates(optimizer_class):
        def _backend_update_step(self, grads, trainable_variables, learning_rate):
            BaseOptimizer._backend_update_step(self, grads, trainable_variables, learning_rate)

    return PerVariableUpdates


def forward_through(model, module):
    """Makes `model.fit` (PyTorch) run its forward pass through `module`, a
    `torch.nn.parallel.DistributedDataParallel` of `model`, so that DDP averages the gradients
    in `backward()`: it averages only what went through its own forward.

    Keras' PyTorch `train_step` (3.15.1) calls `self(x)`; there is no public hook for the
    forward pass, so this sets `model.train_step` to that step with the one call changed. It
    reads what Keras' step reads: `_call_has_training_arg`, `_compute_loss`, `_loss_tracker`.
    """
    import torch

    def train_step(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = module(x, training=True) if model._call_has_training_arg else module(x)
        model.zero_grad()
        loss = model._compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        batch = next(value for value in keras.tree.flatten(x) if value is not None).shape[0]
        model._loss_tracker.update_state(loss, sample_weight=batch)
        if model.optimizer is not None:
            loss = model.optimizer.scale_loss(loss)
        if model.trainable_weights:
            loss.backward()
            variables = model.trainable_weights[:]
            with torch.no_grad():
                model.optimizer.apply([v.value.grad for v in variables], variables)
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    model.train_step = train_step
    model.train_function = None  # built from `train_step` at the next `fit`


# A functional model runs its graph in `Function._run_through_graph` (keras/src/ops/function.py,
# read at 3.15.1), which keeps every layer's output in one dict until the whole pass ends. Traced
# (XLA on TensorFlow and JAX) that costs nothing when the model runs; eager PyTorch holds them all
# at once: a ConViT-Ti forward pass at batch 64 keeps the normalised images and the output of
# every block (benchmarks/README.md). The loop below is Keras' own with one change: after each
# node, the outputs no later node reads, and that the model does not return, leave the dict, so
# each tensor is freed after its last use, as in a PyTorch module. The schedule is read from the
# graph on every call (a few dozen nodes). Installed on import for the Keras versions it mirrors.
_MIRRORED_RUN_THROUGH_GRAPH = ("3.15.",)


def _run_through_graph_releasing(self, inputs, operation_fn=lambda op: op, call_fn=None):
    from keras import tree

    tensor_dict = {id(x): y for x, y in zip(self.inputs, tree.flatten(inputs), strict=False)}
    nodes = [node for depth in sorted(self._nodes_by_depth, reverse=True)
             for node in self._nodes_by_depth[depth]]  # fmt: skip
    releases = _release_schedule(nodes, returned={id(x) for x in self.outputs})
    for position, node in enumerate(nodes):
        runnable = node.operation and not node.is_input
        if runnable and all(id(x) in tensor_dict for x in node.input_tensors):
            args, kwargs = node.arguments.fill_in(tensor_dict)
            if call_fn is not None:
                outputs = call_fn(operation_fn(node.operation), *args, **kwargs)
            else:
                outputs = operation_fn(self._get_operation_for_node(node))(*args, **kwargs)
            for x, y in zip(node.outputs, tree.flatten(outputs), strict=False):
                tensor_dict[id(x)] = y
            del args, kwargs, outputs
        for tensor_id in releases.get(position, ()):
            tensor_dict.pop(tensor_id, None)  # absent when its node could not run

    output_tensors = []
    for i, x in enumerate(self.outputs):
        if id(x) not in tensor_dict:
            path = tree.flatten_with_path(self._outputs_struct)[i][0]
            path = ".".join(str(p) for p in path)
            raise ValueError(f"Output with path `{path}` is not connected to `inputs`")
        output_tensors.append(tensor_dict[id(x)])
    return tree.pack_sequence_as(self._outputs_struct, output_tensors)


def _release_schedule(nodes, returned):
    """{position: ids of the tensors to drop after the node at that position runs}: each tensor
    a node reads, after the last node that reads it, unless the graph returns it."""
    last_reader = {}
    for position, node in enumerate(nodes):
        if node.operation and not node.is_input:
            for x in node.input_tensors:
                last_reader[id(x)] = position
    releases = {}
    for tensor_id, position in last_reader.items():
        if tensor_id not in returned:
            releases.setdefault(position, []).append(tensor_id)
    return releases


def release_graph_intermediates():
    """Makes every functional model free each layer's output after its last use in a forward
    pass (see the comment above), on the Keras versions that loop mirrors; elsewhere Keras' own
    loop stays. Returns whether it is in place. Called on import."""
    from keras.src.ops.function import Function

    if not keras.__version__.startswith(_MIRRORED_RUN_THROUGH_GRAPH):
        return False
    Function._run_through_graph = _run_through_graph_releasing
    return True


release_graph_intermediates()
