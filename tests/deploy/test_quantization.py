"""`model.quantize(mode)` (Keras' own) on ConViT models: it runs on a fresh model and after
loading weights, keeps the logits near the float model's, leaves GPSA's positional attention
exactly as it was, and survives `get_config` / `from_config` and `.keras` files."""

import warnings
from unittest import mock

import keras
import numpy as np
import pytest
from keras import ops

import keras_convit
from keras_convit import analysis
from keras_convit.deploy.quantization import quantized_layers

ARCH = dict(
    hidden_dim=64,
    num_heads=4,
    depth=4,
    local_up_to_layer=3,
    patch_size=8,
    input_shape=(32, 32, 3),
    classes=5,
    classifier_activation=None,  # logits: the tolerance is on them, not on saturated softmax
    compile=False,
)
GPSA_BLOCKS = [f"blocks_{index}" for index in range(ARCH["local_up_to_layer"])]
# Every mode of Keras 3.15.1 that needs no calibration data runs on all three backends (CPU).
MODES = ("int8", "float8", "int4")
# max |quantized - float| / max |float| over the logits of 8 images. Measured over 6 seeded
# weight sets (every weight moved by N(0, 0.05)) on each backend, the worst of the 18: int8
# 0.044, float8 0.175, int4 0.305 (per-channel int4 has 16 levels; Keras' float8 is made for
# float8 training, with unit scales until it trains). The bounds leave about 2x margin; an
# int8 GPSA reading its int8 positional kernel unscaled gives 0.16.
TOLERANCE = {"int8": 0.1, "float8": 0.35, "int4": 0.6}


def quantize(model, mode, filters=None):
    # Keras runs a full `gc.collect()` for each kernel it replaces (`Layer.__delattr__`, 3.15.1),
    # seconds in all in a process holding three frameworks; it only frees memory sooner.
    with warnings.catch_warnings(), mock.patch("gc.collect"):
        # Keras notes each layer type it leaves float ("Layer Conv2D does not have a `quantize`
        # method implemented"): expected, see keras_convit/deploy/quantization.py.
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        model.quantize(mode, filters=filters)
    return model


IMAGES = np.random.default_rng(1).uniform(0, 255, (8, 32, 32, 3)).astype("float32")


def logits(model, x):
    return ops.convert_to_numpy(model(x, training=False))


def dense_paths(model):
    """Paths of the layers with a `kernel`, minus those Keras or ConViT keep float."""
    paths = {v.path.removesuffix("/kernel") for v in model.weights if v.path.endswith("/kernel")}
    kept_float = {"patch_embed/proj"} | {f"{block}/attn/pos_proj" for block in GPSA_BLOCKS}
    assert kept_float <= paths
    return paths - kept_float


