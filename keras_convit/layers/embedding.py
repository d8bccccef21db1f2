import keras
from keras import ops

from keras_convit.layers.composite import CompositeLayer
from keras_convit.layers.initializers import (
    conv_bias_initializer,
    conv_kernel_initializer,
    linear_kernel_initializer,
)


@keras.saving.register_keras_serializable(package="keras_convit")
class PatchEmbedding(CompositeLayer):
    """Splits images into non-overlapping patches and projects them: (B, H, W, C_in) -> (B, N, C).

    A strided convolution `proj` (the reference's `patch_embed.proj`), flattened row-major, so
    token n is the patch at row n // width, column n % width. Channels-last input.

    Args:
        hidden_dim: int, output width C.
        patch_size: int, side of the square patches; must divide the image height and width.

    Example:
    >>> embed = keras_convit.layers.PatchEmbedding(32, patch_size=4)
    >>> tuple(embed(np.zeros((2, 16, 8, 3), "float32")).shape)
    (2, 8, 32)
    """

    def __init__(self, hidden_dim, patch_size, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.patch_size = patch_size

    def build(self, input_shape):
        height, width, channels = input_shape[1:]
        for side, value in (("height", height), ("width", width)):
            if value is None or value % self.patch_size:
                raise ValueError(
                    f"The image {side} must be a static multiple of patch_size="
                    f"{self.patch_size}, got input shape {tuple(input_shape[1:])}."
                )
        self.grid_size = (height // self.patch_size, width // self.patch_size)
        fan_in = channels * self.patch_size**2
        self.proj = keras.layers.Conv2D(
            self.hidden_dim,
            self.patch_size,
            strides=self.patch_size,
            kernel_initializer=conv_kernel_initializer(),
            bias_initializer=conv_bias_initializer(fan_in),
            data_format="channels_last",
            dtype=self.sublayer_dtype("proj"),
            name="proj",
        )
        self.proj.build(input_shape)

    def call(self, inputs):
        height, width = self.grid_size
        return ops.reshape(self.proj(inputs), (-1, height * width, self.hidden_dim))

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1] // self.patch_size, input_shape[2] // self.patch_size
        return (input_shape[0], height * width, self.hidden_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "patch_size": self.patch_size,
        }


@keras.saving.register_keras_serializable(package="keras_convit")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned absolute position embedding to the patch tokens (no class-token slot).

    The weight `embedding` has shape (1, N, C), as the reference's `pos_embed`.

    Example:
    >>> embed = keras_convit.layers.PositionEmbedding()
    >>> tuple(embed(np.zeros((2, 6, 32), "float32")).shape)
    (2, 6, 32)
    """

    def build(self, input_shape):
        self.embedding = self.add_weight(
            name="embedding",
            shape=(1,) + tuple(input_shape[1:]),
            initializer=linear_kernel_initializer(),
        )

    def call(self, inputs):
        return inputs + ops.cast(self.embedding, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape
