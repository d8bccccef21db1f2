"""`Linear`: Keras' `Dense` with the bias fused into the matrix product under PyTorch; the
same outputs and gradients as `Dense` on every backend."""

import keras
import numpy as np
from keras import ops

from keras_convit.layers import Linear


def _pair(use_bias=True):
    """A `Linear` and a `Dense` holding the same random weights."""
    rng = np.random.default_rng(0)
    linear, dense = Linear(6, use_bias=use_bias), keras.layers.Dense(6, use_bias=use_bias)
    for layer in (linear, dense):
        layer.build((None, 5, 8))
    for weight, other in zip(linear.weights, dense.weights, strict=True):
        value = rng.normal(size=weight.shape).astype("float32")
        weight.assign(value)
        other.assign(value)
    return linear, dense


def test_equals_dense():
    """Mutation: the kernel passed to `torch.nn.functional.linear` untransposed (a shape
    error), or its bias dropped."""
    inputs = np.random.default_rng(1).normal(size=(3, 5, 8)).astype("float32")
    for use_bias in (True, False):
        linear, dense = _pair(use_bias)
        np.testing.assert_allclose(
            ops.convert_to_numpy(linear(inputs)), ops.convert_to_numpy(dense(inputs)), atol=1e-5
        )


def test_trains_as_dense():
    """One SGD step of each gives the same weights (the fused op's gradients, bias included)."""
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(4, 5, 8)).astype("float32")
    targets = rng.normal(size=(4, 5, 6)).astype("float32")
    trained = []
    for layer in _pair():
        model = keras.Sequential([keras.Input((5, 8)), layer])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(inputs, targets)
        trained.append([ops.convert_to_numpy(weight) for weight in layer.weights])
    for ours, theirs in zip(*trained, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
