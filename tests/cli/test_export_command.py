"""`keras-convit export`: the artefact it writes is one `keras-convit predict` reads, with the
class names beside it and the same top-1 as the Keras model; its user errors are one line."""

import json
import os

import pytest

from keras_convit.cli import export as export_command
from keras_convit.cli import main
from keras_convit.deploy import ARTIFACT_SUFFIXES, ExportMismatchError, export_formats

FORMATS = export_formats()
# Each export takes 6-40 s on two cores: the quickest format of the backend (as measured) runs
# in the quick suite, the others are marked slow.
QUICK_FORMAT = next(
    (f for f in ("torch", "litert", "tf_saved_model", "onnx") if f in FORMATS), None
)


def artefact_path(folder, format):
    """Where a `format` artefact goes: a SavedModel is a folder, the others are files."""
    return os.path.join(folder, "model" + ARTIFACT_SUFFIXES.get(format, ""))


def command(capsys, *arguments):
    """(status, stdout lines, stderr lines) of `keras-convit ARGUMENTS`."""
    try:
        status = main([*map(str, arguments)])
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out.strip().splitlines(), captured.err.strip().splitlines()


def top_predictions(capsys, model, images, output):
    trusted = str(model).endswith((".keras", ".onnx", ".tflite"))
    unsafe = [] if trusted else ["--unsafe"]  # a SavedModel or .pt2 the test made itself
    status, _, err = command(
        capsys, "predict", model, *images, "--top-k", "3", "--output", output, *unsafe
    )
    assert status == 0, err
    with open(output) as file:
        return {record["path"]: record["predictions"] for record in json.load(file)}


@pytest.mark.parametrize(
    "format",
    [
        pytest.param(format, marks=() if format == QUICK_FORMAT else pytest.mark.slow)
        for format in FORMATS
    ],
)
def test_an_exported_artefact_predicts_as_the_keras_model(workspace, tmp_path, format, capsys):
    path = artefact_path(tmp_path, format)
    status, out, err = command(capsys, "export", workspace.keras_model, path, "--format", format)
    assert status == 0, err
    assert len(out) == 1 and out[0].startswith(f"Wrote {path} ({format}); max |difference|")
    assert out[0].endswith(f"class names in {path}.classes.json")
    difference = float(out[0].split("Keras model ")[1].split(";")[0])
    assert difference < 1e-3
    with open(f"{path}.classes.json") as file:
        # The run's class names (from its metrics.json), and what the artefact outputs.
        assert json.load(file) == {
            "outputs": "probabilities",
            "class_names": list(workspace.class_names),
        }

    images = sorted(workspace.pixels)
    expected = top_predictions(capsys, workspace.keras_model, images, tmp_path / "keras.json")
    got = top_predictions(capsys, path, images, tmp_path / "artefact.json")
    assert got.keys() == expected.keys()
    for image, predictions in got.items():
        assert predictions[0]["class"] == expected[image][0]["class"]  # names from the sidecar
        for ours, theirs in zip(predictions, expected[image], strict=True):
            assert abs(ours["probability"] - theirs["probability"]) < 1e-4


@pytest.mark.slow  # an export, then predict on the artefact and on the weights: ~30 s
def test_weights_export_without_names_drops_stale_names(workspace, tmp_path, capsys):
    path = artefact_path(tmp_path, QUICK_FORMAT)
    stale = f"{path}.classes.json"
    with open(stale, "w") as file:
        json.dump(["left", "by", "another export"], file)
    status, out, err = command(
        capsys, "export", workspace.weights, path, "--format", QUICK_FORMAT,
        "--variant", "convit_digits",
    )  # fmt: skip
    assert status == 0, err
    assert "class names" not in out[0]
    with open(stale) as file:  # the stale names are gone; what the artefact outputs is kept
        assert json.load(file) == {"outputs": "logits"}
    images = sorted(workspace.pixels)
    got = top_predictions(capsys, path, images, tmp_path / "artefact.json")
    expected = top_predictions(
        capsys, workspace.weights, [*images, "--variant", "convit_digits"], tmp_path / "w.json"
    )
    for image, predictions in got.items():
        assert [p["class"] for p in predictions] == [str(p["index"]) for p in predictions]
        assert predictions[0]["index"] == expected[image][0]["index"]
        # The artefact returns logits, as its sidecar says: predict takes their softmax.
        assert abs(predictions[0]["probability"] - expected[image][0]["probability"]) < 1e-4


BAD = [
    (["{tmp}/missing.keras", "{tmp}/out.onnx", "--format", "onnx"], "no model at"),
    (["{weights}", "{tmp}/out.onnx", "--format", "onnx"], "needs --variant NAME"),
    (["{tmp}/model.onnx", "{tmp}/out.onnx", "--format", "onnx"], "already an exported artefact"),
    (["{model}", "{tmp}/out.onnx", "--format", "caffe"], "--format 'caffe' is not available"),
    (["{model}", "{tmp}/out.onnx"], "the following arguments are required: --format"),
    (["{model}", "{tmp}/out.onnx", "--format", "onnx", "--opset", "9"], "unrecognized"),
]


@pytest.mark.parametrize("arguments, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_export_is_one_line_with_status_2(workspace, tmp_path, arguments, expected, capsys):
    (tmp_path / "model.onnx").write_bytes(b"")
    places = {
        "{tmp}": str(tmp_path),
        "{model}": str(workspace.keras_model),
        "{weights}": str(workspace.weights),
    }
    for key, value in places.items():
        arguments = [argument.replace(key, value) for argument in arguments]
    status, out, err = command(capsys, "export", *arguments)
    assert status == 2
    assert len(err) == 1 and err[0].startswith("keras-convit export: error: "), err
    assert expected in err[0]
    assert not os.path.exists(tmp_path / "out.onnx")


def test_class_names_that_do_not_fit_are_one_line(workspace, tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("ant\nbee\n")
    path = artefact_path(tmp_path, QUICK_FORMAT)
    status, _, err = command(
        capsys, "export", workspace.keras_model, path, "--format", QUICK_FORMAT,
        "--class-names", names,
    )  # fmt: skip
    assert status == 2 and len(err) == 1
    assert "2 class names for a model of 3 classes" in err[0]
    assert not os.path.exists(path)


def test_an_artefact_that_differs_from_the_model_fails_with_status_1(
    workspace, tmp_path, capsys, monkeypatch
):
    def differing_export(model, path, format):
        raise ExportMismatchError("The exported model differs from model.predict by up to 0.5")

    monkeypatch.setattr(export_command, "export_model", differing_export)
    path = artefact_path(tmp_path, QUICK_FORMAT)
    status, out, err = command(
        capsys, "export", workspace.keras_model, path, "--format", QUICK_FORMAT
    )
    assert status == 1 and out == []
    assert err == ["keras-convit export: failed: The exported model differs from model.predict "
                   "by up to 0.5"]  # fmt: skip
    assert not os.path.exists(f"{path}.classes.json")
