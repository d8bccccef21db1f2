"""ConViT models (d'Ascoli et al., "ConViT: Improving Vision Transformers with Soft Convolutional
Inductive Biases", ICML 2021)."""

import keras
import numpy as np

from keras_convit.layers import (
    ClassTokenInsertion,
    PatchEmbedding,
    PositionEmbedding,
    TokenPooling,
    TransformerBlock,
)
from keras_convit.layers.initializers import linear_kernel_initializer
from keras_convit.models.input_validation import (
    resolve_image_input,
    validate_architecture,
    validate_head,
)
from keras_convit.models.preprocessing import imagenet_rescaling
from keras_convit.models.training_defaults import compile_classifier
from keras_convit.weights.loading import load_weights, validate_weights_argument

# `hidden_dim` is the total width, all heads together (the reference's `embed_dim` is per head).
CONFIGS = {
    "convit_tiny": {"hidden_dim": 192, "num_heads": 4},
    "convit_tiny_plus": {"hidden_dim": 256, "num_heads": 4},
    "convit_small": {"hidden_dim": 432, "num_heads": 9},
    "convit_small_plus": {"hidden_dim": 576, "num_heads": 9},
    "convit_base": {"hidden_dim": 768, "num_heads": 16},
    "convit_base_plus": {"hidden_dim": 1024, "num_heads": 16},
}
DEFAULT_INPUT_SHAPE = (224, 224, 3)


def ConViT(
    hidden_dim=192,
    num_heads=4,
    depth=12,
    local_up_to_layer=10,
    patch_size=16,
    mlp_ratio=4.0,
    qkv_bias=False,
    locality_strength=1.0,
    use_gpsa=True,
    use_conv_init=True,
    trainable_gating=True,
    use_pos_embed=True,
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

    Images flow through: preprocessing -> `patch_embed` -> `pos_embed` -> GPSA blocks
    `blocks_0` .. `blocks_{L-1}` -> `cls_token` -> attention blocks `blocks_L` .. -> `norm` ->
    pooling -> `head`. Layer and variable paths mirror the reference module paths
    (`blocks_3/attn/qk/kernel` is `blocks.3.attn.qk.weight`).

    Architecture args:
        hidden_dim: int, the total width C, all heads together (ConViT-Ti: 192). The reference
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
        use_gpsa: bool. False replaces GPSA by plain self-attention in the first L blocks: the
            DeiT baseline of the same size (`local_up_to_layer=0` also moves the class token to
            the first block, as in DeiT).
        use_conv_init: bool, the convolutional initialisation of GPSA (paper section 3).
        trainable_gating: bool. False freezes the gating parameter lambda at 0 (sigma = 0.5),
            the paper's Table 3 ablation.
        use_pos_embed: bool, the learned absolute position embedding of the patch tokens.
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

    x = image_input
    if include_preprocessing:
        x = imagenet_rescaling()(x)
    patch_embed = PatchEmbedding(hidden_dim, patch_size, name="patch_embed")
    x = patch_embed(x)
    if use_pos_embed:
        x = PositionEmbedding(name="pos_embed")(x)
    x = keras.layers.Dropout(dropout_rate, name="pos_drop")(x)

    drop_path_rates = np.linspace(0.0, drop_path_rate, depth)
    for index in range(depth):
        if index == local_up_to_layer:
            x = ClassTokenInsertion(name="cls_token")(x)
        x = TransformerBlock(
            hidden_dim,
            num_heads,
            use_gpsa=use_gpsa and index < local_up_to_layer,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            drop_path_rate=float(drop_path_rates[index]),
            grid_size=patch_embed.grid_size,
            locality_strength=locality_strength,
            use_conv_init=use_conv_init,
            gating_init=1.0 if trainable_gating else 0.0,
            trainable_gating=trainable_gating,
            name=f"blocks_{index}",
        )(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")(x)

    num_prefix_tokens = int(local_up_to_layer < depth)
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
        compile_classifier(model, classifier_activation)
    return model


BASE_DOCSTRING = """Instantiates the {variant} architecture ({hidden_dim} wide, {num_heads} heads).

    ConViT (d'Ascoli et al., ICML 2021) is a vision transformer whose first 10 of 12 blocks use
    gated positional self-attention (GPSA), initialised as a convolution; a class token joins
    before the last two ordinary attention blocks.

    The model takes RGB images in [0, 255] (the ImageNet normalisation is inside it) unless
    `include_preprocessing=False`. A classifier comes compiled (AdamW, sparse categorical
    cross-entropy, accuracy), so `fit` works at once; `compile()` overrides it.

    Args:
        include_top: whether to include the classification head.
        weights: None (random initialisation), "imagenet" (ConViT-Ti, S and B: the official
            ImageNet-1k weights, downloaded once; with `include_top=True` they need
            `classes=1000`), or the path to a weights file: Keras `.weights.h5`, or a timm /
            official checkpoint (`.safetensors`, `.pth`, `.bin`). Checkpoints of another input
            size load too: the position embedding is resampled to this model's grid.
        input_tensor: optional Keras tensor (output of `keras.Input()`) to use as image input.
        input_shape: (height, width, channels), static, default (224, 224, 3). Height and width
            must be multiples of the patch size 16.
        pooling: "token" (the class token, default) or "avg" (mean of the patch tokens). With
            `include_top=False`, None returns the whole normed token sequence
            (batch, 1 + patches, {hidden_dim}).
        classes: number of classes of the head.
        classifier_activation: activation of the head: "softmax" (default) or None for logits.
        include_preprocessing: whether the model normalises [0, 255] RGB input itself.
        compile: whether to compile a classifier with the default settings.
        name: the model name.
        **kwargs: further `keras_convit.ConViT` arguments, such as `drop_path_rate`, `use_gpsa`
            or `locality_strength`.

    Returns:
        A `keras.Model`.

    Example:
    >>> model = keras_convit.{variant}(input_shape=(32, 32, 3), classes=10)
    >>> tuple(model.predict(np.zeros((2, 32, 32, 3)), verbose=0).shape)
    (2, 10)
"""


def _variant(function_name, config_name):
    config = CONFIGS[config_name]

    def build(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling="token",
        classes=1000,
        classifier_activation="softmax",
        include_preprocessing=True,
        compile=True,
        name=config_name,
        **kwargs,
    ):
        return ConViT(
            **config,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            include_preprocessing=include_preprocessing,
            compile=compile,
            name=name,
            **kwargs,
        )

    build.__name__ = build.__qualname__ = function_name
    build.__doc__ = BASE_DOCSTRING.format(variant=function_name, **config)
    return build


ConViTTiny = _variant("ConViTTiny", "convit_tiny")
ConViTTinyPlus = _variant("ConViTTinyPlus", "convit_tiny_plus")
ConViTSmall = _variant("ConViTSmall", "convit_small")
ConViTSmallPlus = _variant("ConViTSmallPlus", "convit_small_plus")
ConViTBase = _variant("ConViTBase", "convit_base")
ConViTBasePlus = _variant("ConViTBasePlus", "convit_base_plus")
