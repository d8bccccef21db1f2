"""Layer-wise learning-rate decay for fine-tuning (BEiT, MAE; timm's `--layer-decay`).

The layers are numbered as timm's `param_groups_layer_decay` numbers ConViT's parameter groups:
the stem (patch embedding, position embedding, class and distillation tokens) is layer 0, block
i is layer i + 1, the final norm joins the last block (timm's `group_matcher` puts it after the
blocks, and its grouping merges the two) and the heads are the top layer, depth + 1. Layer l
trains at the rate times `layer_decay ** (depth + 1 - l)`: the head at the full rate, block i
at `layer_decay ** (depth - i)`, the stem lowest. Decoupled weight decay follows each variable's
rate, as in a PyTorch parameter group.
"""

import re

import keras

from keras_convit._keras_compat import optimizer_variable_index, per_variable_updates
from keras_convit.models.weight_decay import ConViTAdamW

_BLOCK = re.compile(r"^blocks_(\d+)/")
_STEM = ("patch_embed/", "pos_embed/", "cls_token/", "dist_token/")


def layer_id(path, depth):
    """The layer number (0 to depth + 1) of the variable at `path` (a Keras variable path).

    Example:
    >>> [layer_id(path, 12) for path in ("patch_embed/proj/kernel", "blocks_0/attn/qk/kernel",
    ...                                   "blocks_11/mlp/fc2/bias", "norm/gamma", "head/kernel")]
    [0, 1, 12, 12, 13]
    """
    if path.startswith(_STEM):
        return 0
    if path.startswith("norm/"):
        return depth
    block = _BLOCK.match(path)
    return int(block.group(1)) + 1 if block else depth + 1


def layer_scale(path, layer_decay, depth):
    """The learning-rate multiplier of the variable at `path`: `layer_decay ** (depth + 1 -
    layer_id(path, depth))`.

    Example:
    >>> [round(layer_scale(path, 0.5, 2), 4) for path in (
    ...     "patch_embed/proj/kernel", "blocks_0/norm1/gamma", "blocks_1/attn/qkv/kernel",
    ...     "head/bias")]
    [0.125, 0.25, 0.5, 1.0]
    """
    return layer_decay ** (depth + 1 - layer_id(path, depth))


def model_depth(model):
    """The number of blocks (`blocks_0` ...) of a ConViT `model`."""
    return sum(1 for layer in model.layers if _BLOCK.match(layer.name + "/"))


@keras.saving.register_keras_serializable(package="keras_convit")
class LayerDecayAdamW(per_variable_updates(ConViTAdamW)):
    """`ConViTAdamW` whose learning rate, and so weight decay, falls layer by layer from the
    head down (`layer_scale`); the rule is kept in a `.keras` file and a resumed run.

    Args:
        layer_decay: the factor per layer, in (0, 1]; 1 is plain `ConViTAdamW`.
        depth: the model's number of blocks (`model_depth(model)`).
        **kwargs: `ConViTAdamW` arguments.

    Example:
    >>> model = keras_convit.ConViT(32, 2, depth=2, local_up_to_layer=1, patch_size=8,
    ...                             input_shape=(16, 16, 3), classes=3, compile=False)
    >>> optimizer = keras_convit.training.LayerDecayAdamW(
    ...     layer_decay=0.5, depth=model_depth(model), learning_rate=1e-3)
    >>> optimizer.build(model.trainable_variables)
    >>> optimizer.scales["patch_embed/proj/kernel"], optimizer.scales["head/kernel"]
    (0.125, 1.0)
    """

    def __init__(self, layer_decay, depth, **kwargs):
        if not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay!r}.")
        if int(depth) != depth or depth < 1:
            raise ValueError(f"depth must be a whole number >= 1, got {depth!r}.")
        super().__init__(**kwargs)
        self.layer_decay = float(layer_decay)
        self.depth = int(depth)
        self.scales = {}

    def build(self, var_list):
        decayed = {id(v) for v in var_list} - {id(v) for v in self.excluded_variables(var_list)}
        self.scales = {v.path: layer_scale(v.path, self.layer_decay, self.depth) for v in var_list}
        # (scale, decayed) per variable, by the optimizer's own index: `update_step` reads it.
        self._layer_rules = [(self.scales[v.path], id(v) in decayed) for v in var_list]
        super().build(var_list)

    def update_step(self, gradient, variable, learning_rate):
        scale, decayed = self._layer_rules[optimizer_variable_index(self, variable)]
        if decayed and scale != 1.0 and self.weight_decay:
            # AdamW has just decayed the variable at the full rate, v (1 - lr wd) (Loshchilov &
            # Hutter, Alg. 2, line 12); make it v (1 - scale lr wd). Switching the base decay
            # off instead would leave PyTorch's optimizer an empty list, which it rejects.
            full = learning_rate * self.weight_decay
            factor = keras.ops.cast((1.0 - scale * full) / (1.0 - full), variable.dtype)
            self.assign(variable, keras.ops.multiply(variable, factor))
        super().update_step(gradient, variable, keras.ops.multiply(learning_rate, scale))

    def get_config(self):
        return {**super().get_config(), "layer_decay": self.layer_decay, "depth": self.depth}
