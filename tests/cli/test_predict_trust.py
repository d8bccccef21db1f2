"""`keras-convit predict` trusts nothing it reads: NaN weights and non-finite outputs are errors
(never `nan` with exit 0), a damaged `.keras` file is named as such, and class names cannot
become spreadsheet formulas. Artefacts are hand-written ONNX graphs (no exporter: fast)."""

import csv
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from tiny_onnx import write_tiny_onnx

import keras_convit
from keras_convit.cli import main

pytest.importorskip("onnxruntime")


def predict(capsys, *arguments):
    status = main(["predict", *map(str, arguments)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip().splitlines()


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "image.png"
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(path)
    return path


def tiny_keras(path, **weights):
    model = keras_convit.ConViT(
        32, 4, depth=2, local_up_to_layer=1, patch_size=8, classes=3,
        input_shape=(16, 16, 3), compile=False,
    )  # fmt: skip
    for layer, value in weights.items():
        model.get_layer(layer).kernel.assign(value)
    model.save(path)
    return path


def test_a_model_with_nan_weights_or_outputs_is_an_error_not_nan(tmp_path, image, capsys):
    nan_model = tiny_keras(tmp_path / "nan.keras", head=np.full((32, 3), np.nan, "float32"))
    status, out, err = predict(capsys, nan_model, image)
    assert (status, out) == (2, "")
    assert len(err) == 1 and "non-finite weights: 'head/kernel' has 96 NaN" in err[0], err

    # Finite weights, NaN outputs: an artefact (its weights are not read) adding NaN.
    artefact = write_tiny_onnx(tmp_path / "nan.onnx", bias=(0.0, np.nan, 0.0))
    status, out, err = predict(capsys, artefact, image)
    assert (status, out) == (2, "")
    assert len(err) == 1 and "non-finite outputs (NaN or infinity) for 1 of 1 images" in err[0]


def test_a_damaged_or_foreign_keras_file_says_what_it_is(tmp_path, image, capsys):
    whole = tiny_keras(tmp_path / "model.keras")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(whole.read_bytes()[:-200])
    status, _, err = predict(capsys, truncated, image)
    assert status == 2 and "is not a whole .keras file" in err[0] and "truncated" in err[0]
    assert "File not found" not in err[0]

    # A class this keras_convit does not register (as ours are unknown without `import
    # keras_convit`): the first line of Keras' error, and the hint.
    foreign = tmp_path / "foreign.keras"
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(foreign, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                data = data.replace(b"keras_convit>TransformerBlock", b"keras_convit>Block2")
            target.writestr(item, data)
    status, _, err = predict(capsys, foreign, image)
    assert status == 2 and len(err) == 1
    assert "`import keras_convit`" in err[0] and "could not be deserialized" in err[0]
    assert len(err[0]) < 1000  # not the whole model config


def test_class_names_cannot_become_spreadsheet_formulas(tmp_path, image, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = ['=HYPERLINK("http://x","y")', "+1", "@SUM(A1)"]
    (tmp_path / "names.json").write_text(json.dumps(names))
    formula_image = tmp_path / "-1+1.png"
    formula_image.write_bytes(image.read_bytes())
    artefact = write_tiny_onnx(tmp_path / "tiny.onnx")
    status, out, _ = predict(
        capsys, artefact, "--class-names", tmp_path / "names.json", "--top-k", "3",
        "--", image, "-1+1.png",
    )  # fmt: skip
    assert status == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert sorted(rows[1][1::2][:3]) == sorted(f"'{name}" for name in names)
    assert rows[2][0] == "'-1+1.png"  # a path is a cell too
