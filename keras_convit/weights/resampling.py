"""Resampling the absolute position embedding to another patch grid (fine-tuning at another
input resolution). numpy only, so every backend gets the same numbers."""

import math

import numpy as np

# PyTorch's bicubic (Keys) kernel coefficient; `F.interpolate(mode="bicubic", antialias=False)`.
_CUBIC_A = -0.75


def _near(x):
    return ((_CUBIC_A + 2) * x - (_CUBIC_A + 3)) * x * x + 1


def _far(x):
    return ((_CUBIC_A * x - 5 * _CUBIC_A) * x + 8 * _CUBIC_A) * x - 4 * _CUBIC_A


def bicubic_matrix(in_size, out_size):
    """The (out_size, in_size) matrix of 1-D bicubic resampling, float64.

    Row i holds the weights of PyTorch's `F.interpolate(mode="bicubic", align_corners=False,
    antialias=False)` for output sample i: source position (i + 0.5) * in / out - 0.5, four taps,
    edge samples repeated. At `in_size == out_size` it is the identity.

    >>> bicubic_matrix(3, 3)
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    source = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    base = np.minimum(np.floor(source), in_size - 1)
    t = np.clip(source - base, 0.0, 1.0)
    coefficients = (_far(t + 1), _near(t), _near(1 - t), _far(2 - t))
    matrix = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    for tap, weight in enumerate(coefficients):
        columns = np.clip(base.astype(np.int64) - 1 + tap, 0, in_size - 1)
        np.add.at(matrix, (rows, columns), weight)
    return matrix


def square_grid(tokens, remedy):
    """(side, side) of a position embedding of `tokens` tokens; a ValueError ending in `remedy`
    when `tokens` is not a square (a grid that must be given).

    >>> square_grid(196, "pass its grid")
    (14, 14)
    """
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"A position embedding of {tokens} tokens is not a square grid: {remedy}.")
    return side, side


def resample_position_embedding(embedding, new_grid, old_grid=None):
    """Resamples a patch position embedding from one grid to another, bicubically.

    The same numbers as timm's `resample_abs_pos_embed(embedding, new_grid, old_grid,
    num_prefix_tokens=0, antialias=False)` (ConViT's `pos_embed` has no class-token slot).

    Args:
        embedding: array (1, old_height * old_width, C), tokens in row-major order.
        new_grid: (height, width) of the target patch grid.
        old_grid: (height, width) of the source grid; None assumes a square one.

    Returns:
        array (1, height * width, C) of the input's dtype; the input itself if the grids match.

    >>> embedding = np.arange(8, dtype="float32").reshape(1, 4, 2)
    >>> resample_position_embedding(embedding, (4, 2)).shape
    (1, 8, 2)
    >>> resample_position_embedding(embedding, (2, 2)) is embedding
    True
    """
    embedding = np.asarray(embedding)
    tokens, channels = embedding.shape[1:]
    if old_grid is None:
        old_grid = square_grid(tokens, "pass its (height, width)")
    old_grid, new_grid = tuple(int(s) for s in old_grid), tuple(int(s) for s in new_grid)
    if old_grid[0] * old_grid[1] != tokens:
        raise ValueError(f"A grid of {old_grid} does not hold the embedding's {tokens} tokens.")
    if old_grid == new_grid:
        return embedding
    grid = embedding.reshape(old_grid + (channels,)).astype(np.float64)
    rows = bicubic_matrix(old_grid[0], new_grid[0])
    cols = bicubic_matrix(old_grid[1], new_grid[1])
    resampled = np.einsum("yh,xw,hwc->yxc", rows, cols, grid)
    return resampled.reshape(1, -1, channels).astype(embedding.dtype)
