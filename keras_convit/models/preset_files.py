"""Presets on disk in keras-hub's file layout: `save_to_preset` writes a folder, `load_preset`
builds the model back on any backend.

A preset folder holds:
    config.json        the serialized model: {"class_name": "ConViT", "config": its arguments}
    model.weights.h5   the weights (no optimizer state)
    preprocessor.json  image size, channels, mean, std, crop fraction and the class names
    README.md          the model card
    metadata.json      written last: format version, keras_convit and Keras versions, backend,
                       parameter count, the preset it came from, the weights' size and SHA-256
"""

import datetime
import hashlib
import json
import os

import keras

from keras_convit._files import save_weights_safely, write_json_atomically, write_text_atomically
from keras_convit.models.convit import ConViT
from keras_convit.models.default_compile import compile_classifier
from keras_convit.models.model_arguments import convit_arguments
from keras_convit.models.model_card import model_card
from keras_convit.presets import (
    IMAGENET_CROP_FRACTION,
    PRESETS,
    canonical_name,
    preset_of_architecture,
)
from keras_convit.version import __version__
from keras_convit.weights.loading import load_weights

PRESET_FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE = "config.json", "model.weights.h5", "metadata.json"
PREPROCESSOR_FILE, CARD_FILE = "preprocessor.json", "README.md"


def save_to_preset(
    model, directory, *, class_names=None, run_directory=None, training=None, metrics=None
):
    """Saves a ConViT as a preset folder (keras-hub's layout) that `from_preset` loads on any
    backend.

    Args:
        model: a ConViT built by `keras_convit.ConViT`, a variant or `from_preset`.
        directory: the folder to write (created if needed; files there are replaced).
        class_names: the names of the head's classes, in output order (default: `metrics`'
            "class_names", else none).
        run_directory: a `keras-convit train` run folder: its `run.json` settings and
            `metrics.json` go into the model card (unless `training` / `metrics` are given).
        training: dict of training settings for the model card.
        metrics: dict of test metrics for the model card ("test_accuracy", ...).

    Returns:
        `directory`.

    >>> import tempfile
    >>> model = keras_convit.ConViT(32, 4, depth=2, local_up_to_layer=1, patch_size=8,
    ...                             input_shape=(32, 32, 3), classes=2)
    >>> folder = keras_convit.save_to_preset(model, tempfile.mkdtemp(), class_names=["a", "b"])
    >>> sorted(os.listdir(folder))
    ['README.md', 'config.json', 'metadata.json', 'model.weights.h5', 'preprocessor.json']
    """
    directory = os.fspath(directory)
    arguments, clean = convit_arguments(model)
    clean.set_weights(model.get_weights())
    if run_directory is not None:
        training = training if training is not None else _read_json_file(run_directory, "run.json")
        metrics = metrics if metrics is not None else _read_json_file(run_directory, "metrics.json")
        training = (training or {}).get("settings", training)
    metrics = dict(metrics or {})
    if class_names is None:
        class_names = metrics.get("class_names")
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if arguments["include_top"] and len(class_names) != arguments["classes"]:
            raise ValueError(
                f"`class_names` has {len(class_names)} names, the head {arguments['classes']} "
                "classes."
            )
    source = canonical_name(model.name) or getattr(preset_of_architecture(arguments), "name", None)
    os.makedirs(directory, exist_ok=True)
    metadata_path = os.path.join(directory, METADATA_FILE)
    if os.path.exists(metadata_path):
        os.remove(metadata_path)  # a folder half rewritten is not a preset
    config = {"module": "keras_convit", "class_name": "ConViT", "config": arguments}
    write_json_atomically(os.path.join(directory, CONFIG_FILE), config)
    weights_path = os.path.join(directory, WEIGHTS_FILE)
    save_weights_safely(clean, weights_path)
    preprocessor = {
        "image_size": arguments["input_shape"][:2],
        "channels": arguments["input_shape"][2],
        "mean": arguments.get("mean"),
        "std": arguments.get("std"),
        "crop_fraction": PRESETS[source].crop_fraction if source else IMAGENET_CROP_FRACTION,
        "inputs": "images in [0, 255], channels last; the model normalises them"
        if arguments["include_preprocessing"]
        else "images normalised as (x / 255 - mean) / std, channels last",
        "class_names": class_names,
    }
    write_json_atomically(os.path.join(directory, PREPROCESSOR_FILE), preprocessor)
    metadata = {
        "format_version": PRESET_FORMAT_VERSION,
        "keras_convit_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "parameter_count": clean.count_params(),
        "preset": source,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "weights": {
            "file": WEIGHTS_FILE,
            "bytes": os.path.getsize(weights_path),
            "sha256": _sha256(weights_path),
        },
    }
    card = model_card(arguments, metadata, preprocessor, training, metrics)
    write_text_atomically(os.path.join(directory, CARD_FILE), card)
    write_json_atomically(metadata_path, metadata)
    return directory


