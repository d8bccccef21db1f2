"""Any model `predict` and `export` take, loaded as one kind of thing: a `.keras` file, a
weights file of a named preset, or an exported artefact in its own runtime.

Each becomes a `Classifier`: its input shape, its number of classes, the class names it
carries, and `predict(images) -> probabilities` on float32 RGB images in [0, 255].
"""

import dataclasses
import os
import zipfile

import keras
import numpy as np

from keras_convit.deploy.class_names import find_class_names, read_outputs_logits
from keras_convit.deploy.runtimes import ARTIFACT_SUFFIXES, artifact_format, load_artifact
from keras_convit.models.conversion import model_from_weights
from keras_convit.models.labels import outputs_logits
from keras_convit.models.preprocessing import imagenet_classes
from keras_convit.presets import PRESETS, get_preset
from keras_convit.weights.checkpoints import require_finite

WEIGHT_SUFFIXES = (".weights.h5", ".safetensors", ".pth", ".bin")


@dataclasses.dataclass(frozen=True)
class Classifier:
    """A model that `predict` runs: its input (height, width, channels), its number of classes,
    the class names it carries (or None) and `predict(images) -> probabilities` on float32
    (batch, height, width, 3) images in [0, 255]."""

    image_shape: tuple
    num_classes: int
    class_names: tuple
    predict: object


def load_classifier(path, variant=None, batch_size=32, safe_mode=True):
    """The `Classifier` at `path`: a `.keras` file, a weights file with `variant`, or an
    exported artefact (read by `keras_convit.deploy.load_artifact`; `safe_mode=False` lets a
    SavedModel or a `.pt2` program load: both can run their author's code).

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> keras_convit.ConViT(64, 4, depth=2, local_up_to_layer=1, patch_size=8, classes=3,
    ...                     input_shape=(32, 32, 3), compile=False).save(path)
    >>> classifier = keras_convit.deploy.load_classifier(path)
    >>> classifier.image_shape, classifier.num_classes, classifier.class_names
    ((32, 32, 3), 3, None)
    >>> classifier.predict(np.zeros((2, 32, 32, 3), "float32")).sum(axis=-1).round(4)
    array([1., 1.], dtype=float32)
    """
    if model_kind(path, variant) == "artifact":
        return _artifact_classifier(path, safe_mode)
    model, class_names = load_keras_model(path, variant)
    logits = outputs_logits(model)

    def predict(images):
        outputs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
        return _finite(softmax(outputs) if logits else outputs, path)

    return Classifier(
        image_shape=tuple(model.input_shape[1:]),
        num_classes=int(model.output_shape[-1]),
        class_names=class_names,
        predict=predict,
    )


