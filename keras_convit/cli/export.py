"""`keras-convit export MODEL OUT --format FORMAT`: writes a deployment artefact of a model.

MODEL is a `.keras` file (such as a training run's model.keras) or a weights file (.weights.h5,
.safetensors, .pth, .bin) with --variant naming its preset. The artefact (dynamic batch) is
loaded in its runtime and checked against the Keras model (`keras_convit.deploy.export_model`);
the formats are those of the current backend (`keras_convit.deploy.export_formats()`). The class
names, when known (--class-names, the training run's metrics.json, the ImageNet names of a
preset's 1000 classes), and whether the artefact outputs logits or probabilities, go beside
the artefact as <OUT>.classes.json, which `keras-convit predict` reads.

Examples:
    keras-convit export runs/demo/model.keras exported/demo.onnx --format onnx
    KERAS_BACKEND=tensorflow keras-convit export runs/demo/model.keras demo.tflite --format litert
"""

import argparse
import os

import keras

from keras_convit.cli.errors import CommandFailed
from keras_convit.deploy.class_names import read_class_names, write_sidecar
from keras_convit.deploy.classifier import load_keras_model, model_kind
from keras_convit.deploy.export import (
    FORMATS_BY_BACKEND,
    ExportMismatchError,
    export_formats,
    export_model,
)
from keras_convit.models.labels import outputs_logits
from keras_convit.presets import PRESETS


def configure_parser(parser):
    """Adds the `export` arguments.

    Example:
    >>> import argparse
    >>> parser = configure_parser(argparse.ArgumentParser())
    >>> args = parser.parse_args(["m.keras", "m.onnx", "--format", "onnx"])
    >>> args.model, args.output, args.format
    ('m.keras', 'm.onnx', 'onnx')
    """
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", help="a .keras file, or a weights file with --variant")
    parser.add_argument("output", help="the artefact to write (a file, or a SavedModel folder)")
    parser.add_argument(
        "--format",
        required=True,
        help=f"the artefact's format; on the {keras.backend.backend()} backend: "
        f"{', '.join(export_formats())}",
    )
    parser.add_argument(
        "--variant", metavar="NAME", help=f"the preset of a weights file: {', '.join(PRESETS)}"
    )
    parser.add_argument(
        "--class-names",
        metavar="FILE",
        help="the class names in output order (a JSON list or a text file, one per line), "
        "written beside the artefact",
    )
    return parser


def run(args):
    """Exports, checks the artefact in its runtime, and prints its path and difference."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if model_kind(args.model, args.variant) == "artifact":
        raise ValueError(f"{args.model!r} is already an exported artefact: export a .keras file")
    formats = export_formats()
    if args.format not in formats:
        elsewhere = [name for name, offered in FORMATS_BY_BACKEND.items() if args.format in offered]
        hint = f" (it is on KERAS_BACKEND={' or '.join(elsewhere)})" if elsewhere else ""
        raise ValueError(
            f"--format {args.format!r} is not available on the {keras.backend.backend()} "
            f"backend; choose from {', '.join(formats)}{hint}"
        )
    model, class_names = load_keras_model(args.model, args.variant)
    if args.class_names is not None:
        class_names = read_class_names(args.class_names)
    classes = int(model.output_shape[-1])
    if class_names is not None and len(class_names) != classes:
        raise ValueError(f"{len(class_names)} class names for a model of {classes} classes")

    try:
        report = export_model(model, args.output, format=args.format)
    except ExportMismatchError as error:  # not the user's doing: the exporter's or ours
        raise CommandFailed(f"failed: {error}", status=1) from error
    # Always written: it records the outputs, and replaces the names of an earlier export.
    sidecar = write_sidecar(report.path, outputs_logits(model), class_names)
    names_note = f"; class names in {sidecar}" if class_names is not None else ""
    print(
        f"Wrote {report.path} ({report.format}); max |difference| from the Keras model "
        f"{report.max_abs_difference:.3g}{names_note}"
    )
    return 0
