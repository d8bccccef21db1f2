"""Argument checks of the model builders: each failure names the argument, its value and what is
allowed."""

import keras

from keras_convit.layers.pooling import POOLING_MODES


def validate_architecture(hidden_dim, num_heads, depth, local_up_to_layer, pooling):
    for argument, value in (("hidden_dim", hidden_dim), ("num_heads", num_heads), ("depth", depth)):
        if not _is_positive_int(value):
            raise ValueError(f"`{argument}` must be a positive integer, got {argument}={value!r}.")
    if hidden_dim % num_heads:
        raise ValueError(
            f"`num_heads` must divide `hidden_dim`, got hidden_dim={hidden_dim} and "
            f"num_heads={num_heads}."
        )
    if not isinstance(local_up_to_layer, int) or not 0 <= local_up_to_layer <= depth:
        raise ValueError(
            f"`local_up_to_layer` must be an integer in [0, depth={depth}], got "
            f"local_up_to_layer={local_up_to_layer!r}."
        )
    if local_up_to_layer == depth and pooling == "token":
        raise ValueError(
            f"local_up_to_layer={local_up_to_layer} equals depth={depth}: no class token is "
            'inserted, so pooling="token" has nothing to read; use pooling="avg" or a smaller '
            "`local_up_to_layer`."
        )


LATE_ATTENTIONS = ("self", "class")


def validate_ablations(
    use_gpsa, local_up_to_layer, depth, trainable_gpsa, gating_init, late_attention,
    distillation, include_top, pooling,
):  # fmt: skip
    """The ablation switches of `ConViT`: each must have something to act on."""
    has_gpsa = use_gpsa and local_up_to_layer > 0
    if not trainable_gpsa and not has_gpsa:
        raise ValueError(
            "trainable_gpsa=False freezes the GPSA blocks, but this model has none "
            f"(use_gpsa={use_gpsa}, local_up_to_layer={local_up_to_layer})."
        )
    if gating_init is not None and (
        isinstance(gating_init, bool) or not isinstance(gating_init, (int, float))
    ):
        raise ValueError(f"`gating_init` must be a number or None, got {gating_init!r}.")
    if late_attention not in LATE_ATTENTIONS:
        raise ValueError(
            f"`late_attention` must be one of {LATE_ATTENTIONS}, got {late_attention!r}."
        )
    has_class_token = local_up_to_layer < depth
    for argument, active in (
        ("distillation=True", distillation),
        ('late_attention="class"', late_attention == "class"),
    ):
        if active and not has_class_token:
            raise ValueError(
                f"{argument} needs a class token, but local_up_to_layer={local_up_to_layer} "
                f"equals depth={depth}: lower `local_up_to_layer`."
            )
    if distillation and include_top and pooling != "token":
        raise ValueError(
            "distillation=True reads its two heads from the class and distillation tokens: "
            f'use pooling="token" (got pooling={pooling!r}) or include_top=False.'
        )


def validate_head(include_top, pooling, classes):
    allowed = POOLING_MODES if include_top else POOLING_MODES + (None,)
    if pooling not in allowed:
        raise ValueError(
            f"`pooling` must be one of {allowed} with include_top={include_top}, got "
            f"pooling={pooling!r}."
        )
    if include_top and not _is_positive_int(classes):
        raise ValueError(
            f"`classes` must be a positive integer when include_top=True, got classes={classes!r}."
        )


def validate_dtype(dtype):
    """`dtype` (None, a policy name such as "mixed_bfloat16", a dtype or a `DTypePolicy`) as
    the policy's name (which every layer's config can hold), or None for the global
    policy."""
    if dtype is None:
        return None
    try:
        return keras.dtype_policies.get(dtype).name
    except (ValueError, TypeError):
        raise ValueError(
            '`dtype` must be None, a dtype policy name ("float32", "mixed_bfloat16", '
            f'"bfloat16", ...) or a keras.DTypePolicy, got dtype={dtype!r}.'
        ) from None


def validate_classifier_activation(classifier_activation, weights, include_top):
    """keras.applications' rule: with weights and a head, the head ends in softmax or nothing."""
    activation = keras.activations.get(classifier_activation)
    if weights is None or not include_top:
        return
    allowed = (keras.activations.get("softmax"), keras.activations.get(None))
    if activation not in allowed:
        raise ValueError(
            "Only None and 'softmax' are allowed as `classifier_activation` with pretrained "
            f"weights and include_top=True; got classifier_activation={classifier_activation!r} "
            f"with weights={weights!r}. Build with classifier_activation=None and apply your "
            "activation to the logits."
        )


def resolve_image_input(input_tensor, input_shape, default_shape, patch_size):
    """Returns (image tensor, model inputs) after checking the image shape.

    The shape must be static (height, width, channels), each side a multiple of `patch_size`;
    any channel count (the preprocessing's statistics follow it).
    """
    if input_tensor is not None:
        tensor_shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != tensor_shape:
            raise ValueError(
                f"`input_shape={tuple(input_shape)}` does not match the shape {tensor_shape} of "
                "`input_tensor`."
            )
        input_shape = tensor_shape
    shape = tuple(default_shape if input_shape is None else input_shape)
    if len(shape) != 3 or not all(_is_positive_int(side) for side in shape):
        raise ValueError(
            "`input_shape` must be a static (height, width, channels) tuple of positive integers, "
            f"got input_shape={input_shape!r}."
        )
    height, width, _ = shape
    if height < patch_size or width < patch_size:
        raise ValueError(
            f"`input_shape={shape}` is too small: height and width must be at least "
            f"patch_size={patch_size}."
        )
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"`input_shape={shape}`: height and width must be multiples of patch_size={patch_size}."
        )
    if input_tensor is None:
        image = keras.Input(shape=shape, name="images")
        return image, image
    if isinstance(input_tensor, keras.KerasTensor):
        sources = keras.utils.get_source_inputs(input_tensor)
        return input_tensor, sources[0] if len(sources) == 1 else sources
    image = keras.Input(tensor=input_tensor, shape=shape, name="images")
    return image, image


def _is_positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
