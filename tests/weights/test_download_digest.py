"""Downloads checked by trust on first use: the first download's SHA-256 is recorded beside the
cached file, and a cached file that no longer matches it is refused, never used. No network:
the origin is a local folder (a file:// URL, through the real `keras.utils.get_file`)."""

import os
import pathlib

import numpy as np
import pytest

import keras_convit
from keras_convit.weights import imagenet

safetensors_numpy = pytest.importorskip("safetensors.numpy")
TAG_FILE = "convit_tiny.fb_in1k.safetensors"


@pytest.fixture
def origin(tmp_path, monkeypatch):
    """A local origin holding a small checkpoint of convit_tiny, and an empty Keras home."""
    folder = tmp_path / "origin"
    folder.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv(imagenet.URL_ENVIRONMENT_VARIABLE, folder.as_uri() + "/{tag}.safetensors")
    safetensors_numpy.save_file(
        {"cls_token": np.ones((1, 1, 192), "float32")}, str(folder / TAG_FILE)
    )
    return folder / TAG_FILE


def test_the_first_download_is_recorded_and_a_changed_cache_is_refused(origin):
    path = pathlib.Path(imagenet.fetch_imagenet_weights("convit_tiny"))
    assert path == pathlib.Path(os.environ["KERAS_HOME"], "models", TAG_FILE)
    assert path.read_bytes() == origin.read_bytes()
    record = pathlib.Path(f"{path}.sha256")
    digest = imagenet.file_sha256(origin)
    assert record.read_text() == f"{digest}  {TAG_FILE}\n"
    assert imagenet.fetch_imagenet_weights("convit_tiny") == str(path)  # checked, then used

    # The cached file is replaced by another valid checkpoint: refused, never used or re-fetched.
    safetensors_numpy.save_file({"cls_token": np.zeros((1, 1, 192), "float32")}, str(path))
    changed = path.read_bytes()
    with pytest.raises(ValueError) as error:
        imagenet.fetch_imagenet_weights("convit_tiny")
    message = str(error.value)
    assert str(path) in message and digest in message and "Delete it" in message
    assert path.read_bytes() == changed  # left for the user to look at


def test_a_new_download_must_match_the_record_of_the_first(origin):
    path = pathlib.Path(imagenet.fetch_imagenet_weights("convit_tiny"))
    path.unlink()  # the cache is cleared, the record kept; the origin now serves another file
    safetensors_numpy.save_file({"cls_token": np.zeros((1, 1, 192), "float32")}, str(origin))
    with pytest.raises(ValueError, match="recorded in .*sha256 on its first download"):
        imagenet.fetch_imagenet_weights("convit_tiny")
    assert not path.exists()


def test_a_published_digest_is_checked_on_the_first_download(origin, monkeypatch):
    import dataclasses

    preset = dataclasses.replace(imagenet.PRESETS["convit_tiny"], sha256="0" * 64)
    monkeypatch.setattr(imagenet, "PRESETS", {**imagenet.PRESETS, "convit_tiny": preset})
    with pytest.raises(ValueError, match="published for it"):
        imagenet.fetch_imagenet_weights("convit_tiny")
    assert not pathlib.Path(os.environ["KERAS_HOME"], "models", TAG_FILE).exists()


def test_imagenet_weights_holding_nan_are_refused_naming_the_tensor(origin):
    safetensors_numpy.save_file({"cls_token": np.full((1, 1, 192), np.nan, "float32")}, str(origin))
    with pytest.raises(ValueError, match="non-finite weights: 'cls_token' has 192 NaN"):
        keras_convit.ConViTTiny(weights="imagenet", input_shape=(32, 32, 3), compile=False)
