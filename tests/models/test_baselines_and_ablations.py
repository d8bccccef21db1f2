"""The DeiT twin, the paper's Table 3 switches, class attention and the distillation token."""

import keras
import numpy as np
import pytest
from harness import random_images, run_model_saving_test, tiny_convit
from keras import ops

import keras_convit
from keras_convit.layers import (
    ClassAttentionBlock,
    DistillationHeads,
    GatedPositionalSelfAttention,
    MultiHeadSelfAttention,
)
from keras_convit.presets import BASELINES, PRESETS, get_preset


def images(rng, batch=4):
    return random_images(rng, batch)


def _layer_names(model):
    return [layer.name for layer in model.layers]


def test_each_convit_preset_has_a_deit_twin_of_deit_layout():
    for name, preset in PRESETS.items():
        if preset.baseline_of is None:
            twin = PRESETS[f"{name}_deit"]
            assert twin.baseline_of == name and twin.imagenet_tag is None
            assert dict(twin.architecture) == {**preset.architecture, **BASELINES["deit"]}
    model = keras_convit.models.from_preset("convit_digits_deit", classes=10, compile=False)
    names = _layer_names(model)
    # DeiT's layout: the class token in front of the first block, no GPSA anywhere.
    assert names.index("cls_token") == names.index("blocks_0") - 1
    blocks = [layer for layer in model.layers if layer.name.startswith("blocks_")]
    assert [type(block.attn) for block in blocks] == [MultiHeadSelfAttention] * len(blocks)
    assert model.get_layer("blocks_0").input.shape[1] == 1 + 16  # class token + 4x4 patches
    digits = get_preset("convit_digits")
    attention = model.get_layer("blocks_0").attn
    assert (attention.hidden_dim, attention.num_heads) == (digits.hidden_dim, digits.num_heads)


def test_the_in_place_ablation_keeps_the_class_token_late():
    model = tiny_convit(**BASELINES["in_place"])
    names = _layer_names(model)
    assert names.index("cls_token") == names.index("blocks_2") - 1
    assert type(model.get_layer("blocks_0").attn) is MultiHeadSelfAttention


def _one_training_step(model, rng):
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="sparse_categorical_crossentropy")
    before = {v.path: ops.convert_to_numpy(v).copy() for v in model.weights}
    model.train_on_batch(images(rng), np.arange(4) % 5)
    return {
        v.path: not np.array_equal(before[v.path], ops.convert_to_numpy(v)) for v in model.weights
    }


def test_frozen_gpsa_layers_do_not_change_in_a_training_step_and_the_rest_does(rng):
    model = tiny_convit(trainable_gpsa=False, trainable_gating=False)
    changed = _one_training_step(model, rng)
    gpsa = [path for path in changed if path.startswith(("blocks_0/attn/", "blocks_1/attn/"))]
    assert len(gpsa) == 2 * 7  # gating; qk, v kernels; proj, pos_proj kernels and biases
    assert not any(changed[path] for path in gpsa)
    others = [path for path in changed if path not in gpsa]
    assert [path for path in others if not changed[path]] == []
    # The convolutional init is what stays: each head still looks at one offset.
    first = model.get_layer("blocks_0").attn
    assert isinstance(first, GatedPositionalSelfAttention) and not first.trainable


def test_gating_frozen_at_a_chosen_lambda_stays_there_and_round_trips(rng):
    model = tiny_convit(trainable_gating=False, gating_init=2.0)
    changed = _one_training_step(model, rng)
    gate = model.get_layer("blocks_1").attn.gating_param
    np.testing.assert_array_equal(ops.convert_to_numpy(gate), np.full(4, 2.0, "float32"))
    assert not changed["blocks_1/attn/gating_param"] and changed["blocks_1/attn/qk/kernel"]
    # The paper's frozen gating (Table 3, rows b and d) is lambda = 0 by default.
    default = tiny_convit(trainable_gating=False).get_layer("blocks_0").attn.gating_param
    np.testing.assert_array_equal(ops.convert_to_numpy(default), np.zeros(4, "float32"))
    loaded = run_model_saving_test(model, images(rng))
    attention = loaded.get_layer("blocks_1").attn
    assert (attention.gating_init, attention.trainable_gating) == (2.0, False)
    assert len(loaded.trainable_weights) == len(model.trainable_weights)


