"""`export_model`: a keras_convit model to a serving artefact with a free batch size, checked by
loading it in its own runtime and comparing it with `model.predict` before it is put in place."""

import dataclasses
import errno
import os
import tempfile

import keras
import numpy as np

from keras_convit._keras_compat import sublayers
from keras_convit.deploy.onnx_graph import restore_erf_divisions
from keras_convit.deploy.runtimes import ARTIFACT_SUFFIXES, load_artifact

# The formats of Keras 3.15's `model.export` on each backend that keras_convit checks in their
# runtime. Not here: "openvino" (no runtime in the pinned set), "tf_saved_model" and "litert"
# from torch (Keras refuses both for a torch model), "litert" from JAX (not offered).
FORMATS_BY_BACKEND = {
    "tensorflow": ("tf_saved_model", "onnx", "litert"),
    "jax": ("tf_saved_model", "onnx"),
    "torch": ("onnx", "torch"),
}
# float32 artefacts match `model.predict` to rounding (measured 3e-8 to 2e-6 on the outputs).
DEFAULT_TOLERANCE = 1e-5
_CHECK_BATCH = 3  # not the 1 or 2 that exporters trace with: shows the batch is really free


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What `export_model` wrote: `path`, `format`, and `max_abs_difference` between the
    artefact in its runtime and `model.predict` (None when not verified)."""

    path: str
    format: str
    max_abs_difference: float | None


class ExportMismatchError(ValueError):
    """The artefact's outputs differ from `model.predict` beyond the tolerance."""


def export_formats(backend=None):
    """The export formats offered for models of `backend` (default: the current one).

    Example:
    >>> keras_convit.deploy.export_formats("tensorflow")
    ('tf_saved_model', 'onnx', 'litert')
    """
    backend = backend or keras.backend.backend()
    if backend not in FORMATS_BY_BACKEND:
        raise ValueError(f"No export formats for backend {backend!r}.")
    return FORMATS_BY_BACKEND[backend]


def export_model(model, path, format="onnx", verify=True, tolerance=DEFAULT_TOLERANCE):
    """Exports `model` for serving, with a free batch size, and checks it in its runtime.

    The artefact is written beside `path`, loaded in its own runtime (onnxruntime, the LiteRT
    interpreter, TensorFlow, torch.export), compared with `model.predict` on a batch of 3 random
    images, and only then moved to `path` (replacing what was there): a failed export or check
    leaves `path` as it was.

    Args:
        model: a keras_convit model (any functional image model of fixed height, width and
            channels) in float32.
        path: where to write: `name.onnx`, `name.tflite`, `name.pt2`, or a directory for
            "tf_saved_model".
        format: one of `export_formats()` for the current backend.
        verify: whether to check the artefact in its runtime before moving it into place.
        tolerance: the largest absolute difference from `model.predict` accepted.

    Returns:
        An `ExportReport` (path, format, max_abs_difference).

    Example (an export takes seconds, so the suite runs this in tests/deploy instead):
    >>> model = keras_convit.ConViT(32, 4, depth=2, local_up_to_layer=1, patch_size=8,
    ...                             input_shape=(16, 16, 3), compile=False)
    >>> report = keras_convit.deploy.export_model(model, "tiny.onnx")  # doctest: +SKIP
    >>> report.max_abs_difference < 1e-5  # doctest: +SKIP
    True
    """
    path = os.fspath(path).rstrip(os.sep)
    image_shape = _validate_export(model, path, format)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    model(np.zeros((1, *image_shape), "float32"), training=False)  # ONNX exports need a call
    with tempfile.TemporaryDirectory(dir=directory, prefix=".export-") as scratch:
        written = os.path.join(scratch, os.path.basename(path))
        _write_artefact(model, written, format, path)
        difference = _compare_with_model(model, written, image_shape, tolerance) if verify else None
        _move_into_place(written, path)
    return ExportReport(path=path, format=format, max_abs_difference=difference)


def _write_artefact(model, written, format, path):
    """Runs the exporter; a full disk (ENOSPC, a quota, a file size limit), whether raised by
    Python or by TensorFlow's file system, becomes one OSError naming `path`."""
    try:
        _EXPORTERS[format](model, written)
    except Exception as error:
        if not _disk_full(error):
            raise
        raise OSError(
            errno.ENOSPC,
            f"no space left to write the {format} artefact {path} (nothing was written; free "
            f"some space in {os.path.dirname(os.path.abspath(path))} or write elsewhere)",
        ) from error


