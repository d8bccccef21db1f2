import keras
import numpy as np
import pytest
from harness import random_images, run_backbone_test, run_precision_test, tiny_convit
from keras import ops

import keras_convit
from keras_convit.layers import GatedPositionalSelfAttention, MultiHeadSelfAttention


@pytest.mark.parametrize(
    "variant,expected",
    [
        (keras_convit.ConViTTiny, 5_710_512),
        (keras_convit.ConViTTinyPlus, 9_972_912),
        (keras_convit.ConViTSmall, 27_777_322),
        pytest.param(keras_convit.ConViTSmallPlus, 48_979_882, marks=pytest.mark.slow),
        pytest.param(keras_convit.ConViTBase, 86_540_040, marks=pytest.mark.slow),
        pytest.param(keras_convit.ConViTBasePlus, 153_134_856, marks=pytest.mark.slow),
    ],
)
def test_parameter_counts_match_the_paper(variant, expected):
    model = variant(compile=False)
    assert model.count_params() == expected
    assert model.output_shape == (None, 1000)


def test_layer_and_variable_paths_mirror_the_reference():
    model = keras_convit.ConViTTiny(compile=False)
    paths = {weight.path for weight in model.weights}
    for expected in [
        "patch_embed/proj/kernel",
        "pos_embed/embedding",
        "cls_token/token",
        "blocks_9/attn/qk/kernel",
        "blocks_9/attn/v/kernel",
        "blocks_9/attn/pos_proj/kernel",
        "blocks_9/attn/gating_param",
        "blocks_10/attn/qkv/kernel",
        "blocks_11/mlp/fc2/bias",
        "norm/gamma",
        "head/kernel",
    ]:
        assert expected in paths
    assert not any(path.startswith("blocks_10/attn/qk/") for path in paths)
    names = [layer.name for layer in model.layers]
    assert names.index("cls_token") == names.index("blocks_10") - 1


def test_class_token_joins_after_the_gpsa_blocks(rng):
    model = tiny_convit(include_top=False, pooling=None)
    assert model.output_shape == (None, 1 + 16, 32)
    kinds = [type(model.get_layer(f"blocks_{i}").attn) for i in range(3)]
    assert kinds == [GatedPositionalSelfAttention] * 2 + [MultiHeadSelfAttention]
    assert model.get_layer("blocks_0").attn.grid_size == (4, 4)


def test_non_square_input_and_pooling_modes():
    models = run_backbone_test(input_shape=(16, 40, 3))
    assert models["token"].get_layer("blocks_0").attn.grid_size == (2, 5)


@pytest.mark.parametrize(
    "layout",
    [
        dict(local_up_to_layer=3),  # every block GPSA: no class token, average pooling only
        dict(late_attention="class", distillation=True),  # class and distillation tokens
    ],
    ids=["all_gpsa", "class_attention_distilled"],
)
def test_backbone_layouts(layout):
    run_backbone_test(**layout)


