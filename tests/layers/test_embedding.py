import numpy as np
import pytest
from keras import ops

from keras_convit.layers import (
    ClassTokenInsertion,
    PatchEmbedding,
    PositionEmbedding,
    TokenPooling,
)


def test_patch_tokens_are_row_major(rng):
    layer = PatchEmbedding(8, patch_size=4)
    images = rng.normal(size=(2, 8, 12, 3)).astype("float32")
    tokens = ops.convert_to_numpy(layer(images))
    assert tokens.shape == (2, 6, 8) and layer.grid_size == (2, 3)
    kernel = ops.convert_to_numpy(layer.proj.kernel)
    bias = ops.convert_to_numpy(layer.proj.bias)
    for token in range(6):
        row, col = divmod(token, 3)
        patch = images[:, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4]
        expected = np.einsum("bhwc,hwco->bo", patch, kernel) + bias
        np.testing.assert_allclose(tokens[:, token], expected, atol=1e-5)


def test_patch_embedding_uses_pytorch_default_init():
    layer = PatchEmbedding(64, patch_size=4)
    layer.build((None, 8, 8, 3))
    bound = 1 / np.sqrt(3 * 4 * 4)
    for weight in (layer.proj.kernel, layer.proj.bias):
        values = ops.convert_to_numpy(weight)
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.8 * bound


def test_patch_size_must_divide_the_image():
    with pytest.raises(ValueError, match="patch_size=4"):
        PatchEmbedding(8, patch_size=4).build((None, 10, 8, 3))


def test_position_embedding_and_class_token(rng):
    x = rng.normal(size=(3, 6, 8)).astype("float32")
    position = PositionEmbedding()
    embedded = ops.convert_to_numpy(position(x))
    np.testing.assert_allclose(
        embedded - x, np.broadcast_to(ops.convert_to_numpy(position.embedding), x.shape), atol=1e-6
    )
    insert = ClassTokenInsertion()
    with_token = ops.convert_to_numpy(insert(x))
    assert with_token.shape == (3, 7, 8)
    np.testing.assert_array_equal(with_token[:, 1:], x)
    for sample in with_token:
        np.testing.assert_array_equal(sample[0], ops.convert_to_numpy(insert.token)[0, 0])


def test_token_pooling(rng):
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(TokenPooling("token")(x)), x[:, 0])
    np.testing.assert_allclose(
        ops.convert_to_numpy(TokenPooling("avg")(x)), x[:, 1:].mean(1), atol=1e-6
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(TokenPooling("avg", num_prefix_tokens=0)(x)), x.mean(1), atol=1e-6
    )
    with pytest.raises(ValueError, match="pooling"):
        TokenPooling("max")
