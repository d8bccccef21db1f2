import keras
import numpy as np
import pytest
from analysis_helpers import build

from keras_convit import analysis


def test_runner_reproduces_the_model_output(images):
    model = build(classifier_activation=None)
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    outputs = keras.ops.convert_to_numpy(analysis.run_model(model, images))
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    # The explicit attention path, taken when scores are asked for, agrees within rounding.
    steps = list(analysis.forward_layers(model, images, attention_scores=True))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(steps[-1].outputs), expected, rtol=1e-4, atol=1e-4
    )
    assert [step.layer.name for step in steps if step.scores is not None] == [
        "blocks_0",
        "blocks_1",
        "blocks_2",
    ]


def test_hidden_states_chain_and_class_token(images):
    model = build()
    steps = {step.layer.name: step for step in analysis.forward_layers(model, images)}
    assert tuple(steps["blocks_1"].outputs.shape) == (3, 16, 32)
    assert tuple(steps["blocks_2"].inputs.shape) == (3, 17, 32)
    assert analysis.patch_grid(model) == (4, 4)


def test_block_resolution():
    model = build()
    assert analysis.resolve_block(model, 0).name == "blocks_0"
    assert analysis.resolve_block(model, -1).name == "blocks_2"
    assert analysis.resolve_block(model, "blocks_1").name == "blocks_1"
    block = model.get_layer("blocks_2")
    assert analysis.resolve_block(model, block) is block
    assert [b.name for b in analysis.gpsa_blocks(model)] == ["blocks_0", "blocks_1"]
    with pytest.raises(ValueError, match="out of range"):
        analysis.resolve_block(model, 3)
    with pytest.raises(ValueError, match="not an attention block"):
        analysis.resolve_block(model, "norm")


def test_masking_arguments_are_validated(images):
    model = build()

    def run(**masking):
        return analysis.run_model(model, images, **masking)

    with pytest.raises(ValueError, match="between 0 and 2"):
        run(gate_override=1.0, override_layers=3)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        run(gate_override=1.5)
    with pytest.raises(ValueError, match="needs a `gate_override`"):
        run(override_layers=1)
    with pytest.raises(ValueError, match="has none"):
        analysis.run_model(build(use_gpsa=False), images, gate_override=0.0)


def test_a_wrapped_model_is_refused_with_a_hint():
    convit = build()
    wrapper = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.RandomFlip(), convit])
    with pytest.raises(ValueError, match="get_layer"):
        analysis.nonlocality(wrapper, np.zeros((1, 32, 32, 3)))
    assert analysis.nonlocality(wrapper.get_layer(convit.name), np.zeros((1, 32, 32, 3))).shape == (
        3,
        4,
    )