def test_preprocessing_is_the_imagenet_normalisation(rng):
    with_preprocessing = tiny_convit(classifier_activation=None)
    without = tiny_convit(classifier_activation=None, include_preprocessing=False)
    without.set_weights(with_preprocessing.get_weights())
    x = random_images(rng)
    normalised = (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(
        ops.convert_to_numpy(with_preprocessing(x)),
        ops.convert_to_numpy(without(normalised.astype("float32"))),
        atol=1e-4,
    )


def test_ablation_flags():
    deit = tiny_convit(use_gpsa=False)
    assert not any(
        isinstance(getattr(layer, "attn", None), GatedPositionalSelfAttention)
        for layer in deit.layers
    )
    # Same size as the ConViT minus GPSA's pos_proj (4 heads x 4) and gating (4) per GPSA block,
    # and GPSA's separate qk + v versus a fused qkv (same count).
    assert tiny_convit().count_params() - deit.count_params() == 2 * (4 * 3 + 4 + 4)

    random_init = tiny_convit(use_conv_init=False).get_layer("blocks_0").attn
    assert not np.allclose(ops.convert_to_numpy(random_init.v.kernel), np.eye(32))

    frozen = tiny_convit(trainable_gating=False)
    gating = [w for w in frozen.weights if w.path.endswith("gating_param")]
    assert len(gating) == 2
    trainable = {w.path for w in frozen.trainable_weights}
    for weight in gating:
        assert weight.path not in trainable
        np.testing.assert_array_equal(ops.convert_to_numpy(weight), 0.0)


def test_drop_path_rates_increase_linearly():
    model = tiny_convit(drop_path_rate=0.1)
    rates = [model.get_layer(f"blocks_{i}").drop_path_rate for i in range(3)]
    np.testing.assert_allclose(rates, [0.0, 0.05, 0.1])


def test_default_compile_and_overrides():
    model = tiny_convit()
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.weight_decay == 0.05
    assert isinstance(model.loss, keras_convit.models.ClassifierCrossentropy)
    assert model.loss.from_logits is False
    logits = tiny_convit(classifier_activation=None)
    assert logits.loss.from_logits is True
    assert getattr(tiny_convit(include_top=False), "optimizer", None) is None
    uncompiled = tiny_convit(compile=False)
    assert getattr(uncompiled, "optimizer", None) is None
    with pytest.raises(ValueError, match="compile"):
        uncompiled.fit(np.zeros((2, 32, 32, 3)), np.zeros((2,)), verbose=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, keras.optimizers.SGD)


def test_weight_decay_skips_biases_norms_embeddings_and_gates():
    model = tiny_convit()
    excluded = model.optimizer.excluded_variables(model.trainable_weights)
    decayed = {w.path for w in model.trainable_weights} - {w.path for w in excluded}
    assert "blocks_0/attn/pos_proj/kernel" in decayed
    assert "blocks_0/attn/qk/kernel" in decayed
    for skipped in [
        "pos_embed/embedding",
        "cls_token/token",
        "blocks_0/attn/gating_param",
        "blocks_0/norm1/gamma",
        "head/bias",
    ]:
        assert skipped not in decayed


def test_fit_on_real_digits_beats_chance():
    (x_train, y_train), (x_test, y_test) = keras_convit.data.load_digits(image_size=16)
    model = tiny_convit(
        hidden_dim=48,
        depth=2,
        local_up_to_layer=1,
        patch_size=4,
        input_shape=(16, 16, 3),
        classes=10,
    )
    history = model.fit(x_train, y_train, batch_size=32, epochs=5, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.75 * losses[0], losses
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy > 0.35, accuracy  # chance is 0.1


def test_input_tensor(rng):
    inputs = keras.Input((32, 32, 3))
    model = tiny_convit(input_tensor=inputs)
    assert model.inputs[0] is inputs
    assert tuple(model(random_images(rng)).shape) == (2, 5)


def test_mixed_precision_forward_is_close_to_float32(rng):
    # Every layer computes in the policy's dtype (blocks_0's GPSA included), the outputs are
    # finite and within 0.1 max|y| + 0.05 of the float32 model's with the same weights.
    run_precision_test(
        tiny_convit,
        random_images(rng),
        dict(classifier_activation=None, compile=False),
        global_policy=True,
    )


def test_dtype_argument_sets_every_layer_s_policy(rng):
    # keras-hub's precision test: the policy given to the constructor, not the global one;
    # GPSA's softmaxes and gating stay float32 (checked by the harness).
    arguments = dict(classifier_activation=None, compile=False)
    run_precision_test(tiny_convit, random_images(rng), arguments, policies=("mixed_bfloat16",))
    assert keras.config.dtype_policy().name == "float32"
    half = tiny_convit(dtype="bfloat16", compile=False)
    floats = {w.dtype for w in half.weights if keras.backend.is_float_dtype(w.dtype)}
    assert floats == {"bfloat16"}
    gpsa = half.get_layer("blocks_0").attn
    assert keras.backend.standardize_dtype(gpsa.positional_attention().dtype) == "float32"
    variant = keras_convit.ConViTTiny(input_shape=(32, 32, 3), dtype="mixed_float16", compile=False)
    assert {layer.dtype_policy.name for layer in variant.layers[1:]} == {"mixed_float16"}
    with pytest.raises(ValueError, match="`dtype` must be"):
        tiny_convit(dtype="float33")
