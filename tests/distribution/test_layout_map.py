"""keras_convit.distribution.convit_layout_map: what it shards, and how (any backend: a
LayoutMap is plain Keras, placed on devices only by JAX's ModelParallel)."""

import re

import keras
import pytest

import keras_convit
from keras_convit.distribution import BLOCK_SHARDING, convit_layout_map


def _mesh(model=2, data=1, axis_names=("data", "model")):
    devices = [f"cpu:{index}" for index in range(data * model)]
    return keras.distribution.DeviceMesh((data, model), axis_names, devices=devices)


def _tiny_convit(**kwargs):
    # One GPSA block and one attention block, with biases on the qkv projections.
    arguments = dict(
        hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1, patch_size=8, qkv_bias=True,
        input_shape=(32, 32, 3), classes=10, compile=False,
    )  # fmt: skip
    return keras_convit.ConViT(**{**arguments, **kwargs})


def test_every_named_variable_exists_and_is_sharded_as_documented():
    model = _tiny_convit()
    layout_map = convit_layout_map(_mesh(), model=model)
    paths = [variable.path for variable in model.variables]
    for suffix, axes in BLOCK_SHARDING.items():
        matching = [path for path in paths if path.endswith(suffix)]
        assert matching, f"no variable of the model ends with {suffix}"
        for path in matching:
            assert layout_map[path].axes == axes, path
    # Megatron-style: widening projections by column, narrowing ones by row.
    assert layout_map["blocks_0/attn/qk/kernel"].axes == (None, "model")
    assert layout_map["blocks_0/attn/v/kernel"].axes == (None, "model")
    assert layout_map["blocks_1/attn/qkv/kernel"].axes == (None, "model")
    assert layout_map["blocks_0/attn/proj/kernel"].axes == ("model", None)
    assert layout_map["blocks_1/mlp/fc1/kernel"].axes == (None, "model")
    assert layout_map["blocks_1/mlp/fc1/bias"].axes == ("model",)
    assert layout_map["blocks_1/mlp/fc2/kernel"].axes == ("model", None)


def test_everything_else_is_replicated():
    model = _tiny_convit()
    layout_map = convit_layout_map(_mesh())
    replicated = [v.path for v in model.variables if layout_map[v.path] is None]
    sharded = [v.path for v in model.variables if layout_map[v.path] is not None]
    assert len(sharded) == 14  # 8 in the GPSA block, 6 in the attention block
    for path in ("patch_embed/proj/kernel", "pos_embed/embedding", "cls_token/token",
                 "blocks_0/attn/pos_proj/kernel", "blocks_0/attn/gating_param",
                 "blocks_0/attn/proj/bias", "blocks_1/mlp/fc2/bias", "blocks_1/norm1/gamma",
                 "norm/gamma", "head/kernel"):  # fmt: skip
        assert path in replicated
    # Each sharded tensor has exactly one "model" axis, on a dimension that exists.
    for variable in model.variables:
        layout = layout_map[variable.path]
        if layout is not None:
            assert len(layout.axes) == len(variable.shape) and layout.axes.count("model") == 1


def test_paths_of_a_nested_model_match_and_the_mesh_is_attached():
    mesh = _mesh(model=4, data=2)
    layout_map = convit_layout_map(mesh)
    assert layout_map["outer/blocks_10/mlp/fc2/kernel"].axes == ("model", None)
    assert layout_map["blocks_10/mlp/fc2/kernel"].device_mesh is mesh
    assert layout_map.device_mesh is mesh
    assert layout_map["myblocks_1/mlp/fc1/kernel"] is None  # whole path components only


def test_another_axis_name():
    layout_map = convit_layout_map(_mesh(axis_names=("batch", "tp")), model_axis="tp")
    assert layout_map["blocks_2/attn/qkv/kernel"].axes == (None, "tp")
    assert all(re.search(r"blocks_", key) for key in layout_map)


def test_paper_variant_divides_over_16_devices():
    model = keras_convit.ConViTTiny(input_shape=(32, 32, 3), classes=10, compile=False)
    layout_map = convit_layout_map(_mesh(model=16), model=model)
    assert layout_map["blocks_11/attn/qkv/kernel"].axes == (None, "model")


def test_validation_errors():
    with pytest.raises(ValueError, match="must be a keras.distribution.DeviceMesh"):
        convit_layout_map(("data", "model"))
    with pytest.raises(ValueError, match="no axis 'model'"):
        convit_layout_map(_mesh(axis_names=("data", "tensor")))
    with pytest.raises(ValueError, match="does not divide by the 3 devices"):
        convit_layout_map(_mesh(model=3), model=_tiny_convit(hidden_dim=32))
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="No variable of model"):
        convit_layout_map(_mesh(), model=dense)
    with pytest.raises(ValueError, match="must be a keras.Model"):
        convit_layout_map(_mesh(), model="convit_tiny")