def model_kind(path, variant=None):
    """ "keras", "weights" or "artifact" for the model at `path`; ValueError or OSError (both one
    line from the command) when it is missing or its kind is unknown.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> _ = open(path, "wb").write(b"")
    >>> keras_convit.deploy.model_kind(path)
    'artifact'
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model at {path!r}")
    if path.lower().endswith(".keras"):
        kind = "keras"
    elif path.lower().endswith(WEIGHT_SUFFIXES):
        kind = "weights"
    else:
        try:
            artifact_format(path)
        except ValueError as error:
            if os.path.isdir(path):
                raise
            artifacts = ", ".join(suffix for suffix in ARTIFACT_SUFFIXES.values() if suffix)
            raise ValueError(
                f"unknown kind of model {path!r}: expected a .keras file, a weights file "
                f"({', '.join(WEIGHT_SUFFIXES)}) with --variant, or an exported artefact "
                f"({artifacts} or a SavedModel folder)"
            ) from error
        kind = "artifact"
    if kind == "weights" and variant is None:
        raise ValueError(
            f"the weights file {path!r} needs --variant NAME, the preset it holds "
            f"({', '.join(PRESETS)})"
        )
    if kind != "weights" and variant is not None:
        raise ValueError(f"--variant is for weights files; {path!r} holds its architecture")
    return kind


def load_keras_model(path, variant=None):
    """(a Keras classifier, its class names or None) from a `.keras` file or from a weights
    file of the preset `variant`; the weights' architecture must be the preset's.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "digits.weights.h5")
    >>> keras_convit.from_preset("convit_digits", classes=3, compile=False).save_weights(path)
    >>> model, names = keras_convit.deploy.load_keras_model(path, "convit_digits")
    >>> model.name, model.input_shape, model.output_shape, names
    ('convit_digits', (None, 16, 16, 3), (None, 3), None)
    """
    path = os.fspath(path)
    if model_kind(path, variant) == "artifact":
        raise ValueError(f"{path!r} is an exported artefact, not a Keras model or weights file")
    if variant is None:
        model = _load_keras_file(path)
        require_finite({w.path: keras.ops.convert_to_numpy(w) for w in model.weights}, path)
        class_names = find_class_names(path)
    else:
        preset = get_preset(variant)
        model, config = model_from_weights(path, preset=preset)
        if not config["include_top"] or config["input_shape"][2] != 3:
            raise ValueError(f"{path!r} holds no classifier of RGB images (no head, or not RGB)")
        class_names = None
        if preset.has_imagenet_weights and config["classes"] == 1000:
            class_names = tuple(name.split(",")[0] for _, name in imagenet_classes())
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[-1] != 3 or len(model.output_shape) != 2:
        raise ValueError(
            f"{path!r} is not an image classifier of RGB images: its input is {shape}, its "
            f"output {tuple(model.output_shape)}"
        )
    return model, class_names


def _load_keras_file(path):
    if not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise ValueError(
            f"{path!r} is not a whole .keras file (a zip archive): truncated or damaged; save "
            "or copy it again"
        )
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # zip, HDF5 and deserialisation errors of a user's file
        hint, detail = "", str(error)
        if "could not be deserialized" in detail or "Could not locate" in detail:
            detail = detail.strip().splitlines()[0]  # the rest is the whole model config
            hint = (
                " (Keras found a class it does not know: a keras_convit model loads after "
                "`import keras_convit`, which registers its layers; one saved by a newer "
                "keras_convit needs that version, and other custom layers their package)"
            )
        raise ValueError(f"cannot load {path!r} as a Keras model{hint}: {detail}") from error


def _finite(outputs, path):
    """`outputs`, or a ValueError when the model gave NaN or infinity for some image."""
    broken = ~np.isfinite(outputs).all(axis=-1)
    if broken.any():
        raise ValueError(
            f"{path!r} gave non-finite outputs (NaN or infinity) for {int(broken.sum())} of "
            f"{len(outputs)} images: the model is broken (diverged or damaged weights)"
        )
    return outputs


def softmax(logits):
    """Softmax over the last axis of a numpy array, in float32.

    >>> keras_convit.deploy.softmax(np.array([[0.0, np.log(3.0)]]))
    array([[0.25, 0.75]], dtype=float32)
    """
    shifted = np.asarray(logits, dtype="float64")
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return (exponentials / exponentials.sum(axis=-1, keepdims=True)).astype("float32")


def _artifact_classifier(path, safe_mode):
    artifact = load_artifact(path, safe_mode=safe_mode)
    image_shape = tuple(int(side) for side in artifact.image_shape)
    probe = np.asarray(artifact.predict(np.zeros((1, *image_shape), "float32")))
    logits = read_outputs_logits(path)  # recorded by `export`; None for an artefact of others
    reading = {} if logits is None else {"logits": logits}

    def predict(images):
        outputs = _finite(np.asarray(artifact.predict(images), dtype="float32"), path)
        if "logits" not in reading:  # no record: read once, on the first real batch
            sums = outputs.sum(axis=-1)
            reading["logits"] = not (np.all(outputs >= 0) and np.allclose(sums, 1.0, atol=1e-3))
        return _finite(softmax(outputs) if reading["logits"] else outputs, path)

    return Classifier(
        image_shape=image_shape,
        num_classes=int(probe.shape[-1]),
        class_names=find_class_names(path),
        predict=predict,
    )
