"""Details of the reference that decide parity with its weights and training, measured on a tiny
ConViT (see /work/shared/reference/convit.md section 6): LayerNorm epsilon 1e-6 everywhere, and
timm's trunc_normal_(std=0.02), which truncates at +-2 absolute, i.e. not at all."""

import math

import keras
import numpy as np
from harness import tiny_convit
from keras import ops

DEPTH = 2


def wide_convit():
    """The tiny ConViT at 64 wide: enough random weights (over 50,000) to measure their law."""
    return tiny_convit(hidden_dim=64, depth=DEPTH, local_up_to_layer=1, classes=10, compile=False)


def numpy_layer_norm(x, gamma, beta, epsilon):
    x = x.astype("float64")
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def test_every_layer_norm_uses_epsilon_1e_6(rng):
    model = wide_convit()
    norms = {"norm": model.get_layer("norm")}
    for index in range(DEPTH):
        block = model.get_layer(f"blocks_{index}")
        norms[f"blocks_{index}/norm1"], norms[f"blocks_{index}/norm2"] = block.norm1, block.norm2
    gammas = [w.path for w in model.weights if w.path.endswith("gamma")]
    assert len(gammas) == len(norms) == 2 * DEPTH + 1, gammas

    # Tokens whose variance (1e-6) is of the order of epsilon: with 1e-5 instead of 1e-6 the
    # output shrinks by a factor sqrt(11 / 2) = 2.3, with Keras' default 1e-3 by 30.
    tokens = 0.5 + 1e-3 * rng.standard_normal((2, 3, 64))
    tokens = (tokens - tokens.mean(-1, keepdims=True) + 0.5).astype("float32")
    for name, norm in norms.items():
        gamma, beta = rng.uniform(0.5, 1.5, 64), rng.normal(0, 0.1, 64)
        norm.gamma.assign(gamma.astype("float32"))
        norm.beta.assign(beta.astype("float32"))
        expected = numpy_layer_norm(tokens, gamma, beta, 1e-6)
        np.testing.assert_allclose(
            ops.convert_to_numpy(norm(tokens)), expected, rtol=1e-3, atol=1e-3, err_msg=name
        )
        shrunk = numpy_layer_norm(tokens, gamma, beta, 1e-5)
        assert np.abs(shrunk - expected).max() > 0.3  # the check above can tell them apart
        assert norm.epsilon == 1e-6, name


def test_linear_layers_start_from_an_untruncated_normal_with_std_0_02():
    model = wide_convit()
    # Random linear kernels; GPSA's v (identity) and pos_proj (convolutional init) and the patch
    # convolution (PyTorch's default uniform) have their own tests.
    random_layers = {"qk", "qkv", "proj", "fc1", "fc2", "head"}
    kernels = [
        w
        for w in model.weights
        if w.path.endswith("/kernel")
        and w.path.split("/")[-2] in random_layers
        and not w.path.startswith("patch_embed")
    ]
    assert {w.path.split("/")[-2] for w in kernels} == random_layers
    values = np.concatenate([ops.convert_to_numpy(w).ravel() for w in kernels])
    assert values.size > 50_000
    assert abs(values.mean()) < 1e-3
    np.testing.assert_allclose(values.std(), 0.02, rtol=0.02)
    # N(0, 0.02^2) puts 4.55% of the weights beyond 2 sigma; Keras' TruncatedNormal puts none.
    beyond_two_sigma = np.mean(np.abs(values) > 0.04)
    assert abs(beyond_two_sigma - math.erfc(2 / math.sqrt(2))) < 0.005, beyond_two_sigma
    assert np.mean(np.abs(values) > 0.07) > 2e-4  # 3.5 sigma: 4.7e-4 of the weights

    # The embeddings draw from the same distribution.
    embeddings = np.concatenate(
        [
            ops.convert_to_numpy(model.get_layer("pos_embed").embedding).ravel(),
            ops.convert_to_numpy(model.get_layer("cls_token").token).ravel(),
        ]
    )
    np.testing.assert_allclose(embeddings.std(), 0.02, rtol=0.1)
    assert np.mean(np.abs(embeddings) > 0.04) > 0.02

    # Biases start at 0, LayerNorms at the identity.
    for weight in model.weights:
        value = ops.convert_to_numpy(weight)
        if weight.path.endswith("bias") and not weight.path.startswith("patch_embed"):
            np.testing.assert_array_equal(value, 0.0, err_msg=weight.path)
        elif weight.path.endswith("gamma"):
            np.testing.assert_array_equal(value, 1.0, err_msg=weight.path)
        elif weight.path.endswith("beta"):
            np.testing.assert_array_equal(value, 0.0, err_msg=weight.path)
    assert isinstance(model.get_layer("norm"), keras.layers.LayerNormalization)
