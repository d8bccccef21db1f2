"""Loading is all or nothing: files are recognised by content, unsafe, truncated and mismatched
files are refused with one clear error, and the model keeps its weights."""

import argparse
import os

import keras
import numpy as np
import pytest
from weights_helpers import TINY_KERAS, perturb

import keras_convit
from keras_convit.weights import (
    export_reference_weights,
    load_reference_state_dict,
    load_weights,
    read_reference_checkpoint,
    reference_state_dict,
)

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")


def tiny(**kwargs):
    return keras_convit.ConViT(
        **{**TINY_KERAS, "input_shape": (32, 32, 3), "compile": False, **kwargs}
    )


@pytest.fixture
def source():
    """A tiny model whose weights all differ from a fresh model's (norms and gates included)."""
    return perturb(tiny(), np.random.default_rng(1))


def assert_same_weights(model, weights):
    for variable, value in zip(model.weights, weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), value, variable.path)


def assert_refused(model, path, match):
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        load_weights(model, path)
    assert_same_weights(model, before)


def torch_state(model):
    return {key: torch.from_numpy(value) for key, value in reference_state_dict(model).items()}


def write(kind, model, path):
    """Writes `model`'s weights to `path` in one of the supported formats."""
    if kind == "keras":
        keras_path = f"{path}.weights.h5"  # Keras insists on the suffix; renamed after
        model.save_weights(keras_path)
        os.replace(keras_path, path)
    elif kind == "safetensors":
        export_reference_weights(model, path)
    elif kind == "torch":
        torch.save(torch_state(model), path)
    elif kind == "torch_legacy":
        torch.save(torch_state(model), path, _use_new_zipfile_serialization=False)
    else:  # the official training checkpoints: wrapped, with the argparse options, DDP prefix
        wrapped = {f"module.{key}": value for key, value in torch_state(model).items()}
        torch.save({"model": wrapped, "epoch": 3, "args": argparse.Namespace(lr=5e-4)}, path)


FORMATS = ["keras", "safetensors", "torch", "torch_legacy", "official"]


def test_every_format_loads_whatever_its_suffix(source, tmp_path):
    model = tiny()
    for kind in FORMATS:
        path = str(tmp_path / f"{kind}.bin")  # a misleading suffix: the content decides
        write(kind, source, path)
        model.set_weights(tiny().get_weights() if kind == "keras" else model.get_weights())
        load_weights(model, path)
        for variable, value in zip(model.weights, source.get_weights(), strict=True):
            got = keras.ops.convert_to_numpy(variable)
            np.testing.assert_array_equal(got, value, f"{kind}: {variable.path}")
        model.set_weights([np.zeros_like(w) for w in model.get_weights()])


def test_bfloat16_checkpoints_load_as_float32(source, tmp_path):
    path = str(tmp_path / "bf16.pth")
    torch.save({key: value.bfloat16() for key, value in torch_state(source).items()}, path)
    model = tiny()
    load_weights(model, path)
    expected = torch_state(source)["norm.weight"].bfloat16().float().numpy()
    gamma = keras.ops.convert_to_numpy(model.get_layer("norm").gamma)
    np.testing.assert_array_equal(gamma, expected)


def test_one_error_lists_missing_unexpected_and_mismatched_keys(source, tmp_path):
    state = reference_state_dict(source)
    del state["blocks.1.mlp.fc2.bias"]
    state["blocks.7.attn.qk.weight"] = np.zeros((4, 4), "float32")
    state["head.weight"] = np.zeros((7, 64), "float32")
    path = str(tmp_path / "broken.safetensors")
    safetensors_numpy.save_file(state, path)
    model = tiny()
    before = model.get_weights()
    with pytest.raises(ValueError) as error:
        load_weights(model, path)
    message = str(error.value)
    assert "the model is unchanged" in message
    assert "Missing from the file (1):\n  blocks.1.mlp.fc2.bias (64,)" in message
    assert "Unexpected in the file (1):\n  blocks.7.attn.qk.weight (4, 4)" in message
    assert "head.weight: file (7, 64) vs model (5, 64)" in message
    assert_same_weights(model, before)


def test_only_the_head_differs_suggests_include_top_false(source):
    model = tiny(classes=7)
    with pytest.raises(ValueError, match="include_top=False"):
        load_reference_state_dict(model, reference_state_dict(source))


def test_a_model_without_head_ignores_the_checkpoint_head(source):
    model = tiny(include_top=False)
    load_reference_state_dict(model, reference_state_dict(source))
    assert not any(variable.path.startswith("head/") for variable in model.weights)
    np.testing.assert_array_equal(model.get_weights()[0], source.get_weights()[0])


def test_keras_files_round_trip_exactly_with_frozen_gates(tmp_path, rng):
    model = perturb(tiny(trainable_gating=False), rng)
    path = str(tmp_path / "frozen.weights.h5")
    model.save_weights(path)
    clone = tiny(trainable_gating=False)
    load_weights(clone, path)
    assert_same_weights(clone, model.get_weights())


def test_truncated_files_are_refused_clearly(source, tmp_path):
    model = tiny()
    for kind in FORMATS[:4]:
        path = str(tmp_path / kind)
        write(kind, source, path)
        with open(path, "rb") as file:
            content = file.read()
        for keep in (0.999, 0.5, 0.02):
            with open(path, "wb") as file:
                file.write(content[: max(9, int(len(content) * keep))])
            assert_refused(model, path, r"truncated|corrupt")


def test_files_of_other_kinds_are_refused(tmp_path):
    model = tiny()
    garbage = tmp_path / "random.safetensors"
    garbage.write_bytes(np.random.default_rng(0).bytes(256))
    assert_refused(model, str(garbage), "not a Keras weights file")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert_refused(model, str(empty), "empty")
    archive = tmp_path / "model.keras"
    model.save(archive)
    assert_refused(model, str(archive), r"whole Keras model \(\.keras archive\)")


class _Payload:
    """Pickles as a call to os.makedirs(marker): unpickling it runs code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_pickled_code_is_never_executed(source, tmp_path):
    import pickle

    marker = str(tmp_path / "payload_ran")
    malicious = str(tmp_path / "malicious.pth")
    torch.save({"model": torch_state(source), "extra": _Payload(marker)}, malicious)
    # The payload is live: an unrestricted torch.load runs it.
    torch.load(malicious, weights_only=False)
    assert os.path.isdir(marker)
    os.rmdir(marker)

    plain_pickle = str(tmp_path / "named_like.safetensors")
    with open(plain_pickle, "wb") as file:
        pickle.dump({"pos_embed": _Payload(marker)}, file, protocol=2)
    model = tiny()
    for path in (malicious, plain_pickle):
        assert_refused(model, path, "Refused to load .* pickled Python objects")
        assert not os.path.exists(marker)


def test_safetensors_metadata_and_wrappers_are_read(source, tmp_path):
    path = str(tmp_path / "exported.safetensors")
    export_reference_weights(source, path)
    state, metadata = read_reference_checkpoint(path)
    assert metadata["keras_convit.grid_size"] == "2,2"
    assert metadata["format"] == "pt"
    assert state["blocks.0.attn.qk.weight"].shape == (128, 64)
    assert all(value.dtype == np.float32 for value in state.values())
