"""A new head in one call: `weights=` a timm file (or "imagenet") with another `classes` loads every
weight but the head, whose backbone gives timm's features; the head is its fresh initialisation,
and one log line names both class counts. Anything else that does not fit still fails whole."""

import logging
import re

import keras
import numpy as np
import pytest
from weights_helpers import numpy_state_dict, photo, seeded_timm_convit, timm_or_skip

import keras_convit
from keras_convit.presets import IMAGENET_MEAN, IMAGENET_STD
from keras_convit.weights import load_weights, resample_position_embedding

safetensors_numpy = pytest.importorskip("safetensors.numpy")

LOGGER = "keras_convit.weights.loading"
# ConViT-Ti's width (timm's `embed_dim` is per head: 48 x 4 heads = 192) at 2 blocks and 32x32,
# with timm's ImageNet head of 1000 classes: the file a user would start from, but small.
SMALL_TIMM = dict(
    img_size=32, embed_dim=48, num_heads=4, depth=2, local_up_to_layer=1, num_classes=1000
)
SMALL = dict(depth=2, local_up_to_layer=1, input_shape=(32, 32, 3))


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory):
    """(the timm reference in eval mode, the path of its state_dict as timm saves it)."""
    reference = seeded_timm_convit(seed=11, **SMALL_TIMM)
    path = tmp_path_factory.mktemp("new_head") / "small_in1k.safetensors"
    safetensors_numpy.save_file(numpy_state_dict(reference), str(path))
    return reference, str(path)


def small(**kwargs):
    """ConViT-Ti's preset at 2 blocks, 32x32."""
    return keras_convit.from_preset("convit_tiny", **{**SMALL, **kwargs})


def timm_features(reference, images):
    """timm's pre-logits (the class token after the final norm) on [0, 255] NHWC images."""
    import torch

    normalized = (images / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    inputs = torch.from_numpy(normalized.astype("float32")).permute(0, 3, 1, 2)
    with torch.no_grad():
        return reference.forward_head(reference.forward_features(inputs), pre_logits=True).numpy()


def pre_head(model, images):
    features = keras.Model(model.input, model.get_layer("head").input)(images)
    return keras.ops.convert_to_numpy(features)


def new_head_records(caplog):
    return [record for record in caplog.records if record.name == LOGGER and "new" in record.msg]


def weights_of(layer):
    return [keras.ops.convert_to_numpy(variable) for variable in layer.weights]


def test_a_timm_file_with_other_classes_loads_the_backbone_and_a_fresh_head(timm_file, caplog):
    reference, path = timm_file
    keras.utils.set_random_seed(3)
    fresh = small(classes=5)
    keras.utils.set_random_seed(3)  # the same construction: the same fresh initialisation
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = small(weights=path, classes=5)

    (record,) = new_head_records(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "1000 classes" in message and "the model's 5" in message and path in message
    for new, initial in zip(
        weights_of(model.get_layer("head")), weights_of(fresh.get_layer("head")), strict=True
    ):
        np.testing.assert_array_equal(new, initial)

    images = np.concatenate(
        [photo(32, 32), np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3))]
    )
    images = images.astype("float32")
    probabilities = keras.ops.convert_to_numpy(model(images))
    assert probabilities.shape == (2, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)

    expected = timm_features(reference, images)
    difference = float(np.abs(pre_head(model, images) - expected).max())
    print(f"\nnew head: backbone features {difference:.2e} from timm's")
    assert difference <= 1e-4
    # include_top=False is unchanged: the same features, no log line.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        headless = small(weights=path, include_top=False)
    assert not caplog.records
    features = keras.ops.convert_to_numpy(headless(images))
    np.testing.assert_allclose(features, expected, atol=1e-4)


def test_the_same_class_count_loads_the_file_head_silently(timm_file, caplog):
    reference, path = timm_file
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = small(weights=path, classes=1000, classifier_activation=None)
    assert not caplog.records
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("head").kernel),
        reference.head.weight.detach().numpy().T,
    )


def test_a_new_head_at_96x160(timm_file, caplog):
    _, path = timm_file
    state = safetensors_numpy.load_file(path)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = small(weights=path, classes=3, input_shape=(96, 160, 3))
    assert len(new_head_records(caplog)) == 1
    pos_embed = keras.ops.convert_to_numpy(model.get_layer("pos_embed").embedding)
    np.testing.assert_array_equal(
        pos_embed, resample_position_embedding(state["pos_embed"], (6, 10))
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("blocks_1").attn.qkv.kernel),
        state["blocks.1.attn.qkv.weight"].T,
    )
    probabilities = keras.ops.convert_to_numpy(model(photo(96, 160)))
    assert probabilities.shape == (1, 3) and np.isfinite(probabilities).all()


