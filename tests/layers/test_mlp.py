import math

import numpy as np
from harness import run_layer_test
from keras import ops

from keras_convit.layers import MLP


def exact_gelu(x):
    """The reference's nn.GELU(): x * Phi(x), with the error function (not the tanh form)."""
    return np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))(x)


def tanh_gelu(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def identity_mlp(width):
    """An MLP whose fc1 and fc2 are identities, so its output is the activation itself."""
    mlp = MLP(width, width)
    mlp.build((None, width))
    for dense in (mlp.fc1, mlp.fc2):
        dense.kernel.assign(np.eye(width, dtype="float32"))
        dense.bias.assign(np.zeros(width, "float32"))
    return mlp


def test_activation_is_the_exact_erf_gelu():
    # Around |x| = 2.7 the tanh approximation is 4.7e-4 away from the exact GELU.
    x = np.linspace(-4.0, 4.0, 3 * 32, dtype="float32").reshape(3, 2, 16)
    assert np.abs(exact_gelu(x) - tanh_gelu(x.astype("float64"))).max() > 4e-4
    out = ops.convert_to_numpy(identity_mlp(16)(x))
    np.testing.assert_allclose(out, exact_gelu(x.astype("float64")), rtol=0, atol=2e-6)


def test_matches_numpy_reference(rng):
    mlp = MLP(8, 24)
    mlp.build((None, 5, 8))
    for weight in mlp.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape))
    weights = {w.path.split("/", 1)[1]: ops.convert_to_numpy(w) for w in mlp.weights}
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    hidden = exact_gelu(x @ weights["fc1/kernel"] + weights["fc1/bias"])
    expected = hidden @ weights["fc2/kernel"] + weights["fc2/bias"]
    np.testing.assert_allclose(ops.convert_to_numpy(mlp(x)), expected, atol=1e-5)
    assert mlp.compute_output_shape((2, 5, 8)) == (2, 5, 8)


def test_dropout_only_in_training(rng):
    mlp = MLP(16, 32, dropout_rate=0.5)
    x = rng.normal(size=(4, 6, 16)).astype("float32")
    inference = ops.convert_to_numpy(mlp(x))
    np.testing.assert_allclose(ops.convert_to_numpy(mlp(x, training=False)), inference)
    assert not np.allclose(ops.convert_to_numpy(mlp(x, training=True)), inference)


def test_config_round_trip():
    run_layer_test(
        MLP, dict(hidden_dim=16, intermediate_dim=40, dropout_rate=0.1), (2, 3, 16), (2, 3, 16)
    )
