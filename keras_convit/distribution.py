"""Model parallelism for ConViT: the `keras.distribution.LayoutMap` that shards its blocks.

Megatron-style tensor parallelism (Shoeybi et al. 2019) over one axis of a device mesh: in every
transformer block the projections that widen (GPSA `qk` and `v`, MHSA `qkv`, MLP `fc1`) are
split by output column, the projections that narrow back to the residual width (`attn/proj`,
`mlp/fc2`) by input row, so each device holds 1 / n of every block's attention and MLP weights.
Everything else (patch embedding, norms, GPSA's positional projection and gating, position
embedding, class token, head) is replicated. XLA inserts the collectives.

With JAX, the only Keras 3 backend with `keras.distribution`:

    mesh = keras.distribution.DeviceMesh((2, 4), ("data", "model"))
    keras.distribution.set_distribution(keras.distribution.ModelParallel(
        layout_map=keras_convit.distribution.convit_layout_map(mesh), batch_dim_name="data"))
    model = keras_convit.ConViTBasePlus(...)  # built after set_distribution

See examples/distributed/jax_model_parallel.py.
"""

import keras

MODEL_AXIS = "model"

# Variable paths inside a transformer block -> tensor axes, "model" naming the sharded one.
# Dense kernels are (in, out): column-parallel is (None, "model"), row-parallel ("model", None).
# The biases of column-parallel layers follow their columns; those of row-parallel layers are
# added after the reduction, so they stay replicated.
BLOCK_SHARDING = {
    "attn/qk/kernel": (None, MODEL_AXIS),  # GPSA queries and keys (column-parallel)
    "attn/qk/bias": (MODEL_AXIS,),
    "attn/v/kernel": (None, MODEL_AXIS),  # GPSA values (column-parallel)
    "attn/v/bias": (MODEL_AXIS,),
    "attn/qkv/kernel": (None, MODEL_AXIS),  # MHSA queries, keys and values (column-parallel)
    "attn/qkv/bias": (MODEL_AXIS,),
    "attn/proj/kernel": (MODEL_AXIS, None),  # attention output (row-parallel)
    "mlp/fc1/kernel": (None, MODEL_AXIS),  # MLP in (column-parallel)
    "mlp/fc1/bias": (MODEL_AXIS,),
    "mlp/fc2/kernel": (MODEL_AXIS, None),  # MLP out (row-parallel)
}
# `blocks_<i>/...`, also when the model is nested in another layer or model.
BLOCK_PATTERN = r"(?:.*/)?blocks_\d+/{}"


def convit_layout_map(device_mesh, model_axis=MODEL_AXIS, model=None):
    """The `keras.distribution.LayoutMap` that shards ConViT's blocks along `model_axis`.

    Keys are regular expressions over variable paths (`blocks_3/attn/qk/kernel`), values the
    axes of `BLOCK_SHARDING` with "model" replaced by `model_axis`; variables that match no key
    are replicated. Pass it to `keras.distribution.ModelParallel` and build the model after
    `keras.distribution.set_distribution`.

    The sharded dimensions (C, 2C and 3C for the attention, mlp_ratio x C for the MLP, C the
    `hidden_dim`) must divide by the size of the model axis: for every ConViT variant they do
    up to 16 devices. A model axis that divides `num_heads` (4 for ConViT-Ti, 9 for -S, 16 for
    -B) keeps whole heads on a device, which needs the fewest collectives.

    Args:
        device_mesh: `keras.distribution.DeviceMesh`, with an axis named `model_axis`
            (typically `("data", "model")`: data parallel across, model parallel within).
        model_axis: str, the mesh axis the blocks are sharded along.
        model: optional ConViT `keras.Model` (for instance built on one device to check the
            plan): raises if no variable of it matches, or if a sharded dimension does not
            divide by the size of the model axis.

    Returns:
        A `keras.distribution.LayoutMap`.

    Example:
    >>> mesh = keras.distribution.DeviceMesh(
    ...     (1, 2), ("data", "model"), devices=["cpu:0", "cpu:1"])
    >>> layout_map = keras_convit.distribution.convit_layout_map(mesh)
    >>> layout_map["blocks_3/attn/qk/kernel"].axes, layout_map["blocks_11/mlp/fc2/kernel"].axes
    ((None, 'model'), ('model', None))
    >>> print(layout_map["blocks_11/attn/proj/bias"], layout_map["head/kernel"])
    None None
    """
    if not isinstance(device_mesh, keras.distribution.DeviceMesh):
        raise ValueError(
            "`device_mesh` must be a keras.distribution.DeviceMesh, e.g. "
            'DeviceMesh((2, 4), ("data", "model")); '
            f"got {type(device_mesh).__name__}: {device_mesh!r}."
        )
    axis_names = tuple(device_mesh.axis_names)
    if model_axis not in axis_names:
        raise ValueError(
            f"The device mesh has no axis {model_axis!r} to shard along; its axes are "
            f"{axis_names}. Name one axis {model_axis!r} or pass `model_axis`."
        )
    layout_map = keras.distribution.LayoutMap(device_mesh)
    for suffix, axes in BLOCK_SHARDING.items():
        layout_map[BLOCK_PATTERN.format(suffix)] = tuple(
            model_axis if axis == MODEL_AXIS else axis for axis in axes
        )
    if model is not None:
        _check_model(layout_map, model, model_axis)
    return layout_map


def _check_model(layout_map, model, model_axis):
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model, got {type(model).__name__}.")
    mesh = layout_map.device_mesh
    size = mesh.shape[list(mesh.axis_names).index(model_axis)]
    matched = 0
    for variable in model.variables:
        layout = layout_map[variable.path]
        if layout is None:
            continue
        matched += 1
        for dim, axis in zip(variable.shape, layout.axes, strict=True):
            if axis == model_axis and dim % size:
                raise ValueError(
                    f"{variable.path} has shape {tuple(variable.shape)}: its dimension {dim} "
                    f"does not divide by the {size} devices of mesh axis {model_axis!r}."
                )
    if not matched:
        raise ValueError(
            f"No variable of model {model.name!r} matches the ConViT layout "
            "(blocks_<i>/attn/... and blocks_<i>/mlp/...): is it a keras_convit model?"
        )
