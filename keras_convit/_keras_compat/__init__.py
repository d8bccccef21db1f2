"""Every use of Keras' private API in keras_convit, each with why and the versions checked.

Nothing else in the package may import `keras.src` or touch an underscored Keras attribute;
when Keras changes one of these, this package is the one place to read, a file per part of
Keras it reaches into. Checked against Keras 3.15.1 (the pinned version); each one is exercised
on every backend by the tests of what needs it (the functional models' graph run by
`tests/test_keras_compat.py`). Importing it installs the two patches: the JAX trainer's guard
(`jax_trainer`) and the graph loop that frees each output after its last use (`graph_loop`).
"""

from keras_convit._keras_compat.graph_loop import release_graph_intermediates
from keras_convit._keras_compat.jax_trainer import guard_jax_trainer, restore_purged_variables
from keras_convit._keras_compat.layer_tree import (
    declare_metric_direction,
    read_weights_file_layers,
    set_initial_epoch,
    sublayers,
)
from keras_convit._keras_compat.optimizers import (
    adamw_base,
    optimizer_variable_index,
    per_variable_updates,
)
from keras_convit._keras_compat.preprocessing import (
    BaseImagePreprocessingLayer,
    HistogramEqualization,
    drawing_from,
    layer_seed_generator,
    with_fast_equalization,
)
from keras_convit._keras_compat.torch_trainer import forward_through

__all__ = [
    "BaseImagePreprocessingLayer",
    "HistogramEqualization",
    "adamw_base",
    "declare_metric_direction",
    "drawing_from",
    "forward_through",
    "guard_jax_trainer",
    "layer_seed_generator",
    "optimizer_variable_index",
    "per_variable_updates",
    "read_weights_file_layers",
    "release_graph_intermediates",
    "restore_purged_variables",
    "set_initial_epoch",
    "sublayers",
    "with_fast_equalization",
]
