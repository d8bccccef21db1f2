"""Weights holding NaN or infinity are refused on load, naming the first such tensor: by
`weights=`, `load_weights` (every format) and `keras-convit convert`, which writes nothing."""

import keras
import numpy as np
import pytest

import keras_convit
from keras_convit.cli import main
from keras_convit.weights import export_reference_weights, load_weights, reference_state_dict

safetensors_numpy = pytest.importorskip("safetensors.numpy")
TINY = dict(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1, patch_size=8, classes=3)


def tiny():
    return keras_convit.ConViT(**TINY, input_shape=(16, 16, 3), compile=False)


def test_nan_in_a_safetensors_file_is_refused_by_weights_and_convert(tmp_path, capsys):
    state = reference_state_dict(tiny())
    state["blocks.1.mlp.fc1.weight"][0, 0] = np.nan
    state["blocks.0.attn.qk.weight"][2, 3] = np.inf
    path = tmp_path / "diverged.safetensors"
    safetensors_numpy.save_file(state, str(path))
    # safetensors keeps its tensors sorted by name: blocks.0 comes first.
    expected = "non-finite weights: 'blocks.0.attn.qk.weight' has 1 NaN or infinite values"
    with pytest.raises(ValueError, match=expected):
        keras_convit.ConViT(**TINY, input_shape=(16, 16, 3), compile=False, weights=str(path))

    destination = tmp_path / "out.weights.h5"
    assert main(["convert", str(path), str(destination)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and str(path) in err[0]
    assert not destination.exists()


def test_nan_in_a_keras_weights_file_is_refused_and_the_model_kept(tmp_path):
    source = tiny()
    source.get_layer("head").kernel.assign(np.full((32, 3), np.nan, "float32"))
    path = tmp_path / "diverged.weights.h5"
    source.save_weights(path)
    model = tiny()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"'head\.weight' has 96 NaN"):
        load_weights(model, path)
    for value, kept in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(value, kept)
    good = tmp_path / "good.safetensors"
    export_reference_weights(tiny(), good)
    load_weights(model, good)  # the check passes finite weights
    assert np.isfinite(keras.ops.convert_to_numpy(model.get_layer("head").kernel)).all()
