"""`keras-convit export`: the artefact it writes is one `keras-convit predict` reads, with the
class names beside it and the same top-1 as the Keras model; its user errors are one line."""

import json
import os

import pytest

from keras_convit.cli import main

try:
    from keras_convit.deploy import export_formats
except ImportError:  # keras_convit/deploy/export.py and __init__.py are written separately
    export_formats = None

needs_deploy = pytest.mark.skipif(
    export_formats is None,
    reason="keras_convit.deploy (export_formats, export_model, load_artifact) does not import",
)
FORMATS = tuple(export_formats()) if export_formats is not None else ()
# The artefact path per format: a SavedModel is a folder; the others are files.
SUFFIXES = {"onnx": ".onnx", "litert": ".tflite", "tflite": ".tflite", "torch_export": ".pt2"}


def artefact_path(folder, format):
    return os.path.join(folder, "model" + SUFFIXES.get(format, ""))


def command(capsys, *arguments):
    """(status, stdout lines, stderr lines) of `keras-convit ARGUMENTS`."""
    try:
        status = main([*map(str, arguments)])
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out.strip().splitlines(), captured.err.strip().splitlines()


def top_predictions(capsys, model, images, output):
    status, _, err = command(capsys, "predict", model, *images, "--top-k", "3", "--output", output)
    assert status == 0, err
    with open(output) as file:
        return {record["path"]: record["predictions"] for record in json.load(file)}


@needs_deploy
@pytest.mark.parametrize("format", FORMATS or ["(none)"])
def test_an_exported_artefact_predicts_as_the_keras_model(workspace, tmp_path, format, capsys):
    path = artefact_path(tmp_path, format)
    status, out, err = command(capsys, "export", workspace.keras_model, path, "--format", format)
    assert status == 0, err
    assert len(out) == 1 and out[0].startswith(f"Wrote {path} ({format}); max |difference|")
    assert out[0].endswith(f"class names in {path}.classes.json")
    difference = float(out[0].split("Keras model ")[1].split(";")[0])
    assert difference < 1e-3
    with open(f"{path}.classes.json") as file:
        assert json.load(file) == list(workspace.class_names)  # from the run's metrics.json

    images = sorted(workspace.pixels)
    expected = top_predictions(capsys, workspace.keras_model, images, tmp_path / "keras.json")
    got = top_predictions(capsys, path, images, tmp_path / "artefact.json")
    assert got.keys() == expected.keys()
    for image, predictions in got.items():
        assert predictions[0]["class"] == expected[image][0]["class"]  # names from the sidecar
        for ours, theirs in zip(predictions, expected[image], strict=True):
            assert abs(ours["probability"] - theirs["probability"]) < 1e-4


@needs_deploy
def test_weights_export_with_class_names_and_a_stale_sidecar_removed(workspace, tmp_path, capsys):
    format = FORMATS[0]
    path = artefact_path(tmp_path, format)
    names = tmp_path / "names.json"
    names.write_text(json.dumps(["ant", "bee", "wasp"]))
    arguments = ["export", workspace.weights, path, "--format", format, "--variant"]
    status, _, err = command(capsys, *arguments, "convit_digits", "--class-names", names)
    assert status == 0, err
    with open(f"{path}.classes.json") as file:
        assert json.load(file) == ["ant", "bee", "wasp"]
    predictions = top_predictions(capsys, path, [workspace.images], tmp_path / "out.json")
    assert sorted(predictions) == workspace.good
    assert {p[0]["class"] for p in predictions.values()} <= {"ant", "bee", "wasp"}

    # Exported again without names: the old sidecar would name the classes wrongly.
    assert command(capsys, *arguments, "convit_digits")[0] == 0
    assert not os.path.exists(f"{path}.classes.json")


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


@needs_deploy
def test_class_names_that_do_not_fit_are_one_line(workspace, tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("ant\nbee\n")
    path = artefact_path(tmp_path, FORMATS[0])
    status, _, err = command(
        capsys, "export", workspace.keras_model, path, "--format", FORMATS[0],
        "--class-names", names,
    )  # fmt: skip
    assert status == 2 and len(err) == 1
    assert "2 class names for a model of 3 classes" in err[0]
    assert not os.path.exists(path)
