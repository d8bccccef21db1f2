"""The export check trusts no output: NaN from the artefact (or from the model) fails it, and a
full disk while writing is one OSError naming the artefact. The exporter and the runtime are
replaced by stand-ins here (no real export: fast, on every backend)."""

import errno
import os

import keras
import numpy as np
import pytest

import keras_convit
from keras_convit.deploy import ExportMismatchError, export, export_formats, export_model
from keras_convit.deploy.runtimes import ARTIFACT_SUFFIXES

FORMAT = export_formats()[-1]


@pytest.fixture(scope="module")
def model():
    """One model for the module: its predict function is compiled once (seconds on JAX)."""
    return keras_convit.ConViT(
        32, 4, depth=2, local_up_to_layer=1, patch_size=8, classes=3,
        input_shape=(16, 16, 3), compile=False,
    )  # fmt: skip


class Runtime:
    """An artefact in its runtime that returns the model's outputs with `change` applied."""

    def __init__(self, model, change):
        self.model, self.change = model, change

    def predict(self, images):
        outputs = np.array(self.model.predict(images, verbose=0))
        self.change(outputs)
        return outputs


def write_stand_in(model, path):
    with open(path, "wb") as file:
        file.write(b"an artefact")


@pytest.mark.parametrize("where", ["one output", "all outputs"])
def test_nan_outputs_of_the_artefact_fail_the_check(model, tmp_path, monkeypatch, where):
    """Kills the mutation "the export check lets NaN outputs pass" (`difference > tolerance` is
    False for a NaN difference)."""

    def change(outputs):
        if where == "one output":
            outputs[1, 2] = np.nan
        else:
            outputs[...] = np.nan

    monkeypatch.setitem(export._EXPORTERS, FORMAT, write_stand_in)
    monkeypatch.setattr(export, "load_artifact", lambda path, safe_mode: Runtime(model, change))
    path = tmp_path / f"model{ARTIFACT_SUFFIXES[FORMAT] or '_saved'}"
    with pytest.raises(ExportMismatchError, match="non-finite outputs.*nothing was written"):
        export_model(model, path, format=FORMAT)
    assert os.listdir(tmp_path) == []

    # The stand-ins pass a faithful artefact: the failure above is the NaN's.
    monkeypatch.setattr(export, "load_artifact", lambda path, safe_mode: Runtime(model, id))
    assert export_model(model, path, format=FORMAT).max_abs_difference == 0.0


def test_a_model_with_nan_outputs_is_not_exported(model, tmp_path, monkeypatch):
    monkeypatch.setitem(export._EXPORTERS, FORMAT, write_stand_in)
    bias = model.get_layer("head").bias
    kept = keras.ops.convert_to_numpy(bias)
    bias.assign(np.array([0.0, np.nan, 0.0], "float32"))
    try:
        with pytest.raises(ExportMismatchError, match="model.predict gives non-finite outputs"):
            export_model(model, tmp_path / f"m{ARTIFACT_SUFFIXES[FORMAT] or '_s'}", format=FORMAT)
    finally:
        bias.assign(kept)
    assert os.listdir(tmp_path) == []


class ResourceExhaustedError(Exception):
    """As TensorFlow's file system raises it (by name: TensorFlow is not imported here)."""


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        ResourceExhaustedError("saved_model.pb; No space left on device"),
    ],
    ids=["OSError", "TensorFlow"],
)
def test_a_full_disk_while_writing_is_one_oserror(model, tmp_path, monkeypatch, error):
    def full_disk(model, path):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "half"), "wb") as file:
            file.write(b"half an artefact")
        raise error

    monkeypatch.setitem(export._EXPORTERS, FORMAT, full_disk)
    path = tmp_path / f"m{ARTIFACT_SUFFIXES[FORMAT] or '_saved'}"
    with pytest.raises(OSError) as raised:
        export_model(model, path, format=FORMAT)
    assert raised.value.errno == errno.ENOSPC
    message = str(raised.value)
    assert "no space left to write" in message and str(path) in message and "\n" not in message
    assert os.listdir(tmp_path) == []  # the scratch folder went with the failure


def test_other_exporter_errors_are_not_called_a_full_disk(model, tmp_path, monkeypatch):
    def broken(model, path):
        raise RuntimeError("an exporter bug")

    monkeypatch.setitem(export._EXPORTERS, FORMAT, broken)
    with pytest.raises(RuntimeError, match="an exporter bug"):
        export_model(model, tmp_path / f"m{ARTIFACT_SUFFIXES[FORMAT] or '_saved'}", format=FORMAT)


def test_a_mixed_precision_model_is_refused_with_the_way_to_export_it(tmp_path):
    """Mutation: the policy read from the model alone (a model built with
    `dtype="mixed_bfloat16"`, as `keras-convit train --dtype-policy` builds it, keeps float32
    itself; tf2onnx then wrote a graph that mixes float16 and bfloat16, which onnxruntime
    refuses to load)."""
    mixed = keras_convit.ConViT(
        hidden_dim=16, num_heads=2, depth=2, local_up_to_layer=1, patch_size=4,
        input_shape=(8, 8, 3), classes=3, dtype="mixed_bfloat16",
    )  # fmt: skip
    path = str(tmp_path / f"mixed{ARTIFACT_SUFFIXES[export_formats()[0]]}")
    with pytest.raises(ValueError, match="computes in mixed_bfloat16.*dtype='float32'"):
        export_model(mixed, path, format=export_formats()[0])
    assert os.listdir(tmp_path) == []
