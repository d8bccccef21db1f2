"""RGB weights into a model of another channel count, as timm's `adapt_input_conv`: 1 channel sums
the filters, C channels repeat them and rescale by 3/C. The adapted model gives timm's `in_chans`
model's features (timm adapting the same file itself), and its preprocessing takes C statistics
(the mean of the RGB ones for 1 channel)."""

import logging

import keras
import numpy as np
import pytest
from weights_helpers import numpy_state_dict, seeded_timm_convit, timm_or_skip

import keras_convit
from keras_convit.presets import IMAGENET_MEAN, IMAGENET_STD
from keras_convit.weights import adapt_input_conv, adapt_statistics, load_weights

safetensors_numpy = pytest.importorskip("safetensors.numpy")

LOGGER = "keras_convit.weights.loading"
# ConViT-Ti's width at 2 blocks and 32x32 (timm's `embed_dim` is per head).
SMALL_TIMM = dict(embed_dim=48, num_heads=4, depth=2, local_up_to_layer=1, img_size=32)
SMALL = dict(depth=2, local_up_to_layer=1, classifier_activation=None, compile=False)


@pytest.fixture(scope="module")
def rgb_file(tmp_path_factory):
    """The path of a seeded RGB timm checkpoint of ConViT-Ti's width (1000 classes)."""
    path = tmp_path_factory.mktemp("channels") / "rgb.safetensors"
    state = numpy_state_dict(seeded_timm_convit(seed=21, **SMALL_TIMM, num_classes=1000))
    safetensors_numpy.save_file(state, str(path))
    return str(path)


def timm_adapted(path, channels):
    """timm's own route: `create_model(..., pretrained=True, in_chans=C)` from the RGB file, which
    goes through its `adapt_input_conv`."""
    timm = timm_or_skip()
    arguments = {key: value for key, value in SMALL_TIMM.items() if key != "embed_dim"}
    return timm.create_model(
        "convit_tiny",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=path),
        in_chans=channels,
        **arguments,
    ).eval()


def timm_outputs(reference, images, mean, std):
    """(pre-logits, logits) of a timm model on [0, 255] NHWC images, normalised by mean, std."""
    import torch

    normalized = (images / 255.0 - np.asarray(mean)) / np.asarray(std)
    inputs = torch.from_numpy(normalized.astype("float32")).permute(0, 3, 1, 2)
    with torch.no_grad():
        features = reference.forward_head(reference.forward_features(inputs), pre_logits=True)
        return features.numpy(), reference.head(features).numpy()


def keras_outputs(model, images):
    features, logits = keras.Model(model.input, [model.get_layer("head").input, model.output])(
        images
    )
    return keras.ops.convert_to_numpy(features), keras.ops.convert_to_numpy(logits)


@pytest.mark.parametrize("channels", [1, 2, 4, 5, 6, 7])
def test_adapt_input_conv_is_timms(channels, rng):
    timm_or_skip()
    import torch
    from timm.models import adapt_input_conv as timm_adapt

    weight = rng.normal(size=(8, 3, 4, 4)).astype("float32")
    expected = timm_adapt(channels, torch.from_numpy(weight)).numpy()
    adapted = adapt_input_conv(weight, channels)
    assert adapted.shape == (8, channels, 4, 4) and adapted.dtype == np.float32
    np.testing.assert_allclose(adapted, expected, rtol=0, atol=1e-6)
    assert adapt_input_conv(weight, 3) is weight


@pytest.mark.parametrize("channels", [1, 5])
def test_an_rgb_file_gives_timms_in_chans_features(rgb_file, channels, caplog, rng):
    mean = adapt_statistics(IMAGENET_MEAN, channels)
    std = adapt_statistics(IMAGENET_STD, channels)
    assert len(mean) == len(std) == channels
    if channels == 1:
        np.testing.assert_allclose(mean, [np.mean(IMAGENET_MEAN)], rtol=1e-12)
        np.testing.assert_allclose(std, [np.mean(IMAGENET_STD)], rtol=1e-12)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = keras_convit.from_preset(
            "convit_tiny", **SMALL, input_shape=(32, 32, channels), weights=rgb_file
        )
    (record,) = [record for record in caplog.records if record.name == LOGGER]
    assert record.levelno == logging.INFO
    assert f"from 3 to {channels} channels" in record.getMessage()
    scale = keras.ops.convert_to_numpy(model.get_layer("preprocessing").scale)
    np.testing.assert_allclose(scale, 1.0 / (255.0 * np.asarray(std)), rtol=1e-6)

    reference = timm_adapted(rgb_file, channels)
    images = rng.uniform(0, 255, (2, 32, 32, channels)).astype("float32")
    features, logits = keras_outputs(model, images)
    expected_features, expected_logits = timm_outputs(reference, images, mean, std)
    difference = float(np.abs(features - expected_features).max())
    print(f"\n{channels} channel(s): features {difference:.2e} from timm's in_chans={channels}")
    assert difference <= 1e-4
    np.testing.assert_allclose(logits, expected_logits, rtol=0, atol=1e-4)


def test_repeated_rgb_planes_give_the_rgb_model(rgb_file, rng):
    """6 channels holding the RGB image twice: the same outputs as the RGB model (the filters
    repeat, each scaled by 1/2, and the statistics repeat with them)."""
    rgb = keras_convit.from_preset(
        "convit_tiny", **SMALL, input_shape=(32, 32, 3), weights=rgb_file
    )
    six = keras_convit.from_preset(
        "convit_tiny", **SMALL, input_shape=(32, 32, 6), weights=rgb_file
    )
    images = rng.uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(six(np.concatenate([images, images], axis=-1))),
        keras.ops.convert_to_numpy(rgb(images)),
        rtol=0,
        atol=1e-4,
    )


def test_preprocessing_takes_c_statistics(rng):
    for channels in (1, 2, 4):
        model = keras_convit.ConViT(
            64, 4, depth=1, local_up_to_layer=0, input_shape=(16, 16, channels), patch_size=8
        )
        scale = np.asarray(keras.ops.convert_to_numpy(model.get_layer("preprocessing").scale))
        assert scale.shape == (channels,)
        assert keras.ops.convert_to_numpy(model(np.zeros((1, 16, 16, channels)))).shape == (1, 1000)
    own = keras_convit.ConViT(
        64, 4, depth=1, local_up_to_layer=0, input_shape=(16, 16, 2), patch_size=8,
        mean=(0.5, 0.25), std=(0.5, 0.5),
    )  # fmt: skip
    offset = keras.ops.convert_to_numpy(own.get_layer("preprocessing").offset)
    np.testing.assert_allclose(offset, [-1.0, -0.5])
    with pytest.raises(ValueError, match="2 channels must have 2 values"):
        keras_convit.ConViT(
            64, 4, depth=1, local_up_to_layer=0, input_shape=(16, 16, 2), patch_size=8,
            mean=(0.1, 0.2, 0.3, 0.4),
        )  # fmt: skip


def test_weights_of_other_than_3_channels_do_not_adapt(tmp_path):
    grey = keras_convit.ConViT(
        64, 4, depth=2, local_up_to_layer=1, input_shape=(32, 32, 1), compile=False
    )
    path = str(tmp_path / "grey.weights.h5")
    grey.save_weights(path)
    model = keras_convit.ConViT(
        64, 4, depth=2, local_up_to_layer=1, input_shape=(32, 32, 3), compile=False
    )
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"patch_embed\.proj\.weight.*Only RGB"):
        load_weights(model, path)
    for value, previous in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(value, previous)
