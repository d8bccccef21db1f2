"""A failed training or evaluation step leaves the model usable (issue 26: on JAX, a batch of
the wrong size left every variable empty, and every later `predict`, `fit`, `get_weights`
raised "TypeError: 'NoneType' object is not callable"; `_keras_compat.guard_jax_trainer`).
The fault is the trainer's, whatever the model: a two-layer model keeps the test at a second."""

import keras
import numpy as np
import pytest

from keras_convit._keras_compat import guard_jax_trainer


def test_a_wrong_batch_then_a_right_one_trains_and_predicts():
    # In place from the package's import on; called again, it does nothing.
    assert guard_jax_trainer() == (keras.backend.backend() == "jax")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (4, 6)).astype("float32")
    labels = np.array([0, 1, 2, 0])
    wrong = rng.uniform(0, 1, (4, 7)).astype("float32")  # not the model's size
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5), keras.layers.Dense(3, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0)  # the trainer's state exists
    before = model.get_weights()
    for call in (
        lambda: model.fit(wrong, labels, batch_size=4, epochs=1, verbose=0),
        lambda: model.train_on_batch(wrong, labels),
        lambda: model.evaluate(wrong, labels, batch_size=4, verbose=0),
        lambda: model.predict(wrong, batch_size=4, verbose=0),
    ):
        with pytest.raises(Exception):  # noqa: B017 (the type differs per backend and call)
            call()
        for kept, weight in zip(before, model.get_weights(), strict=True):
            np.testing.assert_array_equal(kept, weight)
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not all(
        np.array_equal(kept, weight)
        for kept, weight in zip(before, model.get_weights(), strict=True)
    )
    probabilities = keras.ops.convert_to_numpy(model.predict(images, verbose=0))
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
