"""The job's settings for larger models: the dtype policy, gradient checkpointing of the blocks,
steps per compiled call, and TensorBoard event files in the run directory.

- `dtype_policy`: the model's policy (its constructor's `dtype`); under "mixed_float16" the
  recipe wraps the optimizer in `keras.optimizers.LossScaleOptimizer` (not on JAX without a
  GPU or TPU: XLA's CPU lacks the float16 products attention needs).
- `remat`: the blocks are built under `keras.RematScope` ("list_of_layers", the blocks' names):
  each block's activations are recomputed in the backward pass instead of kept
  (`keras_convit.layers.remat`).
- `steps_per_execution`: `compile(steps_per_execution=N)` for this process; the saved model's
  compile config keeps 1 (`compile_portably`), which every backend can load.
- `tensorboard`: `keras.callbacks.TensorBoard` into RUN_DIR/tensorboard/ (train/ and
  validation/: the epoch logs and the learning rate; its writers flush as each epoch's scalars
  are written, so a killed run keeps them), and with `analysis_every` the per-layer
  nonlocality and gating into RUN_DIR/tensorboard/analysis/ (`AnalysisScalars`). Both come
  after the checkpoint: they record the epochs that are committed, so a resumed run writes
  each epoch once.
"""

import contextlib
import importlib.util
import os

import keras

from keras_convit.analysis.callback import AnalysisLogger
from keras_convit.analysis.tensorboard import AnalysisScalars
from keras_convit.presets import get_preset

DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
TENSORBOARD_DIR = "tensorboard"
TENSORBOARD_EXTRA = "keras-convit[tensorboard]"


def scale_problem(config):
    """The first of these settings of `config` that cannot run, as one sentence; else None.

    Example:
    >>> scale_problem(keras_convit.job.TrainConfig(dtype_policy="float16"))
    "dtype_policy must be float32, mixed_bfloat16 or mixed_float16, got 'float16'."
    """
    if config.dtype_policy not in DTYPE_POLICIES:
        return (
            f"dtype_policy must be {', '.join(DTYPE_POLICIES[:-1])} or {DTYPE_POLICIES[-1]}, "
            f"got {config.dtype_policy!r}."
        )
    if config.dtype_policy == "mixed_float16" and _jax_on_cpu():
        return (
            "dtype_policy mixed_float16 needs a GPU or TPU on JAX (XLA on a CPU has no float16 "
            "matrix product with float32 accumulation, which attention uses); use "
            "mixed_bfloat16."
        )
    if "dtype" in config.model_args:
        return "model_args cannot set dtype: use --dtype-policy."
    if not (isinstance(config.steps_per_execution, int) and config.steps_per_execution >= 1):
        return f"steps_per_execution must be >= 1, got {config.steps_per_execution!r}."
    if config.steps_per_execution > 1 and keras.backend.backend() == "torch":
        return (
            f"steps_per_execution must be 1 on the PyTorch backend (Keras runs one step per "
            f"call there), got {config.steps_per_execution}."
        )
    if config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        return f"--tensorboard needs the tensorboard package: pip install '{TENSORBOARD_EXTRA}'."
    return None


def resume_problem(saved, config):
    """Why a run recorded with the `saved` settings cannot go on with `config`, or None: its
    checkpoint's optimizer state has the loss scale's variables or not, and Keras would skip
    the whole state with a warning (the schedule restarting at its warm-up).

    Example:
    >>> resume_problem({"dtype_policy": "float32"}, keras_convit.job.TrainConfig())
    """
    before, after = saved.get("dtype_policy", "float32"), config.dtype_policy
    if (before == "mixed_float16") != (after == "mixed_float16"):
        return (
            f"--resume cannot change dtype_policy from {before} to {after}: only mixed_float16 "
            "scales the loss, and the checkpoint's optimizer state would not load. Resume with "
            f"--dtype-policy {before}, or start a new run."
        )
    return None


def model_building(config):
    """The context to build the model of `config` in: a `keras.RematScope` naming its blocks
    with `remat`, else nothing.

    Example:
    >>> config = keras_convit.job.TrainConfig(remat=True).resolved()
    >>> with model_building(config) as scope:
    ...     scope.layer_names[:2]
    ['blocks_0', 'blocks_1']
    """
    if not config.remat:
        return contextlib.nullcontext()
    depth = {**get_preset(config.model).architecture, **config.model_args}["depth"]
    names = [f"blocks_{index}" for index in range(depth)]
    return keras.RematScope(mode="list_of_layers", layer_names=names)


def tensorboard_callbacks(config, run_path, callbacks):
    """With `config.tensorboard`, the callbacks that write RUN_DIR/tensorboard/, to go after
    `callbacks` (the job's: an `AnalysisLogger` among them gives its records); else []."""
    if not config.tensorboard:
        return []
    log_dir = os.path.join(run_path, TENSORBOARD_DIR)
    # No graph: under XLA it is the compiled step, large and of little use.
    added = [keras.callbacks.TensorBoard(log_dir, write_graph=False)]
    for callback in callbacks:
        if isinstance(callback, AnalysisLogger):
            added.append(AnalysisScalars(os.path.join(log_dir, "analysis"), callback))
    return added


def _jax_on_cpu():
    if keras.backend.backend() != "jax":
        return False
    return keras.distribution.list_devices()[0].startswith("cpu")
