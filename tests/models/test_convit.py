import keras
import numpy as np
import pytest
from keras import ops

import keras_convit
from keras_convit.layers import GatedPositionalSelfAttention, MultiHeadSelfAttention

TINY = dict(
    hidden_dim=32, num_heads=4, depth=3, local_up_to_layer=2, patch_size=8, input_shape=(32, 32, 3)
)


def tiny_convit(**kwargs):
    return keras_convit.ConViT(**{**TINY, "classes": 5, **kwargs})


def images(rng, batch=2, shape=(32, 32, 3)):
    return rng.uniform(0, 255, size=(batch,) + shape).astype("float32")


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


def test_non_square_input_and_pooling_modes(rng):
    x = images(rng, shape=(16, 40, 3))
    token = tiny_convit(input_shape=(16, 40, 3), include_top=False)
    assert tuple(token(x).shape) == (2, 32)
    assert token.get_layer("blocks_0").attn.grid_size == (2, 5)
    average = tiny_convit(input_shape=(16, 40, 3), include_top=False, pooling="avg")
    average.set_weights(token.get_weights())
    sequence = tiny_convit(input_shape=(16, 40, 3), include_top=False, pooling=None)
    sequence.set_weights(token.get_weights())
    tokens = ops.convert_to_numpy(sequence(x))
    np.testing.assert_allclose(ops.convert_to_numpy(token(x)), tokens[:, 0], atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(average(x)), tokens[:, 1:].mean(1), atol=1e-5)


def test_preprocessing_is_the_imagenet_normalisation(rng):
    with_preprocessing = tiny_convit(classifier_activation=None)
    without = tiny_convit(classifier_activation=None, include_preprocessing=False)
    without.set_weights(with_preprocessing.get_weights())
    x = images(rng)
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
    model = keras_convit.ConViT(
        hidden_dim=48,
        num_heads=4,
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
    assert tuple(model(images(rng)).shape) == (2, 5)


def test_mixed_bfloat16_forward_is_close_to_float32(rng):
    x = images(rng)
    reference = tiny_convit(classifier_activation=None, compile=False)
    keras.config.set_dtype_policy("mixed_bfloat16")
    mixed = tiny_convit(classifier_activation=None, compile=False)
    mixed.set_weights(reference.get_weights())
    assert mixed.get_layer("blocks_0").attn.compute_dtype == "bfloat16"
    low = ops.convert_to_numpy(ops.cast(mixed(x), "float32"))
    high = ops.convert_to_numpy(reference(x))
    assert np.all(np.isfinite(low))
    np.testing.assert_allclose(low, high, atol=0.1 * np.abs(high).max() + 0.05)
