"""`keras-convit predict MODEL IMAGES...`: the top classes of each image, as CSV or JSON.

MODEL is a `.keras` file (such as a training run's model.keras), a weights file (.weights.h5,
.safetensors, .pth, .bin) with --variant naming its preset, or an artefact of
`keras-convit export` (.onnx, .tflite, .pt2 or a SavedModel folder). IMAGES are files, folders
(searched recursively) or globs. Each image is decoded as the training pipelines decode it
(grey and RGBA become RGB), resized and centre cropped to the model's input size.

Class names come from --class-names, else from the metrics.json of the training run beside a
.keras file, else from the sidecar `export` writes beside an artefact (<artefact>.classes.json),
else the ImageNet names for a 1000-class preset with ImageNet weights; otherwise the output
shows class indices. Images that do not decode are skipped and named on stderr.

Examples:
    keras-convit predict runs/demo/model.keras photos/ --top-k 3
    keras-convit predict convit_tiny.safetensors --variant convit_tiny "photos/*.jpg"
    keras-convit predict model.onnx photos/ --output predictions.json
"""

import argparse
import contextlib
import csv
import dataclasses
import json
import os
import sys

import keras
import numpy as np

from keras_convit.data.augmentation import Augmentation
from keras_convit.deploy.class_names import find_class_names, read_class_names
from keras_convit.deploy.images import find_images, load_images
from keras_convit.deploy.runtimes import ARTIFACT_SUFFIXES, load_artifact
from keras_convit.models.conversion import describe_architecture
from keras_convit.models.convit import from_preset
from keras_convit.models.labels import outputs_logits
from keras_convit.models.preprocessing import imagenet_classes
from keras_convit.presets import PRESETS, get_preset
from keras_convit.weights.architecture import infer_architecture
from keras_convit.weights.loading import load_reference_state_dict, read_state_dict

WEIGHT_SUFFIXES = (".weights.h5", ".safetensors", ".pth", ".bin")
OUTPUT_SUFFIXES = (".csv", ".json")
DEFAULT_TOP_K = 5


def configure_parser(parser):
    """Adds the `predict` arguments.

    Example:
    >>> import argparse
    >>> args = configure_parser(argparse.ArgumentParser()).parse_args(["m.keras", "a.png", "b/"])
    >>> args.model, args.images, args.top_k, args.output
    ('m.keras', ['a.png', 'b/'], None, None)
    """
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "model", help="a .keras file, a weights file with --variant, or an exported artefact"
    )
    parser.add_argument("images", nargs="+", help="image files, folders (recursive) or globs")
    parser.add_argument(
        "--top-k",
        type=int,
        metavar="K",
        help=f"classes per image, best first (default {DEFAULT_TOP_K}, or all when fewer)",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="write FILE.csv or FILE.json (by its suffix) instead of CSV on stdout",
    )
    parser.add_argument(
        "--class-names",
        metavar="FILE",
        help="the class names in output order: a JSON list (.json) or a text file, one per line",
    )
    parser.add_argument(
        "--variant",
        metavar="NAME",
        help=f"the preset of a weights file: {', '.join(PRESETS)}",
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, metavar="N", help="images per step (default 32)"
    )
    parser.add_argument(
        "--unsafe",
        action="store_true",
        help="load a .pt2 artefact although pickled objects in it run code when loaded (only "
        "for files you made; safe_mode=False of keras_convit.deploy.load_artifact)",
    )
    parser.add_argument(
        "--crop-fraction",
        type=float,
        default=1.0,
        metavar="F",
        help="centre crop keeping F of the shorter side before resizing (default 1.0: all; "
        f"{Augmentation().crop_fraction} is the DeiT / ImageNet evaluation crop)",
    )
    return parser


