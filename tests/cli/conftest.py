"""Shared files of the command tests: a tiny trained-run folder, weights of a preset, and a
folder of images with a corrupt JPEG and a text file named .png among them."""

import json
import types

import keras
import numpy as np
import pytest
from PIL import Image

import keras_convit

CLASS_NAMES = ["cat", "dog", "fox"]


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """Paths: `run/model.keras` (with the run's metrics.json), `weights` (.weights.h5 of the
    convit_digits preset, 3 classes), `images/` and the images' decoded RGB pixels."""
    root = tmp_path_factory.mktemp("cli")
    keras.utils.set_random_seed(1)
    run = root / "run"
    run.mkdir()
    model = keras_convit.ConViT(
        64, 4, depth=2, local_up_to_layer=1, patch_size=8, input_shape=(32, 32, 3),
        classes=3, compile=False,
    )  # fmt: skip
    model.save(run / "model.keras")
    (run / "metrics.json").write_text(
        json.dumps({"test_accuracy": 0.5, "class_names": CLASS_NAMES})
    )
    weights = root / "digits.weights.h5"
    keras_convit.from_preset("convit_digits", classes=3, compile=False).save_weights(weights)

    rng = np.random.default_rng(0)
    images = root / "images"
    (images / "nested" / "deeper").mkdir(parents=True)
    pixels = {}
    for name, mode, shape in (
        ("red.png", "RGB", (32, 32, 3)),
        ("grey.png", "L", (32, 32)),
        ("rgba.png", "RGBA", (32, 32, 4)),
    ):
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
        image.save(images / name)
        pixels[str(images / name)] = np.asarray(image.convert("RGB"), dtype="float32")
    photo = Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    photo.save(images / "nested" / "deeper" / "photo.jpg", quality=90)
    good_jpeg = (images / "nested" / "deeper" / "photo.jpg").read_bytes()
    (images / "broken.jpg").write_bytes(good_jpeg[:200])  # a JPEG cut short
    (images / "notes.png").write_text("not an image, whatever its name says")
    (images / "readme.txt").write_text("not named as an image: not listed")
    good = sorted([*pixels, str(images / "nested" / "deeper" / "photo.jpg")])
    return types.SimpleNamespace(
        root=root,
        class_names=CLASS_NAMES,
        keras_model=run / "model.keras",
        weights=weights,
        images=images,
        pixels=pixels,
        good=good,
        bad=[str(images / "broken.jpg"), str(images / "notes.png")],
    )
