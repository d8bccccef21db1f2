"""Reading model weights from files."""

from keras_convit.weights.loading import load_weights

__all__ = ["load_weights"]
