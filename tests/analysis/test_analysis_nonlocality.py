import numpy as np
import pytest
from analysis_helpers import build, randomize_gating

from keras_convit import analysis


def grid_distances(height, width):
    """||delta|| between every pair of patches of a row-major grid, (N, N)."""
    rows, cols = np.divmod(np.arange(height * width), width)
    return np.hypot(cols[None] - cols[:, None], rows[None] - rows[:, None])


def eq8(attention, grid):
    """Paper Eq. 8 from (batch, heads, T, T) maps, mean over images: (heads,). The class token,
    when present, is dropped and the patch rows renormalised."""
    prefix = attention.shape[-1] - grid[0] * grid[1]
    patches = attention[:, :, prefix:, prefix:].astype("float64")
    patches = patches / patches.sum(-1, keepdims=True)
    return (patches * grid_distances(*grid)).sum(-1).mean(-1).mean(0)


@pytest.mark.parametrize("use_gpsa", [True, False])
def test_equals_eq8_from_the_attention_maps(images, rng, use_gpsa):
    model = build(use_gpsa=use_gpsa)
    if use_gpsa:
        randomize_gating(model, rng)
    values = analysis.nonlocality(model, images, batch_size=1)  # three forward passes
    assert values.shape == (3, 4)
    maps = analysis.attention_maps_by_layer(model, images)
    expected = np.stack([eq8(value["attention"], (4, 4)) for value in maps.values()])
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)
    assert np.all(values > 0) and np.all(values < grid_distances(4, 4).max())


def nearest_key_distance(center, grid):
    """The alpha -> infinity limit of a positional head centred on `center`: each query attends
    uniformly to the patches nearest to query + center (fewer than one at the borders)."""
    height, width = grid
    rows, cols = np.divmod(np.arange(height * width), width)
    dx, dy = cols[None] - cols[:, None], rows[None] - rows[:, None]
    squared = (dx - center[0]) ** 2 + (dy - center[1]) ** 2
    nearest = np.isclose(squared, squared.min(-1, keepdims=True))
    return ((nearest * np.hypot(dx, dy)).sum(-1) / nearest.sum(-1)).mean()


def test_large_locality_strength_and_forced_position_give_the_centre_distance(rng):
    # 9 heads on a 3x3 kernel (integer centres), a 16x16 grid so that borders weigh little.
    model = build(hidden_dim=36, num_heads=9, patch_size=2, locality_strength=50.0)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    values = analysis.nonlocality(model, images, gate_override=1.0)
    centers = analysis.attention_centers(model)
    for layer in range(2):
        expected = [nearest_key_distance(center, (16, 16)) for center in centers.center[layer]]
        np.testing.assert_allclose(values[layer], expected, rtol=1e-4, atol=1e-5)
        # away from the borders it is the distance |Delta_h| from the query to the centre
        np.testing.assert_allclose(values[layer], centers.distance[layer], atol=0.07)
    assert values[0, 4] == pytest.approx(0.0, abs=1e-6)  # the head centred on the query


def test_forcing_content_measures_the_content_attention(images):
    model = build()
    free = analysis.nonlocality(model, images)
    forced = analysis.nonlocality(model, images, gate_override=0.0, override_layers=1)
    content = analysis.attention_maps(model, images, layer=0)["content"]
    np.testing.assert_allclose(forced[0], eq8(content, (4, 4)), rtol=1e-5)
    assert not np.allclose(forced[0], free[0], rtol=1e-3)
