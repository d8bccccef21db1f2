"""Which ConViT a checkpoint holds, from the shapes of its tensors alone."""

import re

from keras_convit.presets import DEFAULT_INPUT_SIZE
from keras_convit.weights.resampling import square_grid


def infer_architecture(shapes, grid_size=None, num_heads=None):
    """`keras_convit.ConViT` arguments that rebuild the model a checkpoint was saved from.

    Args:
        shapes: {reference key: shape} (PyTorch layout), e.g. from a state_dict.
        grid_size: (height, width) of the patch grid, when the file says it; otherwise it is
            read from `pos_embed` (a square grid) or, without one, taken as the paper's input size.
        num_heads: the head count, needed only when no block is GPSA (only `gating_param`
            reveals it).

    Returns:
        dict with `hidden_dim`, `num_heads`, `depth`, `local_up_to_layer`, `patch_size`,
        `mlp_ratio`, `qkv_bias`, `use_gpsa`, `use_pos_embed`, `distillation`, `input_shape`,
        `include_top`, `classes` and `pooling`.

    >>> shapes = {"patch_embed.proj.weight": (64, 3, 16, 16), "pos_embed": (1, 196, 64),
    ...           "cls_token": (1, 1, 64), "blocks.0.attn.qk.weight": (128, 64),
    ...           "blocks.0.attn.gating_param": (4,), "blocks.0.mlp.fc1.weight": (256, 64),
    ...           "blocks.1.attn.qkv.weight": (192, 64), "head.weight": (1000, 64)}
    >>> config = infer_architecture(shapes)
    >>> config["hidden_dim"], config["num_heads"], config["depth"], config["local_up_to_layer"]
    (64, 4, 2, 1)
    """
    shapes = {key: tuple(shape) for key, shape in shapes.items()}
    if "patch_embed.proj.weight" not in shapes:
        raise ValueError("Not a ConViT checkpoint: it has no `patch_embed.proj.weight`.")
    hidden_dim, channels, patch_size, _ = shapes["patch_embed.proj.weight"]
    blocks = sorted({int(m.group(1)) for key in shapes if (m := re.match(r"blocks\.(\d+)\.", key))})
    depth = len(blocks)
    if blocks != list(range(depth)) or not depth:
        raise ValueError(f"Not a ConViT checkpoint: its blocks are numbered {blocks}.")
    gpsa = [i for i in blocks if f"blocks.{i}.attn.qk.weight" in shapes]
    if gpsa != list(range(len(gpsa))):
        raise ValueError(f"Not a ConViT checkpoint: its GPSA blocks {gpsa} are not the first.")
    has_class_token = "cls_token" in shapes
    local_up_to_layer = len(gpsa) if gpsa or not has_class_token else 0
    if gpsa:
        num_heads = shapes["blocks.0.attn.gating_param"][0]
    elif num_heads is None:
        raise ValueError("The checkpoint has no GPSA block, so its head count is unknown: pass it.")
    use_pos_embed = "pos_embed" in shapes
    if grid_size is None and use_pos_embed:
        remedy = "pass its grid (the command line's --image-size)"
        grid_size = square_grid(shapes["pos_embed"][1], remedy)
    if grid_size is None:
        grid_size = tuple(side // patch_size for side in DEFAULT_INPUT_SIZE)
    height, width = grid_size
    qkv_bias = any(key.endswith((".attn.qk.bias", ".attn.qkv.bias")) for key in shapes)
    return {
        "hidden_dim": hidden_dim,
        "num_heads": num_heads,
        "depth": depth,
        "local_up_to_layer": local_up_to_layer,
        "patch_size": patch_size,
        "mlp_ratio": shapes["blocks.0.mlp.fc1.weight"][0] / hidden_dim,
        "qkv_bias": qkv_bias,
        "use_gpsa": bool(gpsa) or not has_class_token,
        "use_pos_embed": use_pos_embed,
        "distillation": "dist_token" in shapes,
        "input_shape": (height * patch_size, width * patch_size, channels),
        "include_top": "head.weight" in shapes,
        "classes": shapes["head.weight"][0] if "head.weight" in shapes else 1000,
        "pooling": "token" if has_class_token else "avg",
    }
