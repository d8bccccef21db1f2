"""Nonlocality of every attention head (paper Eq. 8, Figs. 4-5)."""

import numpy as np
from keras import ops

from keras_convit.analysis.forward import attention_blocks, forward_layers, patch_grid
from keras_convit.layers.relative_positions import patch_distances


def nonlocality(model, images, batch_size=32, **masking):
    """Eq. 8, D^{l,h} = (1/N) sum_{i,j} A^{l,h}_{ij} ||delta_ij||, per block and head, averaged
    over the images: the mean distance, in patches, between a query patch and the patches its
    attention reads.

    Computed on the true hidden states of every block (the reference code logs a proxy: every
    layer applied to the raw patch embedding), for GPSA and plain attention blocks alike. In a
    block after the class token, the class token's row and column are dropped (it has no
    position) and each patch row is renormalised over the patch keys, which is the attention
    softmax restricted to the patches: the quantity the reference computes for such a layer.
    A class-attention block (`late_attention="class"`) has no patch queries: its rows are NaN.

    Args:
        model: a ConViT functional model.
        images: (batch, height, width, channels) images, in the model's input range.
        batch_size: int, images per forward pass.
        **masking: `gate_override`, `override_layers`, `mask_position_embedding`, as in
            `forward_layers`.

    Returns:
        float64 numpy array (blocks, heads), block l being `blocks_l`. The mean over heads is
        the per-layer curve of the paper's figures.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3))
    >>> analysis.nonlocality(model, images).shape
    (2, 4)
    """
    images = np.asarray(images)
    if images.ndim != 4 or not len(images):
        raise ValueError(
            f"`images` must be a non-empty (batch, height, width, channels) array, "
            f"got shape {images.shape}."
        )
    blocks = attention_blocks(model)
    distances = patch_distances(patch_grid(model))
    num_patches = len(distances)
    distances = ops.convert_to_tensor(distances)
    totals = np.zeros((len(blocks), blocks[0].num_heads if blocks else 0))
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        index = 0
        for step in forward_layers(model, batch, attention_scores=True, **masking):
            if step.scores is None:
                continue
            per_image = _mean_distance(step.scores["attention"], distances, num_patches)
            totals[index] += ops.convert_to_numpy(ops.sum(per_image, axis=0))
            index += 1
    return totals / len(images)


def _mean_distance(attention, distances, num_patches):
    """(batch, heads) Eq. 8 values of (batch, heads, T, T) attention matrices; NaN for the
    (batch, heads, queries < T, T) matrices of class attention."""
    if attention.shape[-2] != attention.shape[-1]:
        return ops.full(ops.shape(attention)[:2], float("nan"))
    prefix = attention.shape[-1] - num_patches
    if prefix:
        attention = attention[:, :, prefix:, prefix:]
        attention = attention / ops.sum(attention, axis=-1, keepdims=True)
    return ops.mean(ops.sum(attention * distances, axis=-1), axis=-1)
