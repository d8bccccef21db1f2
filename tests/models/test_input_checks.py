"""ImageInputCheck on its own and as the first layer of a small functional model."""

import re

import keras
import numpy as np
import pytest
from harness import run_layer_test, run_model_saving_test
from keras import ops

from keras_convit.layers import ImageInputCheck

SHAPE = (8, 8, 3)
WRONG = {
    "height": (2, 4, 8, 3),
    "width": (2, 8, 16, 3),
    "channels": (2, 8, 8, 1),
    "more_channels": (2, 8, 8, 4),
}


def small_model(declared_shape=(None, None, None)):
    """keras.Input -> the check -> Conv2D -> Flatten -> Dense. An Input of unknown sides lets
    every batch reach the check; Keras itself refuses most mismatches of a declared shape."""
    images = keras.Input(declared_shape)
    x = ImageInputCheck(SHAPE, name="input_check")(images)
    x = keras.layers.Conv2D(4, 4, strides=4)(x)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    model = keras.Model(images, outputs)
    model.compile(optimizer="sgd", loss="mse")
    return model


def run(model, method, images):
    labels = np.zeros((len(images), 2), "float32")
    if method == "predict":
        return model.predict(images, verbose=0)
    if method == "call":
        return ops.convert_to_numpy(model(images))
    if method == "evaluate":
        return model.evaluate(images, labels, verbose=0)
    return model.fit(images, labels, verbose=0).history["loss"]


def names_both_shapes(message, actual):
    """Whether the message names the expected and the actual image shape (spaces and brackets
    aside; TensorFlow may trace the batch size as None)."""
    flat = re.sub(r"[\s()\[\]]", "", message)
    return "8,8,3" in flat and ",".join(map(str, actual[1:])) in flat


@pytest.mark.parametrize("image_shape", [(8, 8), (8, 0, 3), (8.0, 8, 3), (8, True, 3), None])
def test_bad_image_shape_argument(image_shape):
    with pytest.raises(ValueError, match="image_shape"):
        ImageInputCheck(image_shape)


@pytest.mark.parametrize("shape", [*WRONG.values(), (2, 8, 8)], ids=[*WRONG, "rank_3"])
def test_direct_call_refuses_a_wrong_shape(shape):
    with pytest.raises(ValueError) as error:
        ImageInputCheck(SHAPE)(np.zeros(shape, "float32"))
    assert names_both_shapes(str(error.value), shape), str(error.value)


def test_messages_say_what_to_do():
    check = ImageInputCheck(SHAPE)
    with pytest.raises(ValueError, match="1 channel instead of 3"):
        check(np.zeros(WRONG["channels"], "float32"))
    with pytest.raises(ValueError, match="resize or crop"):
        check(np.zeros(WRONG["height"], "float32"))


def test_a_symbolic_input_of_another_shape_fails_at_construction():
    with pytest.raises(ValueError, match=r"\(8, 8, 3\)"):
        ImageInputCheck(SHAPE)(keras.Input((16, 16, 3)))


@pytest.mark.parametrize("method", ["predict", "call", "evaluate", "fit"])
@pytest.mark.parametrize("wrong", list(WRONG))
def test_the_model_refuses_a_wrong_shape(wrong, method):
    with pytest.raises(ValueError) as error:
        run(small_model(), method, np.zeros(WRONG[wrong], "float32"))
    assert names_both_shapes(str(error.value), WRONG[wrong]), str(error.value)


@pytest.mark.parametrize("method", ["predict", "call", "evaluate", "fit"])
def test_one_channel_passes_keras_own_check_and_stops_here(method):
    # Keras lets a trailing axis of 1 through an Input of 3 channels (it would be broadcast).
    with pytest.raises(ValueError, match="1 channel instead of 3"):
        run(small_model(SHAPE), method, np.zeros(WRONG["channels"], "float32"))


def test_right_shape_with_unknown_sides_has_a_static_output():
    model = small_model()
    assert model.get_layer("input_check").output.shape == (None, *SHAPE)
    assert run(model, "predict", np.zeros((3, *SHAPE), "float32")).shape == (3, 2)


@pytest.mark.parametrize("method", ["predict", "evaluate", "fit"])
def test_unknown_sides_at_trace_time_are_checked_when_the_graph_runs(method):
    # A tf.data pipeline that leaves the sides unknown: TensorFlow traces without them (JAX and
    # PyTorch see the batch's shape). Right batches pass and keep their row count; a wrong one
    # stops with both shapes named (a runtime InvalidArgumentError on TensorFlow).
    tf = pytest.importorskip("tensorflow")

    def dataset(shape):
        batches = [(np.ones(shape, "float32"), np.zeros((shape[0], 2), "float32"))] * 2
        spec = (tf.TensorSpec((None,) * 4, tf.float32), tf.TensorSpec((None, 2), tf.float32))
        data = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec)
        data = data.apply(tf.data.experimental.assert_cardinality(2))
        return data.map(lambda x, y: x) if method == "predict" else data

    model = small_model(SHAPE)
    kwargs = {"verbose": 0, **({"shuffle": False} if method == "fit" else {})}
    assert getattr(model, method)(dataset((3, *SHAPE)), **kwargs) is not None
    if method == "predict":
        assert model.predict(dataset((3, *SHAPE)), **kwargs).shape == (6, 2)
    for shape in [(3, 16, 16, 3), (3, 8, 8, 1)]:
        with pytest.raises(Exception) as error:
            getattr(small_model(SHAPE), method)(dataset(shape), **kwargs)
        assert names_both_shapes(str(error.value), shape), str(error.value)


@pytest.mark.parametrize("dtype", ["uint8", "int32", "float64"])
def test_integer_images_keep_their_values(dtype, rng):
    values = rng.integers(0, 256, (2, *SHAPE))
    out = ImageInputCheck(SHAPE)(values.astype(dtype))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_array_equal(ops.convert_to_numpy(out), values.astype("float32"))


@pytest.mark.parametrize("dtype", ["uint8", "int32"])
@pytest.mark.parametrize("method", ["predict", "call", "evaluate", "fit"])
def test_model_gives_integer_images_the_outputs_of_float32(dtype, method, rng):
    values = rng.integers(0, 256, (4, *SHAPE))
    reference, model = small_model(), small_model()
    model.set_weights(reference.get_weights())
    expected = run(reference, method, values.astype("float32"))
    np.testing.assert_allclose(run(model, method, values.astype(dtype)), expected, rtol=1e-6)
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_config_and_keras_file_round_trip(rng):
    # Serialized and deserialized, the check keeps its image shape (the harness compares it).
    check = run_layer_test(
        ImageInputCheck, dict(image_shape=SHAPE, name="input_check"), (2, *SHAPE), (2, *SHAPE)
    )
    assert check.get_config()["image_shape"] == SHAPE

    images = rng.uniform(0, 255, (2, *SHAPE)).astype("float32")
    loaded = run_model_saving_test(small_model(), images)
    with pytest.raises(ValueError, match="1 channel"):
        loaded(np.zeros(WRONG["channels"], "float32"))
