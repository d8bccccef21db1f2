"""The `ConViT` arguments of a built ConViT, read back from its layers (for presets)."""

import json

import keras

from keras_convit.layers import ClassAttentionBlock
from keras_convit.models.convit import ConViT


def convit_arguments(model):
    """The `keras_convit.ConViT` arguments that rebuild `model` (a model `ConViT`, a variant or
    `from_preset` built, or a `.keras` file of one), as JSON-ready values.

    Returns (arguments, the model rebuilt from them, uncompiled, its weights fresh). Raises
    ValueError when `model` is not such a ConViT: the rebuilt model must have the same layers
    with the same configs (the layers' `trainable` flags aside).

    >>> model = keras_convit.ConViT(32, 4, depth=2, local_up_to_layer=1, patch_size=8,
    ...                             input_shape=(32, 32, 3), classes=5)
    >>> arguments, rebuilt = convit_arguments(model)
    >>> arguments["hidden_dim"], arguments["local_up_to_layer"], arguments["classes"]
    (32, 1, 5)
    """
    layers = {layer.name: layer for layer in getattr(model, "layers", ())}
    if "patch_embed" not in layers or "blocks_0" not in layers or "input_check" not in layers:
        raise ValueError(
            f"{getattr(model, 'name', model)!r} is not a ConViT built by keras_convit.ConViT "
            "(no input_check, patch_embed or blocks_0 layer)."
        )
    arguments = _read(model, layers)
    rebuilt = ConViT(**arguments, compile=False)
    if _comparable(rebuilt) != _comparable(model):
        raise ValueError(
            f"{model.name!r} differs from the ConViT its layers describe (a changed or added "
            "layer?): only models built by keras_convit.ConViT, a variant or from_preset can "
            "be saved as a preset."
        )
    return arguments, rebuilt


def _read(model, layers):
    patch_embed = layers["patch_embed"]
    grid = patch_embed.grid_size
    depth = sum(1 for name in layers if name.startswith("blocks_"))
    blocks = [layers[f"blocks_{index}"] for index in range(depth)]
    local = next(
        (i for i, block in enumerate(blocks) if block.input.shape[1] > grid[0] * grid[1]), depth
    )
    first = blocks[0].get_config()
    distillation = "dist_token" in layers
    include_top = "head" in layers or "heads" in layers
    arguments = dict(
        hidden_dim=patch_embed.hidden_dim,
        num_heads=first["num_heads"],
        depth=depth,
        local_up_to_layer=local,
        patch_size=patch_embed.patch_size,
        mlp_ratio=first["mlp_ratio"],
        qkv_bias=first["qkv_bias"],
        late_attention="class" if isinstance(blocks[-1], ClassAttentionBlock) else "self",
        distillation=distillation,
        use_pos_embed="pos_embed" in layers,
        dropout_rate=layers["pos_drop"].rate,
        attention_dropout_rate=first["attention_dropout_rate"],
        drop_path_rate=blocks[-1].get_config()["drop_path_rate"],
        include_top=include_top,
        input_shape=list(layers["input_check"].image_shape),
        include_preprocessing="preprocessing" in layers,
        name=model.name,
    )
    if not isinstance(blocks[0], ClassAttentionBlock):
        gpsa = first.get("use_gpsa", False)
        arguments.update(
            use_gpsa=bool(gpsa),
            locality_strength=first["locality_strength"],
            use_conv_init=first["use_conv_init"],
            gating_init=first["gating_init"],
            trainable_gating=first["trainable_gating"],
            trainable_gpsa=first["trainable_attention"] if gpsa else True,
        )
    if "preprocessing" in layers:
        rescaling = layers["preprocessing"].get_config()
        std = [1.0 / (255.0 * scale) for scale in rescaling["scale"]]
        mean = [-offset * s for offset, s in zip(rescaling["offset"], std, strict=True)]
        arguments.update(mean=[_round(m) for m in mean], std=[_round(s) for s in std])
    if include_top:
        head = layers.get("head") or layers["heads"]
        config = head.get_config()
        arguments["classes"] = config.get("units", config.get("classes"))
        activation = config["activation"]
        arguments["classifier_activation"] = None if activation in (None, "linear") else activation
        arguments["pooling"] = layers["pool"].mode if "pool" in layers else "token"
    else:
        arguments["pooling"] = layers["pool"].mode if "pool" in layers else None
    policy = patch_embed.dtype_policy.name
    arguments["dtype"] = None if policy == keras.config.dtype_policy().name else policy
    return arguments


def _round(value):
    """9 significant digits: the statistics as they were written (0.485), not 0.48500000000001."""
    return float(f"{value:.9g}")


def _comparable(model):
    """`model.get_config()` as JSON, without the `trainable` flags (freezing is no change of
    architecture) and the preprocessing's scale and offset (compared through mean and std)."""

    def strip(value):
        if isinstance(value, dict):
            return {
                key: strip(item)
                for key, item in value.items()
                if key not in ("trainable", "scale", "offset")
            }
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return strip(json.loads(json.dumps(model.get_config(), default=str)))
