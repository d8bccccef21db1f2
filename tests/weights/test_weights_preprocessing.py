"""`preprocess_input` is the in-model preprocessing; `decode_predictions` works offline."""

import json

import keras
import numpy as np
import pytest
from weights_helpers import TINY_KERAS, timm_or_skip

import keras_convit
from keras_convit.models.preprocessing import (
    decode_predictions,
    imagenet_classes,
    preprocess_input,
)


def test_preprocess_input_equals_the_preprocessing_inside_the_model(rng):
    config = dict(**TINY_KERAS, input_shape=(32, 32, 3), compile=False)
    inside = keras_convit.ConViT(**config)
    outside = keras_convit.ConViT(**config, include_preprocessing=False)
    outside.set_weights(inside.get_weights())
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    preprocessed = preprocess_input(images)
    assert isinstance(preprocessed, np.ndarray) and preprocessed.dtype == np.float32
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outside(preprocessed)),
        keras.ops.convert_to_numpy(inside(images)),
        atol=1e-6,
    )
    as_tensor = preprocess_input(keras.ops.convert_to_tensor(images.astype("uint8")))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(as_tensor), preprocess_input(images.astype("uint8")), atol=1e-6
    )
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(preprocessed, (images / 255 - mean) / std, atol=1e-5)


def test_decode_predictions_returns_the_best_classes_first():
    scores = np.zeros((2, 1000), "float32")
    scores[0, [1, 207, 954]] = [0.25, 0.5, 0.125]
    scores[1, 999] = 1.0
    top = decode_predictions(keras.ops.convert_to_tensor(scores), top=3)
    assert top[0] == [
        ("n02099601", "golden retriever", 0.5),
        ("n01443537", "goldfish", 0.25),
        ("n07753592", "banana", 0.125),
    ]
    assert top[1][0] == ("n15075141", "toilet tissue", 1.0)
    assert len(decode_predictions(scores)[0]) == 5
    with pytest.raises(ValueError, match=r"\(batch, 1000\).*\(2, 10\)"):
        decode_predictions(np.zeros((2, 10)))


def test_the_class_file_is_timms_imagenet_1k_index():
    timm = timm_or_skip()
    info = timm.data.ImageNetInfo()
    expected = [(info.index_to_label_name(i), info.index_to_description(i)) for i in range(1000)]
    assert list(imagenet_classes()) == expected
    path = keras_convit.models.preprocessing._CLASSES_FILE
    with open(path, encoding="utf-8") as file:
        assert len(json.load(file)["classes"]) == 1000
