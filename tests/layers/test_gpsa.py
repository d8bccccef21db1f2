import numpy as np
import pytest
from harness import (
    MIXED_POLICIES,
    assert_positional_scores_are_float32,
    run_layer_test,
    run_precision_test,
    to_numpy,
)
from keras import ops

from keras_convit.layers import GatedPositionalSelfAttention
from keras_convit.layers.gpsa import convolutional_pos_proj_kernel
from keras_convit.layers.relative_positions import relative_position_features


def build_gpsa(grid, hidden_dim=32, num_heads=4, **kwargs):
    layer = GatedPositionalSelfAttention(hidden_dim, num_heads, grid_size=grid, **kwargs)
    layer.build((None, grid[0] * grid[1], hidden_dim))
    return layer


def numpy_gpsa(layer, x):
    """The reference GPSA forward (official convit.py), written out in numpy."""
    weights = {w.path.split("/", 1)[1]: ops.convert_to_numpy(w) for w in layer.weights}
    batch, length, width = x.shape
    heads, head_dim = layer.num_heads, width // layer.num_heads
    qk = (x @ weights["qk/kernel"]).reshape(batch, length, 2, heads, head_dim)
    q, k = qk[:, :, 0].transpose(0, 2, 1, 3), qk[:, :, 1].transpose(0, 2, 1, 3)
    v = (x @ weights["v/kernel"]).reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

    def softmax(a):
        e = np.exp(a - a.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    content = softmax(q @ k.transpose(0, 1, 3, 2) * head_dim**-0.5)
    rel = relative_position_features(layer.grid_size)
    positional = softmax(
        (rel @ weights["pos_proj/kernel"] + weights["pos_proj/bias"]).transpose(2, 0, 1)
    )
    gate = 1 / (1 + np.exp(-weights["gating_param"]))[None, :, None, None]
    attention = (1 - gate) * content + gate * positional[None]
    attention /= attention.sum(-1, keepdims=True)
    out = (attention @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
    return out @ weights["proj/kernel"] + weights["proj/bias"]


def randomize(layer, seed=0):
    """Moves every weight off its initial value so no test passes by an init coincidence."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(ops.convert_to_numpy(weight) + rng.normal(0, 0.2, weight.shape))


@pytest.mark.parametrize("grid", [(4, 4), (3, 5)])
def test_matches_numpy_reference(grid, rng):
    layer = build_gpsa(grid)
    randomize(layer)
    x = rng.normal(size=(2, grid[0] * grid[1], 32)).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), numpy_gpsa(layer, x), atol=1e-5)


@pytest.mark.parametrize("grid,num_heads", [((4, 4), 4), ((3, 5), 9), ((2, 7), 4)])
def test_fast_path_equals_explicit_path(grid, num_heads, rng):
    layer = build_gpsa(grid, hidden_dim=36, num_heads=num_heads)
    randomize(layer)
    x = rng.normal(size=(3, grid[0] * grid[1], 36)).astype("float32")
    fast = ops.convert_to_numpy(layer(x))
    explicit, scores = layer(x, return_attention_scores=True)
    np.testing.assert_allclose(fast, ops.convert_to_numpy(explicit), atol=1e-5)
    assert set(scores) == {"attention", "content", "positional"}
    for name, matrix in scores.items():
        matrix = ops.convert_to_numpy(matrix)
        assert matrix.shape == (3, num_heads, x.shape[1], x.shape[1]), name
        np.testing.assert_allclose(matrix.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("formulation", ["_fast_factorized", "_fast_mixed_matrix"])
def test_both_fast_formulations_equal_the_explicit_path(formulation, rng):
    # `call` picks one per backend; each must hold on every backend.
    layer = build_gpsa((3, 5), hidden_dim=36, num_heads=9)
    randomize(layer)
    query, key, value = (
        ops.convert_to_tensor(rng.normal(size=(2, 15, 9, 4)).astype("float32")) for _ in range(3)
    )
    fast = getattr(layer, formulation)(query, key, value, layer.gate())
    explicit = layer._explicit(query, key, value, layer.gate(), training=False)[0]
    np.testing.assert_allclose(
        ops.convert_to_numpy(fast), ops.convert_to_numpy(explicit), atol=1e-5
    )


@pytest.mark.parametrize("grid", [(4, 4), (3, 5)])
def test_positional_attention_is_the_product_of_its_row_and_column_factors(grid):
    # The fast path relies on it: the logits are f(dy) + g(dx), so the softmax factorises.
    layer = build_gpsa(grid, hidden_dim=36, num_heads=9)
    randomize(layer)
    rows, cols = (ops.convert_to_numpy(factor) for factor in layer._positional_factors())
    assert rows.shape == (9, grid[0], grid[0]) and cols.shape == (9, grid[1], grid[1])
    product = np.einsum("hab,hcd->hacbd", rows, cols).reshape(9, grid[0] * grid[1], -1)
    positional = ops.convert_to_numpy(layer.positional_attention())
    np.testing.assert_allclose(product, positional, rtol=1e-5, atol=1e-7)


def test_convolutional_init_follows_the_reference():
    alpha = 2.5
    layer = build_gpsa((4, 4), hidden_dim=36, num_heads=9, locality_strength=alpha)
    kernel = ops.convert_to_numpy(layer.pos_proj.kernel)
    # Reference local_init: position = h1 + k*h2, weight row (2(h2-c), 2(h1-c), -1), times alpha.
    for h1 in range(3):
        for h2 in range(3):
            expected = alpha * np.array([2 * (h2 - 1), 2 * (h1 - 1), -1.0])
            np.testing.assert_allclose(kernel[:, h1 + 3 * h2], expected)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.pos_proj.bias), 0.0)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.v.kernel), np.eye(36))
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.gating_param), 1.0)


def test_even_kernels_have_half_integer_centres():
    kernel = convolutional_pos_proj_kernel(4)
    centres = kernel[:2].T / 2  # the score is -||delta - centre||^2 + const
    assert sorted(map(tuple, centres)) == [(-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)]


@pytest.mark.parametrize("num_heads,kernel_size", [(4, 2), (9, 3), (16, 4)])
def test_large_locality_strength_peaks_at_query_plus_centre(num_heads, kernel_size):
    grid = (7, 6)
    layer = build_gpsa(grid, hidden_dim=num_heads * 4, num_heads=num_heads, locality_strength=20.0)
    positional = ops.convert_to_numpy(layer.positional_attention())
    center = (kernel_size - 1) / 2
    rows, cols = np.divmod(np.arange(grid[0] * grid[1]), grid[1])
    for head in range(num_heads):
        # Heads are laid out x-major: head = dy_index + k * dx_index.
        dx, dy = head // kernel_size - center, head % kernel_size - center
        for query in np.flatnonzero(
            (rows >= 2) & (rows < grid[0] - 2) & (cols >= 2) & (cols < grid[1] - 2)
        ):
            peak_row, peak_col = divmod(int(positional[head, query].argmax()), grid[1])
            target_row, target_col = rows[query] + dy, cols[query] + dx
            # Half-integer centres (even kernels) share the mass between neighbouring patches:
            # the argmax is one of the patches nearest to the centre.
            assert abs(peak_row - target_row) <= 0.5 and abs(peak_col - target_col) <= 0.5
            nearest = (np.abs(rows - target_row) <= 0.5) & (np.abs(cols - target_col) <= 0.5)
            assert positional[head, query, nearest].sum() > 0.99


def test_non_square_head_count_keeps_random_positional_init():
    layer = build_gpsa((4, 4), hidden_dim=30, num_heads=5, locality_strength=1.0)
    kernel = ops.convert_to_numpy(layer.pos_proj.kernel)
    np.testing.assert_allclose(kernel[:, :4], convolutional_pos_proj_kernel(4))
    assert np.all(np.abs(kernel[:, 4]) < 0.2) and np.any(kernel[:, 4] != 0)


def test_positional_attention_does_not_depend_on_the_input(rng):
    layer = build_gpsa((4, 4))
    x = rng.normal(size=(2, 16, 32)).astype("float32")
    _, first = layer(x, return_attention_scores=True)
    _, second = layer(5 * x[::-1], return_attention_scores=True)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(first["positional"]), ops.convert_to_numpy(second["positional"])
    )


def test_gate_override_makes_attention_content_independent(rng):
    layer = build_gpsa((4, 4))
    randomize(layer)
    x = rng.normal(size=(2, 16, 32)).astype("float32")
    _, scores = layer(x, return_attention_scores=True, gate_override=1.0)
    np.testing.assert_allclose(
        ops.convert_to_numpy(scores["attention"]),
        ops.convert_to_numpy(scores["positional"]),
        atol=1e-6,
    )
    _, scores = layer(x, return_attention_scores=True, gate_override=0.0)
    np.testing.assert_allclose(
        ops.convert_to_numpy(scores["attention"]),
        ops.convert_to_numpy(scores["content"]),
        atol=1e-6,
    )


def test_ablation_switches():
    layer = build_gpsa((4, 4), use_conv_init=False, gating_init=0.0, trainable_gating=False)
    assert not np.allclose(ops.convert_to_numpy(layer.v.kernel), np.eye(32))
    assert layer.gating_param.path not in [w.path for w in layer.trainable_weights]
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.gate()), 0.5)


def test_attention_dropout_takes_the_explicit_path_in_training(rng):
    layer = build_gpsa((4, 4), attention_dropout_rate=0.5)
    x = rng.normal(size=(2, 16, 32)).astype("float32")
    inference = ops.convert_to_numpy(layer(x))
    training = ops.convert_to_numpy(layer(x, training=True))
    assert not np.allclose(inference, training)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x, training=False)), inference, atol=1e-6)


def test_config_round_trip():
    run_layer_test(
        GatedPositionalSelfAttention,
        dict(
            hidden_dim=32,
            num_heads=4,
            grid_size=(3, 5),
            locality_strength=3.0,
            trainable_gating=False,
            gating_init=0.0,
        ),
        (2, 15, 32),
        (2, 15, 32),
    )


def test_square_grid_inferred_and_bad_grids_rejected():
    layer = GatedPositionalSelfAttention(32, 4)
    layer.build((None, 25, 32))
    assert layer.grid_size == (5, 5)
    with pytest.raises(ValueError, match="grid_size"):
        GatedPositionalSelfAttention(32, 4).build((None, 24, 32))
    with pytest.raises(ValueError, match=r"grid_size=\(4, 5\)"):
        GatedPositionalSelfAttention(32, 4, grid_size=(4, 5)).build((None, 16, 32))
    with pytest.raises(ValueError, match="num_heads"):
        GatedPositionalSelfAttention(30, 4)


def test_mixed_precision_keeps_attention_in_float32(rng):
    x = rng.normal(size=(2, 16, 32)).astype("float32")
    arguments = dict(hidden_dim=32, num_heads=4, grid_size=(4, 4))
    results = run_precision_test(GatedPositionalSelfAttention, x, arguments)
    for policy, (layer, fast) in results.items():
        # The fast path (no attention matrix) against the explicit one, in the same precision.
        explicit, _ = layer(x, return_attention_scores=True)
        np.testing.assert_allclose(
            to_numpy(fast)[0], to_numpy(explicit)[0], atol=0.05, err_msg=policy
        )


@pytest.mark.parametrize("policy", MIXED_POLICIES)
def test_call_computes_the_positional_attention_from_float32_weights(policy, rng):
    """Mutation: `autocast=False` dropped from `PositionalProjection.add_weight` or from
    `gating_param` (Keras' autocast scope then hands `call` the weights in 16 bits, ~1e-3 off)."""
    layer = build_gpsa((4, 4), dtype=policy)
    randomize(layer)
    _, scores = layer(rng.normal(size=(2, 16, 32)).astype("float32"), return_attention_scores=True)
    assert_positional_scores_are_float32(layer, scores, policy)
    # Eq. 6's mix, with the gate sigma(lambda) of the stored float32 lambda.
    lam = ops.convert_to_numpy(layer.gating_param).astype("float64")
    gate = (1.0 / (1.0 + np.exp(-lam)))[None, :, None, None]
    content = ops.convert_to_numpy(scores["content"]).astype("float64")
    positional = ops.convert_to_numpy(scores["positional"]).astype("float64")
    expected = (1.0 - gate) * content + gate * positional
    np.testing.assert_allclose(ops.convert_to_numpy(scores["attention"]), expected, atol=1e-6)
