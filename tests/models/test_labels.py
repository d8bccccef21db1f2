"""One label contract: integer and one-hot / soft labels train and evaluate alike, with the
default compile and with `deit_recipe`, on the library's own pipelines and on arrays."""

import keras
import numpy as np
import pytest
from harness import tiny_convit

import keras_convit
from keras_convit.models import (
    ClassifierAccuracy,
    ClassifierCrossentropy,
    ClassifierTopKAccuracy,
    outputs_logits,
)
from keras_convit.training import deit_recipe


def issue_model(**kwargs):
    """The model of the report: the README's first promise, on the library's own data."""
    return tiny_convit(hidden_dim=64, depth=2, local_up_to_layer=1, classes=10, **kwargs)


@pytest.fixture(scope="module")
def digits():
    # MixUp ("light") gives soft labels: the hardest case of the contract.
    return keras_convit.data.load_dataset(
        "digits", image_size=32, batch_size=32, augmentation="light", fraction=0.1
    )


@pytest.mark.parametrize("compiled_with", ["default", "deit_recipe"])
def test_both_label_kinds_train_without_a_change_of_code(digits, compiled_with, rng):
    model = issue_model()
    if compiled_with == "deit_recipe":
        model.compile(**deit_recipe(model, 32, digits.steps_per_epoch, epochs=2))
    soft = model.fit(digits.train, epochs=1, verbose=0).history
    images = rng.uniform(0, 255, (64, 32, 32, 3)).astype("float32")
    integers = model.fit(images, rng.integers(0, 10, 64), batch_size=32, verbose=0).history
    for history in (soft, integers):
        assert np.isfinite(history["loss"][0]) and 0.0 <= history["accuracy"][0] <= 1.0


def test_integer_and_one_hot_labels_give_the_same_loss_and_metrics(rng):
    model = issue_model()
    model.compile(**deit_recipe(model, 32, 1, 1))  # label smoothing on both kinds
    images = rng.uniform(0, 255, (12, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, 12)
    as_integers = model.evaluate(images, labels, verbose=0, return_dict=True)
    as_column = model.evaluate(images, labels[:, None], verbose=0, return_dict=True)
    as_one_hot = model.evaluate(images, np.eye(10)[labels], verbose=0, return_dict=True)
    assert set(as_integers) == {"loss", "accuracy", "top5"}
    for other in (as_column, as_one_hot):
        for key, value in as_integers.items():
            assert other[key] == pytest.approx(value, abs=1e-6), key


def test_the_loss_matches_keras_on_each_label_kind(rng):
    logits = rng.normal(size=(6, 5)).astype("float32")
    labels = rng.integers(0, 5, 6)
    soft = rng.dirichlet(np.ones(5), 6).astype("float32")
    ours = ClassifierCrossentropy(from_logits=True)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    dense = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    assert float(ours(labels, logits)) == pytest.approx(float(sparse(labels, logits)), rel=1e-5)
    assert float(ours(soft, logits)) == pytest.approx(
        float(keras.losses.CategoricalCrossentropy(from_logits=True)(soft, logits)), rel=1e-5
    )
    smoothed = ClassifierCrossentropy(from_logits=True, label_smoothing=0.1)
    expected = float(dense(np.eye(5)[labels], logits))
    assert float(smoothed(labels, logits)) == pytest.approx(expected, rel=1e-5)
    assert float(smoothed(labels, logits)) != pytest.approx(float(ours(labels, logits)))
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    assert float(ClassifierCrossentropy()(labels, probabilities)) == pytest.approx(
        float(sparse(labels, logits)), rel=1e-4
    )
    with pytest.raises(ValueError, match="label_smoothing"):
        ClassifierCrossentropy(label_smoothing=1.0)


def test_metrics_read_the_top_label_of_soft_labels():
    predictions = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], "float32")
    mixed = np.array([[0.3, 0.7, 0.0], [0.0, 0.2, 0.8]], "float32")  # top labels 1 and 2
    accuracy = ClassifierAccuracy()
    accuracy.update_state(mixed, predictions)
    assert float(accuracy.result()) == 0.5
    top2 = ClassifierTopKAccuracy(k=2)
    top2.update_state(np.array([2, 2]), predictions)
    assert float(top2.result()) == 0.5
    assert top2.name == "top2"
    restored = ClassifierTopKAccuracy.from_config(top2.get_config())
    assert (restored.k, restored.name) == (2, "top2")


def test_one_rule_for_logits():
    assert outputs_logits(issue_model(classifier_activation=None, compile=False))
    assert not outputs_logits(issue_model(compile=False))
    softmax_layer = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2), keras.layers.Softmax()]
    )
    assert not outputs_logits(softmax_layer)
    for activation in (None, "softmax"):
        model = issue_model(classifier_activation=activation)
        recipe = deit_recipe(model, 32, 1, 1)
        assert model.loss.from_logits == recipe["loss"].from_logits == (activation is None)


def test_early_stopping_knows_the_accuracy_is_better_up(rng):
    model = issue_model()
    stop = keras.callbacks.EarlyStopping(monitor="accuracy", patience=5)  # mode "auto"
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(images, rng.integers(0, 10, 8), epochs=1, verbose=0, callbacks=[stop])
    assert stop.monitor_op is keras.ops.greater
