"""Presets on disk and on hubs: `save_to_preset`, `from_preset(folder | hf:// | kaggle://)`,
`upload_preset`, and one clear error per bad preset."""

import importlib.util
import json
import os
import shutil

import keras
import numpy as np
import pytest
from harness import random_images, tiny_convit, to_numpy

import keras_convit
from keras_convit.models import preset_files

CLASSES = ["cat", "dog", "eel", "fox", "gnu"]


@pytest.fixture
def saved(tmp_path):
    model = tiny_convit(classifier_activation=None, drop_path_rate=0.1)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "finished", "settings": {"epochs": 7}}))
    metrics = {"test_accuracy": 0.625, "test_loss": 1.25, "class_names": CLASSES}
    (run / "metrics.json").write_text(json.dumps(metrics))
    folder = keras_convit.save_to_preset(model, tmp_path / "preset", run_directory=run)
    assert folder == str(tmp_path / "preset")
    return model, tmp_path / "preset"


def test_a_saved_preset_loads_as_saved_with_its_card(saved):
    model, folder = saved
    assert sorted(os.listdir(folder)) == [
        "README.md", "config.json", "metadata.json", "model.weights.h5", "preprocessor.json",
    ]  # fmt: skip
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["format_version"] == preset_files.PRESET_FORMAT_VERSION
    assert metadata["parameter_count"] == model.count_params()
    assert metadata["keras_version"] == keras.__version__
    preprocessor = json.loads((folder / "preprocessor.json").read_text())
    assert preprocessor["image_size"] == [32, 32] and preprocessor["class_names"] == CLASSES
    assert preprocessor["mean"] == list(keras_convit.PRESETS["convit_tiny"].mean)
    card = (folder / "README.md").read_text()
    for text in ("| epochs | 7 |", "| test_accuracy | 0.6250 |", "cat, dog", "Apache-2.0"):
        assert text in card, text
    assert "@inproceedings{dascoli2021convit" in card

    loaded = keras_convit.from_preset(folder)
    images = random_images()
    np.testing.assert_allclose(
        to_numpy(loaded(images))[0], to_numpy(model(images))[0], rtol=0, atol=1e-6
    )
    assert loaded.get_config() == model.get_config()
    assert loaded.optimizer is not None  # compiled, as ConViT compiles a classifier
    new_head = keras_convit.from_preset(str(folder), classes=2, compile=False)
    assert new_head.output_shape == (None, 2) and getattr(new_head, "optimizer", None) is None
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(new_head.get_layer("blocks_0").attn.qk.kernel),
        keras.ops.convert_to_numpy(model.get_layer("blocks_0").attn.qk.kernel),
    )


def test_only_convit_models_are_saved(tmp_path):
    with pytest.raises(ValueError, match="not a ConViT"):
        keras_convit.save_to_preset(keras.Sequential([keras.layers.Dense(2)]), tmp_path)
    with pytest.raises(ValueError, match="`class_names` has 2 names"):
        keras_convit.save_to_preset(tiny_convit(), tmp_path, class_names=["a", "b"])


def test_each_bad_preset_is_one_clear_error(saved, tmp_path):
    _, folder = saved

    def broken(name, change):
        copy = tmp_path / name
        shutil.copytree(folder, copy)
        change(copy)
        return copy

    def newer(copy):
        metadata = json.loads((copy / "metadata.json").read_text())
        (copy / "metadata.json").write_text(json.dumps({**metadata, "format_version": 99}))

    def truncate(copy):
        data = (copy / "model.weights.h5").read_bytes()
        (copy / "model.weights.h5").write_bytes(data[: len(data) // 2])

    cases = [
        (tmp_path / "run", ValueError, "not a keras_convit preset folder: it has no metadata"),
        (tmp_path / "absent", ValueError, "neither a preset folder nor a hub handle"),
        (broken("v99", newer), ValueError, "format version 99.*upgrade keras_convit"),
        (broken("half", truncate), ValueError, "truncated or replaced"),
        (
            broken("none", lambda c: (c / "model.weights.h5").unlink()),
            ValueError,
            "no weights file",
        ),
    ]
    with pytest.raises(ValueError, match="brings its own weights"):
        keras_convit.from_preset(folder, weights="other.weights.h5")
    for handle, error, message in cases:
        with pytest.raises(error, match=message):
            keras_convit.from_preset(handle)


def test_hub_handles_fail_at_once_and_clearly_offline(tmp_path, monkeypatch):
    if importlib.util.find_spec("huggingface_hub") is None:
        with pytest.raises(ImportError, match=r"pip install 'keras-convit\[hub\]'"):
            keras_convit.from_preset("hf://org/name")
    else:
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
        with pytest.raises(ConnectionError, match="not in the Hugging Face cache.*OFFLINE"):
            keras_convit.from_preset("hf://org/name")
    with pytest.raises(ValueError, match="hf://org/name, got"):
        keras_convit.from_preset("hf://just-a-name")
    if importlib.util.find_spec("kagglehub") is None:
        with pytest.raises(ImportError, match=r"kagglehub package: pip install 'keras-convit\[hub"):
            keras_convit.from_preset("kaggle://owner/model/keras/variant")


def test_upload_sends_the_preset_folder_and_its_card(saved, monkeypatch):
    hub = pytest.importorskip("huggingface_hub", reason="the upload needs huggingface_hub")
    _, folder = saved
    calls = {}
    monkeypatch.setattr(
        hub.HfApi, "create_repo", lambda self, repo_id, **kw: calls.update(repo=repo_id)
    )

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls.update(folder=folder_path, files=sorted(os.listdir(folder_path)))
        calls["card"] = open(os.path.join(folder_path, "README.md")).read()

    monkeypatch.setattr(hub.HfApi, "upload_folder", upload_folder)
    assert keras_convit.upload_preset(folder, "hf://org/tiny") == "org/tiny"
    assert calls["repo"] == "org/tiny" and calls["folder"] == os.fspath(folder)
    assert "model.weights.h5" in calls["files"] and "metadata.json" in calls["files"]
    assert calls["card"].startswith("---\nlibrary_name: keras") and "test_accuracy" in calls["card"]
    with pytest.raises(ValueError, match="uploads to hf://org/name"):
        keras_convit.upload_preset(folder, "kaggle://o/m/keras/v")
