"""`keras-convit predict`: every good image gets a row, a bad one is named and skipped, the
probabilities are the model's, and every user error is one line with exit status 2."""

import csv
import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_convit.cli import main
from keras_convit.data import evaluation_batches
from keras_convit.data.images import max_image_pixels


def predict(capsys, *arguments):
    """(status, stdout, stderr lines) of `keras-convit predict ARGUMENTS`."""
    try:
        status = main(["predict", *map(str, arguments)])
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip().splitlines()


def test_a_folder_with_bad_files_gives_a_row_per_good_image_and_names_the_bad(workspace, capsys):
    status, out, err = predict(capsys, workspace.keras_model, workspace.images, "--top-k", "2")
    assert status == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["path", "class_1", "probability_1", "class_2", "probability_2"]
    assert [row[0] for row in rows[1:]] == workspace.good  # sorted; readme.txt not listed
    for row in rows[1:]:
        assert (
            row[1] in workspace.class_names and row[3] in workspace.class_names
        )  # names from metrics.json
        assert 1.0 >= float(row[2]) >= float(row[4]) >= 0.0
    skipped = [line for line in err if line.startswith("keras-convit predict: skipped ")]
    assert len(skipped) == 2
    for line, bad in zip(skipped, workspace.bad, strict=True):
        assert line.startswith(f"keras-convit predict: skipped {bad}: ")
    assert err[-1] == "Classified 4 images (2 skipped)"


def test_probabilities_are_the_models_on_the_decoded_images(workspace, tmp_path, capsys):
    output = tmp_path / "predictions.json"
    pngs = sorted(workspace.pixels)
    status, out, _ = predict(
        capsys, workspace.keras_model, *pngs, "--top-k", "3", "--output", output
    )
    assert status == 0 and out == ""
    records = json.loads(output.read_text())
    assert [record["path"] for record in records] == pngs
    model = keras.saving.load_model(workspace.keras_model, compile=False)
    expected = model.predict(np.stack([workspace.pixels[p] for p in pngs]), verbose=0)
    for record, probabilities in zip(records, expected, strict=True):
        best = record["predictions"]
        assert [entry["index"] for entry in best] == list(np.argsort(-probabilities))
        assert [entry["class"] for entry in best] == [
            workspace.class_names[e["index"]] for e in best
        ]
        got = np.array([entry["probability"] for entry in best])
        np.testing.assert_allclose(got, probabilities[[e["index"] for e in best]], atol=1e-5)

    # The same run as CSV: the same classes, probabilities to 6 significant digits.
    csv_output = tmp_path / "predictions.csv"
    assert predict(capsys, workspace.keras_model, *pngs, "--top-k", "3", "--output", csv_output)[
        0
    ] == 0  # fmt: skip
    with open(csv_output, newline="") as file:
        rows = list(csv.DictReader(file))
    for row, record in zip(rows, records, strict=True):
        assert row["path"] == record["path"]
        for rank, entry in enumerate(record["predictions"], start=1):
            assert row[f"class_{rank}"] == entry["class"]
            assert abs(float(row[f"probability_{rank}"]) - entry["probability"]) < 1e-5


def test_weights_with_a_variant_give_the_softmax_of_its_logits(workspace, tmp_path, capsys):
    # convit_digits takes 16x16 images: the 32x32 ones go through the evaluation transform.
    names = tmp_path / "names.txt"
    names.write_text("ant\nbee\n\nwasp\n")
    output = tmp_path / "out.json"
    status, _, err = predict(
        capsys, workspace.weights, workspace.images, "--variant", "ConViT-digits",
        "--class-names", names, "--top-k", "1", "--output", output,
    )  # fmt: skip
    assert status == 0, err
    records = json.loads(output.read_text())
    assert [record["path"] for record in records] == workspace.good

    import keras_convit

    model = keras_convit.from_preset(
        "convit_digits", classes=3, classifier_activation=None, compile=False
    )
    model.load_weights(workspace.weights)
    pngs = [path for path in workspace.good if path in workspace.pixels]
    examples = [(workspace.pixels[path], 0) for path in pngs]
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(
        (np.stack([x for x, _ in examples]), np.zeros(len(examples), "int32"))
    )
    (images, _), *_ = evaluation_batches(dataset, 3, (16, 16), 8, crop_fraction=1.0)
    logits = model.predict(images.numpy(), verbose=0)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    by_path = {record["path"]: record["predictions"][0] for record in records}
    for path, row in zip(pngs, probabilities, strict=True):
        assert by_path[path]["index"] == int(np.argmax(row))
        assert by_path[path]["class"] == ["ant", "bee", "wasp"][int(np.argmax(row))]
        assert abs(by_path[path]["probability"] - row.max()) < 1e-5


def test_globs_and_files_mix_and_a_missing_one_is_a_warning_and_status_1(workspace, capsys):
    status, out, err = predict(
        capsys, workspace.keras_model, workspace.images / "r*.png",
        workspace.images / "nested" / "**" / "*.jpg", workspace.images / "gone.png",
    )  # fmt: skip
    assert status == 1
    paths = [row[0] for row in list(csv.reader(io.StringIO(out)))[1:]]
    assert paths == [
        str(workspace.images / "red.png"),
        str(workspace.images / "rgba.png"),
        str(workspace.images / "nested" / "deeper" / "photo.jpg"),
    ]
    assert len(next(csv.reader(io.StringIO(out)))) == 1 + 2 * 3  # top-k: all 3 classes
    gone = workspace.images / "gone.png"
    assert err == [
        f"keras-convit predict: warning: {gone}: no such file or folder",
        "Classified 3 images (0 skipped, 1 inputs not found)",
    ]


