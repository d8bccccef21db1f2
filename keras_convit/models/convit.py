"""ConViT models (d'Ascoli et al., "ConViT: Improving Vision Transformers with Soft Convolutional
Inductive Biases", ICML 2021)."""

import keras
import numpy as np

from keras_convit.layers import (
    ClassAttentionBlock,
    ClassTokenInsertion,
    DistillationHeads,
    PatchEmbedding,
    PositionEmbedding,
    TokenPooling,
    TransformerBlock,
)
from keras_convit.layers.initializers import linear_kernel_initializer
from keras_convit.models.input_checks import ImageInputCheck
from keras_convit.models.input_validation import (
    resolve_image_input,
    validate_ablations,
    validate_architecture,
    validate_classifier_activation,
    validate_head,
)
from keras_convit.models.preprocessing import imagenet_rescaling
from keras_convit.models.training_defaults import compile_classifier
from keras_convit.presets import DEFAULT_INPUT_SIZE, PAPER_LAYOUT, get_preset
from keras_convit.weights.loading import load_weights, validate_weights_argument

DEFAULT_INPUT_SHAPE = (*DEFAULT_INPUT_SIZE, 3)


def ConViT(
    hidden_dim,
    num_heads,
    depth=PAPER_LAYOUT["depth"],
    local_up_to_layer=PAPER_LAYOUT["local_up_to_layer"],
    patch_size=PAPER_LAYOUT["patch_size"],
    mlp_ratio=PAPER_LAYOUT["mlp_ratio"],
    qkv_bias=PAPER_LAYOUT["qkv_bias"],
    locality_strength=1.0,
    use_gpsa=True,
    use_conv_init=True,
    trainable_gating=True,
    gating_init=None,
    trainable_gpsa=True,
    use_pos_embed=True,
    late_attention="self",
    distillation=False,
    dropout_rate=0.0,
    attention_dropout_rate=0.0,
    drop_path_rate=0.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    name="convit",
):
    """Builds a ConViT of any size as a functional `keras.Model`.

    Images flow through: `input_check` (shape, integer images as 0-255 floats) ->
    preprocessing -> `patch_embed` -> `pos_embed` -> GPSA blocks
    `blocks_0` .. `blocks_{L-1}` -> `cls_token` -> attention blocks `blocks_L` .. -> `norm` ->
    pooling -> `head` (with `distillation`: `dist_token` joins beside the class token, and
    `heads` replaces pooling and `head`). Layer and variable paths mirror the reference module paths
    (`blocks_3/attn/qk/kernel` is `blocks.3.attn.qk.weight`).

    Architecture args:
        hidden_dim: int, the total width C, all heads together. The reference
            code's `embed_dim` means the width per head; this argument does not.
        num_heads: int, must divide `hidden_dim`. The convolutional init puts the heads on a
            floor(sqrt(heads))^2 kernel; when `num_heads` is not a perfect square the remaining
            heads keep a random positional init (as in the reference).
        depth: int, number of transformer blocks.
        local_up_to_layer: int L in [0, depth], the number of GPSA blocks; the class token joins
            in front of block L. L = depth leaves no class token, so it needs `pooling="avg"`.
        patch_size: int, side of the square patches; must divide the image height and width.
        mlp_ratio: float, MLP width as a multiple of `hidden_dim`.
        qkv_bias: bool, bias on the query/key/value projections.
        locality_strength: float alpha of the convolutional init (paper Eq. 7).
        use_gpsa: bool. False replaces GPSA by plain self-attention in the first L blocks, the
            class token still joining in front of block L: the in-place ablation, which is
            *not* DeiT. DeiT's layout (the class token from the first block) also needs
            `local_up_to_layer=0`: the `*_deit` presets, `keras_convit.presets.BASELINES`.
        use_conv_init: bool, the convolutional initialisation of GPSA (paper section 3).
        trainable_gating: bool. False freezes each gating parameter lambda at `gating_init`
            (paper Table 3, rows b, d).
        gating_init: float, the initial lambda of every GPSA head; None: 1.0 when trained (the
            paper's), 0.0 (sigma = 0.5, the paper's Table 3) when frozen.
        trainable_gpsa: bool. False freezes the GPSA layers whole (positional and content
            weights, gating), at their initialisation; the rest of the model trains (paper
            Table 3, rows f and g, with `trainable_gating=False`).
        use_pos_embed: bool, the learned absolute position embedding of the patch tokens.
        late_attention: the attention of the blocks after the class token joins: "self" (the
            paper's: every token attends to every token) or "class" (CaiT's class attention,
            `ClassAttentionBlock`: only the class token, and the distillation token, query and
            are updated; the patch tokens pass through).
        distillation: bool, DeiT's distillation token and second head (Touvron et al. 2021):
            the model outputs the average of both heads; train it with
            `keras_convit.training.HardDistillation`. Needs a class token, and with a head,
            `pooling="token"`.
        dropout_rate, attention_dropout_rate: float dropout rates (0 in the paper).
        drop_path_rate: float, stochastic depth, linearly increasing over the blocks to this rate
            (0.1 in the paper's recipe).

    Model args: as the `keras.applications` variants, see `ConViTTiny`; plus `compile`.
    """
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "ConViT models expect channels_last images; got "
            f"keras.config.image_data_format()={keras.config.image_data_format()!r}."
        )
    validate_architecture(hidden_dim, num_heads, depth, local_up_to_layer, pooling)
    validate_head(include_top, pooling, classes)
    validate_ablations(
        use_gpsa, local_up_to_layer, depth, trainable_gpsa, gating_init, late_attention,
        distillation, include_top, pooling,
    )  # fmt: skip
    if gating_init is None:
        gating_init = 1.0 if trainable_gating else 0.0
    validate_classifier_activation(classifier_activation, weights, include_top)
    validate_weights_argument(
        weights,
        include_top=include_top,
        classes=classes,
        architecture=dict(
            hidden_dim=hidden_dim,
            num_heads=num_heads,
            depth=depth,
            local_up_to_layer=local_up_to_layer,
            patch_size=patch_size,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            use_gpsa=use_gpsa,
            use_pos_embed=use_pos_embed,
        ),
    )
    image_input, model_inputs = resolve_image_input(
        input_tensor,
        input_shape,
        DEFAULT_INPUT_SHAPE,
        patch_size,
        include_preprocessing,
    )

    # Keras' own input check lets a 1-channel batch through (it broadcasts it), and is skipped
    # on JAX after the first call and on TensorFlow after a retrace; this one is not.
    x = ImageInputCheck(tuple(image_input.shape[1:]), name="input_check")(image_input)
    if include_preprocessing:
        x = imagenet_rescaling()(x)
    patch_embed = PatchEmbedding(hidden_dim, patch_size, name="patch_embed")
    x = patch_embed(x)
    if use_pos_embed:
        x = PositionEmbedding(name="pos_embed")(x)
    x = keras.layers.Dropout(dropout_rate, name="pos_drop")(x)

    num_prefix_tokens = (1 + distillation) * int(local_up_to_layer < depth)
    drop_path_rates = np.linspace(0.0, drop_path_rate, depth)
    for index in range(depth):
        if index == local_up_to_layer:
            if distillation:  # DeiT's order: class token, distillation token, patches
                x = ClassTokenInsertion(name="dist_token")(x)
            x = ClassTokenInsertion(name="cls_token")(x)
        block_arguments = dict(
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            drop_path_rate=float(drop_path_rates[index]),
            name=f"blocks_{index}",
        )
        if index >= local_up_to_layer and late_attention == "class":
            block = ClassAttentionBlock(
                hidden_dim, num_heads, num_query_tokens=num_prefix_tokens, **block_arguments
            )
        else:
            gpsa = use_gpsa and index < local_up_to_layer
            block = TransformerBlock(
                hidden_dim,
                num_heads,
                use_gpsa=gpsa,
                grid_size=patch_embed.grid_size,
                locality_strength=locality_strength,
                use_conv_init=use_conv_init,
                gating_init=gating_init,
                trainable_gating=trainable_gating,
                trainable_attention=trainable_gpsa or not gpsa,
                **block_arguments,
            )
        x = block(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")(x)

    if include_top and distillation:
        x = keras.layers.Dropout(dropout_rate, name="head_drop")(x)
        x = DistillationHeads(classes, activation=classifier_activation, name="heads")(x)
    else:
        if pooling is not None:
            x = TokenPooling(pooling, num_prefix_tokens=num_prefix_tokens, name="pool")(x)
        if include_top:
            x = keras.layers.Dropout(dropout_rate, name="head_drop")(x)
            x = keras.layers.Dense(
                classes,
                activation=classifier_activation,
                kernel_initializer=linear_kernel_initializer(),
                name="head",
            )(x)
    model = keras.Model(model_inputs, x, name=name)

    if weights is not None:
        load_weights(model, weights)
    if include_top and compile:
        compile_classifier(model)
    return model


VARIANT_DOCSTRING = """{description}: {hidden_dim} wide, {num_heads} heads, {depth} blocks.

    ConViT (d'Ascoli et al., ICML 2021) is a vision transformer whose first {local_up_to_layer}
    of {depth} blocks use gated positional self-attention (GPSA), initialised as a convolution;
    a class token joins before the last ordinary attention blocks. The architecture is the
    `keras_convit.presets.PRESETS["{name}"]` record.

    The model takes RGB images in [0, 255] (the ImageNet normalisation is inside it) unless
    `include_preprocessing=False`. A classifier comes compiled (AdamW with the reference's
    weight-decay exclusions, cross-entropy that takes integer or one-hot / soft labels,
    accuracy), so `fit` works at once; `compile()` overrides it.

    Args:
        include_top: whether to include the classification head.
        weights: None (random initialisation), {imagenet_text}or the path to a weights file:
            Keras `.weights.h5`, or a timm / official checkpoint (`.safetensors`, `.pth`,
            `.bin`). Checkpoints of another input size load too: the position embedding is
            resampled to this model's grid.
        input_tensor: optional Keras tensor (output of `keras.Input()`) to use as image input.
        input_shape: (height, width, channels), static, default {input_shape}. Height and
            width must be multiples of the patch size {patch_size}.
        pooling: "token" (the class token, default) or "avg" (mean of the patch tokens). With
            `include_top=False`, None returns the whole normed token sequence
            (batch, 1 + patches, {hidden_dim}).
        classes: number of classes of the head.
        classifier_activation: activation of the head: "softmax" (default) or None for logits;
            with weights, only these two (as `keras.applications`).
        include_preprocessing: whether the model normalises [0, 255] RGB input itself.
        compile: whether to compile a classifier with the default settings.
        name: the model name, default "{name}".
        **kwargs: further `keras_convit.ConViT` arguments, such as `drop_path_rate`, `use_gpsa`
            or `locality_strength`.

    Returns:
        A `keras.Model`.

    Example:
    >>> model = keras_convit.{function}(input_shape=(32, 32, 3), classes=10){skip}
    >>> tuple(model.predict(np.zeros((2, 32, 32, 3)), verbose=0).shape){skip}
    (2, 10)
"""
# The six examples differ only in the name: the suite runs the Tiny one, where the others would
# build up to 153M parameters (minutes in all) to show the same shapes.
_EXAMPLE_RUN_BY = "ConViTTiny"


def _build_variant(preset_name, arguments):
    """`ConViT` with the preset's architecture and the variant function's `arguments`."""
    preset = get_preset(preset_name)
    arguments = dict(arguments)
    kwargs = arguments.pop("kwargs")
    clashing = sorted(set(kwargs) & set(preset.architecture))
    if clashing:
        raise ValueError(
            f"{preset.function} fixes {', '.join(clashing)} (the {preset.name} architecture); "
            "use keras_convit.ConViT to choose them."
        )
    if arguments["name"] is None:
        arguments["name"] = preset.name
    if arguments["input_shape"] is None and arguments["input_tensor"] is None:
        arguments["input_shape"] = (*preset.input_size, 3)
    return ConViT(**preset.architecture, **arguments, **kwargs)


def _document(function):
    """Formats `VARIANT_DOCSTRING` for a variant function, from its preset."""
    preset = get_preset(function.__name__)
    imagenet_text = (
        f'"imagenet" (the official ImageNet-1k weights, timm tag `{preset.imagenet_tag}`, '
        "downloaded once; with `include_top=True` they need `classes=1000`), "
        if preset.has_imagenet_weights
        else ""
    )
    function.__doc__ = VARIANT_DOCSTRING.format(
        **preset.architecture,
        name=preset.name,
        function=preset.function,
        description=preset.description,
        input_shape=(*preset.input_size, 3),
        imagenet_text=imagenet_text,
        skip="" if preset.function == _EXAMPLE_RUN_BY else "  # doctest: +SKIP",
    )
    return function


# Written out, as keras.applications does, so that `inspect.signature` and go-to-definition show
# the real arguments; the architecture comes from the preset table.
def ConViTTiny(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    name=None,
    **kwargs,
):
    return _build_variant("convit_tiny", locals())


def ConViTTinyPlus(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    name=None,
    **kwargs,
):
    return _build_variant("convit_tiny_plus", locals())


def ConViTSmall(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    name=None,
    **kwargs,
):
    return _build_variant("convit_small", locals())


def ConViTSmallPlus(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    name=None,
    **kwargs,
):
    return _build_variant("convit_small_plus", locals())


def ConViTBase(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    name=None,
    **kwargs,
):
    return _build_variant("convit_base", locals())


def ConViTBasePlus(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    name=None,
    **kwargs,
):
    return _build_variant("convit_base_plus", locals())


VARIANTS = {
    function.__name__: _document(function)
    for function in (
        ConViTTiny,
        ConViTTinyPlus,
        ConViTSmall,
        ConViTSmallPlus,
        ConViTBase,
        ConViTBasePlus,
    )
}


def from_preset(preset, **kwargs):
    """Any named model of `keras_convit.presets.PRESETS`, with `ConViT` arguments overriding
    the preset's (architecture included: `depth=6` gives a shallower model of that width).

    Example:
    >>> model = keras_convit.models.from_preset("convit_digits", classes=10, compile=False)
    >>> model.name, model.input_shape
    ('convit_digits', (None, 16, 16, 3))
    """
    preset = get_preset(preset)
    arguments = {"input_shape": (*preset.input_size, 3), "name": preset.name}
    arguments.update(preset.architecture)
    arguments.update(kwargs)
    if "input_tensor" in kwargs and "input_shape" not in kwargs:
        del arguments["input_shape"]
    return ConViT(**arguments)
