"""Every invalid argument raises a ValueError naming the argument, its value and what is allowed."""

import keras
import pytest

import keras_convit

TINY = dict(hidden_dim=32, num_heads=4, depth=3, local_up_to_layer=2, patch_size=8)


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
        (dict(input_shape=(32, 32, 1)), r"1 channels.*include_preprocessing=False"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_convit.ConViT(**{**TINY, "input_shape": (32, 32, 3), **kwargs})


def test_all_gpsa_blocks_with_average_pooling_are_allowed():
    model = keras_convit.ConViT(
        **{**TINY, "local_up_to_layer": 3}, input_shape=(32, 32, 3), pooling="avg", classes=3
    )
    assert "cls_token" not in [layer.name for layer in model.layers]


def test_weights_with_other_channels_are_refused(tmp_path):
    rgb = keras_convit.ConViT(**TINY, input_shape=(32, 32, 3), include_top=False)
    path = tmp_path / "rgb.weights.h5"
    rgb.save_weights(path)
    with pytest.raises(ValueError, match=r"weights=.*input shape \(32, 32, 1\).*channel"):
        keras_convit.ConViT(
            **TINY,
            input_shape=(32, 32, 1),
            include_top=False,
            include_preprocessing=False,
            weights=str(path),
        )


def test_a_file_that_is_not_a_weights_file_is_refused(tmp_path):
    path = tmp_path / "notes.weights.h5"
    path.write_text("not weights")
    with pytest.raises(ValueError, match="not a Keras weights file"):
        keras_convit.ConViT(**TINY, input_shape=(32, 32, 3), weights=str(path))


def test_channels_first_is_refused():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="channels_last"):
            keras_convit.ConViT(**TINY, input_shape=(32, 32, 3))
    finally:
        keras.config.set_image_data_format("channels_last")


def test_variants_reject_architecture_overrides():
    with pytest.raises(ValueError, match="fixes hidden_dim"):
        keras_convit.ConViTTiny(hidden_dim=64)