def test_max_image_pixels_skips_the_larger_images_for_this_command_only(workspace, capsys):
    limit = 32 * 32  # the PNGs are 32x32, the photo 48x40
    photo = str(workspace.images / "nested" / "deeper" / "photo.jpg")
    before = max_image_pixels()
    arguments = [workspace.keras_model, *sorted(workspace.pixels), photo, "--top-k", "1"]
    status, out, err = predict(capsys, *arguments, "--max-image-pixels", limit)
    assert status == 0
    assert [row[0] for row in list(csv.reader(io.StringIO(out)))[1:]] == sorted(workspace.pixels)
    assert err[0].startswith(f"keras-convit predict: skipped {photo}: 48x40 = 1,920 pixels")
    assert "over the limit of 1,024" in err[0] and "--max-image-pixels" in err[0]
    assert max_image_pixels() == before  # restored after the command

    # Every image over the limit: one line naming the first three, counting the rest.
    status, _, err = predict(capsys, *arguments, "--max-image-pixels", 16)
    assert status == 2 and len(err) == 1 and err[0].count("over the limit of 16") == 3
    assert err[0].endswith("; ... and 1 more")  # four images

    status, out, _ = predict(capsys, *arguments, "--max-image-pixels", "none")
    assert status == 0 and len(list(csv.reader(io.StringIO(out)))) == 1 + 4


def test_a_progress_bar_shows_on_a_terminal_and_never_in_the_csv(workspace, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["predict", str(workspace.keras_model), str(workspace.images)]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert [row[0] for row in rows[1:]] == workspace.good
    assert "6/6" in terminal.getvalue()  # every listed file, the two skipped included


BAD = [
    (["{tmp}/missing.keras", "{images}"], "no model at"),
    (["{tmp}/model.pkl", "{images}"], "unknown kind of model"),
    (["{tmp}", "{images}"], "is not a SavedModel"),
    (["{weights}", "{images}"], "needs --variant NAME"),
    (["{tmp}/model.pt2", "{images}"], "Refused to load"),
    (["{tmp}/saved", "{images}"], "runs its own TensorFlow graph"),
    (["{weights}", "{images}", "--variant", "resnet50"], "Unknown model 'resnet50'"),
    (["{weights}", "{images}", "--variant", "convit_tiny"], "not the convit_tiny architecture"),
    (["{model}", "{images}", "--variant", "convit_tiny"], "--variant is for weights files"),
    (["{model}", "{tmp}/nothing/*.png"], "no images matched"),
    (["{model}", "{tmp}/empty"], "no images matched"),
    (["{model}", "{tmp}/gone.png"], "no images matched: {tmp}/gone.png (no such file or folder)"),
    (["{model}", "{images}/broken.jpg", "{images}/notes.png"], "none of the 2 images"),
    (["{model}", "{images}", "--top-k", "0"], "--top-k must be >= 1"),
    (["{model}", "{images}", "--top-k", "4"], "the model has only 3 classes"),
    (["{model}", "{images}", "--top-k", "two"], "argument --top-k: invalid int value"),
    (["{model}", "{images}", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["{model}", "{images}", "--crop-fraction", "0"], "--crop-fraction must be in (0, 1]"),
    (["{model}", "{images}", "--output", "{tmp}/out.txt"], "must end in .csv or .json"),
    (["{model}", "{images}", "--output", "{tmp}/no/out.csv"], "no folder"),
    (["{model}", "{images}", "--class-names", "{tmp}/two.txt"], "lists 2 classes"),
    (["{model}", "{images}", "--class-names", "{tmp}/gone.txt"], "No such file"),
    (["{model}", "{images}", "--class-names", "{tmp}/bad.json"], "is not valid JSON"),
    (["{model}", "{images}", "--topk", "2"], "unrecognized arguments: --topk 2"),
    (["{model}", "{images}", "--max-image-pixels", "0"], "a positive number of pixels or 'none'"),
    (["{model}"], "the following arguments are required: images"),
]


@pytest.mark.parametrize("arguments, expected", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_invocation_is_one_line_with_status_2(
    workspace, tmp_path, arguments, expected, capsys
):
    (tmp_path / "model.pkl").write_bytes(b"")
    (tmp_path / "model.pt2").write_bytes(b"")
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "two.txt").write_text("cat\ndog\n")
    (tmp_path / "bad.json").write_text("[cat, dog")
    places = {
        "{tmp}": str(tmp_path),
        "{images}": str(workspace.images),
        "{model}": str(workspace.keras_model),
        "{weights}": str(workspace.weights),
    }
    for key, value in places.items():
        arguments = [argument.replace(key, value) for argument in arguments]
    expected = expected.replace("{tmp}", str(tmp_path))
    status, out, err = predict(capsys, *arguments)
    assert status == 2
    assert len(err) == 1 and err[0].startswith("keras-convit predict: error: "), err
    assert expected in err[0]
    assert out == ""
    assert not (tmp_path / "out.txt").exists()


def test_python_m_keras_convit_predict_writes_json(workspace, tmp_path):
    output = tmp_path / "predictions.json"
    command = [
        sys.executable, "-m", "keras_convit", "predict", str(workspace.keras_model),
        str(workspace.images), "--output", str(output), "--top-k", "1",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = json.loads(output.read_text())
    assert [record["path"] for record in records] == workspace.good
    assert all(record["predictions"][0]["class"] in workspace.class_names for record in records)
    assert "Classified 4 images (2 skipped); wrote" in result.stderr
