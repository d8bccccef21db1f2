import numpy as np
import pytest
from harness import run_layer_test
from keras import ops

from keras_convit.layers import (
    GatedPositionalSelfAttention,
    MultiHeadSelfAttention,
    TransformerBlock,
)


def test_pre_norm_residual_structure(rng):
    block = TransformerBlock(32, 4, use_gpsa=True, grid_size=(2, 3))
    x = rng.normal(size=(2, 6, 32)).astype("float32")
    block(x)
    hidden = ops.convert_to_tensor(x) + block.attn(block.norm1(x))
    expected = hidden + block.mlp(block.norm2(hidden))
    np.testing.assert_allclose(
        ops.convert_to_numpy(block(x)), ops.convert_to_numpy(expected), atol=1e-5
    )
    assert block.norm1.epsilon == 1e-6 and block.norm2.epsilon == 1e-6


def test_attention_type_and_mlp_width():
    gpsa = TransformerBlock(32, 4, use_gpsa=True, mlp_ratio=3.0)
    gpsa.build((None, 16, 32))
    plain = TransformerBlock(32, 4, use_gpsa=False)
    plain.build((None, 17, 32))
    assert isinstance(gpsa.attn, GatedPositionalSelfAttention)
    assert isinstance(plain.attn, MultiHeadSelfAttention)
    assert tuple(gpsa.mlp.fc1.kernel.shape) == (32, 96)


def test_returns_attention_scores_and_rejects_gate_override_on_plain_attention(rng):
    block = TransformerBlock(32, 4, use_gpsa=False)
    x = rng.normal(size=(2, 5, 32)).astype("float32")
    outputs, scores = block(x, return_attention_scores=True)
    np.testing.assert_allclose(
        ops.convert_to_numpy(outputs), ops.convert_to_numpy(block(x)), atol=1e-5
    )
    assert ops.convert_to_numpy(scores["attention"]).shape == (2, 4, 5, 5)
    with pytest.raises(ValueError, match="gate_override"):
        block(x, gate_override=1.0)


def test_drop_path_only_in_training(rng):
    block = TransformerBlock(32, 4, drop_path_rate=0.5)
    x = rng.normal(size=(64, 5, 32)).astype("float32")
    inference = ops.convert_to_numpy(block(x))
    training = ops.convert_to_numpy(block(x, training=True))
    np.testing.assert_allclose(ops.convert_to_numpy(block(x)), inference)
    assert not np.allclose(training, inference)


def test_config_round_trip():
    run_layer_test(
        TransformerBlock,
        dict(hidden_dim=32, num_heads=4, use_gpsa=True, grid_size=(2, 3), locality_strength=2.0),
        (2, 6, 32),
        (2, 6, 32),
    )
