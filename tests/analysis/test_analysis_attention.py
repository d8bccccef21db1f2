import keras
import numpy as np
from analysis_helpers import build, randomize_gating

from keras_convit import analysis


def test_shapes_and_mixture(images, rng):
    model = build()
    randomize_gating(model, rng)
    maps = analysis.attention_maps(model, images, layer="blocks_1")
    assert sorted(maps) == ["attention", "content", "positional"]
    for value in maps.values():
        assert value.shape == (3, 4, 16, 16) and value.dtype == np.float32
        np.testing.assert_allclose(value.sum(-1), 1.0, atol=1e-5)
    gate = analysis.gating(model)[1][None, :, None, None]
    np.testing.assert_allclose(
        maps["attention"], (1 - gate) * maps["content"] + gate * maps["positional"], atol=1e-6
    )
    positional = keras.ops.convert_to_numpy(model.get_layer("blocks_1").attn.positional_attention())
    np.testing.assert_allclose(maps["positional"][1], positional, atol=1e-6)
    # After the class token: plain attention over 1 + 16 tokens.
    last = analysis.attention_maps(model, images, layer=-1)
    assert list(last) == ["attention"] and last["attention"].shape == (3, 4, 17, 17)


def test_maps_are_on_the_true_hidden_states(images):
    """Block 1's content attention depends on block 0 and on the position embedding."""
    model = build()
    maps = analysis.attention_maps(model, images, layer=1)["content"]
    masked = analysis.attention_maps(model, images, layer=1, mask_position_embedding=True)
    assert not np.allclose(maps, masked["content"], atol=1e-4)
    by_layer = analysis.attention_maps_by_layer(model, images)
    assert list(by_layer) == ["blocks_0", "blocks_1", "blocks_2"]
    np.testing.assert_allclose(by_layer["blocks_1"]["content"], maps, atol=1e-6)


def test_forcing_position_makes_gpsa_maps_independent_of_content(images, rng):
    model = build()
    randomize_gating(model, rng)
    other = rng.uniform(0, 255, images.shape).astype("float32")
    free = analysis.attention_maps_by_layer(model, images, layers=[0, 1])
    forced = analysis.attention_maps_by_layer(model, images, layers=[0, 1], gate_override=1.0)
    forced_other = analysis.attention_maps_by_layer(model, other, layers=[0, 1], gate_override=1.0)
    for name in ("blocks_0", "blocks_1"):
        attention = forced[name]["attention"]
        np.testing.assert_allclose(attention, forced[name]["positional"], atol=1e-6)
        np.testing.assert_allclose(attention, forced_other[name]["attention"], atol=1e-6)
        # every image gets the same map
        np.testing.assert_allclose(attention, np.broadcast_to(attention[:1], attention.shape))
        # while the content part does depend on the images (so the test can fail)
        assert not np.allclose(forced[name]["content"], forced_other[name]["content"], atol=1e-4)
        assert not np.allclose(free[name]["attention"], attention, atol=1e-4)
    # Forcing only the first GPSA block leaves the second one's gate alone.
    partial = analysis.attention_maps(model, images, layer=1, gate_override=1.0, override_layers=1)
    gate = analysis.gating(model)[1][None, :, None, None]
    np.testing.assert_allclose(
        partial["attention"],
        (1 - gate) * partial["content"] + gate * partial["positional"],
        atol=1e-6,
    )
