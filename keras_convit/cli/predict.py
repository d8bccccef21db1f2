"""`keras-convit predict MODEL IMAGES...`: the top classes of each image, as CSV or JSON.

MODEL is a `.keras` file (such as a training run's model.keras), a weights file (.weights.h5,
.safetensors, .pth, .bin) with --variant naming its preset, or an artefact of
`keras-convit export` (.onnx, .tflite, .pt2 or a SavedModel folder). IMAGES are files, folders
(searched recursively) or globs. Each image is decoded as the training pipelines decode it
(grey and RGBA become RGB), resized and centre cropped to the model's input size.

Class names come from --class-names, else from the metrics.json of the training run beside a
.keras file, else from the sidecar `export` writes beside an artefact (<artefact>.classes.json),
else the ImageNet names for a 1000-class preset with ImageNet weights; otherwise the output
shows class indices. Images that do not decode, or have more pixels than --max-image-pixels,
are skipped and named on stderr. In CSV, a path or class name starting with =, +, -, @, a tab
or a carriage return gets a leading apostrophe, so that a spreadsheet shows it as text instead
of running it as a formula.

An ONNX or LiteRT artefact needs only its runtime and Pillow beside Keras (no TensorFlow:
Pillow decodes the images). A SavedModel runs its own TensorFlow graph (it can read and write
files) and a .pt2 program can hold pickled objects: both load only with --unsafe. A model whose
outputs are not finite (NaN weights) is an error; nothing is printed for it.

Exit status: 0 when every image was classified or skipped as undecodable; 1 when an input
names nothing (a missing file, a glob matching no image, a folder without images) but other
inputs were classified (a warning names each; the others' rows are written); 2 for a usage
error, when no input names a readable image, or when the model cannot be loaded or is broken.

Examples:
    keras-convit predict runs/demo/model.keras photos/ --top-k 3
    keras-convit predict convit_tiny.safetensors --variant convit_tiny "photos/*.jpg"
    keras-convit predict model.onnx photos/ --output predictions.json
"""

import argparse
import contextlib
import csv
import io
import os
import sys

import keras
import numpy as np

from keras_convit._files import write_json_atomically, write_text_atomically
from keras_convit.cli.image_limit import add_max_image_pixels_flag, max_image_pixels_of
from keras_convit.deploy.class_names import read_class_names
from keras_convit.deploy.classifier import load_classifier, model_kind
from keras_convit.deploy.images import find_images, load_images
from keras_convit.presets import IMAGENET_CROP_FRACTION, PRESETS

OUTPUT_SUFFIXES = (".csv", ".json")
DEFAULT_TOP_K = 5
UNREADABLE_LISTED = 3  # in the error when no image could be read
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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
        help="load a SavedModel folder or a .pt2 program, which can run their author's code (a "
        "SavedModel's graph can read and write files; a .pt2 can hold pickled objects): only "
        "for files you made or trust as a program (safe_mode=False of "
        "keras_convit.deploy.load_artifact). .onnx and .tflite files need no trust",
    )
    parser.add_argument(
        "--crop-fraction",
        type=float,
        default=1.0,
        metavar="F",
        help="centre crop keeping F of the shorter side before resizing (default 1.0: all; "
        f"{IMAGENET_CROP_FRACTION} is the DeiT / ImageNet evaluation crop)",
    )
    add_max_image_pixels_flag(parser)
    return parser


def run(args):
    """Classifies the images; writes one row per image that decodes; returns 0, or 1 when some
    input named nothing."""
    # TensorFlow decodes the images: keep its start-up lines and its warnings about the images
    # that do not decode (each is reported once, below) quiet.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _check_arguments(args)
    with max_image_pixels_of(args):
        return _classify(args)


def _classify(args):
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

    rows, unreadable = [], []
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
        failures = [f"{path}: {reason}" for path, reason in [*unreadable, *missing]]
        more = len(failures) - UNREADABLE_LISTED
        raise ValueError(
            f"none of the {len(paths)} images could be read: "
            + "; ".join(failures[:UNREADABLE_LISTED])
            + (f"; ... and {more} more" if more > 0 else "")
        )
    _write(rows, top_k, class_names, args.output)
    for path, reason in unreadable:
        print(f"keras-convit predict: skipped {path}: {reason}", file=sys.stderr)
    for item, reason in missing:
        print(f"keras-convit predict: warning: {item}: {reason}", file=sys.stderr)
    written = f"; wrote {args.output}" if args.output else ""
    not_found = f", {len(missing)} inputs not found" if missing else ""
    print(
        f"Classified {len(rows)} images ({len(unreadable)} skipped{not_found}){written}",
        file=sys.stderr,
    )
    return 1 if missing else 0


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


def spreadsheet_safe(text):
    """`text` for a CSV cell that a spreadsheet shows as text, never runs as a formula: a cell
    starting with =, +, -, @, a tab or a carriage return gets a leading apostrophe (OWASP's
    rule against CSV injection); the csv module does the quoting.

    >>> spreadsheet_safe("=HYPERLINK(1)"), spreadsheet_safe("cat")
    ("'=HYPERLINK(1)", 'cat')
    """
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


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
        write_json_atomically(output, records, ensure_ascii=False)
        return
    header = ["path"]
    for rank in range(1, top_k + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for path, best in rows:
        cells = [spreadsheet_safe(path)]
        for index, probability in best:
            cells += [spreadsheet_safe(name(index)), f"{probability:.6g}"]
        writer.writerow(cells)
    if output is None:
        sys.stdout.write(text.getvalue())
    else:
        write_text_atomically(output, text.getvalue())
