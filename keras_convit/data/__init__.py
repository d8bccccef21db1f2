"""Data sets and input pipelines."""

from keras_convit.data.digits import load_digits

__all__ = ["load_digits"]
