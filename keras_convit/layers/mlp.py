import math

import keras
from keras import ops

from keras_convit.layers.composite import CompositeLayer
from keras_convit.layers.initializers import linear_kernel_initializer
from keras_convit.layers.linear import Linear


@keras.saving.register_keras_serializable(package="keras_convit")
class MLP(CompositeLayer):
    """The transformer feed-forward block: fc1 -> exact (erf) GELU -> dropout -> fc2 -> dropout.

    Args:
        hidden_dim: int, input and output width C.
        intermediate_dim: int, width of `fc1` (mlp_ratio x C in ConViT).
        dropout_rate: float, dropout after the activation and after `fc2`.

    Example:
    >>> mlp = keras_convit.layers.MLP(32, 128)
    >>> tuple(mlp(np.zeros((2, 5, 32), "float32")).shape)
    (2, 5, 32)
    """

    def __init__(self, hidden_dim, intermediate_dim, dropout_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout_rate = dropout_rate

    def build(self, input_shape):
        init = linear_kernel_initializer()
        self.fc1 = Linear(
            self.intermediate_dim,
            kernel_initializer=init,
            dtype=self.sublayer_dtype("fc1"),
            name="fc1",
        )
        self.fc1.build(input_shape)
        self.fc2 = Linear(
            self.hidden_dim, kernel_initializer=init, dtype=self.sublayer_dtype("fc2"), name="fc2"
        )
        self.fc2.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))
        self.dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=self.sublayer_dtype("drop"), name="drop"
        )
        self.dropout.build(input_shape)

    def call(self, inputs, training=None):
        x = erf_gelu(self.fc1(inputs))
        x = self.randomly_dropped(self.dropout, x, training)
        return self.randomly_dropped(self.dropout, self.fc2(x), training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.hidden_dim,)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "dropout_rate": self.dropout_rate,
        }


def erf_gelu(x):
    """The exact GELU, x * Phi(x) = x / 2 * (1 + erf(x / sqrt(2))), as the reference's nn.GELU.

    The same function, written per backend so that every export reads it: TensorFlow's own GELU
    lowers to `Erfc`, an op ONNX lacks, so it is written with `erf` there; JAX's own GELU uses
    `erfc`, where `lax.erf` would lower to a StableHLO composite that TensorFlow's
    `XlaCallModule` (a JAX SavedModel) cannot read (jax 0.10.2, tensorflow 2.21).
    """
    if keras.backend.backend() == "tensorflow":
        return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))
    return keras.activations.gelu(x, approximate=False)
