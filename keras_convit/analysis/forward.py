"""A layer-by-layer runner over a ConViT's chain of layers: the true hidden states of the model,
optionally with the position embedding masked or the GPSA gates forced (paper Tables 5 and 6)."""

from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from keras_convit.layers import PatchEmbedding, PositionEmbedding, TransformerBlock


class LayerStep(NamedTuple):
    """One layer of a forward pass: its input and output tensors (backend tensors) and, for a
    `TransformerBlock` whose scores were asked for, its dict of float32 (batch, heads, T, T)
    attention matrices ("attention", plus "content" and "positional" for GPSA), else None."""

    layer: keras.layers.Layer
    inputs: object
    outputs: object
    scores: object


def model_layers(model):
    """The layers of a ConViT functional model in call order, without the input layer.

    Analysis runs these one after the other, so the model must be the straight chain that
    `keras_convit.ConViT` builds (or a `.keras` file of one); a model that wraps a ConViT should
    pass the ConViT itself (`wrapper.get_layer("convit")`).

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> [layer.name for layer in analysis.model_layers(model)][:4]
    ['input_check', 'preprocessing', 'patch_embed', 'pos_embed']
    """
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"keras_convit.analysis needs a functional ConViT with one input and one output "
            f"(as `keras_convit.ConViT` builds); got {type(model).__name__} {model.name!r}."
        )
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    previous = inputs[0]
    for layer in layers:
        if layer.input is not previous:
            raise ValueError(
                f"keras_convit.analysis runs a model's layers one after the other, but layer "
                f"{layer.name!r} of {model.name!r} does not take the previous layer's output. Pass "
                f"the ConViT model itself (for a wrapper: `wrapper.get_layer('convit')`)."
            )
        previous = layer.output
    if previous is not outputs[0]:
        raise ValueError(f"The last layer of {model.name!r} does not give the model's output.")
    return layers


def attention_blocks(model):
    """The `TransformerBlock`s of a ConViT (GPSA and plain attention), in order."""
    return [layer for layer in model_layers(model) if isinstance(layer, TransformerBlock)]


def gpsa_blocks(model):
    """The `TransformerBlock`s of a ConViT whose attention is GPSA, in order."""
    return [block for block in attention_blocks(model) if block.use_gpsa]


def patch_grid(model):
    """(height, width) of a ConViT's patch grid; its N = height * width patch tokens follow the
    class token, when there is one, in every block (T = N or 1 + N tokens)."""
    for layer in model_layers(model):
        if isinstance(layer, PatchEmbedding):
            return tuple(layer.grid_size)
    raise ValueError(f"{model.name!r} has no PatchEmbedding layer.")


def resolve_block(model, layer):
    """A `TransformerBlock` of `model` from its index among the blocks (negative counts from the
    end), its name (`"blocks_3"`) or the layer itself."""
    blocks = attention_blocks(model)
    names = [block.name for block in blocks]
    if isinstance(layer, bool):
        raise TypeError(f"`layer` must be an int, a name or a layer, got {layer!r}.")
    if isinstance(layer, (int, np.integer)):
        if not -len(blocks) <= layer < len(blocks):
            raise ValueError(
                f"layer={layer} is out of range: {model.name!r} has {len(blocks)} "
                f"attention blocks {names}."
            )
        return blocks[layer]
    if isinstance(layer, str):
        if layer not in names:
            raise ValueError(
                f"layer={layer!r} is not an attention block of {model.name!r}; "
                f"its blocks are {names}."
            )
        return blocks[names.index(layer)]
    if any(layer is block for block in blocks):
        return layer
    raise ValueError(f"layer={layer!r} is not an attention block of {model.name!r} ({names}).")


def forced_gpsa_blocks(model, gate_override=None, override_layers=None):
    """The GPSA blocks whose gate is forced: the first `override_layers` (None: all) when
    `gate_override` is set, else none. Validates both arguments."""
    if gate_override is None:
        if override_layers is not None:
            raise ValueError("`override_layers` needs a `gate_override` (the sigma to force).")
        return []
    if not 0.0 <= float(gate_override) <= 1.0:
        raise ValueError(
            f"`gate_override` is a forced sigma(lambda) in [0, 1], got {gate_override!r}."
        )
    blocks = gpsa_blocks(model)
    if not blocks:
        raise ValueError(f"`gate_override` needs GPSA blocks; {model.name!r} has none.")
    if override_layers is None:
        return blocks
    if (
        isinstance(override_layers, bool)
        or not isinstance(override_layers, (int, np.integer))
        or not (0 <= override_layers <= len(blocks))
    ):
        raise ValueError(
            f"`override_layers` is the number k of first GPSA blocks to force, "
            f"between 0 and {len(blocks)} for {model.name!r}; got {override_layers!r}."
        )
    return blocks[: int(override_layers)]


def forward_layers(
    model,
    images,
    attention_scores=False,
    gate_override=None,
    override_layers=None,
    mask_position_embedding=False,
):
    """Runs `model` on `images` one layer at a time, in inference mode, yielding a `LayerStep`
    per layer: the true hidden states, as the model computes them.

    The weights are only read. Masking acts on the computation: the position embedding layer is
    skipped (Table 5), the forced gate is passed to the GPSA blocks (Table 6).

    Args:
        model: a ConViT functional model (see `model_layers`).
        images: (batch, height, width, channels) images, in the model's input range.
        attention_scores: False, True (every block) or a list of blocks (indices, names or
            layers, see `resolve_block`) whose attention matrices are returned in `scores`.
        gate_override: None or a float in [0, 1] forced as sigma(lambda) in the GPSA blocks:
            1 masks the content attention, 0 the positional attention.
        override_layers: int k, force the gate of the first k GPSA blocks only; None: all.
        mask_position_embedding: bool, skip the learned absolute position embedding.

    Yields:
        `LayerStep(layer, inputs, outputs, scores)`; the last step's `outputs` is the model's
        output.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    >>> for step in analysis.forward_layers(model, images, attention_scores=["blocks_1"]):
    ...     if step.scores is not None:
    ...         print(step.layer.name, tuple(step.scores["attention"].shape))
    blocks_1 (2, 4, 17, 17)
    """
    layers = model_layers(model)
    forced = {id(block) for block in forced_gpsa_blocks(model, gate_override, override_layers)}
    if attention_scores is True:
        wanted = {id(block) for block in attention_blocks(model)}
    elif not attention_scores:
        wanted = set()
    else:
        if isinstance(attention_scores, (int, np.integer, str, keras.layers.Layer)):
            attention_scores = [attention_scores]
        wanted = {id(resolve_block(model, block)) for block in attention_scores}

    x = ops.convert_to_tensor(images, dtype=model.inputs[0].dtype)
    for layer in layers:
        if mask_position_embedding and isinstance(layer, PositionEmbedding):
            yield LayerStep(layer, x, x, None)
            continue
        scores = None
        if isinstance(layer, TransformerBlock):
            kwargs = {"gate_override": float(gate_override)} if id(layer) in forced else {}
            if id(layer) in wanted:
                outputs, scores = layer(x, training=False, return_attention_scores=True, **kwargs)
            else:
                outputs = layer(x, training=False, **kwargs)
        else:
            outputs = layer(x, training=False)
        yield LayerStep(layer, x, outputs, scores)
        x = outputs


def run_model(model, images, **masking):
    """The output of `model` on `images` computed by `forward_layers` (same masking keywords), as
    a backend tensor."""
    outputs = None
    for step in forward_layers(model, images, **masking):
        outputs = step.outputs
    return outputs
