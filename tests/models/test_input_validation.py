"""Every invalid argument raises a ValueError naming the argument, its value and what is allowed."""

import keras
import pytest
from harness import tiny_convit

import keras_convit


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(input_shape=(36, 32, 3)), r"input_shape=\(36, 32, 3\).*multiples of patch_size=8"),
        (dict(input_shape=(8, 4, 3), patch_size=8), r"too small.*patch_size=8"),
        (dict(input_shape=(None, 32, 3)), r"input_shape.*static"),
        (dict(input_shape=(32, 32)), r"input_shape.*\(height, width, channels\)"),
        (dict(num_heads=5), r"num_heads.*hidden_dim=32.*num_heads=5"),
        (dict(hidden_dim=0), r"hidden_dim.*positive integer"),
        (dict(local_up_to_layer=4), r"local_up_to_layer.*\[0, depth=3\].*local_up_to_layer=4"),
        (dict(local_up_to_layer=3), r'local_up_to_layer=3 equals depth=3.*pooling="avg"'),
        (dict(pooling="max"), r"pooling.*'token', 'avg'.*pooling='max'"),
        (dict(pooling=None), r"pooling.*include_top=True.*pooling=None"),
        (dict(classes=0), r"classes.*positive integer.*classes=0"),
        (dict(weights="imagenet_typo"), r"weights.*existing.*weights='imagenet_typo'"),
        (dict(mean=(0.5, 0.5)), r"statistics for 3 channels must have 3 values.*got 2"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_convit(**kwargs)


def test_all_gpsa_blocks_with_average_pooling_are_allowed():
    model = tiny_convit(local_up_to_layer=3, pooling="avg", classes=3)
    assert "cls_token" not in [layer.name for layer in model.layers]


def test_rgb_weights_load_into_a_one_channel_model(tmp_path):
    # timm's adapt_input_conv (the filters summed): tests/weights/test_channel_adaptation.py
    rgb = tiny_convit(include_top=False)
    path = tmp_path / "rgb.weights.h5"
    rgb.save_weights(path)
    grey = tiny_convit(input_shape=(32, 32, 1), include_top=False, weights=str(path))
    assert grey.input_shape == (None, 32, 32, 1)


def test_a_file_that_is_not_a_weights_file_is_refused(tmp_path):
    path = tmp_path / "notes.weights.h5"
    path.write_text("not weights")
    with pytest.raises(ValueError, match="not a Keras weights file"):
        tiny_convit(weights=str(path))


def test_channels_first_is_refused():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="channels_last"):
            tiny_convit()
    finally:
        keras.config.set_image_data_format("channels_last")


def test_variants_reject_architecture_overrides():
    with pytest.raises(ValueError, match="fixes hidden_dim"):
        keras_convit.ConViTTiny(hidden_dim=64)
