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
from keras_convit.layers.input_check import ImageInputCheck
from keras_convit.models.arguments import (
    resolve_image_input,
    validate_ablations,
    validate_architecture,
    validate_classifier_activation,
    validate_dtype,
    validate_head,
)
from keras_convit.models.default_compile import compile_classifier
from keras_convit.models.preprocessing import normalization
from keras_convit.presets import DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD, PAPER_LAYOUT
from keras_convit.weights.channels import adapt_statistics
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
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    compile=True,
    dtype=None,
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

    Model args: as the `keras.applications` variants, see `ConViTTiny`; plus `compile`, and
        `mean`, `std`: the per-channel statistics (in [0, 1] units) of the preprocessing inside
        the model, (x / 255 - mean) / std; a preset's (ImageNet's by default). RGB statistics
        follow another channel count: their mean for 1 channel, repeated for C
        (`keras_convit.weights.adapt_statistics`); or pass C values. `dtype`: the dtype
        policy of every layer (keras-hub's backbones' `dtype`), e.g. "mixed_bfloat16" or
        "bfloat16"; None: the global policy. GPSA's positional attention, both of its
        softmaxes and its gating stay float32 under any policy.

    Example, a 1-channel model with a new head from an RGB checkpoint:
    >>> import os, tempfile
    >>> rgb = ConViT(64, 4, depth=2, local_up_to_layer=1, input_shape=(32, 32, 3), classes=10)
    >>> path = os.path.join(tempfile.mkdtemp(), "rgb.weights.h5")
    >>> rgb.save_weights(path)
    >>> grey = ConViT(
    ...     64, 4, depth=2, local_up_to_layer=1, input_shape=(32, 32, 1), classes=3, weights=path
    ... )
    >>> tuple(grey.predict(np.zeros((2, 32, 32, 1)), verbose=0).shape)
    (2, 3)
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
        input_tensor, input_shape, DEFAULT_INPUT_SHAPE, patch_size
    )
    channels = image_input.shape[-1]

    # Keras' own input check lets a 1-channel batch through (it broadcasts it), and is skipped
    # on JAX after the first call and on TensorFlow after a retrace; this one is not.
    dtype = validate_dtype(dtype)
    x = ImageInputCheck(tuple(image_input.shape[1:]), dtype=dtype, name="input_check")(image_input)
    if include_preprocessing:
        statistics = [adapt_statistics(values, channels) for values in (mean, std)]
        x = normalization(*statistics, dtype=dtype)(x)
    patch_embed = PatchEmbedding(hidden_dim, patch_size, dtype=dtype, name="patch_embed")
    x = patch_embed(x)
    if use_pos_embed:
        x = PositionEmbedding(dtype=dtype, name="pos_embed")(x)
    x = keras.layers.Dropout(dropout_rate, dtype=dtype, name="pos_drop")(x)

    num_prefix_tokens = (1 + distillation) * int(local_up_to_layer < depth)
    drop_path_rates = np.linspace(0.0, drop_path_rate, depth)
    for index in range(depth):
        if index == local_up_to_layer:
            if distillation:  # DeiT's order: class token, distillation token, patches
                x = ClassTokenInsertion(dtype=dtype, name="dist_token")(x)
            x = ClassTokenInsertion(dtype=dtype, name="cls_token")(x)
        block_arguments = dict(
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            dropout_rate=dropout_rate,
            attention_dropout_rate=attention_dropout_rate,
            drop_path_rate=float(drop_path_rates[index]),
            dtype=dtype,
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
    x = keras.layers.LayerNormalization(epsilon=1e-6, dtype=dtype, name="norm")(x)

    if include_top and distillation:
        x = keras.layers.Dropout(dropout_rate, dtype=dtype, name="head_drop")(x)
        x = DistillationHeads(classes, activation=classifier_activation, dtype=dtype, name="heads")(
            x
        )
    else:
        if pooling is not None:
            x = TokenPooling(
                pooling, num_prefix_tokens=num_prefix_tokens, dtype=dtype, name="pool"
            )(x)
        if include_top:
            x = keras.layers.Dropout(dropout_rate, dtype=dtype, name="head_drop")(x)
            x = keras.layers.Dense(
                classes,
                activation=classifier_activation,
                kernel_initializer=linear_kernel_initializer(),
                dtype=dtype,
                name="head",
            )(x)
    model = keras.Model(model_inputs, x, name=name)
    if dtype is not None:  # a functional model takes no `dtype`; its layers hold the policy
        model.dtype_policy = dtype

    if weights is not None:
        load_weights(model, weights, new_head=True)
    if include_top and compile:
        compile_classifier(model)
    return model