def _disk_full(error):
    codes = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    while error is not None:
        if isinstance(error, OSError) and error.errno in codes:
            return True
        # TensorFlow's file system raises ResourceExhaustedError (or another OpError) whose
        # message carries the operating system's: "No space left on device".
        message = str(error)
        if type(error).__name__ == "ResourceExhaustedError" or any(
            os.strerror(code) in message for code in codes
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


def _validate_export(model, path, format):
    formats = export_formats()
    if format not in formats:
        elsewhere = "; ".join(
            f"{backend}: {', '.join(offered)}" for backend, offered in FORMATS_BY_BACKEND.items()
        )
        raise ValueError(
            f"format={format!r} is not offered for a {keras.backend.backend()} model; choose "
            f"one of {', '.join(formats)} (by backend: {elsewhere})."
        )
    suffix = ARTIFACT_SUFFIXES[format]
    if suffix and not path.endswith(suffix):
        raise ValueError(f"A {format} artefact is a {suffix} file; got path={path!r}.")
    if not suffix and os.path.splitext(path)[1] in set(ARTIFACT_SUFFIXES.values()) - {""}:
        raise ValueError(f"A {format} artefact is a directory; got the file name {path!r}.")
    if not isinstance(model, keras.Model) or len(model.inputs) != 1:
        raise ValueError("export_model takes a keras_convit model (one image input).")
    image_shape = tuple(model.inputs[0].shape[1:])
    if None in image_shape:
        raise ValueError(f"Exports need a fixed image size; the model takes {image_shape}.")
    # A model built with `dtype="mixed_bfloat16"` (keras-convit train --dtype-policy) keeps the
    # float32 policy itself; its layers hold the mixed one, and the artefact mixes types.
    policies = {layer.dtype_policy.name for layer in [model, *sublayers(model)]} - {"float32"}
    if policies:
        raise ValueError(
            f"Exports are float32; the model computes in {', '.join(sorted(policies))}. "
            "Rebuild it with dtype='float32' (e.g. keras_convit.from_preset(RUN/preset, "
            "dtype='float32')) and export that."
        )
    return image_shape


def _keras_export(format):
    def export(model, path):
        model.export(path, format=format, verbose=False)

    return export


def _torch_onnx(model, path):
    """Keras' ONNX export of a torch model with a free batch takes the TorchScript exporter,
    which fails inside Keras' own layer normalisation (the normalised shape is read from the
    traced input). The dynamo exporter with a symbolic batch dimension does not."""
    import torch

    class ImagesToOutputs(torch.nn.Module):  # Keras' forward(*args) hides the input's name
        def __init__(self, keras_model):
            super().__init__()
            self.keras_model = keras_model

        def forward(self, images):
            return self.keras_model(images, training=False)

    sample = torch.zeros((2, *model.inputs[0].shape[1:]), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        ImagesToOutputs(model).eval(),
        (sample,),
        dynamo=True,
        dynamic_shapes=({0: batch},),
        input_names=[model.inputs[0].name],
        verbose=False,
    )
    program.optimize()
    program.save(path)


def _tensorflow_onnx(model, path):
    """Keras' ONNX export (tf2onnx), its GELU divisions restored so that onnxruntime fuses each
    GELU into one kernel (`keras_convit.deploy.onnx_graph`)."""
    import onnx

    model.export(path, format="onnx", verbose=False)
    graph = onnx.load(path)
    if restore_erf_divisions(graph):
        onnx.save(graph, path)


def _torch_export(model, path):
    import torch

    model.export(path, format="torch", verbose=False, dynamic_shapes={0: torch.export.Dim("batch")})


_EXPORTERS = {
    "tf_saved_model": _keras_export("tf_saved_model"),
    "litert": _keras_export("litert"),
    "onnx": {"torch": _torch_onnx, "tensorflow": _tensorflow_onnx}.get(
        keras.backend.backend(), _keras_export("onnx")
    ),
    "torch": _torch_export,
}


def _compare_with_model(model, path, image_shape, tolerance):
    images = np.random.default_rng(0).uniform(0, 255, (_CHECK_BATCH, *image_shape))
    images = images.astype("float32")
    expected = np.asarray(model.predict(images, verbose=0))
    if not np.isfinite(expected).all():
        raise ExportMismatchError(
            "model.predict gives non-finite outputs (NaN or infinity): the model is broken "
            "(diverged or damaged weights); nothing was written."
        )
    actual = load_artifact(path, safe_mode=False).predict(images)  # safe: written just now
    if actual.shape != expected.shape:
        raise ExportMismatchError(
            f"The {path} artefact returns {actual.shape} for {_CHECK_BATCH} images; "
            f"model.predict returns {expected.shape}."
        )
    if not np.isfinite(actual).all():  # a NaN difference passes no `>` test: named apart
        raise ExportMismatchError(
            f"The {path} artefact gives non-finite outputs (NaN or infinity) where "
            "model.predict gives finite ones; nothing was written."
        )
    difference = float(np.max(np.abs(actual - expected)))
    if not difference <= tolerance:  # `not <=`: a NaN difference fails too
        raise ExportMismatchError(
            f"The exported model differs from model.predict by up to {difference:.3g} "
            f"(tolerance {tolerance:g}); nothing was written."
        )
    return difference


def _move_into_place(written, path):
    """Replaces `path` by `written`; an old SavedModel directory is moved aside first (into the
    scratch directory, removed with it), so `path` never holds half of each."""
    if os.path.isdir(path) and not os.path.islink(path):
        os.replace(path, os.path.join(os.path.dirname(written), ".replaced"))
    os.replace(written, path)
