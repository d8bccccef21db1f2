"""Relative positions on a patch grid, the input of GPSA's positional attention (Eq. 5)."""

import numpy as np


def relative_position_features(grid_size):
    """The relative encodings r_delta of every (query, key) pair of a row-major patch grid.

    Args:
        grid_size: (height, width) of the patch grid, in patches.

    Returns:
        float32 array of shape (N, N, 3) with N = height * width. For query p and key q, the
        channels are (dx, dy, dx^2 + dy^2) with delta = position(q) - position(p), x the column and
        y the row: the reference's `rel_indices` order, generalised to non-square grids.
    """
    height, width = grid_size
    rows, cols = np.divmod(np.arange(height * width), width)
    dx = cols[None, :] - cols[:, None]
    dy = rows[None, :] - rows[:, None]
    return np.stack([dx, dy, dx**2 + dy**2], axis=-1).astype("float32")


def patch_distances(grid_size):
    """Euclidean distance ||delta|| between every (query, key) pair, shape (N, N), float32."""
    return np.sqrt(relative_position_features(grid_size)[..., 2])
