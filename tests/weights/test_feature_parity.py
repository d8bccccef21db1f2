"""`feature_extractor` against timm's `forward_intermediates`: every block of ConViT-Ti."""

import keras
import numpy as np
from weights_helpers import numpy_state_dict, seeded_timm_convit

import keras_convit
from keras_convit.weights import load_reference_state_dict


def test_all_12_blocks_of_convit_tiny_match_timm_forward_intermediates(rng):
    import torch

    # ConViT-Ti (timm's embed_dim is per head: 48 x 4 = 192) at 64x64, seeded random weights.
    reference = seeded_timm_convit(5, img_size=64, embed_dim=48, num_heads=4, local_up_to_layer=10)
    model = keras_convit.ConViTTiny(input_shape=(64, 64, 3), compile=False)
    load_reference_state_dict(model, numpy_state_dict(reference))
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    maps = keras_convit.feature_extractor(model)(images)

    mean, std = (
        np.array(keras_convit.PRESETS["convit_tiny"].mean),
        np.array(keras_convit.PRESETS["convit_tiny"].std),
    )
    normalized = ((images / 255.0 - mean) / std).astype("float32")
    with torch.no_grad():
        expected = reference.forward_intermediates(
            torch.from_numpy(normalized).permute(0, 3, 1, 2), intermediates_only=True
        )
    assert len(expected) == len(maps) == 12
    worst = 0.0
    for index, target in enumerate(expected):
        target = target.permute(0, 2, 3, 1).numpy()
        got = keras.ops.convert_to_numpy(maps[f"blocks_{index}"])
        assert got.shape == target.shape == (2, 4, 4, 192)
        scale = max(1.0, float(np.abs(target).max()))
        difference = float(np.abs(got - target).max())
        assert difference <= 1e-4 * scale, f"blocks_{index}: {difference:.3g} (scale {scale:.3g})"
        worst = max(worst, difference / scale)
    print(f"\nfeature maps vs timm forward_intermediates: max relative difference {worst:.2e}")