def test_frozen_gpsa_survives_a_keras_file(rng):
    model = tiny_convit(trainable_gpsa=False, compile=False)
    loaded = run_model_saving_test(model, images(rng))  # the same outputs within 1e-6
    assert not loaded.get_layer("blocks_0").attn.trainable
    assert len(loaded.trainable_weights) == len(model.trainable_weights) < len(model.weights)


def test_class_attention_leaves_the_patch_tokens_unchanged_in_its_blocks(rng):
    model = tiny_convit(late_attention="class", depth=4, distillation=True)
    blocks = [model.get_layer(f"blocks_{index}") for index in (2, 3)]
    assert all(isinstance(block, ClassAttentionBlock) for block in blocks)
    probe = keras.Model(model.input, [blocks[0].input, blocks[1].output])
    before, after = (ops.convert_to_numpy(t) for t in probe(images(rng)))
    np.testing.assert_array_equal(after[:, 2:], before[:, 2:])  # the 16 patch tokens
    assert np.abs(after[:, :2] - before[:, :2]).max() > 1e-3  # class and distillation tokens
    # Same weights as self-attention blocks: a self-attention model's weights load as they are.
    plain = tiny_convit(depth=4, distillation=True)
    model.set_weights(plain.get_weights())


def test_class_attention_scores_are_the_class_tokens_rows(rng):
    block = ClassAttentionBlock(32, 4)
    tokens = rng.normal(size=(2, 5, 32)).astype("float32")
    outputs, scores = block(tokens, return_attention_scores=True)
    assert tuple(scores["attention"].shape) == (2, 4, 1, 5)
    np.testing.assert_allclose(
        ops.convert_to_numpy(outputs), ops.convert_to_numpy(block(tokens)), atol=1e-5
    )


def test_the_distillation_model_averages_its_two_heads(rng):
    model = tiny_convit(distillation=True, classifier_activation=None)
    assert _layer_names(model)[-1] == "heads" and "dist_token" in _layer_names(model)
    heads = model.get_layer("heads")
    assert isinstance(heads, DistillationHeads)
    tokens = keras.Model(model.input, heads.input)(images(rng))
    class_logits, distillation_logits = heads.logits(tokens)
    averaged = (ops.convert_to_numpy(class_logits) + ops.convert_to_numpy(distillation_logits)) / 2
    np.testing.assert_allclose(ops.convert_to_numpy(heads(tokens)), averaged, atol=1e-6)
    paths = {weight.path for weight in model.weights}
    assert {"dist_token/token", "heads/head/kernel", "heads/head_dist/kernel"} <= paths


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(use_gpsa=False, trainable_gpsa=False), "has none"),
        (dict(local_up_to_layer=0, trainable_gpsa=False), "has none"),
        (dict(late_attention="cross"), "late_attention"),
        (dict(local_up_to_layer=3, pooling="avg", distillation=True), "needs a class token"),
        (dict(local_up_to_layer=3, pooling="avg", late_attention="class"), "needs a class token"),
        (dict(distillation=True, pooling="avg"), 'pooling="token"'),
        (dict(gating_init="high"), "gating_init"),
    ],
)
def test_switches_without_anything_to_act_on_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        tiny_convit(**arguments)


def test_analysis_reads_class_attention_and_distilled_models(rng):
    from keras_convit import analysis

    model = tiny_convit(late_attention="class", distillation=True)
    values = analysis.nonlocality(model, images(rng, 2))
    assert np.isfinite(values[:2]).all()  # the GPSA blocks
    assert np.isnan(values[2]).all()  # class attention has no patch queries
    assert analysis.gating(model).shape == (2, 4)
