"""Weights: loading Keras files, reference (timm / official) checkpoints and "imagenet";
exporting to the reference layout; position-embedding resampling for other resolutions; RGB
weights adapted to other channel counts."""

from keras_convit.weights.architecture import infer_architecture
from keras_convit.weights.channels import adapt_input_conv, adapt_statistics
from keras_convit.weights.checkpoints import read_reference_checkpoint
from keras_convit.weights.export import export_reference_weights, reference_state_dict
from keras_convit.weights.loading import (
    load_reference_state_dict,
    load_weights,
    validate_weights_argument,
)
from keras_convit.weights.resampling import resample_position_embedding

__all__ = [
    "adapt_input_conv",
    "adapt_statistics",
    "export_reference_weights",
    "infer_architecture",
    "load_reference_state_dict",
    "load_weights",
    "read_reference_checkpoint",
    "reference_state_dict",
    "resample_position_embedding",
    "validate_weights_argument",
]