def test_a_distillation_model_gets_both_heads_new(timm_file, caplog):
    reference, path = timm_file
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = small(weights=path, classes=4, distillation=True)
    (record,) = new_head_records(caplog)
    assert "head and head_dist, which are new" in record.getMessage()
    heads = model.get_layer("heads")
    assert heads.head.kernel.shape == heads.head_dist.kernel.shape == (192, 4)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("dist_token").token),
        reference.cls_token.detach().numpy(),
    )
    assert keras.ops.convert_to_numpy(model(photo(32, 32))).shape == (1, 4)


def test_a_headless_file_gives_a_head_a_new_head(tmp_path, caplog):
    headless = small(include_top=False, compile=False)
    path = str(tmp_path / "backbone.weights.h5")
    headless.save_weights(path)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = small(weights=path, classes=6)
    (record,) = new_head_records(caplog)
    assert "the file has no head, the model's has 6 classes" in record.getMessage()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("norm").gamma),
        keras.ops.convert_to_numpy(headless.get_layer("norm").gamma),
    )


def test_another_width_fails_whole_and_leaves_the_model_unchanged(timm_file, caplog):
    _, path = timm_file
    narrow = dict(hidden_dim=64, num_heads=4, depth=2, local_up_to_layer=1, classes=5)
    with pytest.raises(ValueError, match=r"does not fit.*unchanged") as error:
        keras_convit.ConViT(**narrow, input_shape=(32, 32, 3), weights=path)
    message = str(error.value)
    # The first mismatches are named, the rest counted (MISMATCHES_LISTED per kind).
    assert "patch_embed.proj.bias: file (192,) vs model (64,)" in message
    assert re.search(r"\.\.\. and \d+ more", message)
    assert len(message.splitlines()) < 12

    model = keras_convit.ConViT(**narrow, input_shape=(32, 32, 3), compile=False)
    before = model.get_weights()
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(ValueError, match="fit"):
        load_weights(model, path, new_head=True)
    assert not caplog.records
    for value, previous in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(value, previous)


def test_load_weights_keeps_the_head_strict_unless_asked(timm_file):
    _, path = timm_file
    model = small(classes=5, compile=False)
    with pytest.raises(ValueError, match=r"head\.weight: file \(1000, 192\) vs model \(5, 192\)"):
        load_weights(model, path)
    load_weights(model, path, new_head=True)


def test_the_classifier_activation_rule_is_unchanged(timm_file):
    _, path = timm_file
    with pytest.raises(ValueError, match="classifier_activation"):
        small(weights=path, classes=5, classifier_activation="relu")
    logits = small(weights=path, classes=5, classifier_activation=None, compile=False)
    assert logits.get_layer("head").activation is keras.activations.linear


@pytest.mark.slow
def test_convit_tiny_and_imagenet_take_another_class_count(tmp_path, monkeypatch, caplog):
    """The variant itself (12 blocks: slow to build, not to run) from a timm file, and
    weights="imagenet" from a local origin."""
    from keras_convit.weights import imagenet

    timm_or_skip()
    reference = seeded_timm_convit(seed=12, embed_dim=48, num_heads=4, local_up_to_layer=10)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    path = str(mirror / "convit_tiny.fb_in1k.safetensors")
    safetensors_numpy.save_file(numpy_state_dict(reference), path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv(imagenet.URL_ENVIRONMENT_VARIABLE, mirror.as_uri() + "/{tag}.safetensors")

    images = photo()
    expected = timm_features(reference, images)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = keras_convit.ConViTTiny(weights=path, classes=5)
        difference = float(np.abs(pre_head(model, images) - expected).max())
        print(f"\nConViTTiny, new head: backbone features {difference:.2e} from timm's")
        assert difference <= 1e-4
        assert keras.ops.convert_to_numpy(model(images)).shape == (1, 5)
        del model
        pretrained = keras_convit.ConViTTiny(weights="imagenet", classes=5)
    assert keras.ops.convert_to_numpy(pretrained(images)).shape == (1, 5)
    assert len(new_head_records(caplog)) == 2