def run(args):
    """Classifies the images; writes one row per image that decodes; returns 0."""
    # TensorFlow decodes the images: keep its start-up lines and its warnings about the images
    # that do not decode (each is reported once, below) quiet.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _check_arguments(args)
    paths, missing = find_images(args.images)
    if not paths:
        raise ValueError(
            "no images matched: " + "; ".join(f"{item} ({reason})" for item, reason in missing)
        )
    classifier = load_classifier(
        args.model, variant=args.variant, batch_size=args.batch_size, safe_mode=not args.unsafe
    )
    class_names = _class_names(args, classifier)
    top_k = min(DEFAULT_TOP_K, classifier.num_classes) if args.top_k is None else args.top_k
    if top_k > classifier.num_classes:
        raise ValueError(f"--top-k {top_k}: the model has only {classifier.num_classes} classes.")

    rows, unreadable = [], list(missing)
    bar = _progress_bar(len(paths))
    for start in range(0, len(paths), args.batch_size):
        batch = paths[start : start + args.batch_size]
        images, good, bad = load_images(batch, classifier.image_shape[:2], args.crop_fraction)
        unreadable.extend(bad)
        if good:
            probabilities = classifier.predict(images)
            best = np.argsort(-probabilities, axis=-1, kind="stable")[:, :top_k]
            for path, row, indices in zip(good, probabilities, best, strict=True):
                rows.append((path, [(int(i), float(row[i])) for i in indices]))
        if bar is not None:
            with contextlib.redirect_stdout(sys.stderr):
                bar.update(start + len(batch))
    if not rows:
        raise ValueError(
            f"none of the {len(paths)} images could be read: "
            + "; ".join(f"{path}: {reason}" for path, reason in unreadable)
        )
    _write(rows, top_k, class_names, args.output)
    for path, reason in unreadable:
        print(f"keras-convit predict: skipped {path}: {reason}", file=sys.stderr)
    written = f"; wrote {args.output}" if args.output else ""
    print(
        f"Classified {len(rows)} images ({len(unreadable)} skipped){written}",
        file=sys.stderr,
    )
    return 0


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
    `.pt2` program load).

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> keras_convit.ConViT(64, 4, depth=2, local_up_to_layer=1, patch_size=8, classes=3,
    ...                     input_shape=(32, 32, 3), compile=False).save(path)
    >>> classifier = load_classifier(path)
    >>> classifier.image_shape, classifier.num_classes, classifier.class_names
    ((32, 32, 3), 3, None)
    >>> classifier.predict(np.zeros((2, 32, 32, 3), "float32")).sum(axis=-1).round(4)
    array([1., 1.], dtype=float32)
    """
    kind = model_kind(path, variant)
    if kind == "artifact":
        return _artifact_classifier(path, safe_mode)
    model, class_names = load_keras_model(path, variant)
    logits = outputs_logits(model)

    def predict(images):
        outputs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
        return softmax(outputs) if logits else outputs

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
    >>> model_kind(path)
    'artifact'
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model at {path!r}")
    name = path.lower()
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ValueError(f"the folder {path!r} is not a SavedModel (no saved_model.pb)")
        kind = "artifact"
    elif name.endswith(".keras"):
        kind = "keras"
    elif name.endswith(WEIGHT_SUFFIXES):
        kind = "weights"
    elif name.endswith(tuple(suffix for suffix in ARTIFACT_SUFFIXES.values() if suffix)):
        kind = "artifact"
    else:
        artifacts = ", ".join(suffix for suffix in ARTIFACT_SUFFIXES.values() if suffix)
        raise ValueError(
            f"unknown kind of model {path!r}: expected a .keras file, a weights file "
            f"({', '.join(WEIGHT_SUFFIXES)}) with --variant, or an exported artefact "
            f"({artifacts} or a SavedModel folder)"
        )
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
    >>> model, names = load_keras_model(path, "convit_digits")
    >>> model.name, model.input_shape, model.output_shape, names
    ('convit_digits', (None, 16, 16, 3), (None, 3), None)
    """
    path = os.fspath(path)
    if model_kind(path, variant) == "artifact":
        raise ValueError(f"{path!r} is an exported artefact, not a Keras model or weights file")
    if variant is None:
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as error:  # zip, HDF5 and deserialisation errors of a user's file
            raise ValueError(f"cannot load {path!r} as a Keras model: {error}") from error
        class_names = find_class_names(path)
    else:
        model, class_names = _model_of_weights(path, get_preset(variant))
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[-1] != 3 or len(model.output_shape) != 2:
        raise ValueError(
            f"{path!r} is not an image classifier of RGB images: its input is {shape}, its "
            f"output {tuple(model.output_shape)}"
        )
    return model, class_names


def softmax(logits):
    """Softmax over the last axis of a numpy array, in float32.

    >>> softmax(np.array([[0.0, np.log(3.0)]]))
    array([[0.25, 0.75]], dtype=float32)
    """
    shifted = np.asarray(logits, dtype="float64")
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return (exponentials / exponentials.sum(axis=-1, keepdims=True)).astype("float32")


