import keras
from keras import ops

POOLING_MODES = ("token", "avg")


@keras.saving.register_keras_serializable(package="keras_convit")
class TokenPooling(keras.layers.Layer):
    """Pools a token sequence (B, T, C) to (B, C).

    Args:
        mode: "token" reads the class token at index 0; "avg" averages the tokens after the
            first `num_prefix_tokens` (the patch tokens, as timm's `global_pool="avg"`).
        num_prefix_tokens: int, tokens in front of the patch tokens (1 with a class token).

    Example:
    >>> pool = keras_convit.layers.TokenPooling("avg", num_prefix_tokens=1)
    >>> tuple(pool(np.zeros((2, 7, 32), "float32")).shape)
    (2, 32)
    """

    def __init__(self, mode="token", num_prefix_tokens=1, **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLING_MODES:
            raise ValueError(f"`pooling` must be one of {POOLING_MODES}, got pooling={mode!r}.")
        self.mode = mode
        self.num_prefix_tokens = num_prefix_tokens

    def call(self, inputs):
        if self.mode == "token":
            return inputs[:, 0]
        return ops.mean(inputs[:, self.num_prefix_tokens :], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {
            **super().get_config(),
            "mode": self.mode,
            "num_prefix_tokens": self.num_prefix_tokens,
        }
