"""What the GPSA weights say without any input: the gates sigma(lambda) (paper Fig. 6) and the
centre and span of each head's positional attention (paper Eq. 7)."""

from typing import NamedTuple

import numpy as np
from keras import ops

from keras_convit.analysis.forward import gpsa_blocks


def gating(model):
    """sigma(lambda) of every GPSA block and head: the share of attention on position (1) rather
    than content (0).

    Returns:
        float32 numpy array (GPSA blocks, heads), row l being `blocks_l`.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> print(analysis.gating(model).round(4))
    [[0.7311 0.7311 0.7311 0.7311]]
    """
    blocks = gpsa_blocks(model)
    if not blocks:
        return np.zeros((0, 0), dtype="float32")
    return np.stack([ops.convert_to_numpy(block.attn.gate()) for block in blocks])


class AttentionCenters(NamedTuple):
    """Per GPSA block and head: `center` (blocks, heads, 2), the offset (dx, dy) in patches,
    x the column and y the row, that the positional attention peaks on; `span` (blocks,
    heads), 1 / alpha, the width of that attention (negative for a head that prefers distant
    patches, infinite for a flat one); `distance` (blocks, heads), the norm of the centre."""

    center: np.ndarray
    span: np.ndarray
    distance: np.ndarray


def attention_centers(model):
    """Reads each GPSA head's centre Delta_h and span 1/alpha_h from `pos_proj`.

    Paper Eq. 7 makes the positional score -alpha ||delta - Delta||^2 + const, that is a kernel
    (2 alpha Dx, 2 alpha Dy, -alpha) on the features (dx, dy, dx^2 + dy^2). Any trained kernel
    (w0, w1, w2) is read the same way: span = -1 / w2 and centre = (w0, w1) * span / 2, as the
    reference's logs do. The bias is ignored: softmax does not see it.

    Returns:
        `AttentionCenters(center, span, distance)` of float64 numpy arrays.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> centers = analysis.attention_centers(model)
    >>> print(centers.center[0])
    [[-0.5 -0.5]
     [-0.5  0.5]
     [ 0.5 -0.5]
     [ 0.5  0.5]]
    >>> print(centers.span[0])
    [1. 1. 1. 1.]
    """
    blocks = gpsa_blocks(model)
    if not blocks:
        empty = np.zeros((0, 0))
        return AttentionCenters(np.zeros((0, 0, 2)), empty, empty)
    # Keras layout (3, heads): rows are the (dx, dy, dx^2 + dy^2) coefficients.
    kernels = np.stack(
        [ops.convert_to_numpy(block.attn.pos_proj.kernel).astype("float64") for block in blocks]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        span = -1.0 / kernels[:, 2]
        center = np.moveaxis(kernels[:, :2], 1, 2) * span[..., None] / 2
    return AttentionCenters(center, span, np.linalg.norm(center, axis=-1))
