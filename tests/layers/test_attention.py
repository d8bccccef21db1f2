import numpy as np
import pytest
from keras import ops

from keras_convit.layers import MultiHeadSelfAttention
from keras_convit.layers.attention import scaled_dot_product_attention


def numpy_attention(layer, x):
    """The reference MHSA forward (fused qkv, softmax(q k^T / sqrt(d)) v, proj), in numpy."""
    weights = {w.path.split("/", 1)[1]: ops.convert_to_numpy(w) for w in layer.weights}
    batch, length, width = x.shape
    heads, head_dim = layer.num_heads, width // layer.num_heads
    qkv = (x @ weights["qkv/kernel"]).reshape(batch, length, 3, heads, head_dim)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    logits = q @ k.transpose(0, 1, 3, 2) * head_dim**-0.5
    attention = np.exp(logits - logits.max(-1, keepdims=True))
    attention /= attention.sum(-1, keepdims=True)
    out = (attention @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
    return out @ weights["proj/kernel"] + weights["proj/bias"]


def test_fast_and_explicit_paths_match_numpy_reference(rng):
    layer = MultiHeadSelfAttention(24, 3)
    layer.build((None, 7, 24))
    for weight in layer.weights:
        weight.assign(rng.normal(0, 0.3, weight.shape))
    x = rng.normal(size=(2, 7, 24)).astype("float32")
    expected = numpy_attention(layer, x)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), expected, atol=1e-5)
    explicit, scores = layer(x, return_attention_scores=True)
    np.testing.assert_allclose(ops.convert_to_numpy(explicit), expected, atol=1e-5)
    assert ops.convert_to_numpy(scores["attention"]).shape == (2, 3, 7, 7)


def test_qkv_bias_switch_and_validation():
    layer = MultiHeadSelfAttention(24, 3, qkv_bias=True)
    layer.build((None, 5, 24))
    assert sorted(w.path.split("/", 1)[1] for w in layer.weights) == [
        "proj/bias",
        "proj/kernel",
        "qkv/bias",
        "qkv/kernel",
    ]
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadSelfAttention(24, 5)


def test_scaled_dot_product_attention_against_numpy(rng):
    """Fewer queries than keys (class attention's shape), and bfloat16 inputs (softmax in
    float32, output in the inputs' dtype). On JAX with a CPU this is keras_convit's own batched
    products, elsewhere Keras' op. Mutation: the scale dropped, or the softmax over queries."""
    query = rng.normal(size=(2, 1, 3, 8)).astype("float32")
    key, value = (rng.normal(size=(2, 6, 3, 8)).astype("float32") for _ in range(2))
    logits = np.einsum("bthd,bshd->bhts", query, key) * 0.3
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    expected = np.einsum("bhts,bshd->bthd", weights / weights.sum(-1, keepdims=True), value)
    outputs = scaled_dot_product_attention(query, key, value, 0.3)
    np.testing.assert_allclose(ops.convert_to_numpy(outputs), expected, atol=1e-5)
    halves = [ops.cast(tensor, "bfloat16") for tensor in (query, key, value)]
    outputs = scaled_dot_product_attention(*halves, 0.3)
    assert ops.dtype(outputs) == "bfloat16"
    np.testing.assert_allclose(
        ops.convert_to_numpy(ops.cast(outputs, "float32")), expected, atol=0.05
    )