def variables(model):
    return {v.path: ops.convert_to_numpy(v) for v in model.weights}


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    """A float ConViT whose every weight is moved off its init (seeded, gates and norms too),
    its weights file, its logits and its GPSA attention maps."""
    keras.utils.set_random_seed(0)
    model = keras_convit.ConViT(**ARCH)
    rng = np.random.default_rng(0)
    model.set_weights(
        [w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    path = tmp_path_factory.mktemp("weights") / "convit.weights.h5"
    model.save_weights(path)
    maps = analysis.attention_maps_by_layer(model, IMAGES[:2], layers=GPSA_BLOCKS)
    return dict(model=model, path=str(path), logits=logits(model, IMAGES), maps=maps)


@pytest.fixture(scope="module", params=MODES)
def quantized(request, float_model):
    """(mode, model, logits): a ConViT built with the float weights, never called, then
    quantized."""
    model = keras_convit.ConViT(**ARCH, weights=float_model["path"])
    quantize(model, request.param)
    return request.param, model, logits(model, IMAGES)


def test_quantize_right_after_construction():
    # Nothing called yet: every sublayer, dropout and drop path included, is built in build().
    model = quantize(keras_convit.ConViT(**ARCH), "int8")
    expected = dense_paths(model)
    assert quantized_layers(model) == dict.fromkeys(sorted(expected), "int8")
    weights = {v.path: v for v in model.weights}
    for path in expected:
        assert weights[f"{path}/kernel"].dtype == "int8", path
        assert f"{path}/kernel_scale" in weights, path


def test_quantized_logits_stay_close_to_float(quantized, float_model):
    mode, model, outputs = quantized
    assert quantized_layers(model) == dict.fromkeys(sorted(dense_paths(model)), mode)
    weights = {v.path for v in model.weights}
    assert all(f"{path}/kernel_scale" in weights for path in dense_paths(model))
    expected = float_model["logits"]
    error = np.abs(outputs - expected).max() / np.abs(expected).max()
    assert 0 < error <= TOLERANCE[mode], (mode, error)


def test_positional_attention_is_exactly_the_float_one(quantized, float_model):
    # GPSA's positional weights are read by the fast path directly (paper Eq. 5): they stay
    # float, and so the positional attention is unchanged; the content attention is not.
    mode, model, _ = quantized
    float_weights, weights = variables(float_model["model"]), variables(model)
    for block in GPSA_BLOCKS:
        for name in ("kernel", "bias"):
            path = f"{block}/attn/pos_proj/{name}"
            assert weights[path].dtype == "float32", path
            np.testing.assert_array_equal(weights[path], float_weights[path], err_msg=path)
    maps = analysis.attention_maps_by_layer(model, IMAGES[:2], layers=GPSA_BLOCKS)
    for block in GPSA_BLOCKS:
        expected = float_model["maps"][block]
        np.testing.assert_array_equal(maps[block]["positional"], expected["positional"])
        assert not np.array_equal(maps[block]["content"], expected["content"]), (mode, block)
    centers = analysis.attention_centers(model)
    float_centers = analysis.attention_centers(float_model["model"])
    np.testing.assert_array_equal(centers.center, float_centers.center)
    np.testing.assert_array_equal(centers.span, float_centers.span)


def test_config_round_trip_keeps_the_quantized_layers(quantized):
    mode, model, outputs = quantized
    clone = keras.Model.from_config(model.get_config())
    assert quantized_layers(clone) == quantized_layers(model)
    # Copied by path: a layer quantized in place creates its variables in another order.
    source = variables(model)
    assert {v.path: v.dtype for v in clone.weights} == {p: v.dtype for p, v in source.items()}
    for variable in clone.weights:
        variable.assign(source[variable.path])
    np.testing.assert_array_equal(logits(clone, IMAGES), outputs)


def test_keras_file_round_trip_keeps_the_quantized_layers(quantized, tmp_path):
    mode, model, outputs = quantized
    model.save(tmp_path / "quantized.keras")
    loaded = keras.saving.load_model(tmp_path / "quantized.keras")
    assert quantized_layers(loaded) == quantized_layers(model)
    source, restored = variables(model), variables(loaded)
    assert sorted(restored) == sorted(source)
    for path, value in source.items():
        np.testing.assert_array_equal(restored[path], value, err_msg=path)
    np.testing.assert_array_equal(logits(loaded, IMAGES), outputs)


@pytest.mark.parametrize("quantized", ["int8"], indirect=True)
def test_a_loaded_partly_quantized_model_quantizes_further(quantized, float_model, tmp_path):
    # Rebuilt sublayers get their own policy, not the map (Keras' Dense.quantize fails on one).
    _, at_once, outputs = quantized
    model = keras_convit.ConViT(**ARCH, weights=float_model["path"])
    quantize(model, "int8", filters=lambda layer: layer.name == "fc1")
    model.save(tmp_path / "partly.keras")
    loaded = keras.saving.load_model(tmp_path / "partly.keras")
    assert set(quantized_layers(loaded)) == {f"blocks_{index}/mlp/fc1" for index in range(4)}
    quantize(loaded, "int8", filters=lambda layer: layer.name != "fc1")
    assert quantized_layers(loaded) == quantized_layers(at_once)
    np.testing.assert_array_equal(logits(loaded, IMAGES), outputs)
