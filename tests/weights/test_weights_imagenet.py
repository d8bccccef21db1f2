"""weights="imagenet" end to end from a local file:// origin, and fast, clear failures offline.
No test touches the network: the origin is a local folder or a refused connection."""

import os
import pathlib
import socket
import time

import keras
import numpy as np
import pytest
from weights_helpers import perturb

import keras_convit
from keras_convit.presets import IMAGENET_URL_TEMPLATE
from keras_convit.weights import export_reference_weights, imagenet, load_weights

pytest.importorskip("safetensors")


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """An empty local origin ({tag}.safetensors files) and an empty Keras cache."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv(
        imagenet.URL_ENVIRONMENT_VARIABLE, pathlib.Path(folder).as_uri() + "/{tag}.safetensors"
    )
    return folder


@pytest.fixture
def offline(monkeypatch):
    """No network: every connection attempt fails at once, as without a route or DNS."""

    def unreachable(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setenv(imagenet.URL_ENVIRONMENT_VARIABLE, IMAGENET_URL_TEMPLATE)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(socket, "getaddrinfo", unreachable)


def test_imagenet_weights_load_from_a_local_origin_and_are_cached(mirror, rng):
    source = keras_convit.ConViTTiny(compile=False)
    perturb(source, rng, scale=0.02)
    export_reference_weights(source, mirror / "convit_tiny.fb_in1k.safetensors")

    model = keras_convit.ConViTTiny(weights="imagenet")
    for variable, expected in zip(model.weights, source.get_weights(), strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), expected)
    cached = pathlib.Path(os.environ["KERAS_HOME"], "models", "convit_tiny.fb_in1k.safetensors")
    assert cached.is_file()

    # From the cache, without the origin; a headless model at another resolution.
    (mirror / "convit_tiny.fb_in1k.safetensors").unlink()
    features = keras_convit.ConViTTiny(
        weights="imagenet", include_top=False, classes=10, input_shape=(160, 160, 3)
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(features.get_layer("cls_token").token),
        keras.ops.convert_to_numpy(source.get_layer("cls_token").token),
    )


def test_a_corrupt_cached_file_is_fetched_again(mirror, tmp_path):
    good = mirror / "convit_small.fb_in1k.safetensors"
    keras_convit_numpy = pytest.importorskip("safetensors.numpy")
    keras_convit_numpy.save_file({"cls_token": np.ones((1, 1, 4), "float32")}, str(good))
    cache = pathlib.Path(os.environ["KERAS_HOME"], "models")
    cache.mkdir(parents=True)
    (cache / good.name).write_bytes(good.read_bytes()[:-3])
    path = imagenet.fetch_imagenet_weights("convit_small")
    assert pathlib.Path(path).read_bytes() == good.read_bytes()


def test_offline_fails_within_seconds_saying_how_to_pass_a_file(offline, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(ConnectionError) as error:
        keras_convit.ConViTTiny(weights="imagenet")
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert "huggingface.co/timm/convit_tiny.fb_in1k" in message
    assert 'weights="/path/to/model.safetensors"' in message
    assert imagenet.URL_ENVIRONMENT_VARIABLE in message


def test_a_silent_network_times_out_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv(imagenet.URL_ENVIRONMENT_VARIABLE, IMAGENET_URL_TEMPLATE)
    monkeypatch.setattr(imagenet, "CONNECT_TIMEOUT_S", 0.2)
    monkeypatch.setattr(socket, "create_connection", _silent)
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="no answer within"):
        imagenet.check_imagenet_available("convit_base")
    assert time.monotonic() - start < 3


def test_a_missing_local_origin_is_reported(mirror):
    with pytest.raises(ConnectionError, match="no such file"):
        keras_convit.ConViTBase(weights="imagenet")


def test_plus_variants_have_no_imagenet_weights(offline):
    for variant in ["ConViTTinyPlus", "ConViTSmallPlus", "ConViTBasePlus"]:
        with pytest.raises(ValueError, match=r"_plus .*never released"):
            getattr(keras_convit, variant)(weights="imagenet")


def test_imagenet_weights_need_the_reference_architecture(offline):
    # Another class count is a new head (tests/weights/test_new_head.py); another depth is not.
    with pytest.raises(ValueError, match=r"convit_base only; this architecture.*'depth': 6"):
        keras_convit.ConViT(192, 4, depth=6, local_up_to_layer=4, weights="imagenet")


def test_load_weights_imagenet_picks_the_variant_from_the_model(mirror, monkeypatch):
    requested = []
    monkeypatch.setattr(
        imagenet, "fetch_imagenet_weights", lambda variant: requested.append(variant) or "x"
    )
    model = keras_convit.ConViTTiny(input_shape=(32, 32, 3), compile=False)
    with pytest.raises(FileNotFoundError):
        load_weights(model, "imagenet")
    assert requested == ["convit_tiny"]
    shallow = keras_convit.from_preset(
        "convit_tiny", depth=2, local_up_to_layer=1, input_shape=(32, 32, 3), compile=False
    )
    with pytest.raises(ValueError, match="has none"):
        load_weights(shallow, "imagenet")  # refused before any download
    assert requested == ["convit_tiny"]


def _silent(*args, **kwargs):
    time.sleep(10)
    raise OSError(110, "Connection timed out")
