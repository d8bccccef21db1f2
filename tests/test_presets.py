"""The preset table is the one source of a variant's facts; the variant functions read it."""

import inspect
import os
import pathlib
import re

import keras
import numpy as np
import pytest

import keras_convit
from keras_convit.presets import PAPER_VARIANTS, PRESETS, canonical_name, get_preset

ROOT = pathlib.Path(__file__).resolve().parents[1]
SEARCHED = ("keras_convit", "examples", "benchmarks")


def _python_files():
    for folder in SEARCHED:
        yield from (ROOT / folder).rglob("*.py")


def _files_matching(pattern):
    regex = re.compile(pattern)
    return sorted(
        str(path.relative_to(ROOT)) for path in _python_files() if regex.search(path.read_text())
    )


@pytest.mark.parametrize("name", PAPER_VARIANTS)
def test_each_variant_fact_is_written_in_one_file(name):
    preset = PRESETS[name]
    width, heads = preset.hidden_dim, preset.num_heads
    patterns = {
        "width": rf"hidden_dim\W{{0,4}}{width}\b|\b{width},\s*{heads}\b",
        "variant record": rf'"{name}",\s*"{preset.function}"',
    }
    if preset.imagenet_tag:
        patterns["tag"] = re.escape(preset.imagenet_tag)
    for fact, pattern in patterns.items():
        assert _files_matching(pattern) in ([], ["keras_convit/presets.py"]), fact
    assert _files_matching(patterns["width"]) == ["keras_convit/presets.py"]
    assert _files_matching(r'"depth":\s*12\b|depth\s*=\s*12\b') == ["keras_convit/presets.py"]


@pytest.mark.parametrize("name", PAPER_VARIANTS)
def test_variant_functions_are_explicit_and_build_their_preset(name):
    preset = PRESETS[name]
    function = getattr(keras_convit, preset.function)
    parameters = inspect.signature(function).parameters
    assert list(parameters)[:3] == ["include_top", "weights", "input_tensor"]
    assert parameters["classes"].default == 1000 and "kwargs" in parameters
    assert f"{preset.hidden_dim} wide, {preset.num_heads} heads" in function.__doc__
    assert getattr(keras_convit.models, preset.function) is function
    assert canonical_name(preset.function) == name


def test_a_variant_builds_what_its_preset_says():
    preset = get_preset("ConViTTiny")
    model = keras_convit.ConViTTiny(input_shape=(32, 32, 3), classes=4, compile=False)
    assert model.name == preset.name
    assert model.get_layer("patch_embed").proj.kernel.shape[-1] == preset.hidden_dim
    blocks = [layer for layer in model.layers if layer.name.startswith("blocks_")]
    assert len(blocks) == preset.architecture["depth"]
    gpsa = [b for b in blocks if type(b.attn).__name__ == "GatedPositionalSelfAttention"]
    assert len(gpsa) == preset.architecture["local_up_to_layer"]
    assert keras_convit.ConViTTiny(compile=False).input_shape == (None, *preset.input_size, 3)
    with pytest.raises(ValueError, match="fixes depth"):
        keras_convit.ConViTTiny(depth=3)


def test_from_preset_builds_any_named_model_with_overrides():
    model = keras_convit.from_preset("convit_digits", classes=10, compile=False)
    assert model.input_shape == (None, *PRESETS["convit_digits"].input_size, 3)
    shallow = keras_convit.from_preset("convit-small", depth=2, local_up_to_layer=1, compile=False)
    assert shallow.name == "convit_small" and shallow.output_shape == (None, 1000)
    with pytest.raises(ValueError, match="Unknown model 'vit'.*convit_tiny"):
        get_preset("vit")


def test_classifier_activation_follows_keras_applications_with_weights(tmp_path):
    architecture = dict(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1, patch_size=8)
    source = keras_convit.ConViT(**architecture, input_shape=(32, 32, 3), classes=3)
    path = os.fspath(tmp_path / "tiny.weights.h5")
    source.save_weights(path)
    for activation in (None, "softmax"):
        keras_convit.ConViT(**architecture, input_shape=(32, 32, 3), classes=3, weights=path,
                            classifier_activation=activation, compile=False)  # fmt: skip
    with pytest.raises(ValueError, match="Only None and 'softmax'.*'sigmoid'"):
        keras_convit.ConViT(**architecture, input_shape=(32, 32, 3), classes=3, weights=path,
                            classifier_activation="sigmoid")  # fmt: skip
    # Without weights, any activation: the model is the user's to train.
    relu = keras_convit.ConViT(**architecture, input_shape=(32, 32, 3), classes=3,
                               classifier_activation="relu", compile=False)  # fmt: skip
    assert relu.get_layer("head").activation is keras.activations.relu
    assert np.all(keras.ops.convert_to_numpy(relu(np.zeros((1, 32, 32, 3)))) >= 0)


def test_a_depth_override_keeps_the_late_blocks_and_the_head_follows_classes():
    # The README's example: ConViT-S at depth 6 keeps its 2 attention blocks after the token.
    model = keras_convit.from_preset("convit_small", depth=6, input_shape=(32, 32, 3))
    attention = [type(model.get_layer(f"blocks_{i}").attn).__name__ for i in range(6)]
    assert attention == ["GatedPositionalSelfAttention"] * 4 + ["MultiHeadSelfAttention"] * 2
    assert model.output_shape == (None, 1000)
    assert keras_convit.from_preset("convit_digits", classes=10).output_shape == (None, 10)
    with pytest.raises(ValueError, match="local_up_to_layer"):
        keras_convit.from_preset("convit_small", depth=6, local_up_to_layer=7)
