"""`feature_extractor`: per-block spatial maps, timm's `forward_intermediates` channels last."""

import keras
import numpy as np
import pytest
from harness import NON_SQUARE_SHAPE, random_images, run_layer_test, tiny_convit, to_numpy

import keras_convit
from keras_convit.models import TokenMap


def test_token_map_contract():
    run_layer_test(
        TokenMap,
        {"grid_size": (2, 3), "num_prefix_tokens": 1},
        input_shape=(2, 7, 8),
        expected_output_shape=(2, 2, 3, 8),
    )


@pytest.mark.parametrize("overrides", [{}, {"distillation": True}, {"local_up_to_layer": 3}])
def test_maps_are_the_block_tokens_without_the_prefix_on_a_non_square_grid(overrides):
    arguments = {"input_shape": NON_SQUARE_SHAPE, "include_top": False, **overrides}
    if overrides.get("local_up_to_layer") == 3:
        arguments["pooling"] = "avg"
    model = tiny_convit(**arguments)
    extractor = keras_convit.feature_extractor(model)
    images = random_images(shape=NON_SQUARE_SHAPE)
    maps = extractor.predict(images, verbose=0)
    assert list(maps) == ["blocks_0", "blocks_1", "blocks_2"]
    blocks = keras.Model(model.inputs, [model.get_layer(f"blocks_{i}").output for i in range(3)])
    for index, tokens in enumerate(to_numpy(blocks(images))):
        prefix = tokens.shape[1] - 2 * 5
        expected = tokens[:, prefix:].reshape(2, 2, 5, 32)  # a 2x5 grid, row-major
        assert maps[f"blocks_{index}"].shape == (2, 2, 5, 32)
        np.testing.assert_allclose(maps[f"blocks_{index}"], expected, atol=1e-6)


def test_blocks_selects_and_refuses_clearly():
    model = tiny_convit(compile=False)
    extractor = keras_convit.feature_extractor(model, blocks=[-1, 0, 2])
    assert list(extractor.output) == ["blocks_2", "blocks_0"]
    for bad, message in [(3, "sequence"), ([5], "has 3 blocks"), ([], "empty")]:
        with pytest.raises(ValueError, match=message):
            keras_convit.feature_extractor(model, blocks=bad)
    with pytest.raises(ValueError, match="functional ConViT"):
        keras_convit.feature_extractor(keras.Sequential([keras.layers.Dense(2)]))


def test_a_saved_extractor_loads_with_the_same_maps(tmp_path):
    extractor = keras_convit.feature_extractor(tiny_convit(compile=False), blocks=[1])
    images = random_images()
    path = str(tmp_path / "features.keras")
    extractor.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        to_numpy(loaded(images))[0], to_numpy(extractor(images))[0], atol=1e-6
    )
