"""Parity with timm, the correctness anchor: converted reference weights give timm's hidden states
and logits (float32, within 1e-4), and Keras weights exported to the reference layout load into
timm and give the same logits."""

import keras
import numpy as np
import pytest
from weights_helpers import (
    TINY_KERAS,
    TINY_TIMM,
    assert_matches_timm,
    numpy_state_dict,
    perturb,
    photo,
    seeded_timm_convit,
    timm_forward,
    timm_or_skip,
)

import keras_convit
from keras_convit.weights import (
    export_reference_weights,
    load_reference_state_dict,
    load_weights,
    resample_position_embedding,
)

# variant -> timm ConVit arguments (embed_dim is per head; the reference has 10 GPSA blocks).
REFERENCE = {
    "ConViTTiny": dict(embed_dim=48, num_heads=4),
    "ConViTTinyPlus": dict(embed_dim=64, num_heads=4),
    "ConViTSmall": dict(embed_dim=48, num_heads=9),
    "ConViTSmallPlus": dict(embed_dim=64, num_heads=9),
    "ConViTBase": dict(embed_dim=48, num_heads=16),
    "ConViTBasePlus": dict(embed_dim=64, num_heads=16),
}


def converted(variant, seed):
    reference = seeded_timm_convit(seed, local_up_to_layer=10, **REFERENCE[variant])
    model = getattr(keras_convit, variant)(classifier_activation=None, compile=False)
    load_reference_state_dict(model, numpy_state_dict(reference))
    return model, reference


@pytest.mark.parametrize("variant", ["ConViTTiny", "ConViTTinyPlus", "ConViTSmall"])
def test_converted_reference_weights_match_timm(variant, rng):
    model, reference = converted(variant, seed=len(variant))
    images = np.concatenate([photo(), rng.uniform(0, 255, (1, 224, 224, 3)).astype("float32")])
    difference = assert_matches_timm(model, reference, images)
    print(f"\n{variant}: max abs logit difference to timm {difference:.2e}")


@pytest.mark.slow
def test_converted_reference_weights_match_timm_for_the_large_variants():
    image = photo()
    for variant in ["ConViTSmallPlus", "ConViTBase", "ConViTBasePlus"]:
        model, reference = converted(variant, seed=len(variant))
        difference = assert_matches_timm(model, reference, image)
        print(f"\n{variant}: max abs logit difference to timm {difference:.2e}")
        del model, reference


def test_keras_weights_exported_load_into_timm_with_the_same_logits(tmp_path, rng):
    timm = timm_or_skip()
    model = keras_convit.ConViT(
        **TINY_KERAS, input_shape=(32, 32, 3), classifier_activation=None, compile=False
    )
    perturb(model, rng)
    path = tmp_path / "from_keras.safetensors"
    export_reference_weights(model, path)

    reference = seeded_timm_convit(seed=3, **TINY_TIMM)
    timm.models.load_checkpoint(reference, str(path), strict=True)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    assert_matches_timm(model, reference, images, atol=1e-5)


def test_a_224_checkpoint_fine_tunes_at_384_as_timm_resamples_it(rng):
    timm = timm_or_skip()
    import torch

    arguments = {**TINY_TIMM, "img_size": 224}
    state = numpy_state_dict(seeded_timm_convit(seed=4, **arguments))
    model = keras_convit.ConViT(
        **TINY_KERAS, input_shape=(384, 384, 3), classifier_activation=None, compile=False
    )
    load_reference_state_dict(model, state)

    reference = seeded_timm_convit(seed=5, **{**arguments, "img_size": 384})
    resampled = timm.layers.resample_abs_pos_embed(
        torch.from_numpy(state["pos_embed"]), [24, 24], num_prefix_tokens=0, antialias=False
    )
    reference.load_state_dict(
        {**{k: torch.from_numpy(v) for k, v in state.items()}, "pos_embed": resampled}
    )
    images = rng.uniform(0, 255, (1, 384, 384, 3)).astype("float32")
    assert_matches_timm(model, reference, images)


def test_a_224_checkpoint_loads_at_256x128_and_is_unchanged_at_224(tmp_path, rng):
    state = numpy_state_dict(seeded_timm_convit(seed=6, **{**TINY_TIMM, "img_size": 224}))
    path = tmp_path / "at_224.safetensors"
    pytest.importorskip("safetensors.numpy").save_file(state, str(path))

    same = keras_convit.ConViT(**TINY_KERAS, input_shape=(224, 224, 3), compile=False)
    load_weights(same, path)
    np.testing.assert_array_equal(_pos_embed(same), state["pos_embed"])

    tall = keras_convit.ConViT(**TINY_KERAS, input_shape=(256, 128, 3), compile=False)
    load_weights(tall, path)
    expected = resample_position_embedding(state["pos_embed"], (16, 8))
    np.testing.assert_array_equal(_pos_embed(tall), expected)
    assert tall.get_layer("blocks_0").attn.relative_features.shape == (128, 128, 3)
    probabilities = keras.ops.convert_to_numpy(tall(photo(256, 128)))
    assert probabilities.shape == (1, 5) and np.isfinite(probabilities).all()

    # A non-square model's export records its grid, so it resamples back correctly.
    exported = tmp_path / "at_256x128.safetensors"
    export_reference_weights(tall, exported)
    back = keras_convit.ConViT(**TINY_KERAS, input_shape=(224, 224, 3), compile=False)
    load_weights(back, exported)
    np.testing.assert_allclose(
        _pos_embed(back), resample_position_embedding(expected, (14, 14), (16, 8)), atol=1e-7
    )


def _pos_embed(model):
    return keras.ops.convert_to_numpy(model.get_layer("pos_embed").embedding)


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="run once, in the torch session: a 224x224 export takes a minute on 2 cores",
)
def test_converted_tiny_exported_to_onnx_matches_timm_in_onnxruntime(tmp_path, rng):
    """The seam of weights and deployment: timm weights -> keras_convit -> ONNX -> onnxruntime."""
    from keras_convit.deploy import export_model, load_artifact

    model, reference = converted("ConViTTiny", seed=7)
    report = export_model(model, tmp_path / "convit_tiny.onnx", format="onnx")
    images = np.concatenate([photo(), rng.uniform(0, 255, (1, 224, 224, 3)).astype("float32")])
    expected, _ = timm_forward(reference, images)
    logits = load_artifact(report.path).predict(images)
    difference = float(np.abs(logits - expected).max())
    print(f"\nConViT-Ti ONNX: {difference:.2e} from timm")
    assert difference <= 1e-4
