import keras
from keras import ops

from keras_convit.layers.initializers import linear_kernel_initializer


@keras.saving.register_keras_serializable(package="keras_convit")
class ClassTokenInsertion(keras.layers.Layer):
    """Prepends a learned class token to a token sequence: (B, N, C) -> (B, 1 + N, C).

    ConViT inserts it after the last GPSA block, so the GPSA blocks see patch tokens only and the
    class token never gets a position embedding. The weight `token` has shape (1, 1, C).

    Example:
    >>> insert = keras_convit.layers.ClassTokenInsertion()
    >>> tuple(insert(np.zeros((2, 6, 32), "float32")).shape)
    (2, 7, 32)
    """

    def build(self, input_shape):
        self.token = self.add_weight(
            name="token",
            shape=(1, 1, input_shape[-1]),
            initializer=linear_kernel_initializer(),
        )

    def call(self, inputs):
        token = ops.cast(self.token, inputs.dtype)
        token = ops.broadcast_to(token, (ops.shape(inputs)[0], 1, inputs.shape[-1]))
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])
