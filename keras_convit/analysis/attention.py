"""Attention maps of a ConViT's blocks, per head, on the true hidden states (paper Fig. 7)."""

from keras import ops

from keras_convit.analysis.forward import attention_blocks, forward_layers, resolve_block


def attention_maps(model, images, layer, **masking):
    """The attention matrices of one block for a batch of images, per head.

    The block sees the hidden states the model really gives it (patch embedding, position
    embedding and all earlier blocks), not the raw patch embedding the reference code logs.

    Args:
        model: a ConViT functional model.
        images: (batch, height, width, channels) images, in the model's input range.
        layer: the block: its index among the attention blocks (0 = `blocks_0`, -1 = the last),
            its name or the layer.
        **masking: `gate_override`, `override_layers`, `mask_position_embedding`, as in
            `forward_layers`.

    Returns:
        dict of float32 numpy arrays (batch, heads, T, T), rows the queries, columns the keys:
        "attention" (the combined matrix) and, for a GPSA block, "content" and "positional".
        T is the number of patches N, or 1 + N in the blocks after the class token, whose row
        and column come first.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    >>> maps = analysis.attention_maps(model, images, layer=0)
    >>> sorted(maps), maps["attention"].shape
    (['attention', 'content', 'positional'], (2, 4, 16, 16))
    >>> bool(np.allclose(maps["attention"].sum(axis=-1), 1.0, atol=1e-5))
    True
    """
    block = resolve_block(model, layer)
    for step in forward_layers(model, images, attention_scores=[block], **masking):
        if step.layer is block:
            return _to_numpy(step.scores)
    raise AssertionError("unreachable: the block is in the model's chain")


def attention_maps_by_layer(model, images, layers=None, **masking):
    """The attention matrices of several blocks in one forward pass.

    Args:
        model, images, **masking: as `attention_maps`.
        layers: list of blocks (indices, names or layers); None: every attention block.

    Returns:
        dict from block name (in model order) to the dict `attention_maps` returns.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> maps = analysis.attention_maps_by_layer(model, np.zeros((1, 32, 32, 3)))
    >>> {name: value["attention"].shape for name, value in maps.items()}
    {'blocks_0': (1, 4, 16, 16), 'blocks_1': (1, 4, 17, 17)}
    """
    blocks = (
        attention_blocks(model)
        if layers is None
        else [resolve_block(model, layer) for layer in layers]
    )
    maps = {}
    for step in forward_layers(model, images, attention_scores=blocks, **masking):
        if step.scores is not None:
            maps[step.layer.name] = _to_numpy(step.scores)
        if len(maps) == len(blocks):
            break
    return maps


def _to_numpy(scores):
    return {name: ops.convert_to_numpy(value) for name, value in scores.items()}
