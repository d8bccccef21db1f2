"""A user's own folder: bad files skipped and listed, defaults that fit small data, warnings,
per-class results, and a resumed run that notices changed data."""

import json

import numpy as np
from PIL import Image

from keras_convit.cli import main
from keras_convit.job import TrainConfig, small_data_defaults

TINY = json.dumps({"hidden_dim": 16, "num_heads": 2, "depth": 2, "local_up_to_layer": 1})


def messy_folder(root, rng):
    """3 classes of real-looking images, plus every kind of file a user's folder holds."""
    for label, name in enumerate(("ant", "bee", "cow")):
        folder = root / name
        folder.mkdir(parents=True)
        for index in range(8):
            pixels = rng.integers(0, 60, (20, 20, 3)) + 60 * label
            Image.fromarray(pixels.astype("uint8")).save(folder / f"{index}.png")
    Image.fromarray(rng.integers(0, 255, (20, 20)).astype("uint8")).save(root / "ant" / "gray.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 4)).astype("uint8")).save(
        root / "bee" / "rgba.png"
    )
    (root / "cow" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    whole = (root / "cow" / "0.png").read_bytes()
    (root / "cow" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "ant" / "notes.txt").write_text("a text file")
    return root


def test_a_messy_folder_trains_to_the_end_and_lists_the_bad_files(tmp_path, rng, capsys):
    data = messy_folder(tmp_path / "data", rng)
    run = tmp_path / "run"
    flags = ["--dataset", str(data), "--image-size", "16", "--model-args", TINY, "--epochs", "2",
             "--batch-size", "4", "--output-dir", str(run), "--verbose", "0"]  # fmt: skip
    assert main(["train", *flags]) == 0
    listed = (run / "unreadable.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == sorted(
        str(data / "cow" / name) for name in ("corrupt.jpg", "truncated.png")
    )
    assert "2 unreadable" in capsys.readouterr().out  # also in the summary
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["unreadable_files"] == 2 and metrics["class_names"] == ["ant", "bee", "cow"]
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["test_size"]
    assert set(metrics["per_class_accuracy"]) == {"ant", "bee", "cow"}
    for name in ("model.keras", "confusion_matrix.png", "learning_curves.png"):
        assert (run / name).stat().st_size > 0

    # The run is finished; pretend it was interrupted after epoch 1, then change the data.
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "status": "failed"}))
    (run / "checkpoint").mkdir()
    state = {"epoch": 1, "history": {}, "last_weights": None, "best_epoch": None,
             "best_value": None, "best_weights": None}  # fmt: skip
    (run / "checkpoint" / "state.json").write_text(json.dumps(state))
    Image.fromarray(rng.integers(0, 255, (20, 20, 3)).astype("uint8")).save(data / "ant" / "n.png")
    assert main(["train", *flags]) == 2
    assert "data set changed since the run" in capsys.readouterr().err
    assert json.loads((run / "run.json").read_text())["status"] == "failed"  # untouched


def test_small_data_defaults_follow_the_stated_rule():
    assert small_data_defaults(50_000) == {}
    assert small_data_defaults(64) == {
        "batch_size": 8,
        "learning_rate": 1e-3,
        "epochs": 300,
        "warmup_epochs": 5,
        "augmentation": "light",
    }
    assert small_data_defaults(64, epochs=30)["warmup_epochs"] == 3.0
    assert small_data_defaults(100_000 - 60_000, batch_size=16)["batch_size"] == 16
    folder = TrainConfig(dataset="/some/folder", epochs=30).resolved(train_size=64)
    assert (folder.batch_size, folder.learning_rate, folder.warmup_epochs) == (8, 1e-3, 3.0)
    # A given --base-lr keeps the linear scaling rule.
    scaled = TrainConfig(dataset="x", base_learning_rate=0.064).resolved(train_size=64)
    assert scaled.learning_rate == 0.064 * 8 / 512
    assert TrainConfig(dataset="x").resolved(train_size=1_000_000).batch_size == 128


def test_warnings_name_what_would_train_nothing():
    short = TrainConfig(dataset="x", epochs=3, warmup_epochs=5, batch_size=16).resolved()
    assert any("warm-up (5 epochs) is at least the run (3 epochs)" in w for w in short.warnings(4))
    assert any("learning rate" in w and "tiny" in w for w in short.warnings(4))  # 1.56e-05
    one_token = TrainConfig(model="ConViTTiny", image_size=16).resolved()
    assert any("1x1 patch grid" in w for w in one_token.warnings(40))
    assert TrainConfig().resolved().warnings(40) == []  # the digits job is fine
    assert TrainConfig(model="ConViTTiny").resolved().image_size == 224  # its preset's size