def read_preset_folder(directory):
    """(config, metadata, preprocessor) of a preset folder, after checking it is whole:
    ValueError naming the folder and what is wrong, before anything is built."""
    directory = os.fspath(directory)
    metadata = _read_json_file(directory, METADATA_FILE)
    config = _read_json_file(directory, CONFIG_FILE)
    if metadata is None or config is None:
        raise ValueError(
            f"{directory!r} is not a keras_convit preset folder: it has no "
            f"{METADATA_FILE if metadata is None else CONFIG_FILE} (keras_convit.save_to_preset "
            "writes config.json, model.weights.h5, preprocessor.json, README.md and "
            "metadata.json)."
        )
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > PRESET_FORMAT_VERSION:
        raise ValueError(
            f"The preset {directory!r} has format version {version!r}; this keras_convit "
            f"({__version__}) reads versions up to {PRESET_FORMAT_VERSION}: upgrade keras_convit."
        )
    if config.get("class_name") != "ConViT" or not isinstance(config.get("config"), dict):
        raise ValueError(f"{directory!r}: {CONFIG_FILE} does not describe a ConViT.")
    weights = os.path.join(directory, WEIGHTS_FILE)
    expected = metadata.get("weights", {})
    if not os.path.isfile(weights):
        raise ValueError(f"The preset {directory!r} has no weights file {WEIGHTS_FILE}.")
    size = os.path.getsize(weights)
    if size != expected.get("bytes") or _sha256(weights) != expected.get("sha256"):
        raise ValueError(
            f"The preset's weights file {weights!r} is {size} bytes, not the "
            f"{expected.get('bytes')} bytes of SHA-256 {expected.get('sha256')} that "
            f"{METADATA_FILE} records: truncated or replaced. Download or copy the preset again."
        )
    preprocessor = _read_json_file(directory, PREPROCESSOR_FILE) or {}
    return config, metadata, preprocessor


def load_preset(directory, **overrides):
    """The model of the preset folder `directory`, with `ConViT` arguments overriding the saved
    ones: it loads as saved; another `classes` keeps every weight but a new head (as
    `weights=`), another input size resamples the position embedding. Compiled as `ConViT`
    compiles (`compile=False` to skip)."""
    if "weights" in overrides:
        raise ValueError(
            "A saved preset brings its own weights: drop `weights=`, or build the named preset "
            "(`from_preset(name, weights=...)`)."
        )
    config, _, _ = read_preset_folder(directory)
    arguments = {**config["config"], **overrides}
    if "input_tensor" in overrides and "input_shape" not in overrides:
        del arguments["input_shape"]
    model = ConViT(**{**arguments, "weights": None, "compile": False})
    try:
        load_weights(model, os.path.join(os.fspath(directory), WEIGHTS_FILE), new_head=True)
    except (ValueError, OSError) as error:
        raise ValueError(f"The preset {os.fspath(directory)!r} does not load: {error}") from None
    if arguments.get("compile", True) and arguments.get("include_top", True):
        compile_classifier(model)
    return model


def _read_json_file(directory, name):
    path = os.path.join(os.fspath(directory), name)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path!r} is not valid JSON ({error}).") from None


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
