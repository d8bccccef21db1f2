"""`keras-convit convert` both ways, and reading the architecture from a checkpoint's shapes."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from weights_helpers import TINY_KERAS, perturb, timm_or_skip

import keras_convit
from keras_convit.cli import main
from keras_convit.weights import (
    export_reference_weights,
    infer_architecture,
    load_weights,
    reference_state_dict,
)

pytest.importorskip("safetensors")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def source(rng):
    model = keras_convit.ConViT(
        **{**TINY_KERAS, "local_up_to_layer": 1}, input_shape=(48, 32, 3), compile=False
    )
    return perturb(model, rng)


def weights_of(model):
    return [keras.ops.convert_to_numpy(variable) for variable in model.weights]


def test_the_command_converts_a_reference_checkpoint_to_keras(source, tmp_path):
    reference = tmp_path / "reference.safetensors"
    export_reference_weights(source, reference)
    destination = tmp_path / "converted.weights.h5"
    result = subprocess.run(
        [sys.executable, "-m", "keras_convit", "convert", str(reference), str(destination)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "local_up_to_layer=1" in result.stdout and "input_shape=(48, 32, 3)" in result.stdout
    clone = keras_convit.ConViT(
        **{**TINY_KERAS, "local_up_to_layer": 1}, input_shape=(48, 32, 3), weights=str(destination)
    )
    for got, expected in zip(weights_of(clone), weights_of(source), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_keras_weights_convert_to_reference_and_resample(source, tmp_path, capsys):
    keras_file = tmp_path / "trained.weights.h5"
    source.save_weights(keras_file)
    exported = tmp_path / "exported.safetensors"
    assert main(["convert", str(keras_file), str(exported), "--image-size", "48", "32"]) == 0
    assert "hidden_dim=64" in capsys.readouterr().out
    clone = keras_convit.ConViT(
        **{**TINY_KERAS, "local_up_to_layer": 1}, input_shape=(48, 32, 3), compile=False
    )
    load_weights(clone, exported)
    for got, expected in zip(weights_of(clone), weights_of(source), strict=True):
        np.testing.assert_array_equal(got, expected)

    larger = tmp_path / "at_96x64.weights.h5"
    assert main(["convert", str(exported), str(larger), "--image-size", "96", "64"]) == 0
    resized = keras_convit.ConViT(
        **{**TINY_KERAS, "local_up_to_layer": 1}, input_shape=(96, 64, 3), weights=str(larger)
    )
    assert tuple(resized.get_layer("pos_embed").embedding.shape) == (1, 24, 64)


def test_the_command_reports_errors_without_a_traceback(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights")
    assert main(["convert", str(notes), str(tmp_path / "out.weights.h5")]) == 2
    assert "not a Keras weights file" in capsys.readouterr().err
    assert main(["convert", str(notes), str(tmp_path / "out.onnx")]) == 2
    assert "must end in .weights.h5" in capsys.readouterr().err


def test_the_reference_variants_are_recognised_from_their_shapes():
    timm_or_skip()
    import torch
    from timm.models.convit import ConVit

    with torch.device("meta"):  # shapes only: no memory, no initialisation
        reference = ConVit(embed_dim=48, num_heads=9, local_up_to_layer=10)
    shapes = {key: tuple(value.shape) for key, value in reference.state_dict().items()}
    config = infer_architecture(shapes)
    assert config == {
        "hidden_dim": 432,
        "num_heads": 9,
        "depth": 12,
        "local_up_to_layer": 10,
        "patch_size": 16,
        "mlp_ratio": 4.0,
        "qkv_bias": False,
        "use_gpsa": True,
        "use_pos_embed": True,
        "distillation": False,
        "input_shape": (224, 224, 3),
        "include_top": True,
        "classes": 1000,
        "pooling": "token",
    }


def test_architecture_variants_are_recognised(source):
    shapes = {key: value.shape for key, value in reference_state_dict(source).items()}
    assert infer_architecture(shapes, grid_size=(3, 2))["input_shape"] == (48, 32, 3)
    with pytest.raises(ValueError, match="not a square grid"):
        infer_architecture(shapes)
    del shapes["cls_token"]
    shapes = {k: v for k, v in shapes.items() if not k.startswith("head.")}
    config = infer_architecture(shapes, grid_size=(3, 2))
    assert (config["pooling"], config["include_top"]) == ("avg", False)
