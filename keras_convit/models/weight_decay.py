"""The reference's weight-decay exclusions, declared by the model and kept by its optimizer."""

import keras

from keras_convit._keras_compat import adamw_base

# Reference `no_weight_decay()` names, in Keras variable paths.
NO_WEIGHT_DECAY_PATHS = ("pos_embed/embedding", "cls_token/token", "dist_token/token")


def is_excluded_from_weight_decay(variable, paths=NO_WEIGHT_DECAY_PATHS):
    """Whether the reference excludes `variable` from weight decay: every 1-D variable (biases,
    LayerNorm scales, GPSA gating parameters), the position embedding, the class token and
    DeiT's distillation token.
    `pos_proj`'s kernel is decayed, as in the reference."""
    return len(variable.shape) <= 1 or variable.path.endswith(tuple(paths))


def no_weight_decay_variables(model):
    """The variables of `model` that the reference excludes from weight decay."""
    return [v for v in model.trainable_variables if is_excluded_from_weight_decay(v)]


@keras.saving.register_keras_serializable(package="keras_convit")
class ConViTAdamW(adamw_base()):
    """AdamW that never decays the reference's `no_weight_decay` variables (under PyTorch,
    Keras' multi-tensor AdamW: one `torch._foreach_*` update for all variables).

    The exclusions are a rule applied when the optimizer is built, not a list of variables, so
    they survive what a list does not: a `.keras` save and load, `clone_model`, a resumed run.
    (A plain AdamW's `exclude_from_weight_decay(var_list=...)` is lost in its config.)

    Args:
        no_weight_decay_paths: variable path endings excluded beside every 1-D variable.
        **kwargs: `keras.optimizers.AdamW` arguments.

    Example:
    >>> model = keras_convit.ConViT(32, 2, depth=2, local_up_to_layer=1, patch_size=8,
    ...                             input_shape=(16, 16, 3), classes=3, compile=False)
    >>> optimizer = keras_convit.models.ConViTAdamW(learning_rate=1e-3, weight_decay=0.05)
    >>> optimizer.build(model.trainable_variables)
    >>> len(optimizer.excluded_variables(model.trainable_variables))
    22
    """

    def __init__(self, no_weight_decay_paths=NO_WEIGHT_DECAY_PATHS, **kwargs):
        super().__init__(**kwargs)
        self.no_weight_decay_paths = tuple(no_weight_decay_paths)

    def excluded_variables(self, variables):
        """The members of `variables` this optimizer does not decay."""
        return [
            v for v in variables if is_excluded_from_weight_decay(v, self.no_weight_decay_paths)
        ]

    def build(self, var_list):
        self.exclude_from_weight_decay(var_list=self.excluded_variables(var_list))
        super().build(var_list)

    def get_config(self):
        return {**super().get_config(), "no_weight_decay_paths": list(self.no_weight_decay_paths)}
