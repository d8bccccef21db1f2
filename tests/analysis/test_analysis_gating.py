import math

import keras
import numpy as np
import pytest
from analysis_helpers import build

from keras_convit import analysis
from keras_convit.layers.gpsa import convolutional_pos_proj_kernel


def conv_init_centers(num_heads):
    """(heads, 2) centres (dx, dy) of the convolutional init, from its kernel (3, heads)."""
    return convolutional_pos_proj_kernel(num_heads)[:2].T / 2


def test_fresh_model_gates_are_sigma_of_one():
    gates = analysis.gating(build())
    assert gates.shape == (2, 4)
    np.testing.assert_allclose(gates, 1 / (1 + math.exp(-1)), atol=1e-6)
    np.testing.assert_allclose(gates, 0.7311, atol=1e-4)


@pytest.mark.parametrize("num_heads, strength", [(4, 1.0), (9, 50.0)])
def test_fresh_model_centres_are_the_convolutional_init(num_heads, strength):
    # The 9-head model is the nonlocality test's one (same shapes: JAX compiles them once).
    overrides = dict(hidden_dim=36, num_heads=9, patch_size=2) if num_heads == 9 else {}
    model = build(locality_strength=strength, **overrides)
    centers = analysis.attention_centers(model)
    assert centers.center.shape == (2, num_heads, 2)
    for layer in range(2):
        np.testing.assert_allclose(centers.center[layer], conv_init_centers(num_heads), atol=1e-6)
    np.testing.assert_allclose(centers.span, 1 / strength, rtol=1e-6)
    np.testing.assert_allclose(centers.distance, np.linalg.norm(centers.center, axis=-1), rtol=1e-6)
    if num_heads == 9:  # integer centres on a 3x3 kernel, head 4 on the query itself
        assert set(np.unique(centers.center)) == {-1.0, 0.0, 1.0}
        np.testing.assert_allclose(centers.center[:, 4], 0.0, atol=1e-6)


def test_centres_follow_the_kernel_and_gates_follow_lambda():
    model = build()
    attn = model.get_layer("blocks_1").attn
    # Head 3 centred on (dx, dy) = (2, -1), alpha = 0.5: kernel (2 alpha Dx, 2 alpha Dy, -alpha).
    kernel = keras.ops.convert_to_numpy(attn.pos_proj.kernel).copy()
    kernel[:, 3] = (2.0, -1.0, -0.5)
    attn.pos_proj.kernel.assign(kernel)
    attn.gating_param.assign(np.array([-2.0, 0.0, 2.0, 5.0], "float32"))
    centers = analysis.attention_centers(model)
    np.testing.assert_allclose(centers.center[1, 3], (2.0, -1.0), rtol=1e-6)
    np.testing.assert_allclose(centers.span[1, 3], 2.0, rtol=1e-6)
    np.testing.assert_allclose(
        analysis.gating(model)[1], 1 / (1 + np.exp(-np.array([-2.0, 0.0, 2.0, 5.0]))), rtol=1e-6
    )


def test_models_without_gpsa():
    model = build(use_gpsa=False)
    assert analysis.gating(model).shape == (0, 0)
    assert analysis.attention_centers(model).center.shape == (0, 0, 2)
