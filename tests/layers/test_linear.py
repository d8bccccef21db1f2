"""`Linear`: Keras' `Dense` with the bias fused into the matrix product under PyTorch and the
product taken over rows under JAX; the same outputs and gradients as `Dense` on every backend."""

import keras
import numpy as np
import pytest
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


def test_equals_dense_at_any_rank():
    """Rows of 2-D, 4-D and unknown-length inputs (JAX flattens the static inner axes and keeps
    Dense's own product when one is unknown). Mutation: the leading axes restored in the
    wrong order, or the units taken for the input width."""
    rng = np.random.default_rng(3)
    linear, dense = _pair()
    for shape in ((3, 8), (2, 3, 5, 8)):
        inputs = rng.normal(size=shape).astype("float32")
        np.testing.assert_allclose(
            ops.convert_to_numpy(linear(inputs)), ops.convert_to_numpy(dense(inputs)), atol=1e-5
        )
    tokens = keras.Input((None, 8))
    model = keras.Model(tokens, linear(tokens))
    inputs = rng.normal(size=(2, 7, 8)).astype("float32")
    assert model.output.shape == (None, None, 6)
    expected = ops.convert_to_numpy(dense(inputs))
    np.testing.assert_allclose(model.predict(inputs, verbose=0), expected, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the row product is JAX's")
def test_jax_product_over_rows():
    """Under JAX every matrix product of (batch, N, C) tokens, forward and gradient, is taken on
    2-D rows (the 3-D form made XLA:CPU transpose the weight gradients, see `Linear`).
    Mutation: the JAX branch removed."""
    import jax

    linear, _ = _pair()
    inputs = np.ones((3, 5, 8), "float32")
    values = [weight.value for weight in linear.trainable_weights]

    def loss(values, inputs):
        return ops.sum(linear.stateless_call(values, [], inputs)[0] ** 2)

    jaxpr = jax.make_jaxpr(jax.grad(loss))(values, inputs)
    products = [eqn for eqn in jaxpr.jaxpr.eqns if eqn.primitive.name == "dot_general"]
    assert len(products) == 2  # the forward product and the kernel's gradient
    assert all(len(var.aval.shape) == 2 for eqn in products for var in eqn.invars)
