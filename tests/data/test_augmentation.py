"""RandomResizedCrop, the augmentation presets and the training/evaluation batches."""

import keras
import numpy as np
import pytest

from keras_convit.data import (
    Augmentation,
    RandomResizedCrop,
    augmented_batches,
    evaluation_batches,
)

tf = pytest.importorskip("tensorflow")


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(20, 30, 3), (2, 20, 30, 3), (3, 9, 7, 3)])
def test_random_resized_crop_shapes_and_range(shape, training, rng):
    images = rng.uniform(10.0, 200.0, shape).astype("float32")
    crop = RandomResizedCrop(12, 16, seed=0)
    out = _numpy(crop(images, training=training))
    assert out.shape == shape[:-3] + (12, 16, 3)
    # Bilinear sampling mixes input pixels, so it stays inside their range.
    assert out.min() >= images.min() - 1e-3 and out.max() <= images.max() + 1e-3
    assert crop.compute_output_shape(shape) == shape[:-3] + (12, 16, 3)


def test_inference_is_resize_and_center_crop():
    image = np.arange(8 * 8 * 3, dtype="float32").reshape(8, 8, 3)
    # Crop fraction 0.5 of an 8x8 image to 4x4: exactly the central 4x4 pixels.
    out = _numpy(RandomResizedCrop(4, 4, crop_fraction=0.5)(image, training=False))
    np.testing.assert_allclose(out, image[2:6, 2:6], atol=1e-4)
    # Fraction 1 at the same size is the identity; nearest sampling too.
    same = RandomResizedCrop(8, 8, crop_fraction=1.0, interpolation="nearest")
    np.testing.assert_allclose(_numpy(same(image, training=False)), image, atol=1e-4)


def test_training_boxes_follow_scale_and_ratio():
    crop = RandomResizedCrop(8, 8, scale=(0.25, 0.25), ratio=(1.0, 1.0), seed=1)
    images = np.zeros((64, 40, 40, 3), "float32")
    boxes = _numpy(crop.get_random_transformation(images, training=True)["boxes"])
    top, left, height, width = boxes.T
    np.testing.assert_allclose(height, 20.0)  # sqrt(0.25 * 40 * 40)
    np.testing.assert_allclose(width, 20.0)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + height <= 40).all() and (left + width <= 40).all()
    assert len(np.unique(top)) > 5, "the offsets should vary"


def test_training_crop_falls_back_to_whole_image():
    # A crop of half the area with aspect ratio 4 never fits a 4x40 image: the fallback is the
    # whole image clamped to the ratio range, centred.
    crop = RandomResizedCrop(8, 8, scale=(0.5, 0.5), ratio=(4.0, 4.0), seed=0)
    images = np.zeros((4, 40, 4, 3), "float32")
    boxes = _numpy(crop.get_random_transformation(images, training=True)["boxes"])
    # Width 4 and height 4 / 4 = 1, centred: top (40 - 1) // 2 = 19.
    np.testing.assert_allclose(boxes, [[19.0, 0.0, 1.0, 4.0]] * 4, atol=1e-6)


def test_random_resized_crop_in_tf_data_on_any_backend():
    examples = tf.data.Dataset.from_generator(
        lambda: (np.full((h, w, 3), 100.0, "float32") for h, w in ((20, 30), (50, 11))),
        output_signature=tf.TensorSpec((None, None, 3), tf.float32),
    )
    crop = RandomResizedCrop(16, 16, seed=0)
    outputs = [image.numpy() for image in examples.map(lambda image: crop(image))]
    assert [out.shape for out in outputs] == [(16, 16, 3), (16, 16, 3)]
    np.testing.assert_allclose(outputs[0], 100.0, atol=1e-3)


def test_random_resized_crop_config_round_trip():
    crop = RandomResizedCrop(12, 10, scale=(0.3, 0.9), crop_fraction=0.9, seed=3)
    clone = RandomResizedCrop.from_config(crop.get_config())
    assert clone.get_config() == crop.get_config()
    assert (
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(crop)).height
        == 12
    )


def test_argument_validation():
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(8, 8, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="crop_fraction"):
        RandomResizedCrop(8, 8, crop_fraction=1.5)
    with pytest.raises(ValueError, match="cutmix_alpha"):
        Augmentation(cutmix_alpha=2.0)
    with pytest.raises(ValueError, match="Unknown augmentation"):
        Augmentation.from_name("heavy")


def test_presets():
    deit = Augmentation.deit()
    assert (deit.mixup_alpha, deit.cutmix_alpha, deit.switch_prob) == (0.8, 1.0, 0.5)
    assert (deit.erasing_prob, deit.repeats, deit.crop_fraction) == (0.25, 3, 0.875)
    assert deit.uses_soft_labels and not Augmentation.none().uses_soft_labels
    names = [type(layer).__name__ for layer in deit.image_layers(16)]
    assert names == ["RandomResizedCrop", "RandomFlip", "RandAugment"]
    assert [type(layer).__name__ for layer in Augmentation.none().image_layers(16)] == [
        "RandomResizedCrop"
    ]


