"""Test-time masking (paper Tables 5 and 6) against models whose weights really are masked."""

import keras
import numpy as np
import pytest
from analysis_helpers import assert_same_weights, build, randomize_gating, weights_of

from keras_convit import analysis


def twin(model, **overrides):
    """An identical model (same architecture and weights) to mask by editing its weights."""
    copy = build(classifier_activation=None, **overrides)
    copy.set_weights(model.get_weights())
    return copy


def predict(model, images):
    return keras.ops.convert_to_numpy(model(images, training=False))


@pytest.fixture
def model(rng):
    model = build(classifier_activation=None)
    randomize_gating(model, rng)
    return model


def test_masking_equals_masked_weights_and_changes_no_weight(model, images):
    before = weights_of(model)
    np.testing.assert_allclose(
        analysis.predict_masked(model, images), predict(model, images), rtol=1e-5, atol=1e-5
    )

    # Table 6, sigma = 0 (position masked) in the first GPSA block: lambda = -1e4, sigma = 0.
    copy = twin(model)
    copy.get_layer("blocks_0").attn.gating_param.assign(np.full(4, -1e4, "float32"))
    masked = predict(analysis.masked_model(model, gate_override=0.0, override_layers=1), images)
    np.testing.assert_allclose(masked, predict(copy, images), rtol=1e-4, atol=1e-5)
    assert np.abs(masked - predict(model, images)).max() > 1e-4  # the masking did something

    # Table 6, sigma = 1 (content masked) in every GPSA block.
    copy = twin(model)
    for block in analysis.gpsa_blocks(copy):
        block.attn.gating_param.assign(np.full(4, 1e4, "float32"))
    masked = analysis.masked_model(model, gate_override=1.0)
    np.testing.assert_allclose(predict(masked, images), predict(copy, images), rtol=1e-4, atol=1e-5)

    # Table 5: the absolute position embedding masked.
    copy = twin(model)
    embedding = copy.get_layer("pos_embed").embedding
    embedding.assign(np.zeros(embedding.shape, "float32"))
    masked = predict(analysis.masked_model(model, mask_position_embedding=True), images)
    np.testing.assert_allclose(masked, predict(copy, images), rtol=1e-4, atol=1e-5)
    assert np.abs(masked - predict(model, images)).max() > 1e-4  # the masking did something

    # The analyses that mask read the weights only.
    analysis.attention_maps_by_layer(model, images, gate_override=1.0)
    analysis.nonlocality(model, images, gate_override=0.0, mask_position_embedding=True)
    assert_same_weights(before, model)
    assert model.get_layer("pos_embed").embedding.trainable


def test_masked_accuracy(model, images):
    labels = np.array([0, 1, 2])
    predictions = predict(
        analysis.masked_model(model, gate_override=1.0, override_layers=2), images
    )
    expected = np.mean(predictions.argmax(-1) == labels)
    accuracy = analysis.masked_accuracy(model, images, labels, gate_override=1.0, override_layers=2)
    assert accuracy == pytest.approx(expected)
    one_hot = np.eye(predictions.shape[-1])[labels]  # as data.test gives them
    assert analysis.masked_accuracy(
        model, images, one_hot, gate_override=1.0, override_layers=2
    ) == pytest.approx(expected)


def test_masked_model_evaluates_and_leaves_the_model_alone(model, images):
    before = weights_of(model)
    masked = analysis.masked_model(model, mask_position_embedding=True)
    assert len(masked.weights) == len(model.weights)
    masked.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = masked.evaluate(images, np.array([0, 1, 2]), verbose=0)
    assert np.isfinite(loss)
    assert_same_weights(before, model)
    names = [layer.name for layer in analysis.model_layers(model)]
    assert names[names.index("patch_embed") + 1] == "pos_embed"
