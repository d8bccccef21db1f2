"""Deployment: export to SavedModel, ONNX, LiteRT or torch.export, each artefact checked in its
own runtime, and the artefacts loaded back for prediction."""

from keras_convit.deploy.classifier import (
    Classifier,
    load_classifier,
    load_keras_model,
    model_kind,
    softmax,
)
from keras_convit.deploy.export import (
    FORMATS_BY_BACKEND,
    ExportMismatchError,
    ExportReport,
    export_formats,
    export_model,
)
from keras_convit.deploy.runtimes import ARTIFACT_SUFFIXES, Artifact, artifact_format, load_artifact

__all__ = [
    "ARTIFACT_SUFFIXES",
    "FORMATS_BY_BACKEND",
    "Artifact",
    "Classifier",
    "ExportMismatchError",
    "ExportReport",
    "artifact_format",
    "export_formats",
    "export_model",
    "load_artifact",
    "load_classifier",
    "load_keras_model",
    "model_kind",
    "softmax",
]