def test_flip_mirrors_left_right_only():
    # Rows and columns all differ, so an up-down flip cannot pass for a left-right one. The "none"
    # preset's crop keeps the whole image at its size, so only the flip changes it.
    image = np.arange(8 * 8 * 3, dtype="float32").reshape(8, 8, 3)
    examples = tf.data.Dataset.from_tensor_slices(
        (np.broadcast_to(image, (32, 8, 8, 3)), np.zeros(32, "int64"))
    )
    augmentation = Augmentation.none(flip=True)
    assert [type(layer).__name__ for layer in augmentation.image_layers(8)] == [
        "RandomResizedCrop",
        "RandomFlip",
    ]
    batches = augmented_batches(examples, 32, 2, (8, 8), 32, augmentation, seed=0)
    images = next(iter(batches))[0].numpy()

    def equal(a, b):
        return np.abs(a - b).max(axis=(1, 2, 3)) < 1e-3

    unchanged, mirrored = equal(images, image), equal(images, image[:, ::-1])
    assert np.all(unchanged | mirrored), "every image is either kept or mirrored left-right"
    assert unchanged.any() and mirrored.any(), (unchanged.sum(), mirrored.sum())


def _examples(count=12, shape=(20, 24, 3), num_classes=3):
    images = np.random.default_rng(0).uniform(0, 255, (count,) + shape).astype("float32")
    return tf.data.Dataset.from_tensor_slices((images, np.arange(count) % num_classes))


@pytest.mark.parametrize("preset", ["deit", "light", "none"])
def test_augmented_batches_shapes_and_ranges(preset):
    augmentation = (
        Augmentation.from_name(preset, repeats=2)
        if preset == "deit"
        else (Augmentation.from_name(preset))
    )
    batches = list(augmented_batches(_examples(), 12, 3, (16, 16), 4, augmentation, seed=0))
    assert len(batches) == 3  # 12 examples (repeats keep the epoch length), batches of 4
    for images, labels in batches:
        images, labels = images.numpy(), labels.numpy()
        assert images.shape == (4, 16, 16, 3) and images.dtype == np.float32
        assert labels.shape == (4, 3)
        assert images.min() >= 0.0 and images.max() <= 255.0
        assert labels.min() >= 0.0
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
        if preset == "none":
            assert set(np.unique(labels)) <= {0.0, 1.0}


def _two_epochs(seed, examples=None):
    """Every batch of two epochs of DeiT-augmented batches (crop, flip, RandAugment, erasing,
    MixUp/CutMix), built anew, as a run builds them."""
    augmentation = Augmentation.deit(repeats=2)
    batches = augmented_batches(
        examples or _examples(24), 24, 3, (16, 16), 4, augmentation, seed=seed
    )
    return [[(x.numpy(), y.numpy()) for x, y in batches] for _ in range(2)]


def test_augmented_batches_repeat_under_one_seed():
    """Mutation: the layers drawing from their own stateful generators (no `drawing_from`):
    parallel maps then hand the draws out in thread order, and the batches differ."""
    first, again, other = _two_epochs(seed=3), _two_epochs(seed=3), _two_epochs(seed=4)
    for epoch, epoch_again in zip(first, again, strict=True):
        for (x, y), (x_again, y_again) in zip(epoch, epoch_again, strict=True):
            np.testing.assert_array_equal(x, x_again)
            np.testing.assert_array_equal(y, y_again)
    # Not one fixed draw: each epoch and each seed augments anew.
    assert not np.array_equal(first[0][0][0], first[1][0][0])
    assert not np.array_equal(first[0][0][0], other[0][0][0])


@pytest.mark.parametrize("mode", ["cutmix", "mixup", "off"])
def test_mixup_cutmix_switch(mode):
    # Image i is flat at 5 * (i + 1); a full-image crop keeps it. CutMix pastes pixels (values
    # stay in that set), MixUp blends them (values leave it).
    values = 5.0 * np.arange(1, 33)
    images = np.broadcast_to(values[:, None, None, None], (32, 8, 8, 3)).astype("float32")
    examples = tf.data.Dataset.from_tensor_slices((images, np.arange(32) % 4))
    augmentation = Augmentation.none(
        mixup_alpha=0.8,
        cutmix_alpha=1.0,
        mix_prob=0.0 if mode == "off" else 1.0,
        switch_prob=1.0 if mode == "cutmix" else 0.0,
    )
    batches = augmented_batches(examples, 32, 4, (8, 8), 32, augmentation, seed=0)
    mixed, labels = (t.numpy() for t in next(iter(batches)))
    pasted = np.isin(np.round(mixed, 3), values)
    soft = (labels > 1e-3) & (labels < 1 - 1e-3)
    if mode == "cutmix":
        assert pasted.all() and soft.any()
    elif mode == "mixup":
        assert not pasted.all() and soft.any()
    else:
        assert pasted.all() and not soft.any()
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)


def test_evaluation_batches_are_deterministic_one_hot():
    batches = evaluation_batches(_examples(5), 3, (16, 16), 2)
    first = [(images.numpy(), labels.numpy()) for images, labels in batches]
    second = [(images.numpy(), labels.numpy()) for images, labels in batches]
    assert [images.shape for images, _ in first] == [(2, 16, 16, 3), (2, 16, 16, 3), (1, 16, 16, 3)]
    for (a, la), (b, lb) in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(
        np.concatenate([labels for _, labels in first]).argmax(1), np.arange(5) % 3
    )