def _model_of_weights(path, preset):
    """The preset's model with the weights file `path`, and the ImageNet names for a 1000-class
    head of a preset with ImageNet weights."""
    state_dict, grid = read_state_dict(path)
    shapes = {key: tuple(value.shape) for key, value in state_dict.items()}
    config = infer_architecture(shapes, grid_size=grid, num_heads=preset.num_heads)
    different = [key for key, value in preset.architecture.items() if config[key] != value]
    if different:
        expected = ", ".join(f"{key} {preset.architecture[key]!r}" for key in different)
        raise ValueError(
            f"{path!r} holds {describe_architecture(config)}, not the {preset.name} "
            f"architecture ({expected})"
        )
    if not config["include_top"] or config["input_shape"][2] != 3:
        raise ValueError(f"{path!r} holds no classifier of RGB images (no head, or not RGB)")
    model = from_preset(
        preset.name,
        input_shape=config["input_shape"],
        classes=config["classes"],
        classifier_activation=None,
        compile=False,
    )
    load_reference_state_dict(model, state_dict, source_grid_size=grid, source=path)
    class_names = None
    if preset.has_imagenet_weights and config["classes"] == 1000:
        class_names = tuple(description.split(",")[0] for _, description in imagenet_classes())
    return model, class_names


def _artifact_classifier(path, safe_mode):
    if safe_mode and os.fspath(path).endswith(ARTIFACT_SUFFIXES["torch"]):
        raise ValueError(
            f"{path!r}: pickled objects in a .pt2 program run code when it loads; pass --unsafe "
            "only for a file you made"
        )
    artifact = load_artifact(path, safe_mode=safe_mode)
    image_shape = tuple(int(side) for side in artifact.image_shape)
    probe = np.asarray(artifact.predict(np.zeros((1, *image_shape), "float32")))
    reading = {}

    def predict(images):
        outputs = np.asarray(artifact.predict(images), dtype="float32")
        if "probabilities" not in reading:  # decided once, on the first real batch
            sums = outputs.sum(axis=-1)
            reading["probabilities"] = bool(
                np.all(outputs >= 0) and np.allclose(sums, 1.0, atol=1e-3)
            )
        return outputs if reading["probabilities"] else softmax(outputs)

    return Classifier(
        image_shape=image_shape,
        num_classes=int(probe.shape[-1]),
        class_names=find_class_names(path),
        predict=predict,
    )


def _check_arguments(args):
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0.0 < args.crop_fraction <= 1.0:
        raise ValueError(f"--crop-fraction must be in (0, 1], got {args.crop_fraction}")
    if args.output is not None:
        if not args.output.lower().endswith(OUTPUT_SUFFIXES):
            raise ValueError(f"--output {args.output!r} must end in .csv or .json")
        folder = os.path.dirname(args.output) or "."
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--output {args.output!r}: no folder {folder!r}")
    model_kind(args.model, args.variant)


def _class_names(args, classifier):
    if args.class_names is not None:
        names, source = read_class_names(args.class_names), f"--class-names {args.class_names}"
    else:
        names, source = classifier.class_names, f"the class names of {args.model}"
    if names is not None and len(names) != classifier.num_classes:
        raise ValueError(
            f"{source} lists {len(names)} classes, but the model has {classifier.num_classes}"
        )
    return names


def _progress_bar(total):
    """A `keras.utils.Progbar` on stderr when stderr is a terminal (stdout may hold the CSV)."""
    if not sys.stderr.isatty():
        return None
    with contextlib.redirect_stdout(sys.stderr):  # Progbar writes to, and asks, sys.stdout
        return keras.utils.Progbar(total, unit_name="image")


def _write(rows, top_k, class_names, output):
    def name(index):
        return class_names[index] if class_names is not None else str(index)

    if output is not None and output.lower().endswith(".json"):
        records = [
            {
                "path": path,
                "predictions": [
                    {"class": name(index), "index": index, "probability": probability}
                    for index, probability in best
                ],
            }
            for path, best in rows
        ]
        with open(output, "w", encoding="utf-8") as file:
            json.dump(records, file, indent=1, ensure_ascii=False)
            file.write("\n")
        return
    header = ["path"]
    for rank in range(1, top_k + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    with contextlib.ExitStack() as stack:
        if output is None:
            file = sys.stdout
        else:
            file = stack.enter_context(open(output, "w", encoding="utf-8", newline=""))
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        for path, best in rows:
            cells = [path]
            for index, probability in best:
                cells += [name(index), f"{probability:.6g}"]
            writer.writerow(cells)
